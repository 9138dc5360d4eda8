//! Confusion counts of one class against the rest and the metrics read off them: sensitivity,
//! specificity, PPV, NPV, accuracy, balanced accuracy and F1, each `None` when its denominator
//! is 0.

use crate::error::StatsError;
use crate::input::{check, check_positive};
use serde::{Deserialize, Serialize};

/// Counts of one class (positive) against the rest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
}

/// The metrics of a [`Confusion`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BinaryMetrics {
    pub sensitivity: Option<f64>,
    pub specificity: Option<f64>,
    pub ppv: Option<f64>,
    pub npv: Option<f64>,
    pub accuracy: Option<f64>,
    pub balanced_accuracy: Option<f64>,
    pub f1: Option<f64>,
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

impl Confusion {
    /// Counts image `i` `weights[i]` times (a bootstrap resample's multiplicities), as predicted
    /// positive when `predicted(i)` and actually positive when `actual(i)`.
    pub(crate) fn count(
        weights: &[u32],
        predicted: impl Fn(usize) -> bool,
        actual: impl Fn(usize) -> bool,
    ) -> Confusion {
        let mut c = Confusion::default();
        for (i, &w) in weights.iter().enumerate().filter(|(_, &w)| w > 0) {
            let cell = match (predicted(i), actual(i)) {
                (true, true) => &mut c.tp,
                (true, false) => &mut c.fp,
                (false, false) => &mut c.tn,
                (false, true) => &mut c.fn_,
            };
            *cell += u64::from(w);
        }
        c
    }

    /// TP / (TP + FN), the true positive rate.
    pub fn sensitivity(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// TN / (TN + FP), the true negative rate.
    pub fn specificity(&self) -> Option<f64> {
        ratio(self.tn, self.tn + self.fp)
    }

    /// TP / (TP + FP), the precision.
    pub fn ppv(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fp)
    }

    /// TN / (TN + FN).
    pub fn npv(&self) -> Option<f64> {
        ratio(self.tn, self.tn + self.fn_)
    }

    /// (TP + TN) / all.
    pub fn accuracy(&self) -> Option<f64> {
        ratio(self.tp + self.tn, self.tp + self.tn + self.fp + self.fn_)
    }

    /// (sensitivity + specificity) / 2, defined when both are.
    pub fn balanced_accuracy(&self) -> Option<f64> {
        Some((self.sensitivity()? + self.specificity()?) / 2.0)
    }

    /// 2 TP / (2 TP + FP + FN), the harmonic mean of PPV and sensitivity.
    pub fn f1(&self) -> Option<f64> {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }

    pub fn metrics(&self) -> BinaryMetrics {
        BinaryMetrics {
            sensitivity: self.sensitivity(),
            specificity: self.specificity(),
            ppv: self.ppv(),
            npv: self.npv(),
            accuracy: self.accuracy(),
            balanced_accuracy: self.balanced_accuracy(),
            f1: self.f1(),
        }
    }
}

/// The confusion of class `positive` against the rest when an image is called positive if its
/// probability of `positive` is `>= threshold`.
pub fn confusion(
    probs: &[Vec<f64>],
    labels: &[usize],
    positive: usize,
    threshold: f64,
) -> Result<Confusion, StatsError> {
    let classes = check(probs, labels)?;
    check_positive(positive, classes)?;
    if threshold.is_nan() {
        return Err(StatsError::Invalid("the threshold is NaN".into()));
    }
    Ok(Confusion::count(
        &vec![1; probs.len()],
        |i| probs[i][positive] >= threshold,
        |i| labels[i] == positive,
    ))
}
