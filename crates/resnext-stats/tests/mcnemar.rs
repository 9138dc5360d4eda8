//! McNemar's test against scipy.stats.binomtest (exact, b + c < 25) and scipy.stats.chi2.sf
//! of the continuity-corrected statistic (tests/reference.py).

use resnext_stats::{mcnemar, McNemarMethod, StatsError};

/// Correctness vectors with `b` images only a gets right, `c` only b, and some agreement.
fn paired(b: usize, c: usize) -> (Vec<bool>, Vec<bool>) {
    let mut a = vec![true; b];
    let mut bb = vec![false; b];
    a.extend(vec![false; c]);
    bb.extend(vec![true; c]);
    // concordant images change nothing
    a.extend([true, true, false]);
    bb.extend([true, true, false]);
    (a, bb)
}

#[test]
fn matches_scipy() {
    let reference = [
        (3, 10, McNemarMethod::ExactBinomial, 0.09228515625),
        (0, 5, McNemarMethod::ExactBinomial, 0.0625),
        (7, 7, McNemarMethod::ExactBinomial, 1.0),
        (12, 12, McNemarMethod::ExactBinomial, 1.0),
        (1, 23, McNemarMethod::ExactBinomial, 2.9802322387695312e-06),
        (0, 0, McNemarMethod::ExactBinomial, 1.0),
        (
            30,
            15,
            McNemarMethod::ChiSquareCorrected,
            0.036888425707049914,
        ),
        (
            20,
            20,
            McNemarMethod::ChiSquareCorrected,
            0.8743670611628918,
        ),
    ];
    for (b, c, method, p) in reference {
        let (x, y) = paired(b, c);
        let m = mcnemar(&x, &y).unwrap();
        assert_eq!((m.b, m.c, m.method), (b as u64, c as u64, method));
        assert!(
            (m.p_value - p).abs() <= 1e-12 * p.max(1e-300) + 1e-15,
            "b={b} c={c}: {} vs scipy {p}",
            m.p_value
        );
    }
}

#[test]
fn refuses_unpaired_input() {
    assert_eq!(mcnemar(&[], &[]), Err(StatsError::Empty));
    assert!(matches!(
        mcnemar(&[true], &[true, false]),
        Err(StatsError::LengthMismatch { .. })
    ));
}
