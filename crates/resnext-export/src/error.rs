//! What can go wrong exporting a model, each in one line.

use std::path::PathBuf;

/// What went wrong, in one line.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Infer(#[from] resnext_infer::InferError),
    #[error(transparent)]
    Model(#[from] resnext_model::ModelError),
    #[error("libtorch error: {0}")]
    Torch(#[from] tch::TchError),
    #[error("opset {0} is not supported (this exporter writes opsets 13 to 21)")]
    Opset(i64),
    #[error("batch size {0} is not allowed (give 1 to 4096, or dynamic)")]
    Batch(i64),
    #[error("tensor `{0}` is not finite (NaN or infinite); a broken model is not exported")]
    NonFinite(String),
    #[error(transparent)]
    Output(#[from] resnext_io::WriteError),
    #[error("cannot hold the TorchScript module in memory: {0}")]
    MemoryFile(String),
    #[error("{0} is not a file path")]
    NotAFile(PathBuf),
}
