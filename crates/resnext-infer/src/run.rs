//! A run directory: everything training wrote and everything `eval`, `predict` and `plot` need.
//! Every file name of a run is spelled here, in [`RunFile`], and nowhere else.
//!
//! | file | what |
//! | --- | --- |
//! | `config.toml` | the fully resolved training config |
//! | `split.json` | `{"classes", "train", "val", "test"}`, paths relative to the data root |
//! | `metrics.csv` | one row per finished epoch |
//! | `best.safetensors` / `best.json` | weights of the best validation accuracy and their sidecar |
//! | `last.safetensors` / `last.json` | weights after the last finished epoch and their sidecar |
//! | `swa.safetensors` / `swa.json` | stochastic weight averaging's average (`train.swa`) |
//! | `average.safetensors` / `average.json` | the average of epoch checkpoints (`resnext average`) |
//! | `epoch-NNN.safetensors` | an epoch's weights, the last `train.keep_checkpoints` kept |
//! | `checkpoint.safetensors` | the resume point: weights, optimiser, EMA and loop state |
//! | `eval.json` | the last evaluation report ([`EvalReport`]) |
//! | `curves.png`, `confusion_matrix.png`, `roc.png`, `reliability.png` | figures (`Run::plot`, feature `plot`) |
//! | `predictions.json` | a cross-validation fold's test predictions (`resnext cv`) |
//! | `eval_predictions.json` | each image's probabilities of the last evaluation (`eval.json`'s part) |
//! | `report.html` | the evaluation as one self-contained page (`resnext eval`, `resnext report`) |
//! | `tb/` | TensorBoard's event files (`train.tensorboard`), appended to as training goes |
//!
//! The `.safetensors` weights carry torchvision's names (with `num_batches_tracked`), so
//! `torchvision.models.resnext50_32x4d(num_classes=2).load_state_dict(load_file(...), strict=True)`
//! accepts them. Every file is written atomically: a temporary file, flushed, then renamed (but
//! TensorBoard's event files, a stream).
//!
//! `Run` describes the directory and reads and writes its files; what is built from it lives
//! with its consumer (`Run::predictor` in `predictor.rs`, `Run::evaluate` and `Run::calibrate` in
//! `run_eval.rs`, `Run::plot` in `plot.rs`), so this file depends on none of them.

use crate::checkpoint::{Checkpoint, CheckpointInfo};
use crate::error::InferError;
use crate::metric::epoch::{parse_metrics_csv, EpochRow};
use crate::metric::report::EvalReport;
use resnext_data::split::Split;
use resnext_io::write_atomic;
use std::path::{Path, PathBuf};

/// The files of a run directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunFile {
    Config,
    Split,
    Metrics,
    Weights(Checkpoint),
    Sidecar(Checkpoint),
    Resume,
    Eval,
    Curves,
    ConfusionMatrix,
    Roc,
    Reliability,
    /// Each test image's prediction (cross-validation folds).
    Predictions,
    /// The advisory lock of a process writing the run (holds its pid).
    Lock,
    /// Each image's probabilities of the last evaluation.
    EvalPredictions,
    /// The evaluation as one self-contained HTML page.
    Report,
    /// The folder of TensorBoard's event files (`train.tensorboard`).
    TensorBoard,
}

impl RunFile {
    /// Every file a run directory holds, but [`RunFile::Report`]: a cross-validation directory
    /// has a `report.html` too, and these lists tell the two kinds apart (`owned.rs` adds it).
    pub const ALL: [RunFile; 21] = [
        RunFile::Config,
        RunFile::Split,
        RunFile::Metrics,
        RunFile::Weights(Checkpoint::Best),
        RunFile::Weights(Checkpoint::Last),
        RunFile::Sidecar(Checkpoint::Best),
        RunFile::Sidecar(Checkpoint::Last),
        RunFile::Weights(Checkpoint::Swa),
        RunFile::Sidecar(Checkpoint::Swa),
        RunFile::Weights(Checkpoint::Average),
        RunFile::Sidecar(Checkpoint::Average),
        RunFile::Resume,
        RunFile::Eval,
        RunFile::Curves,
        RunFile::ConfusionMatrix,
        RunFile::Roc,
        RunFile::Reliability,
        RunFile::Predictions,
        RunFile::Lock,
        RunFile::EvalPredictions,
        RunFile::TensorBoard,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RunFile::Config => "config.toml",
            RunFile::Split => "split.json",
            RunFile::Metrics => "metrics.csv",
            RunFile::Weights(Checkpoint::Best) => "best.safetensors",
            RunFile::Weights(Checkpoint::Last) => "last.safetensors",
            RunFile::Sidecar(Checkpoint::Best) => "best.json",
            RunFile::Sidecar(Checkpoint::Last) => "last.json",
            RunFile::Weights(Checkpoint::Swa) => "swa.safetensors",
            RunFile::Sidecar(Checkpoint::Swa) => "swa.json",
            RunFile::Weights(Checkpoint::Average) => "average.safetensors",
            RunFile::Sidecar(Checkpoint::Average) => "average.json",
            RunFile::Resume => "checkpoint.safetensors",
            RunFile::Eval => "eval.json",
            RunFile::Curves => "curves.png",
            RunFile::ConfusionMatrix => "confusion_matrix.png",
            RunFile::Roc => "roc.png",
            RunFile::Reliability => "reliability.png",
            RunFile::Predictions => "predictions.json",
            RunFile::Lock => "run.lock",
            RunFile::TensorBoard => "tb",
            RunFile::EvalPredictions => "eval_predictions.json",
            RunFile::Report => "report.html",
        }
    }
}

/// Which images of the run's split to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SplitPart {
    #[default]
    Val,
    Test,
    Train,
    /// Every image of the split.
    All,
}

impl SplitPart {
    pub fn name(self) -> &'static str {
        match self {
            SplitPart::Val => "val",
            SplitPart::Test => "test",
            SplitPart::Train => "train",
            SplitPart::All => "all",
        }
    }

    /// The relative paths of this part.
    pub fn paths(self, split: &Split) -> Vec<String> {
        match self {
            SplitPart::Val => split.val.clone(),
            SplitPart::Test => split.test.clone(),
            SplitPart::Train => split.train.clone(),
            SplitPart::All => split
                .train
                .iter()
                .chain(&split.val)
                .chain(&split.test)
                .cloned()
                .collect(),
        }
    }
}

/// A process's exclusive right to write a run directory: an advisory `flock` on `run.lock`,
/// released when this is dropped or the process dies (the kernel drops the lock with the file
/// descriptor). The file holds the writer's pid so that a refused writer can name it.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl RunLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A run directory.
#[derive(Debug, Clone)]
pub struct Run {
    dir: PathBuf,
}

/// The epoch of a kept epoch weights file's name (`epoch-NNN.safetensors`,
/// [`Run::epoch_weights`]), None for any other name.
pub fn epoch_of(name: &str) -> Option<usize> {
    let n = name.strip_prefix("epoch-")?.strip_suffix(".safetensors")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

impl Run {
    /// Opens an existing run directory (one that holds a config or a sidecar).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, InferError> {
        let run = Self { dir: dir.into() };
        if !run.dir.is_dir() {
            return Err(InferError::NotARun {
                dir: run.dir,
                reason: "no such folder",
            });
        }
        let known = [
            RunFile::Config,
            RunFile::Sidecar(Checkpoint::Best),
            RunFile::Sidecar(Checkpoint::Last),
        ];
        if !known.iter().any(|&f| run.path(f).is_file()) {
            return Err(InferError::NotARun {
                dir: run.dir,
                reason: "it holds no config.toml and no weights sidecar",
            });
        }
        Ok(run)
    }

    /// The run directory for a new run, created if needed (the trainer checks that it does not
    /// already hold one).
    pub fn create(dir: impl Into<PathBuf>) -> Result<Self, InferError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| InferError::Write {
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir })
    }

    /// A run directory value without checks (for a path to be created later).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where epoch `epoch`'s weights are kept (`train.keep_checkpoints`): `epoch-NNN.safetensors`.
    pub fn epoch_weights(&self, epoch: usize) -> PathBuf {
        self.dir.join(format!("epoch-{epoch:03}.safetensors"))
    }

    /// The kept epoch weights ([`Self::epoch_weights`]), by epoch, oldest first.
    pub fn kept_epochs(&self) -> Result<Vec<(usize, PathBuf)>, InferError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|source| InferError::ReadIo {
            path: self.dir.clone(),
            source,
        })?;
        let mut out: Vec<(usize, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let epoch = epoch_of(&name)?;
                (self.epoch_weights(epoch) == e.path()).then(|| (epoch, e.path()))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Takes the run's write lock, or fails at once naming the process that holds it. Every
    /// writer (training, resuming, saving `eval.json`, plotting) takes it; readers do not.
    pub fn lock(&self) -> Result<RunLock, InferError> {
        use std::io::{Read, Seek, Write};
        let path = self.path(RunFile::Lock);
        let write_err = |source: std::io::Error| InferError::Write {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(write_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                file.read_to_string(&mut text).ok();
                return Err(InferError::RunBusy {
                    dir: self.dir.clone(),
                    pid: text.trim().to_string(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(write_err(e)),
        }
        file.set_len(0).map_err(write_err)?;
        file.rewind().map_err(write_err)?;
        writeln!(file, "{}", std::process::id()).map_err(write_err)?;
        file.flush().map_err(write_err)?;
        Ok(RunLock { _file: file, path })
    }

    pub fn path(&self, file: RunFile) -> PathBuf {
        self.dir.join(file.name())
    }

    /// True when the directory already holds a (started) run.
    pub fn holds_run(&self) -> bool {
        self.path(RunFile::Resume).exists() || self.path(RunFile::Metrics).exists()
    }

    /// The text of one of the run's files (a regular file only).
    pub fn read_text(&self, file: RunFile) -> Result<String, InferError> {
        let path = self.path(file);
        resnext_data::safe_path::check_regular(&path)?;
        std::fs::read_to_string(&path).map_err(|source| InferError::ReadIo { path, source })
    }

    /// The sidecar of a checkpoint.
    pub fn info(&self, which: Checkpoint) -> Result<CheckpointInfo, InferError> {
        let text = self.read_text(RunFile::Sidecar(which))?;
        let path = self.path(RunFile::Sidecar(which));
        let info: CheckpointInfo =
            serde_json::from_str(&text).map_err(|e| InferError::read(&path, e))?;
        info.validate()
            .map_err(|reason| InferError::read(path, reason))?;
        Ok(info)
    }

    pub fn write_info(&self, which: Checkpoint, info: &CheckpointInfo) -> Result<(), InferError> {
        let path = self.path(RunFile::Sidecar(which));
        let json = serde_json::to_string_pretty(info).map_err(|e| InferError::read(&path, e))?;
        Ok(write_atomic(&path, json.as_bytes())?)
    }

    /// The run's `data.group_regex` (the patient of each file), if it has one.
    pub fn group_regex(&self) -> Option<String> {
        self.read_text(RunFile::Config)
            .ok()
            .and_then(|t| t.parse::<toml::Table>().ok())
            .and_then(|t| Some(t.get("data")?.get("group_regex")?.as_str()?.to_string()))
    }

    /// Whether the run's config lets its data root hold links that lead outside it
    /// (`data.follow_links`; false when the config cannot be read).
    pub fn follows_links(&self) -> bool {
        self.read_text(RunFile::Config)
            .ok()
            .and_then(|t| t.parse::<toml::Table>().ok())
            .and_then(|t| t.get("data")?.get("follow_links")?.as_bool())
            .unwrap_or(false)
    }

    pub fn split(&self) -> Result<Split, InferError> {
        Ok(Split::load(&self.path(RunFile::Split))?)
    }

    /// The rows of `metrics.csv`.
    pub fn metrics(&self) -> Result<Vec<EpochRow>, InferError> {
        Ok(parse_metrics_csv(&self.read_text(RunFile::Metrics)?))
    }

    /// The last `eval.json`, if there is one.
    pub fn eval_report(&self) -> Result<Option<EvalReport>, InferError> {
        let path = self.path(RunFile::Eval);
        if !path.exists() {
            return Ok(None);
        }
        let text = self.read_text(RunFile::Eval)?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| InferError::read(path, e))
    }

    /// Writes `eval.json`.
    pub fn save_eval(&self, report: &EvalReport) -> Result<PathBuf, InferError> {
        let path = self.path(RunFile::Eval);
        let json = serde_json::to_string_pretty(report).map_err(|e| InferError::read(&path, e))?;
        write_atomic(&path, json.as_bytes())?;
        Ok(path)
    }
}
