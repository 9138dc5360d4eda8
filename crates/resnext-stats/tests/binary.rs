//! Confusion counts and their metrics at a threshold, against hand counts and scikit-learn's
//! `confusion_matrix` (tests/reference.py); the input checks every function shares.

mod common;
use common::{binary, close};
use resnext_stats::{confusion, Confusion, StatsError};

const LABELS: [usize; 12] = [0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 0, 1];
const SCORES: [f64; 12] = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.2, 0.9, 0.6, 0.7, 0.1, 0.55];

#[test]
fn counts_match_scikit_learn_and_the_metrics_their_definitions() {
    // confusion_matrix(y, s >= 0.5): tp 4, fp 1, tn 5, fn 2
    let c = confusion(&binary(&SCORES), &LABELS, 1, 0.5).unwrap();
    assert_eq!(
        c,
        Confusion {
            tp: 4,
            fp: 1,
            tn: 5,
            fn_: 2
        }
    );
    let m = c.metrics();
    close(m.sensitivity.unwrap(), 4.0 / 6.0, 1e-15);
    close(m.specificity.unwrap(), 5.0 / 6.0, 1e-15);
    close(m.ppv.unwrap(), 4.0 / 5.0, 1e-15);
    close(m.npv.unwrap(), 5.0 / 7.0, 1e-15);
    close(m.accuracy.unwrap(), 9.0 / 12.0, 1e-15);
    close(m.balanced_accuracy.unwrap(), 0.75, 1e-15);
    close(m.f1.unwrap(), 8.0 / 11.0, 1e-15);
}

#[test]
fn a_score_equal_to_the_threshold_is_positive() {
    // >= 0.4: positives 0.8, 0.4, 0.9, 0.6, 0.55; negatives 0.4, 0.4, 0.7
    let c = confusion(&binary(&SCORES), &LABELS, 1, 0.4).unwrap();
    assert_eq!((c.tp, c.fp, c.tn, c.fn_), (5, 3, 3, 1));
}

#[test]
fn one_vs_rest_of_a_class_of_three() {
    let p = vec![
        vec![0.7, 0.2, 0.1],
        vec![0.2, 0.5, 0.3],
        vec![0.1, 0.1, 0.8],
        vec![0.3, 0.3, 0.4],
    ];
    let c = confusion(&p, &[0, 1, 2, 1], 2, 0.35).unwrap();
    assert_eq!((c.tp, c.fp, c.tn, c.fn_), (1, 1, 2, 0));
}

#[test]
fn a_metric_with_a_zero_denominator_is_none() {
    // nothing called positive: PPV undefined, F1 = 0 / (0 + 0 + 6)
    let m = confusion(&binary(&SCORES), &LABELS, 1, 1.1)
        .unwrap()
        .metrics();
    assert_eq!(m.ppv, None);
    assert_eq!(m.f1, Some(0.0));
    assert_eq!(m.sensitivity, Some(0.0));
    // no negatives: specificity and balanced accuracy undefined, NPV 0 / (0 + 1)
    let m = confusion(&binary(&[0.2, 0.8]), &[1, 1], 1, 0.5)
        .unwrap()
        .metrics();
    assert_eq!(
        (m.specificity, m.balanced_accuracy, m.npv),
        (None, None, Some(0.0))
    );
    // nothing called negative: NPV undefined
    let m = confusion(&binary(&[0.2, 0.8]), &[0, 1], 1, 0.1)
        .unwrap()
        .metrics();
    assert_eq!((m.npv, m.specificity), (None, Some(0.0)));
    assert_eq!(Confusion::default().metrics().accuracy, None);
}

#[test]
fn bad_input_is_refused_naming_the_problem() {
    let p = binary(&[0.2, 0.8]);
    let err = |probs: &[Vec<f64>], labels: &[usize]| confusion(probs, labels, 1, 0.5).unwrap_err();
    assert_eq!(err(&[], &[]), StatsError::Empty);
    assert_eq!(
        err(&p, &[0]).to_string(),
        "labels has 1 entries for 2 images"
    );
    assert_eq!(
        err(&p, &[0, 2]).to_string(),
        "label 2 of image 1 is not a class below 2"
    );
    assert_eq!(
        err(&[vec![0.5, 0.5], vec![1.0]], &[0, 1]).to_string(),
        "image 1 has 1 probabilities, image 0 has 2"
    );
    assert_eq!(
        err(&[vec![1.0]], &[0]).to_string(),
        "a probability row needs at least 2 classes, got 1"
    );
    assert_eq!(
        err(&[vec![f64::NAN, 0.5]], &[0]).to_string(),
        "probability NaN of image 0 is not a number in [0, 1]"
    );
    assert_eq!(
        err(&[vec![-0.1, 1.1]], &[0]).to_string(),
        "probability -0.1 of image 0 is not a number in [0, 1]"
    );
    assert_eq!(
        err(&[vec![0.3, 0.3]], &[0]).to_string(),
        "the probabilities of image 0 sum to 0.6, not 1"
    );
    assert!(matches!(
        confusion(&p, &[0, 1], 1, f64::NAN),
        Err(StatsError::Invalid(_))
    ));
    assert_eq!(
        confusion(&p, &[0, 1], 5, 0.5).unwrap_err().to_string(),
        "positive class 5 is not a class below 2"
    );
}
