//! Multi-class summaries: top-1 accuracy, balanced accuracy, the expected calibration error and
//! macro averages (one-vs-rest per class, then the mean over classes) of sensitivity,
//! specificity, PPV, NPV, F1, ROC-AUC and PR-AUC.
//!
//! The decision is the top class (the first of a tie), so a class's one-vs-rest confusion
//! counts an image as predicted positive when its top class is that class. ROC-AUC and PR-AUC
//! rank the class's probability. The macro averages run over the classes present among the
//! labels; one whose metric is undefined (PPV of a class never predicted, say) makes the
//! average undefined rather than silently dropping it. Balanced accuracy is the mean
//! sensitivity over those classes (scikit-learn's `balanced_accuracy_score`), so it equals
//! the macro sensitivity. ECE: 15 equal-width bins (lower, upper] of the top probability (a
//! confidence of 0 goes to the first), Σ (bin's share) · |accuracy − mean confidence|, as
//! `resnext_infer::metric::ece`.

use crate::auc::Ranked;
use crate::binary::{BinaryMetrics, Confusion};
use crate::error::StatsError;
use crate::input::{argmax, check};
use serde::{Deserialize, Serialize};

/// The number of bins of the ECE.
pub const ECE_BINS: usize = 15;

/// Top-1 and macro-averaged metrics; `None` where undefined.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MacroMetrics {
    pub accuracy: Option<f64>,
    pub balanced_accuracy: Option<f64>,
    pub sensitivity: Option<f64>,
    pub specificity: Option<f64>,
    pub ppv: Option<f64>,
    pub npv: Option<f64>,
    pub f1: Option<f64>,
    pub roc_auc: Option<f64>,
    pub pr_auc: Option<f64>,
    pub ece: Option<f64>,
}

/// One class against the rest under top-1 decisions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ClassValues {
    pub(crate) metrics: BinaryMetrics,
    pub(crate) roc_auc: Option<f64>,
    pub(crate) pr_auc: Option<f64>,
}

/// Checked predictions with what every resample reuses: top classes, each class's ranking, the
/// classes present (those the macro averages run over).
pub(crate) struct Prepared<'a> {
    probs: &'a [Vec<f64>],
    labels: &'a [usize],
    predicted: Vec<usize>,
    ranked: Vec<Ranked>,
    pub(crate) present: Vec<usize>,
}

impl<'a> Prepared<'a> {
    pub(crate) fn new(probs: &'a [Vec<f64>], labels: &'a [usize], classes: usize) -> Self {
        Prepared {
            probs,
            labels,
            predicted: probs.iter().map(|p| argmax(p)).collect(),
            ranked: (0..classes)
                .map(|c| Ranked::new(probs, labels, c))
                .collect(),
            present: (0..classes).filter(|c| labels.contains(c)).collect(),
        }
    }

    pub(crate) fn ranked(&self, class: usize) -> &Ranked {
        &self.ranked[class]
    }

    /// Image `i` counted `w[i]` times, as everywhere below.
    pub(crate) fn class_values(&self, class: usize, w: &[u32]) -> ClassValues {
        let confusion = Confusion::count(
            w,
            |i| self.predicted[i] == class,
            |i| self.labels[i] == class,
        );
        ClassValues {
            metrics: confusion.metrics(),
            roc_auc: self.ranked[class].roc_auc(w),
            pr_auc: self.ranked[class].pr_auc(w),
        }
    }

    pub(crate) fn accuracy(&self, w: &[u32]) -> Option<f64> {
        let total: u64 = w.iter().map(|&w| u64::from(w)).sum();
        let right: u64 = w
            .iter()
            .enumerate()
            .filter(|&(i, _)| self.predicted[i] == self.labels[i])
            .map(|(_, &w)| u64::from(w))
            .sum();
        (total > 0).then(|| right as f64 / total as f64)
    }

    pub(crate) fn ece(&self, w: &[u32]) -> Option<f64> {
        let mut count = [0u64; ECE_BINS];
        let mut confidence = [0f64; ECE_BINS];
        let mut right = [0u64; ECE_BINS];
        for (i, &w) in w.iter().enumerate().filter(|(_, &w)| w > 0) {
            let pred = self.predicted[i];
            let c = self.probs[i][pred];
            let b = ((c * ECE_BINS as f64).ceil() as usize).clamp(1, ECE_BINS) - 1;
            count[b] += u64::from(w);
            confidence[b] += f64::from(w) * c;
            right[b] += u64::from(w) * u64::from(pred == self.labels[i]);
        }
        let total: u64 = count.iter().sum();
        (total > 0).then(|| {
            (0..ECE_BINS)
                .filter(|&b| count[b] > 0)
                .map(|b| {
                    let n = count[b] as f64;
                    n / total as f64 * (right[b] as f64 / n - confidence[b] / n).abs()
                })
                .sum()
        })
    }

    /// The class values of every class, in class order.
    pub(crate) fn all_class_values(&self, w: &[u32]) -> Vec<ClassValues> {
        (0..self.ranked.len())
            .map(|c| self.class_values(c, w))
            .collect()
    }

    /// The macro averages from `per_class` (every class's values, from [`Self::all_class_values`]
    /// with the same `w`).
    pub(crate) fn macro_metrics(&self, per_class: &[ClassValues], w: &[u32]) -> MacroMetrics {
        let mean = |f: fn(&ClassValues) -> Option<f64>| -> Option<f64> {
            let sum = self
                .present
                .iter()
                .map(|&c| f(&per_class[c]))
                .sum::<Option<f64>>()?;
            Some(sum / self.present.len() as f64)
        };
        let sensitivity = mean(|v| v.metrics.sensitivity);
        MacroMetrics {
            accuracy: self.accuracy(w),
            balanced_accuracy: sensitivity,
            sensitivity,
            specificity: mean(|v| v.metrics.specificity),
            ppv: mean(|v| v.metrics.ppv),
            npv: mean(|v| v.metrics.npv),
            f1: mean(|v| v.metrics.f1),
            roc_auc: mean(|v| v.roc_auc),
            pr_auc: mean(|v| v.pr_auc),
            ece: self.ece(w),
        }
    }
}

/// Top-1 accuracy, balanced accuracy, ECE and the macro averages of these predictions. Needs
/// at least two classes among the labels.
pub fn macro_metrics(probs: &[Vec<f64>], labels: &[usize]) -> Result<MacroMetrics, StatsError> {
    let classes = check(probs, labels)?;
    let prepared = Prepared::new(probs, labels, classes);
    if let [only] = prepared.present[..] {
        return Err(StatsError::NoNegatives(only));
    }
    let w = vec![1; probs.len()];
    Ok(prepared.macro_metrics(&prepared.all_class_values(&w), &w))
}

/// The expected calibration error of the top class, 15 equal-width bins.
pub fn ece(probs: &[Vec<f64>], labels: &[usize]) -> Result<f64, StatsError> {
    let classes = check(probs, labels)?;
    Prepared::new(probs, labels, classes)
        .ece(&vec![1; probs.len()])
        .ok_or(StatsError::Undefined)
}
