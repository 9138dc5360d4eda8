//! Typed errors of the data crate. Each names the file or setting at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("dataset root {0} does not exist")]
    RootMissing(PathBuf),
    #[error("dataset root {0} is not a directory")]
    RootNotDir(PathBuf),
    #[error("dataset root {0} has no class folders (expected one sub-folder of images per class)")]
    NoClasses(PathBuf),
    #[error("dataset root {root} has a single class `{class}`; a classifier needs at least two")]
    SingleClass { root: PathBuf, class: String },
    #[error("class folder {0} has no images")]
    EmptyClass(PathBuf),
    #[error("class folder {0} has a name that is not valid UTF-8 (class names are written to JSON and checkpoints)")]
    NonUtf8Class(PathBuf),
    #[error("{0} has a name that is not valid UTF-8; rename it (file names are written to split.json, which must read them back exactly)")]
    NonUtf8Name(PathBuf),
    #[error("one file is in two classes: {first} and {second} (a link between class folders?); each image must have one label")]
    FileInTwoClasses { first: PathBuf, second: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Output(#[from] resnext_io::WriteError),
    #[error("bad image {path}: {reason}")]
    BadImage { path: PathBuf, reason: String },
    #[error("path `{path}` is refused: {reason}")]
    UnsafePath { path: String, reason: String },
    #[error("invalid split: {0}")]
    InvalidSplit(String),
    #[error("split file {path}: {reason}")]
    SplitFile { path: PathBuf, reason: String },
    #[error("invalid transform: {0}")]
    InvalidTransform(String),
    #[error("invalid loader setting: {0}")]
    InvalidLoader(String),
}

impl DataError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}
