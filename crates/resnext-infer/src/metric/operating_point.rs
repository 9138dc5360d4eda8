//! An operating point: a threshold on one class's probability, chosen by a criterion
//! (`sensitivity=0.95`, `specificity=0.90`, `youden`) on one set of predictions and reported on
//! another; the sidecar's record of it and the decision it gives; the partial AUC above a
//! minimum sensitivity. Over plain (probabilities, labels); `Run::evaluate_at` (in
//! `operating.rs`) chooses on the validation part and reports on another.

use super::calibration::softmax_t;
use crate::error::InferError;
pub use resnext_stats::Interval;
use resnext_stats::{BootstrapOptions, Confusion, Criterion, Groups};
use serde::{Deserialize, Serialize};

/// The operating point a sidecar stores: the class, the threshold on its (uncalibrated)
/// probability, and how and where it was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatingPoint {
    /// The positive class's name and index.
    pub positive: String,
    pub positive_index: usize,
    /// `sensitivity=T`, `specificity=T` or `youden`.
    pub criterion: String,
    /// An image is positive when softmax(logits)[positive] ≥ threshold (temperature 1: the
    /// probabilities it was chosen on).
    pub threshold: f64,
    /// The part it was chosen on (`val`, or `out-of-fold`) and its size.
    pub chosen_on: String,
    pub chosen_on_images: usize,
}

/// A decision at the operating point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Whether the image is positive for the class.
    pub positive: bool,
    /// The class decided: the positive class, or `not <positive>` (the other class of a binary
    /// problem).
    pub label: String,
    pub threshold: f64,
}

impl OperatingPoint {
    /// Checks the record against the sidecar's classes.
    pub fn validate(&self, classes: &[String]) -> Result<(), String> {
        if classes.get(self.positive_index) != Some(&self.positive) {
            return Err(format!(
                "field `operating_point.positive` `{}` is not class {} of `classes`",
                self.positive, self.positive_index
            ));
        }
        // "never positive" is the next float above the highest probability, which may be 1
        if !(0.0..=1.0f64.next_up()).contains(&self.threshold) {
            return Err(format!(
                "field `operating_point.threshold` is {}, not a probability",
                self.threshold
            ));
        }
        self.criterion
            .parse::<Criterion>()
            .map_err(|e| format!("field `operating_point.criterion`: {e}"))?;
        Ok(())
    }

    /// The decision for an image's logits; `classes` names the other class of a binary problem.
    pub fn decide(&self, logits: &[f32], classes: &[String]) -> Decision {
        let logits: Vec<f64> = logits.iter().map(|&l| f64::from(l)).collect();
        let p = softmax_t(&logits, 1.0).get(self.positive_index).copied();
        let positive = p.unwrap_or(0.0) >= self.threshold;
        let label = match (positive, classes.len()) {
            (true, _) => self.positive.clone(),
            (false, 2) => classes[1 - self.positive_index.min(1)].clone(),
            (false, _) => format!("not {}", self.positive),
        };
        Decision {
            positive,
            label,
            threshold: self.threshold,
        }
    }

    /// The figures of the point on `images` images of the part `reported_on`, with intervals
    /// over `groups`: each resample's confusion counted by `confusion` (None where it cannot be).
    fn figures(
        &self,
        images: usize,
        groups: &[String],
        reported_on: &str,
        bootstrap: &BootstrapOptions,
        confusion: impl Fn(&[usize]) -> Option<Confusion>,
    ) -> Result<AtOperatingPoint, InferError> {
        let g = Groups::new(groups).map_err(stats_err)?;
        let at = |f: fn(&resnext_stats::BinaryMetrics) -> Option<f64>| {
            resnext_stats::bootstrap(&g, bootstrap, |idx| f(&confusion(idx)?.metrics())).ok()
        };
        Ok(AtOperatingPoint {
            point: self.clone(),
            reported_on: reported_on.to_string(),
            images,
            sensitivity: at(|m| m.sensitivity),
            specificity: at(|m| m.specificity),
            ppv: at(|m| m.ppv),
            npv: at(|m| m.npv),
        })
    }
}

/// The figures at an operating point on the part they are reported on, with 95% intervals over
/// patients, and the partial AUC above a minimum sensitivity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtOperatingPoint {
    #[serde(flatten)]
    pub point: OperatingPoint,
    /// The part reported on, and its size.
    pub reported_on: String,
    pub images: usize,
    pub sensitivity: Option<Interval>,
    pub specificity: Option<Interval>,
    pub ppv: Option<Interval>,
    pub npv: Option<Interval>,
}

/// Partial ROC-AUC above a minimum sensitivity (ISIC 2024), with its interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartialAuc {
    pub positive: String,
    pub min_tpr: f64,
    /// The area's range is 0 to 1 − `min_tpr`.
    pub pauc: Option<Interval>,
}

fn stats_err(e: resnext_stats::StatsError) -> InferError {
    InferError::InvalidValue {
        key: "--operating-point",
        reason: e.to_string(),
    }
}

/// The class index of `name`, with the classes named when it is not one.
pub fn class_index(classes: &[String], name: &str) -> Result<usize, InferError> {
    classes
        .iter()
        .position(|c| c == name)
        .ok_or_else(|| InferError::InvalidValue {
            key: "--positive",
            reason: format!(
                "`{name}` is not a class (the classes are {})",
                classes.join(", ")
            ),
        })
}

/// Chooses a threshold for `positive` by `criterion` on predictions (from `chosen_on`).
pub fn choose(
    probs: &[Vec<f64>],
    labels: &[usize],
    positive: usize,
    positive_name: &str,
    c: Criterion,
    chosen_on: &str,
) -> Result<OperatingPoint, InferError> {
    let op = resnext_stats::choose(probs, labels, positive, c).map_err(stats_err)?;
    Ok(OperatingPoint {
        positive: positive_name.to_string(),
        positive_index: positive,
        criterion: c.to_string(),
        threshold: op.threshold,
        chosen_on: chosen_on.to_string(),
        chosen_on_images: probs.len(),
    })
}

/// The figures of `point` on `preds` (the part `reported_on`), resampling `groups`.
pub fn report(
    point: &OperatingPoint,
    probs: &[Vec<f64>],
    labels: &[usize],
    groups: &[String],
    reported_on: &str,
    bootstrap: &BootstrapOptions,
) -> Result<AtOperatingPoint, InferError> {
    point.figures(probs.len(), groups, reported_on, bootstrap, |idx| {
        let p: Vec<Vec<f64>> = idx.iter().map(|&i| probs[i].clone()).collect();
        let l: Vec<usize> = idx.iter().map(|&i| labels[i]).collect();
        resnext_stats::confusion(&p, &l, point.positive_index, point.threshold).ok()
    })
}

/// Sensitivity, specificity, PPV and NPV of given decisions (`positive[i]`: image i decided
/// positive) against the labels, with intervals over `groups`: for thresholds that differ by
/// image (cross-fitted, each fold at the threshold chosen on the others).
pub fn report_decisions(
    point: &OperatingPoint,
    decided: &[bool],
    labels: &[usize],
    groups: &[String],
    reported_on: &str,
    bootstrap: &BootstrapOptions,
) -> Result<AtOperatingPoint, InferError> {
    point.figures(decided.len(), groups, reported_on, bootstrap, |idx| {
        let mut c = Confusion::default();
        for &i in idx {
            let cell = match (decided[i], labels[i] == point.positive_index) {
                (true, true) => &mut c.tp,
                (true, false) => &mut c.fp,
                (false, false) => &mut c.tn,
                (false, true) => &mut c.fn_,
            };
            *cell += 1;
        }
        Some(c)
    })
}

/// The partial AUC of `positive` above `min_tpr` on `preds`, resampling `groups`.
pub fn partial_auc(
    probs: &[Vec<f64>],
    labels: &[usize],
    groups: &[String],
    positive: usize,
    positive_name: &str,
    min_tpr: f64,
    bootstrap: &BootstrapOptions,
) -> Result<PartialAuc, InferError> {
    let g = Groups::new(groups).map_err(stats_err)?;
    let pauc = resnext_stats::bootstrap(&g, bootstrap, |idx| {
        let p: Vec<Vec<f64>> = idx.iter().map(|&i| probs[i].clone()).collect();
        let l: Vec<usize> = idx.iter().map(|&i| labels[i]).collect();
        resnext_stats::pauc_min_tpr(&p, &l, positive, min_tpr).ok()
    })
    .ok();
    Ok(PartialAuc {
        positive: positive_name.to_string(),
        min_tpr,
        pauc,
    })
}
