//! Typed errors of the inference crate: one variant per thing a caller could act on. The
//! training crate's `TrainError` wraps this one.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// A value outside its domain; `key` is the setting or flag to fix.
    #[error("{key}: {reason}")]
    InvalidValue { key: &'static str, reason: String },
    #[error("unknown {what} `{got}` (expected {expected})")]
    UnknownChoice {
        what: &'static str,
        got: String,
        expected: &'static str,
    },
    #[error("unknown device `{0}` (expected cpu, cuda, cuda:N or auto)")]
    UnknownDevice(String),
    #[error("device {device}: {reason}")]
    NoCuda { device: String, reason: String },
    #[error("precision fp16 needs a CUDA device; use bf16 on the CPU")]
    Fp16OnCpu,
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
    #[error("run directory {dir} is in use by process {pid}, which is writing it; wait for it to finish or choose another directory")]
    RunBusy { dir: PathBuf, pid: String },
    #[error("the data root {0} does not exist (give --data DIR)")]
    DataRootMissing(PathBuf),
    #[error("the run's split has no `{0}` images")]
    EmptyPart(&'static str),
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
    #[error("the data loader must yield {0}")]
    BatchLayout(&'static str),
    #[error("an input has {got} values where the eval transform makes {expected}")]
    InputSize { expected: usize, got: usize },
    #[error("the model's output is not finite (NaN or infinite): its weights are broken")]
    NonFiniteOutput,
    #[error("cannot encode the image: {0}")]
    Encode(String),
    #[error("{0}")]
    Plot(String),
    #[error("{0} has no epochs yet")]
    NoEpochs(PathBuf),
}

impl InferError {
    /// [`InferError::Read`] of `path`: why it could not be read (a parse error, a message).
    pub fn read(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        InferError::Read {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}
