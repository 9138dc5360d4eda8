//! What a run directory's checkpoints hold: which saved weights ([`Checkpoint`]), their sidecar
//! ([`CheckpointInfo`]: enough to rebuild the model and its eval transform) and the loop state of
//! the resume point ([`LoopState`]). Every file of a run is written by `resnext_io::write_atomic`.
//! The directory itself, with every file name, is [`crate::run::Run`].

use crate::error::TrainError;
use crate::metric::EpochRow;
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
}

impl Checkpoint {
    pub fn name(self) -> &'static str {
        match self {
            Checkpoint::Best => "best",
            Checkpoint::Last => "last",
        }
    }
}

impl std::fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Checkpoint {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self, TrainError> {
        match s {
            "best" => Ok(Checkpoint::Best),
            "last" => Ok(Checkpoint::Last),
            other => Err(TrainError::UnknownChoice {
                what: "checkpoint",
                got: other.to_string(),
                expected: "best or last",
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
    pub precision: Option<crate::config::Precision>,
    /// Whether the training ran channels-last (absent in older runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels_last: Option<bool>,
}

/// The loop state stored in the resume checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LoopState {
    /// Epochs finished.
    pub epoch: usize,
    pub best_val_acc: f64,
    pub best_epoch: usize,
    /// The early-stopping metric's best value and the epochs since it improved.
    pub stop_best: Option<f64>,
    pub stale_epochs: usize,
    pub history: Vec<EpochRow>,
    pub seed: u64,
}

