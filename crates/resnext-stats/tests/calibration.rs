//! Calibration intercept and slope against scipy's root of the score equations
//! (tests/reference.py), and on simulated data whose calibration is known.

mod common;
use common::{binary, close, sigmoid, Lcg};
use resnext_stats::{calibration, Calibration, StatsError};

// reference.py, "calibration"
const LABELS: [usize; 40] = [
    0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0,
    0, 0, 1, 0, 1, 1, 1, 1,
];
const P: [f64; 40] = [
    0.608, 0.784, 0.924, 0.301, 0.755, 0.813, 0.648, 0.407, 0.283, 0.82, 0.393, 0.203, 0.16, 0.806,
    0.172, 0.408, 0.275, 0.491, 0.287, 0.642, 0.675, 0.782, 0.717, 0.092, 0.9, 0.205, 0.033, 0.288,
    0.806, 0.699, 0.265, 0.747, 0.403, 0.113, 0.343, 0.421, 0.835, 0.725, 0.682, 0.525,
];

#[test]
fn matches_scipy_on_a_small_set() {
    let c = calibration(&binary(&P), &LABELS, 1).unwrap();
    close(c.slope, 0.7364071815865588, 1e-8);
    close(c.slope_se, 0.30253272668596554, 1e-8);
    close(c.intercept, 0.07700298612583453, 1e-8);
    close(c.intercept_se, 0.3697823118762663, 1e-8);
}

/// `n` images whose true logit is `truth(x)` and whose predicted logit is `predicted(x)`, x
/// standard normal times 1.5.
fn simulate(n: usize, truth: fn(f64) -> f64, predicted: fn(f64) -> f64) -> Calibration {
    let mut rng = Lcg(42);
    let (mut p, mut y) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let x = 1.5 * rng.normal();
        y.push(usize::from(rng.uniform() < sigmoid(truth(x))));
        p.push(sigmoid(predicted(x)));
    }
    calibration(&binary(&p), &y, 1).unwrap()
}

#[test]
fn perfectly_calibrated_predictions_have_slope_1_and_intercept_0() {
    let c = simulate(20_000, |x| x, |x| x);
    assert!(c.slope_se < 0.03 && c.intercept_se < 0.03, "{c:?}");
    close(c.slope, 1.0, 4.0 * c.slope_se);
    close(c.intercept, 0.0, 4.0 * c.intercept_se);
}

#[test]
fn overconfident_predictions_have_slope_below_1() {
    // predicted logits twice the true ones: the slope is 1/2
    let c = simulate(20_000, |x| x, |x| 2.0 * x);
    assert!(c.slope < 1.0 - 10.0 * c.slope_se, "{c:?}");
    close(c.slope, 0.5, 4.0 * c.slope_se);
    // underconfident, half the true logits: the slope is 2
    let c = simulate(20_000, |x| x, |x| x / 2.0);
    close(c.slope, 2.0, 4.0 * c.slope_se);
}

#[test]
fn predictions_too_low_on_average_have_a_positive_intercept() {
    let c = simulate(20_000, |x| x + 0.5, |x| x);
    close(c.intercept, 0.5, 4.0 * c.intercept_se);
}

#[test]
fn one_vs_rest_of_a_class_of_three_is_the_binary_fit_of_its_column() {
    let three: Vec<Vec<f64>> = P.iter().map(|&p| vec![1.0 - p, p / 2.0, p / 2.0]).collect();
    let labels: Vec<usize> = LABELS.iter().map(|&l| l * 2).collect();
    let c = calibration(&three, &labels, 2).unwrap();
    let halves: Vec<f64> = P.iter().map(|&p| p / 2.0).collect();
    let b = calibration(&binary(&halves), &LABELS, 1).unwrap();
    close(c.slope, b.slope, 1e-12);
    close(c.intercept, b.intercept, 1e-12);
}

#[test]
fn probabilities_of_0_and_1_are_clamped() {
    let c = calibration(&binary(&[0.0, 1.0, 0.3, 0.6, 0.5]), &[0, 1, 1, 0, 1], 1).unwrap();
    assert!(c.slope.is_finite() && c.intercept.is_finite(), "{c:?}");
}

#[test]
fn confident_predictions_are_fitted_at_the_root_of_the_score() {
    // logits of 16 to 27.6 (the clamp), where the information is almost 0: Newton's first step
    // from a = 0 is of the order of 1e9, far past the root
    let p = [
        1.0 - 1e-7,
        1.0,
        1.0 - 1e-10,
        1.0,
        1.0 - 1e-9,
        1.0 - 1e-12,
        1.0 - 1e-8,
        1.0 - 1e-11,
    ];
    let labels = [0, 1, 1, 0, 1, 0, 0, 1];
    let c = calibration(&binary(&p), &labels, 1).unwrap();
    let x: Vec<f64> = p
        .iter()
        .map(|&p: &f64| {
            let p = p.clamp(1e-12, 1.0 - 1e-12);
            (p / (1.0 - p)).ln()
        })
        .collect();
    let y: Vec<f64> = labels.iter().map(|&l| l as f64).collect();
    let residual = |a: f64, b: f64, by_x: bool| -> f64 {
        x.iter()
            .zip(&y)
            .map(|(&x, &y)| (y - sigmoid(a + b * x)) * if by_x { x } else { 1.0 })
            .sum()
    };
    assert!(c.intercept < -20.0, "{c:?}");
    assert!(residual(c.intercept, 1.0, false).abs() < 1e-8, "{c:?}");
    assert!(c.intercept_se.is_finite() && c.intercept_se > 0.0, "{c:?}");
    // the joint fit too: both score equations hold at (a, b)
    // the joint fit too: at the fitted slope, the a that solves the first score equation
    // (found here by bisection) also solves the second
    let (mut lo, mut hi) = (-1e3, 1e3);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if residual(mid, c.slope, false) > 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let a = 0.5 * (lo + hi);
    assert!(residual(a, c.slope, true).abs() < 1e-6, "{c:?} a = {a}");
}

#[test]
fn an_undefined_fit_is_an_error() {
    // perfectly separated: the slope's maximum likelihood is at infinity
    assert!(matches!(
        calibration(&binary(&[0.1, 0.2, 0.8, 0.9]), &[0, 0, 1, 1], 1),
        Err(StatsError::Separated(1))
    ));
    // quasi-completely separated (a tie on the boundary): unbounded too
    assert_eq!(
        calibration(&binary(&[0.1, 0.5, 0.5, 0.9]), &[0, 0, 1, 1], 1),
        Err(StatsError::Separated(1))
    );
    // separated the wrong way round (the slope's maximum at minus infinity)
    assert_eq!(
        calibration(&binary(&[0.8, 0.9, 0.1, 0.2]), &[0, 0, 1, 1], 1),
        Err(StatsError::Separated(1))
    );
    // one image on the wrong side is enough for a finite fit
    assert!(calibration(&binary(&[0.1, 0.6, 0.5, 0.9]), &[0, 0, 1, 1], 1).is_ok());
    assert_eq!(
        calibration(&binary(&[0.3; 4]), &[0, 0, 1, 1], 1),
        Err(StatsError::ConstantPredictions(1))
    );
    assert_eq!(
        calibration(&binary(&[0.3, 0.4]), &[1, 1], 1),
        Err(StatsError::NoNegatives(1))
    );
    assert_eq!(
        calibration(&binary(&[0.3, 0.4]), &[1, 1], 0),
        Err(StatsError::NoPositives(0))
    );
}
