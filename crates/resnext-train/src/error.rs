//! Typed errors of the training crate: one variant per thing a caller could act on.

use crate::device::DeviceChoice;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
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
    #[error("unknown {what} `{got}` (expected {expected})")]
    UnknownChoice {
        what: &'static str,
        got: String,
        expected: &'static str,
    },
    #[error("unknown device `{0}` (expected cpu, cuda, cuda:N or auto)")]
    UnknownDevice(String),
    #[error("device {device}: {reason}")]
    NoCuda {
        device: DeviceChoice,
        reason: String,
    },
    #[error("precision fp16 needs a CUDA device; use bf16 on the CPU")]
    Fp16OnCpu,
    #[error(transparent)]
    Data(#[from] resnext_data::DataError),
    #[error(transparent)]
    Model(#[from] resnext_model::ModelError),
    #[error("distributed training: {0}")]
    Dist(String),
    #[error("libtorch error: {0}")]
    Torch(#[from] tch::TchError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Output(#[from] resnext_io::WriteError),
    #[error("{flag} {path} is `{name}` of {dir}, which only that run writes; choose another file")]
    OwnedOutput {
        flag: String,
        path: PathBuf,
        dir: PathBuf,
        name: &'static str,
    },
    #[error("cannot read {path}: {source}")]
    ReadIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{dir} is not a run directory: {reason}")]
    NotARun { dir: PathBuf, reason: &'static str },
    #[error("{0} already holds a run; continue it with --resume {0} or choose another --out")]
    RunExists(PathBuf),
    #[error("run directory {dir} is in use by process {pid}, which is writing it; wait for it to finish or choose another directory")]
    RunBusy { dir: PathBuf, pid: String },
    #[error("the run directory {run} is inside the data root {root}: its files would mix with the images; choose another --out")]
    RunInsideData { run: PathBuf, root: PathBuf },
    #[error("the data root {0} does not exist (give --data DIR)")]
    DataRootMissing(PathBuf),
    #[error("the run's split has no `{0}` images")]
    EmptyPart(&'static str),
    #[error(
        "the split has {train} training and {val} validation images; both parts need some (lower data.val or add images)"
    )]
    EmptySplit { train: usize, val: usize },
    #[error("{sidecar} lists {classes} classes but the model has {outputs} outputs")]
    ClassCountMismatch {
        sidecar: PathBuf,
        classes: usize,
        outputs: i64,
    },
    #[error("class {class} is not a class index (the model has {classes}: 0..{classes})")]
    ClassOutOfRange { class: usize, classes: usize },
    #[error("the eval transform is random (crop, flip, jitter or erasing); predictions need a deterministic one")]
    RandomEvalTransform,
    #[error("the resume checkpoint {path} {reason}")]
    BadResume { path: PathBuf, reason: String },
    #[error("the data loader must yield {0}")]
    BatchLayout(&'static str),
    #[error("an input has {got} values where the eval transform makes {expected}")]
    InputSize { expected: usize, got: usize },
    #[error("loss became {value} at epoch {epoch}, batch {batch}; stopped (the last good checkpoint is intact; try a lower learning rate)")]
    NonFinite {
        epoch: usize,
        batch: usize,
        value: f64,
    },
    #[error("the weights became non-finite (NaN or infinite) at epoch {epoch}, batch {batch}; stopped (the last good checkpoint is intact; check the optimiser settings)")]
    NonFiniteWeights { epoch: usize, batch: usize },
    #[error("the model's output is not finite (NaN or infinite): its weights are broken")]
    NonFiniteOutput,
    #[error(
        "run directory {0} holds no resumable checkpoint (checkpoint.safetensors); if it was \
         stopped while starting, run the original command again"
    )]
    NothingToResume(PathBuf),
    #[error("cannot encode the image: {0}")]
    Encode(String),
    #[error("{0}")]
    Plot(String),
    #[error("{0} has no epochs yet")]
    NoEpochs(PathBuf),
}
