//! Choosing a threshold (sensitivity, specificity, Youden) on a small example worked by hand,
//! parsing the criteria, and applying a threshold.

mod common;
use common::binary;
use resnext_stats::{apply, choose, Criterion, StatsError};

// positives 0.35, 0.8, 0.4, 0.9, 0.6, 0.55; negatives 0.1, 0.4, 0.4, 0.2, 0.7, 0.1
const LABELS: [usize; 12] = [0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 0, 1];
const SCORES: [f64; 12] = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.2, 0.9, 0.6, 0.7, 0.1, 0.55];

// The candidates from the highest, as (threshold, TP, FP) of "score >= threshold", P = N = 6:
// (above 0.9, 0, 0) (0.9, 1, 0) (0.8, 2, 0) (0.7, 2, 1) (0.6, 3, 1) (0.55, 4, 1) (0.4, 5, 3)
// (0.35, 6, 3) (0.2, 6, 4) (0.1, 6, 6).
fn at(c: &str) -> (f64, u64, u64) {
    let op = choose(&binary(&SCORES), &LABELS, 1, c.parse().unwrap()).unwrap();
    (op.threshold, op.confusion.tp, op.confusion.fp)
}

#[test]
fn sensitivity_takes_the_highest_threshold_reaching_it() {
    assert_eq!(at("sensitivity=0.8"), (0.4, 5, 3)); // TP ≥ 4.8
    assert_eq!(at("sensitivity=0.5"), (0.6, 3, 1)); // TP ≥ 3
    assert_eq!(at("sensitivity=1"), (0.35, 6, 3));
}

#[test]
fn specificity_takes_the_lowest_threshold_reaching_it() {
    assert_eq!(at("specificity=0.8"), (0.55, 4, 1)); // FP ≤ 1.2
    assert_eq!(at("specificity=1"), (0.8, 2, 0));
    assert_eq!(at("specificity=0.5"), (0.35, 6, 3)); // FP ≤ 3, still at 0.35
}

#[test]
fn youden_takes_the_highest_of_the_best() {
    // TP − FP: 0 1 2 1 2 3 2 3 2 0, the best 3 at 0.55 and 0.35
    assert_eq!(at("youden"), (0.55, 4, 1));
    let op = choose(&binary(&SCORES), &LABELS, 1, Criterion::Youden).unwrap();
    assert_eq!(op.metrics.sensitivity, Some(4.0 / 6.0));
    assert_eq!(op.metrics.specificity, Some(5.0 / 6.0));
}

#[test]
fn full_specificity_can_need_a_threshold_above_every_score() {
    // the highest score is a negative's: only a threshold above it calls no negative positive
    let op = choose(
        &binary(&[0.9, 0.3, 0.2]),
        &[0, 1, 0],
        1,
        Criterion::Specificity(1.0),
    )
    .unwrap();
    assert!(op.threshold > 0.9 && op.threshold < 0.9 + 1e-15);
    assert_eq!((op.confusion.tp, op.confusion.fp), (0, 0));
    assert_eq!(op.metrics.ppv, None);
}

#[test]
fn criteria_parse_and_print() {
    assert_eq!(
        "sensitivity=0.95".parse::<Criterion>(),
        Ok(Criterion::Sensitivity(0.95))
    );
    assert_eq!(
        " specificity = 0.90 ".parse::<Criterion>(),
        Ok(Criterion::Specificity(0.9))
    );
    assert_eq!("youden".parse::<Criterion>(), Ok(Criterion::Youden));
    for c in [Criterion::Sensitivity(0.95), Criterion::Youden] {
        assert_eq!(c.to_string().parse::<Criterion>(), Ok(c));
    }
    let err = |s: &str| s.parse::<Criterion>().unwrap_err().to_string();
    assert_eq!(
        err("sensitivity=1.5"),
        "operating point `sensitivity=1.5`: the target 1.5 is not in (0, 1]"
    );
    assert_eq!(
        err("specificity=abc"),
        "operating point `specificity=abc`: the target `abc` is not a number"
    );
    assert_eq!(
        err("sensitivity"),
        "operating point `sensitivity`: sensitivity needs a target, e.g. sensitivity=0.95"
    );
    assert_eq!(
        err("youden=1"),
        "operating point `youden=1`: youden takes no target"
    );
    assert_eq!(
        err("f1"),
        "operating point `f1`: unknown criterion, expected sensitivity=T, specificity=T (T in (0, 1]) or youden"
    );
    assert!(err("sensitivity=NaN").contains("not in (0, 1]"));
    assert!(err("specificity=0").contains("not in (0, 1]"));
}

#[test]
fn apply_calls_positive_at_or_above_the_threshold() {
    let other = binary(&[0.2, 0.55, 0.7, 0.549]);
    assert_eq!(apply(0.55, &other, 1), Ok(vec![false, true, true, false]));
    assert!(matches!(
        apply(f64::NAN, &other, 1),
        Err(StatsError::Invalid(_))
    ));
    assert!(matches!(
        apply(0.5, &other, 2),
        Err(StatsError::BadPositive { .. })
    ));
    assert_eq!(apply(0.5, &[], 1), Err(StatsError::Empty));
}

#[test]
fn choosing_needs_both_kinds_and_a_target_in_range() {
    let p = binary(&[0.2, 0.8]);
    assert_eq!(
        choose(&p, &[1, 1], 1, Criterion::Youden),
        Err(StatsError::NoNegatives(1))
    );
    assert!(matches!(
        choose(&p, &[0, 1], 1, Criterion::Sensitivity(0.0)),
        Err(StatsError::Invalid(_))
    ));
}
