//! Typed errors of the training crate.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("config {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("invalid setting: {0}")]
    Invalid(String),
    #[error(transparent)]
    Data(#[from] resnext_data::DataError),
    #[error(transparent)]
    Model(#[from] resnext_model::ModelError),
    #[error("libtorch error: {0}")]
    Torch(#[from] tch::TchError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("loss became {value} at epoch {epoch}, batch {batch}; stopped (the last good checkpoint is intact; try a lower learning rate)")]
    NonFinite {
        epoch: usize,
        batch: usize,
        value: f64,
    },
    #[error(
        "run directory {0} holds no resumable checkpoint (checkpoint.safetensors); if it was \
         stopped while starting, run the original command again"
    )]
    NothingToResume(PathBuf),
}
