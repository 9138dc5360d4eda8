//! Choosing a decision threshold for one class on one set of predictions, and applying it to
//! another.
//!
//! An image is called positive when its probability of the class is `>= threshold`. The
//! candidate thresholds are the distinct probabilities of the class in the set, and one just
//! above the highest (the next float up, calling nothing positive), so every criterion has an
//! answer:
//!
//! - `sensitivity=T`: the highest threshold whose sensitivity is ≥ T;
//! - `specificity=T`: the lowest threshold whose specificity is ≥ T;
//! - `youden`: the threshold of the largest sensitivity + specificity − 1, the highest of
//!   those tied.
//!
//! A threshold chosen on a set and reported on the same set is optimistic; the caller chooses
//! it on one part and [`apply`]s it on another.

use crate::binary::{BinaryMetrics, Confusion};
use crate::error::StatsError;
use crate::input::{check, check_both, check_positive, check_probs};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How to choose the threshold. Parses from `sensitivity=0.95`, `specificity=0.90`, `youden`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    /// The highest threshold whose sensitivity is at least this, in (0, 1].
    Sensitivity(f64),
    /// The lowest threshold whose specificity is at least this, in (0, 1].
    Specificity(f64),
    /// The largest sensitivity + specificity − 1.
    Youden,
}

const EXPECTED: &str = "expected sensitivity=T, specificity=T (T in (0, 1]) or youden";

impl FromStr for Criterion {
    type Err = StatsError;

    fn from_str(s: &str) -> Result<Criterion, StatsError> {
        let bad = |why: String| Err(StatsError::Invalid(format!("operating point `{s}`: {why}")));
        let (name, target) = match s.trim().split_once('=') {
            Some((n, t)) => (n.trim(), Some(t.trim())),
            None => (s.trim(), None),
        };
        let make: fn(f64) -> Criterion = match name {
            "sensitivity" => Criterion::Sensitivity,
            "specificity" => Criterion::Specificity,
            "youden" if target.is_none() => return Ok(Criterion::Youden),
            "youden" => return bad("youden takes no target".into()),
            _ => return bad(format!("unknown criterion, {EXPECTED}")),
        };
        let Some(target) = target else {
            return bad(format!("{name} needs a target, e.g. {name}=0.95"));
        };
        match target.parse::<f64>() {
            Ok(t) if t > 0.0 && t <= 1.0 => Ok(make(t)),
            Ok(t) => bad(format!("the target {t} is not in (0, 1]")),
            Err(_) => bad(format!("the target `{target}` is not a number")),
        }
    }
}

impl fmt::Display for Criterion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Criterion::Sensitivity(t) => write!(f, "sensitivity={t}"),
            Criterion::Specificity(t) => write!(f, "specificity={t}"),
            Criterion::Youden => write!(f, "youden"),
        }
    }
}

/// The chosen threshold and the metrics at it, on the set it was chosen on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    pub criterion: Criterion,
    pub threshold: f64,
    pub confusion: Confusion,
    pub metrics: BinaryMetrics,
}

/// Chooses the threshold for class `positive` by `criterion` on these predictions. Needs
/// positives and negatives of the class.
pub fn choose(
    probs: &[Vec<f64>],
    labels: &[usize],
    positive: usize,
    criterion: Criterion,
) -> Result<OperatingPoint, StatsError> {
    let classes = check(probs, labels)?;
    check_positive(positive, classes)?;
    check_both(labels, positive)?;
    if let Criterion::Sensitivity(t) | Criterion::Specificity(t) = criterion {
        if !(t > 0.0 && t <= 1.0) {
            return Err(StatsError::Invalid(format!(
                "the target {t} of {criterion} is not in (0, 1]"
            )));
        }
    }
    let score = |i: usize| probs[i][positive];
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| score(b).total_cmp(&score(a)));
    let p = labels.iter().filter(|&&l| l == positive).count() as u64;
    let n = labels.len() as u64 - p;

    // candidates from the highest: (threshold, tp, fp) of "score >= threshold"
    let mut candidates = vec![(score(order[0]).next_up(), 0u64, 0u64)];
    let (mut tp, mut fp) = (0, 0);
    for (k, &i) in order.iter().enumerate() {
        if labels[i] == positive {
            tp += 1;
        } else {
            fp += 1;
        }
        if order.get(k + 1).is_none_or(|&j| score(j) != score(i)) {
            candidates.push((score(i), tp, fp));
        }
    }
    let sensitivity = |tp: u64| tp as f64 / p as f64;
    let specificity = |fp: u64| (n - fp) as f64 / n as f64;
    let chosen = match criterion {
        // sensitivity only grows as the threshold falls: the first that reaches the target
        Criterion::Sensitivity(t) => candidates.iter().find(|c| sensitivity(c.1) >= t),
        // specificity only falls: the last that still reaches it
        Criterion::Specificity(t) => candidates
            .iter()
            .take_while(|c| specificity(c.2) >= t)
            .last(),
        // J = tp/p − fp/n, compared exactly as tp·n − fp·p; max_by_key keeps the last maximum,
        // so the candidates go from the lowest threshold to keep the highest of a tie
        Criterion::Youden => candidates
            .iter()
            .rev()
            .max_by_key(|c| i128::from(c.1) * i128::from(n) - i128::from(c.2) * i128::from(p)),
    };
    let &(threshold, tp, fp) = chosen.ok_or(StatsError::Undefined)?;
    let confusion = Confusion {
        tp,
        fp,
        tn: n - fp,
        fn_: p - tp,
    };
    Ok(OperatingPoint {
        criterion,
        threshold,
        confusion,
        metrics: confusion.metrics(),
    })
}

/// The decisions of `threshold` on other predictions: image `i` is positive when
/// `probs[i][positive] >= threshold`.
pub fn apply(threshold: f64, probs: &[Vec<f64>], positive: usize) -> Result<Vec<bool>, StatsError> {
    let classes = check_probs(probs)?;
    check_positive(positive, classes)?;
    if threshold.is_nan() {
        return Err(StatsError::Invalid("the threshold is NaN".into()));
    }
    Ok(probs.iter().map(|p| p[positive] >= threshold).collect())
}
