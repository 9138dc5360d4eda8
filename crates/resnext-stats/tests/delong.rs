//! DeLong's test against the O(mn) placement-value computation of DeLong et al. (1988) with
//! numpy's covariance and scipy's normal tail (tests/reference.py).

mod common;
use common::{binary, close};
use resnext_stats::{delong, StatsError};

// reference.py, "DeLong": two correlated models, scores to two decimals (ties)
const LABELS: [usize; 50] = [
    1, 0, 1, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 1, 1, 1,
    0, 0, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 0,
];
const A: [f64; 50] = [
    0.49, 0.47, 0.68, 0.77, 0.15, 0.77, 0.6, 0.77, 0.65, 0.33, 0.91, 0.19, 0.72, 0.6, 0.22, 0.53,
    0.53, 0.4, 0.93, 0.4, 0.44, 0.69, 0.41, 0.55, 0.17, 0.52, 0.46, 0.09, 0.61, 0.91, 0.7, 0.48,
    0.46, 0.22, 0.33, 0.95, 0.06, 0.76, 0.99, 0.46, 0.87, 0.02, 0.59, 0.24, 0.18, 0.66, 0.36, 0.83,
    0.24, 0.4,
];
const B: [f64; 50] = [
    0.46, 0.5, 0.68, 0.65, 0.23, 0.42, 0.57, 0.53, 0.64, 0.41, 0.57, 0.37, 0.54, 0.57, 0.41, 0.57,
    0.53, 0.46, 0.67, 0.36, 0.44, 0.62, 0.55, 0.44, 0.2, 0.55, 0.44, 0.35, 0.59, 0.66, 0.47, 0.43,
    0.56, 0.25, 0.45, 0.83, 0.22, 0.82, 0.73, 0.32, 0.72, 0.23, 0.63, 0.18, 0.27, 0.42, 0.46, 0.64,
    0.55, 0.42,
];

#[test]
fn matches_the_placement_value_reference() {
    let d = delong(&binary(&A), &binary(&B), &LABELS, 1).unwrap();
    close(d.auc_a, 0.9291666666666667, 1e-12);
    close(d.auc_b, 0.8633333333333333, 1e-12);
    close(d.difference, 0.06583333333333341, 1e-12);
    close(d.se, 0.047837407158982735, 1e-12);
    close(d.z, 1.3761894141658442, 1e-10);
    close(d.p_value, 0.1687629985894531, 1e-10);
}

#[test]
fn swapping_the_models_negates_z_and_keeps_p() {
    let ab = delong(&binary(&A), &binary(&B), &LABELS, 1).unwrap();
    let ba = delong(&binary(&B), &binary(&A), &LABELS, 1).unwrap();
    close(ba.z, -ab.z, 1e-12);
    close(ba.p_value, ab.p_value, 1e-12);
    // class 0 against the rest, probabilities 1 − s: the same AUCs, the same test
    let other = delong(&binary(&A), &binary(&B), &LABELS, 0).unwrap();
    close(other.auc_a, ab.auc_a, 1e-12);
    close(other.p_value, ab.p_value, 1e-10);
}

#[test]
fn refuses_what_it_cannot_test() {
    let p = binary(&A);
    assert_eq!(delong(&p, &p, &LABELS, 1), Err(StatsError::ZeroVariance));
    let y = [1, 0, 0, 0];
    let q = binary(&[0.9, 0.1, 0.2, 0.3]);
    assert_eq!(
        delong(&q, &q, &y, 1),
        Err(StatsError::TooFewForDeLong {
            positives: 1,
            negatives: 3
        })
    );
    assert!(matches!(
        delong(&p, &p[..10], &LABELS, 1),
        Err(StatsError::LengthMismatch { .. })
    ));
    let three = vec![vec![0.2, 0.3, 0.5]; 50];
    assert!(matches!(
        delong(&p, &three, &LABELS, 1),
        Err(StatsError::Invalid(_))
    ));
}
