//! What a run directory's checkpoints hold: which saved weights ([`Checkpoint`]), their sidecar
//! ([`CheckpointInfo`]: enough to rebuild the model and its eval transform). Every file of a run
//! is written by `resnext_io::write_atomic`; the resume point's loop state belongs to the
//! training crate.
//! The directory itself, with every file name, is [`crate::run::Run`].

use crate::error::InferError;
use crate::metric::epoch::EpochRow;
use resnext_data::TransformConfig;
use resnext_model::ModelConfig;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Which saved weights of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Checkpoint {
    /// The epoch with the best validation accuracy.
    #[default]
    Best,
    /// The last finished epoch.
    Last,
    /// Stochastic weight averaging's average (`train.swa`), its BatchNorm statistics recomputed.
    Swa,
    /// The average of saved epoch checkpoints (`resnext average`), its BatchNorm statistics
    /// recomputed.
    Average,
}

impl Checkpoint {
    pub fn name(self) -> &'static str {
        match self {
            Checkpoint::Best => "best",
            Checkpoint::Last => "last",
            Checkpoint::Swa => "swa",
            Checkpoint::Average => "average",
        }
    }
}

impl std::fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Checkpoint {
    type Err = InferError;
    fn from_str(s: &str) -> Result<Self, InferError> {
        match s {
            "best" => Ok(Checkpoint::Best),
            "last" => Ok(Checkpoint::Last),
            "swa" => Ok(Checkpoint::Swa),
            "average" => Ok(Checkpoint::Average),
            other => Err(InferError::UnknownChoice {
                what: "checkpoint",
                got: other.to_string(),
                expected: "best, last, swa or average",
            }),
        }
    }
}

/// The sidecar of a weights file: enough to rebuild the model and its eval transform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointInfo {
    pub model: ModelConfig,
    pub classes: Vec<String>,
    /// [height, width] of the network input.
    pub image_size: [u32; 2],
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub eval_transform: TransformConfig,
    /// The dataset the run trained on.
    pub data_root: PathBuf,
    /// The epoch (1-based) these weights come from.
    pub epoch: usize,
    pub metrics: EpochRow,
    /// Temperature scaling fitted by `resnext eval --calibrate`: predictions use
    /// `softmax(logits / temperature)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// The precision the training ran in (`auto` resolved; absent in older runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<crate::precision::Precision>,
    /// Whether the training ran channels-last (absent in older runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels_last: Option<bool>,
    /// Stored by `eval --operating-point`: `predict` and `serve` answer with a decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_point: Option<crate::metric::operating_point::OperatingPoint>,
}

/// The sides of a network input a sidecar may give (and training may make): above 4096 one
/// image's activations take several gigabytes (the network's adaptive pooling takes any size
/// from 1 up; batches are capped by [`MAX_BATCH_PIXELS`]).
pub const INPUT_SIDE: std::ops::RangeInclusive<u32> = 1..=4096;

/// Images per forward pass are capped so that a batch holds at most this many pixels (32 images
/// of 512²): a sidecar's large input size makes smaller batches, not an out-of-memory abort.
pub const MAX_BATCH_PIXELS: u64 = 32 * 512 * 512;

/// `batch` capped by [`MAX_BATCH_PIXELS`] for inputs of `size`.
pub fn capped_batch(batch: usize, size: [u32; 2]) -> usize {
    let per_image = (size[0] as u64 * size[1] as u64).max(1);
    batch.clamp(1, (MAX_BATCH_PIXELS / per_image).max(1) as usize)
}

/// The temperatures [`crate::metric::fit_temperature`] searches, and so the ones a sidecar may
/// hold: outside them, a temperature is not a calibration but a broken or hand-edited file.
pub const TEMPERATURE_RANGE: std::ops::RangeInclusive<f64> = 0.05..=20.0;

impl CheckpointInfo {
    /// Checks every field against its domain and against the others; the error names the field.
    /// Run on every load, so a hand-edited or corrupted sidecar is refused, not half-used.
    pub fn validate(&self) -> Result<(), String> {
        self.model
            .validate()
            .map_err(|e| format!("field `model`: {e}"))?;
        if self.classes.len() as i64 != self.model.num_classes {
            return Err(format!(
                "field `classes` has {} names, but `model.num_classes` is {}",
                self.classes.len(),
                self.model.num_classes
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.classes {
            if c.trim().is_empty() {
                return Err("field `classes` has an empty name".into());
            }
            if c.chars().any(char::is_control) {
                return Err(format!(
                    "field `classes` has a name with a control character: {c:?}"
                ));
            }
            if !seen.insert(c) {
                return Err(format!("field `classes` names `{c}` twice"));
            }
        }
        let size = self
            .eval_transform
            .validate()
            .map_err(|e| format!("field `eval_transform`: {e}"))?;
        if self.image_size != size {
            return Err(format!(
                "field `image_size` is {:?}, but `eval_transform` makes {size:?}",
                self.image_size
            ));
        }
        if !size.iter().all(|s| INPUT_SIDE.contains(s)) {
            return Err(format!(
                "field `image_size` is {size:?}; a network input is {} to {} pixels a side",
                INPUT_SIDE.start(),
                INPUT_SIDE.end()
            ));
        }
        if self.mean != self.eval_transform.mean || self.std != self.eval_transform.std {
            return Err(format!(
                "fields `mean` {:?} and `std` {:?} differ from `eval_transform`'s {:?} and {:?}",
                self.mean, self.std, self.eval_transform.mean, self.eval_transform.std
            ));
        }
        let m = &self.metrics;
        if m.epoch != self.epoch {
            return Err(format!(
                "field `metrics.epoch` is {}, but `epoch` is {}",
                m.epoch, self.epoch
            ));
        }
        for (name, v, max) in [
            ("train_acc", m.train_acc, 1.0),
            ("val_acc", m.val_acc, 1.0),
            ("train_loss", m.train_loss, f64::MAX),
            ("val_loss", m.val_loss, f64::MAX),
        ] {
            if !(v.is_finite() && (0.0..=max).contains(&v)) {
                return Err(format!("field `metrics.{name}` is {v}"));
            }
        }
        if let Some(op) = &self.operating_point {
            op.validate(&self.classes)?;
        }
        if let Some(t) = self.temperature {
            if !t.is_finite() || !TEMPERATURE_RANGE.contains(&t) {
                return Err(format!(
                    "field `temperature` is {t}; a fitted temperature lies in {} to {}",
                    TEMPERATURE_RANGE.start(),
                    TEMPERATURE_RANGE.end()
                ));
            }
        }
        Ok(())
    }
}
