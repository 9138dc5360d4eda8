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
    // a run's kept epoch weights (`train.keep_checkpoints`) and its TensorBoard event files
    if run && crate::run::epoch_of(name).is_some() {
        return Some((dir.to_path_buf(), "epoch-NNN.safetensors"));
    }
    if let Some(run_dir) = dir.parent() {
        if dir.file_name().and_then(|n| n.to_str()) == Some(RunFile::TensorBoard.name())
            && run_dir.join(RunFile::Config.name()).is_file()
        {
            return Some((run_dir.to_path_buf(), "tb/"));
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_epoch_weights_and_event_files_are_the_runs() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        resnext_io::write_atomic(&run.join(RunFile::Config.name()), b"").unwrap();
        let epoch = run.join("epoch-007.safetensors");
        assert_eq!(owner(&epoch).map(|o| o.1), Some("epoch-NNN.safetensors"));
        std::fs::create_dir(run.join(RunFile::TensorBoard.name())).unwrap();
        let event = run.join("tb").join("events.out.tfevents.1.host.2");
        assert_eq!(owner(&event).map(|o| o.1), Some("tb/"));
        assert_eq!(owner(&run.join("epoch-x.safetensors")), None);
        assert_eq!(owner(&run.join("mine.safetensors")), None);
    }
}
