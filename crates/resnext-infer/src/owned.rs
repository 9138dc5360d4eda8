//! Whether a path is one of a run directory's or a cross-validation directory's own files. Only
//! the run writes those; commands that write a file the user names (`export`, `convert`,
//! `predict --cam`, `data split`) refuse them, so that no `--out` can break `eval` or `--resume`.

use crate::cv_dir::CvFile;
use crate::run::RunFile;
use std::path::{Path, PathBuf};

/// When `path` (resolved, so `./`, `..` and links do not hide it) is a file that a run directory
/// (a folder with `config.toml`) or a cross-validation directory (a folder with `folds.json`)
/// owns: that directory and the file's name.
pub fn owner(path: &Path) -> Option<(PathBuf, &'static str)> {
    let resolved = resnext_io::resolve(path)?;
    let name = resolved.file_name()?.to_str()?;
    let dir = resolved.parent()?;
    let run = dir.join(RunFile::Config.name()).is_file();
    let cv = dir.join(CvFile::Folds.name()).is_file();
    let own = RunFile::ALL
        .iter()
        .chain(&[RunFile::Report])
        .map(|f| f.name())
        .filter(|_| run)
        .chain(
            CvFile::ALL
                .iter()
                .chain(&[CvFile::Report])
                .map(|f| f.name())
                .filter(|_| cv),
        )
        .find(|n| *n == name)?;
    Some((dir.to_path_buf(), own))
}

/// An error naming the directory when `path` is one of its own files (see [`owner`]).
pub fn refuse_owned(path: &Path, flag: &str) -> Result<(), crate::error::InferError> {
    match owner(path) {
        Some((dir, name)) => Err(crate::error::InferError::OwnedOutput {
            flag: flag.to_string(),
            path: path.to_path_buf(),
            dir,
            name,
        }),
        None => Ok(()),
    }
}
