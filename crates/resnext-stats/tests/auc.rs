//! ROC-AUC, PR-AUC and the ISIC 2024 partial AUC against hand computations and scikit-learn
//! (values printed by tests/reference.py).

mod common;
use common::{binary, close};
use resnext_stats::{pauc_min_tpr, pr_auc, roc_auc, StatsError};

/// Positives score 0.8 and 0.4, negatives 0.4 and 0.2: one tie across the classes.
fn hand() -> (Vec<Vec<f64>>, Vec<usize>) {
    (binary(&[0.8, 0.4, 0.4, 0.2]), vec![1, 1, 0, 0])
}

// reference.py, "binary with ties"
const TIES_LABELS: [usize; 12] = [0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 0, 1];
const TIES_SCORES: [f64; 12] = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.2, 0.9, 0.6, 0.7, 0.1, 0.55];

// reference.py, "random60" (scores rounded to one decimal: many ties)
const LABELS: [usize; 60] = [
    0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0,
    1, 1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0,
];
const SCORES: [f64; 60] = [
    0.4, 0.2, 0.5, 0.7, 0.3, 0.5, 0.5, 0.5, 0.7, 0.5, 0.2, 1.0, 0.4, 0.6, 0.7, 0.5, 0.2, 0.3, 0.2,
    0.6, 0.1, 0.2, 0.5, 0.5, 0.6, 0.6, 0.3, 0.2, 0.4, 0.2, 0.6, 0.4, 0.7, 0.3, 0.8, 0.3, 0.5, 0.5,
    0.5, 0.6, 0.3, 0.5, 0.5, 0.4, 0.9, 0.3, 0.5, 0.3, 0.0, 0.6, 0.6, 0.6, 0.0, 0.7, 0.2, 1.0, 0.5,
    0.2, 0.5, 0.5,
];

#[test]
fn roc_auc_counts_a_tie_as_half_by_hand() {
    // pairs (0.8, 0.4) 1, (0.8, 0.2) 1, (0.4, 0.4) 1/2, (0.4, 0.2) 1: 3.5 / 4
    let (p, y) = hand();
    close(roc_auc(&p, &y, 1).unwrap(), 0.875, 1e-15);
    // class 0's probability 1 − s ranks its own images by the same pairs
    close(roc_auc(&p, &y, 0).unwrap(), 0.875, 1e-15);
}

#[test]
fn average_precision_by_hand() {
    // at 0.8: recall 1/2, precision 1; at 0.4: recall 1, precision 2/3
    let (p, y) = hand();
    close(pr_auc(&p, &y, 1).unwrap(), 0.5 + 0.5 * 2.0 / 3.0, 1e-15);
}

#[test]
fn partial_auc_by_hand() {
    // ROC vertices (0, 0), (0, 1/2), (1/2, 1), (1, 1). Above TPR 0.5: the triangle 1/2·1/2·1/2
    // plus the strip 1/2 · 1/2. Above 0.75 the first segment crosses at FPR 0.25: the
    // triangle 1/2 · 0.25 · 0.25 plus the strip 1/2 · 0.25.
    let (p, y) = hand();
    close(pauc_min_tpr(&p, &y, 1, 0.5).unwrap(), 0.375, 1e-15);
    close(pauc_min_tpr(&p, &y, 1, 0.75).unwrap(), 0.15625, 1e-15);
    close(pauc_min_tpr(&p, &y, 1, 0.0).unwrap(), 0.875, 1e-15);
}

#[test]
fn ties_match_scikit_learn_and_the_isic_2024_metric() {
    let p = binary(&TIES_SCORES);
    // roc_auc_score, average_precision_score, ISIC 2024 score()
    close(
        roc_auc(&p, &TIES_LABELS, 1).unwrap(),
        0.8055555555555556,
        1e-12,
    );
    close(
        pr_auc(&p, &TIES_LABELS, 1).unwrap(),
        0.8069444444444444,
        1e-12,
    );
    close(
        pauc_min_tpr(&p, &TIES_LABELS, 1, 0.0).unwrap(),
        0.8055555555555556,
        1e-12,
    );
    close(
        pauc_min_tpr(&p, &TIES_LABELS, 1, 0.5).unwrap(),
        0.33333333333333337,
        1e-12,
    );
    close(
        pauc_min_tpr(&p, &TIES_LABELS, 1, 0.8).unwrap(),
        0.1011111111111111,
        1e-12,
    );
}

#[test]
fn many_ties_match_scikit_learn_and_the_isic_2024_metric() {
    let p = binary(&SCORES);
    close(roc_auc(&p, &LABELS, 1).unwrap(), 0.6180963572267919, 1e-12);
    close(pr_auc(&p, &LABELS, 1).unwrap(), 0.5243016962696596, 1e-12);
    close(
        pauc_min_tpr(&p, &LABELS, 1, 0.3).unwrap(),
        0.33577438307873086,
        1e-12,
    );
    close(
        pauc_min_tpr(&p, &LABELS, 1, 0.8).unwrap(),
        0.03957696827262043,
        1e-12,
    );
    close(
        pauc_min_tpr(&p, &LABELS, 1, 0.95).unwrap(),
        0.005608108108108115,
        1e-12,
    );
}

#[test]
fn partial_auc_spans_zero_to_one_minus_min_tpr() {
    let y = [0, 0, 1, 1];
    let perfect = binary(&[0.1, 0.2, 0.8, 0.9]);
    let reversed = binary(&[0.9, 0.8, 0.2, 0.1]);
    let constant = binary(&[0.5; 4]);
    close(pauc_min_tpr(&perfect, &y, 1, 0.8).unwrap(), 0.2, 1e-15);
    close(pauc_min_tpr(&reversed, &y, 1, 0.8).unwrap(), 0.0, 1e-15);
    // the diagonal: (1 − 0.8)² / 2
    close(pauc_min_tpr(&constant, &y, 1, 0.8).unwrap(), 0.02, 1e-15);
    close(roc_auc(&constant, &y, 1).unwrap(), 0.5, 1e-15);
}

#[test]
fn refuses_what_has_no_area() {
    let p = binary(&[0.1, 0.9, 0.4]);
    assert_eq!(roc_auc(&p, &[1, 1, 1], 1), Err(StatsError::NoNegatives(1)));
    assert_eq!(pr_auc(&p, &[0, 0, 0], 1), Err(StatsError::NoPositives(1)));
    assert_eq!(roc_auc(&[], &[], 1), Err(StatsError::Empty));
    assert!(matches!(
        roc_auc(&p, &[0, 1], 1),
        Err(StatsError::LengthMismatch { .. })
    ));
    assert!(matches!(
        roc_auc(&binary(&[0.1, f64::NAN]), &[0, 1], 1),
        Err(StatsError::BadProbability { index: 1, .. })
    ));
    assert!(matches!(
        pauc_min_tpr(&p, &[0, 1, 0], 1, 1.0),
        Err(StatsError::Invalid(_))
    ));
    assert!(matches!(
        pauc_min_tpr(&p, &[0, 1, 0], 1, f64::NAN),
        Err(StatsError::Invalid(_))
    ));
    assert_eq!(
        roc_auc(&p, &[0, 1, 0], 2),
        Err(StatsError::BadPositive {
            positive: 2,
            classes: 2
        })
    );
}
