//! Typed errors of the model crate.

use std::path::PathBuf;

/// What can go wrong building a model or moving its weights.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown architecture `{0}` (known: resnext50_32x4d, resnext101_32x8d, resnext101_64x4d, resnet50, custom)")]
    UnknownArch(String),
    #[error("invalid model configuration: {0}")]
    InvalidConfig(String),
    #[error("cannot read weights file {path}: {reason}")]
    ReadWeights { path: PathBuf, reason: String },
    #[error("cannot write weights file {path}: {reason}")]
    WriteWeights { path: PathBuf, reason: String },
    #[error("weights file {path} lacks tensor `{name}` that the model needs (is it for another architecture?)")]
    MissingTensor { path: PathBuf, name: String },
    #[error("weights file {path}: tensor `{name}` has shape {found:?}, the model expects {expected:?} (is it for another architecture?)")]
    ShapeMismatch {
        path: PathBuf,
        name: String,
        expected: Vec<i64>,
        found: Vec<i64>,
    },
    #[error("weights file {path} has tensors the model does not know: {names} (is it for another architecture?)")]
    UnexpectedTensors { path: PathBuf, names: String },
    #[error(transparent)]
    Output(#[from] resnext_io::WriteError),
    #[error("libtorch error: {0}")]
    Torch(#[from] tch::TchError),
}
