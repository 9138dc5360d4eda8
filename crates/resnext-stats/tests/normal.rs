//! erfc and the normal CDF against scipy.special.erfc and scipy.stats.norm (tests/reference.py).

use resnext_stats::normal::{erfc, normal_cdf, two_sided_p};

#[test]
fn erfc_matches_scipy_to_1e_13_relative() {
    let reference = [
        (-1.0, 1.8427007929497148),
        (0.0, 1.0),
        (0.1, 0.8875370839817152),
        (0.5, 0.4795001221869535),
        (1.0, 0.15729920705028516),
        (2.0, 0.004677734981047266),
        (2.4999, 0.0004071699003334512),
        (2.5, 0.00040695201744495886),
        (3.0, 2.2090496998585445e-05),
        (5.0, 1.5374597944280347e-12),
        (10.0, 2.0884875837625446e-45),
        (26.0, 5.663192408856145e-296),
    ];
    for (x, want) in reference {
        let got = erfc(x);
        assert!(
            ((got - want) / want).abs() < 1e-13,
            "erfc({x}) = {got}, scipy {want}"
        );
    }
    assert_eq!(erfc(40.0), 0.0);
    assert_eq!(erfc(-40.0), 2.0);
    assert!(erfc(f64::NAN).is_nan());
}

#[test]
fn the_normal_cdf_matches_scipy() {
    // scipy.stats.norm.cdf(-1.959963984540054) = 0.025
    assert!((normal_cdf(-1.959963984540054) - 0.025).abs() < 1e-15);
    assert_eq!(normal_cdf(0.0), 0.5);
    assert!((two_sided_p(1.959963984540054) - 0.05).abs() < 1e-15);
    assert!((two_sided_p(-1.959963984540054) - 0.05).abs() < 1e-15);
}
