//! Typed errors of the training crate: one variant per thing a caller could act on. Whatever
//! inference can go wrong with (a run directory, a sidecar, a device, prediction), and a file
//! that does not read or a batch of the wrong layout, is [`InferError`], wrapped.

use resnext_infer::InferError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error("config {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    /// A config value outside its domain; `key` is the `section.key` to fix.
    #[error("{key}: {reason}")]
    InvalidValue { key: &'static str, reason: String },
    /// A `--set` override that cannot be applied.
    #[error("--set `{set}`: {reason}")]
    BadOverride { set: String, reason: String },
    #[error("{flag}: {reason}")]
    BadFlag { flag: String, reason: String },
    #[error(transparent)]
    Data(#[from] resnext_data::DataError),
    #[error(transparent)]
    Model(#[from] resnext_model::ModelError),
    #[error("distributed training: {0}")]
    Dist(String),
    #[error("libtorch error: {0}")]
    Torch(#[from] tch::TchError),
    #[error(transparent)]
    Output(#[from] resnext_io::WriteError),
    /// A TensorBoard log that cannot be written (`path` is its folder or its event file).
    #[error("TensorBoard log {path}: {reason}")]
    TensorBoard { path: PathBuf, reason: String },
    #[error("cannot read {path}: {source}")]
    ReadIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot remove {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Checkpoints that `resnext average` cannot average (too few, another model's).
    #[error("cannot average: {0}")]
    Average(String),
    #[error("{0} already holds a run; continue it with --resume {0} or choose another --out")]
    RunExists(PathBuf),
    #[error("the run directory {run} is inside the data root {root}: its files would mix with the images; choose another --out")]
    RunInsideData { run: PathBuf, root: PathBuf },
    #[error(
        "the split has {train} training and {val} validation images; both parts need some (lower data.val or add images)"
    )]
    EmptySplit { train: usize, val: usize },
    #[error("the resume checkpoint {path} {reason}")]
    BadResume { path: PathBuf, reason: String },
    #[error("loss became {value} at epoch {epoch}, batch {batch}; stopped (the last good checkpoint is intact; try a lower learning rate)")]
    NonFinite {
        epoch: usize,
        batch: usize,
        value: f64,
    },
    #[error("the weights became non-finite (NaN or infinite) at epoch {epoch}, batch {batch}; stopped (the last good checkpoint is intact; check the optimiser settings)")]
    NonFiniteWeights { epoch: usize, batch: usize },
    #[error(
        "run directory {0} holds no resumable checkpoint (checkpoint.safetensors); if it was \
         stopped while starting, run the original command again"
    )]
    NothingToResume(PathBuf),
}
