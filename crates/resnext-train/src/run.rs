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
//! | `checkpoint.safetensors` | the resume point: weights, optimiser, EMA and loop state |
//! | `eval.json` | the last evaluation report ([`EvalReport`]) |
//! | `curves.png`, `confusion_matrix.png`, `roc.png`, `reliability.png` | figures ([`Run::plot`], feature `plot`) |
//! | `predictions.json` | a cross-validation fold's test predictions (`resnext cv`) |
//!
//! The `.safetensors` weights carry torchvision's names (with `num_batches_tracked`), so
//! `torchvision.models.resnext50_32x4d(num_classes=2).load_state_dict(load_file(...), strict=True)`
//! accepts them. Every file is written atomically: a temporary file, flushed, then renamed.

use crate::checkpoint::{Checkpoint, CheckpointInfo, LoopState};
use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::evaluate::{predict_loader, RunOptions};
use crate::metric::{parse_metrics_csv, roc_curve, EpochRow, EvalReport, Report, ECE_BINS};
use crate::predictor::Predictor;
use crate::progress::Progress;
use resnext_data::loader::PixelType;
use resnext_data::split::Split;
use resnext_data::{Loader, LoaderConfig};
use resnext_io::write_atomic;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::Tensor;

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
}

impl RunFile {
    /// Every file a run directory holds.
    pub const ALL: [RunFile; 15] = [
        RunFile::Config,
        RunFile::Split,
        RunFile::Metrics,
        RunFile::Weights(Checkpoint::Best),
        RunFile::Weights(Checkpoint::Last),
        RunFile::Sidecar(Checkpoint::Best),
        RunFile::Sidecar(Checkpoint::Last),
        RunFile::Resume,
        RunFile::Eval,
        RunFile::Curves,
        RunFile::ConfusionMatrix,
        RunFile::Roc,
        RunFile::Reliability,
        RunFile::Predictions,
        RunFile::Lock,
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
            RunFile::Resume => "checkpoint.safetensors",
            RunFile::Eval => "eval.json",
            RunFile::Curves => "curves.png",
            RunFile::ConfusionMatrix => "confusion_matrix.png",
            RunFile::Roc => "roc.png",
            RunFile::Reliability => "reliability.png",
            RunFile::Predictions => "predictions.json",
            RunFile::Lock => "run.lock",
        }
    }
}

/// The fewest validation images a temperature is fitted on.
pub const MIN_CALIBRATION_IMAGES: usize = 5;

/// What [`Run::calibrate`] fitted, measured on the validation part.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    pub temperature: f64,
    pub samples: usize,
    pub nll_before: f64,
    pub nll_after: f64,
    pub ece_before: f64,
    pub ece_after: f64,
}

/// One image's prediction in an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplePrediction {
    /// Relative to the data root, as in `split.json`.
    pub path: String,
    pub label: usize,
    pub probs: Vec<f64>,
    pub logits: Vec<f64>,
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

/// What [`Run::evaluate`] evaluates, and how.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub part: SplitPart,
    pub checkpoint: Checkpoint,
    /// How the network runs (device, precision, channels-last, flip TTA).
    pub run: RunOptions,
    pub batch_size: usize,
    /// The ImageFolder root; `None` is the root the run trained on.
    pub data: Option<PathBuf>,
    /// Fold BatchNorm into the convolutions first.
    pub fold_bn: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            part: SplitPart::Val,
            checkpoint: Checkpoint::Best,
            run: RunOptions::cpu(),
            batch_size: 32,
            data: None,
            fold_bn: false,
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

impl Run {
    /// Opens an existing run directory (one that holds a config or a sidecar).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, TrainError> {
        let run = Self { dir: dir.into() };
        if !run.dir.is_dir() {
            return Err(TrainError::NotARun {
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
            return Err(TrainError::NotARun {
                dir: run.dir,
                reason: "it holds no config.toml and no weights sidecar",
            });
        }
        Ok(run)
    }

    /// The run directory for a new run, created if needed (the trainer checks that it does not
    /// already hold one).
    pub fn create(dir: impl Into<PathBuf>) -> Result<Self, TrainError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| TrainError::Write {
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

    /// Takes the run's write lock, or fails at once naming the process that holds it. Every
    /// writer (training, resuming, saving `eval.json`, plotting) takes it; readers do not.
    pub fn lock(&self) -> Result<RunLock, TrainError> {
        use std::io::{Read, Seek, Write};
        let path = self.path(RunFile::Lock);
        let write_err = |source: std::io::Error| TrainError::Write {
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
                return Err(TrainError::RunBusy {
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

    fn read_text(&self, file: RunFile) -> Result<String, TrainError> {
        let path = self.path(file);
        resnext_data::safe_path::check_regular(&path)?;
        std::fs::read_to_string(&path).map_err(|source| TrainError::ReadIo { path, source })
    }

    /// The sidecar of a checkpoint.
    pub fn info(&self, which: Checkpoint) -> Result<CheckpointInfo, TrainError> {
        let text = self.read_text(RunFile::Sidecar(which))?;
        let path = self.path(RunFile::Sidecar(which));
        let info: CheckpointInfo = serde_json::from_str(&text).map_err(|e| TrainError::Read {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        info.validate()
            .map_err(|reason| TrainError::Read { path, reason })?;
        Ok(info)
    }

    pub fn write_info(&self, which: Checkpoint, info: &CheckpointInfo) -> Result<(), TrainError> {
        let json = serde_json::to_string_pretty(info).map_err(|e| TrainError::Read {
            path: self.path(RunFile::Sidecar(which)),
            reason: e.to_string(),
        })?;
        Ok(write_atomic(
            &self.path(RunFile::Sidecar(which)),
            json.as_bytes(),
        )?)
    }

    /// The resolved training config.
    pub fn config(&self) -> Result<TrainConfig, TrainError> {
        let text = self.read_text(RunFile::Config)?;
        TrainConfig::from_toml(&text, &self.path(RunFile::Config))
    }

    pub fn split(&self) -> Result<Split, TrainError> {
        Ok(Split::load(&self.path(RunFile::Split))?)
    }

    /// The rows of `metrics.csv`.
    pub fn metrics(&self) -> Result<Vec<EpochRow>, TrainError> {
        Ok(parse_metrics_csv(&self.read_text(RunFile::Metrics)?))
    }

    /// The last `eval.json`, if there is one.
    pub fn eval_report(&self) -> Result<Option<EvalReport>, TrainError> {
        let path = self.path(RunFile::Eval);
        if !path.exists() {
            return Ok(None);
        }
        let text = self.read_text(RunFile::Eval)?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| TrainError::Read {
                path,
                reason: e.to_string(),
            })
    }

    /// Writes `eval.json`.
    pub fn save_eval(&self, report: &EvalReport) -> Result<PathBuf, TrainError> {
        let path = self.path(RunFile::Eval);
        let json = serde_json::to_string_pretty(report).map_err(|e| TrainError::Read {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_atomic(&path, json.as_bytes())?;
        Ok(path)
    }

    /// A predictor of a checkpoint, with the run's classes and eval transform.
    pub fn predictor(&self, which: Checkpoint, opts: RunOptions) -> Result<Predictor, TrainError> {
        Predictor::from_run(self, which, opts)
    }

    /// The classification report of a checkpoint on a part of the run's split (nothing is
    /// written; [`Self::save_eval`] writes it).
    pub fn evaluate(
        &self,
        opts: &EvalOptions,
        progress: &dyn Progress,
    ) -> Result<EvalReport, TrainError> {
        Ok(self.evaluate_with_predictions(opts, progress)?.0)
    }

    /// [`Self::evaluate`], with each image's prediction (in the split's order).
    pub fn evaluate_with_predictions(
        &self,
        opts: &EvalOptions,
        progress: &dyn Progress,
    ) -> Result<(EvalReport, Vec<SamplePrediction>), TrainError> {
        let mut predictor = self.predictor(opts.checkpoint, opts.run)?;
        if opts.fold_bn {
            predictor = predictor.with_folded_batchnorm()?;
        }
        let info = predictor.info().cloned().ok_or(TrainError::NotARun {
            dir: self.dir.clone(),
            reason: "its checkpoint has no sidecar",
        })?;
        let split = self.split()?;
        let root = opts.data.clone().unwrap_or_else(|| info.data_root.clone());
        if !root.is_dir() {
            return Err(TrainError::DataRootMissing(root));
        }
        let paths = opts.part.paths(&split);
        if paths.is_empty() {
            return Err(TrainError::EmptyPart(opts.part.name()));
        }
        // the run's own choice about links out of the data root
        let follow = self.config().is_ok_and(|c| c.data.follow_links);
        let samples = split.samples_with(&paths, &root, follow)?;
        let mut lc = LoaderConfig::new(opts.batch_size.max(1), info.classes.len());
        lc.pixels = PixelType::F32;
        let loader = Loader::new(&root, &samples, predictor.transform().clone(), lc)?;
        let preds = predict_loader(predictor.net(), &loader, opts.run, progress)?;
        let report =
            Report::from_predictions(&info.classes, &preds.probs, &preds.labels, preds.loss);
        let roc = (info.classes.len() == 2).then(|| {
            let scores: Vec<f64> = preds.probs.iter().map(|p| p[1]).collect();
            let pos: Vec<bool> = preds.labels.iter().map(|&y| y == 1).collect();
            roc_curve(&scores, &pos)
        });
        let reliability = crate::metric::reliability(&preds.probs, &preds.labels, ECE_BINS);
        let per_image = preds
            .indices
            .iter()
            .zip(&preds.labels)
            .zip(preds.probs.iter().zip(&preds.logits))
            .map(|((&i, &label), (probs, logits))| SamplePrediction {
                path: paths.get(i).cloned().unwrap_or_default(),
                label,
                probs: probs.clone(),
                logits: logits.clone(),
            })
            .collect();
        Ok((
            EvalReport {
                report,
                split: opts.part.name().to_string(),
                checkpoint: opts.checkpoint,
                tta: opts.run.tta,
                classes: info.classes,
                roc_curve: roc,
                reliability: Some(reliability),
            },
            per_image,
        ))
    }

    /// Temperature scaling: fits T on the validation part's logits (minimum NLL), stores it in
    /// the checkpoint's sidecar (so `predict` and `serve` use it) and returns what it changed.
    /// The caller holds the run's lock.
    pub fn calibrate(
        &self,
        opts: &EvalOptions,
        progress: &dyn Progress,
    ) -> Result<Calibration, TrainError> {
        let val = EvalOptions {
            part: SplitPart::Val,
            ..opts.clone()
        };
        let (_, preds) = self.evaluate_with_predictions(&val, progress)?;
        let logits: Vec<Vec<f64>> = preds.iter().map(|p| p.logits.clone()).collect();
        let labels: Vec<usize> = preds.iter().map(|p| p.label).collect();
        let refuse = |reason: String| TrainError::InvalidValue {
            key: "--calibrate",
            reason,
        };
        let present: std::collections::BTreeSet<usize> = labels.iter().copied().collect();
        if labels.len() < MIN_CALIBRATION_IMAGES || present.len() < 2 {
            return Err(refuse(format!(
                "the validation part has {} image(s) of {} class(es); a temperature needs at least {MIN_CALIBRATION_IMAGES} images of at least 2 classes (nothing was stored)",
                labels.len(),
                present.len()
            )));
        }
        let t = crate::metric::fit_temperature(&logits, &labels);
        let (lo, hi) = (
            *crate::checkpoint::TEMPERATURE_RANGE.start(),
            *crate::checkpoint::TEMPERATURE_RANGE.end(),
        );
        if t <= lo * 1.001 || t >= hi * 0.999 {
            return Err(refuse(format!(
                "the fit ran to the end of its range ({t:.3}; it searches {lo} to {hi}): the validation part ({} images) does not determine a temperature (nothing was stored)",
                labels.len()
            )));
        }
        let probs_at = |t: f64| -> Vec<Vec<f64>> {
            logits
                .iter()
                .map(|z| crate::metric::calibration::softmax_t(z, t))
                .collect()
        };
        let cal = Calibration {
            temperature: t,
            samples: labels.len(),
            nll_before: crate::metric::calibration::nll(&logits, &labels, 1.0),
            nll_after: crate::metric::calibration::nll(&logits, &labels, t),
            ece_before: crate::metric::ece(&probs_at(1.0), &labels),
            ece_after: crate::metric::ece(&probs_at(t), &labels),
        };
        let mut info = self.info(opts.checkpoint)?;
        info.temperature = Some(t);
        self.write_info(opts.checkpoint, &info)?;
        Ok(cal)
    }

    /// Draws every figure the run's files allow; returns the paths written.
    #[cfg(feature = "plot")]
    pub fn plot(&self, progress: &dyn Progress) -> Result<Vec<PathBuf>, TrainError> {
        crate::plot::plot_run(self, progress)
    }

    /// Saves the resume point: named tensors plus the loop state as a byte tensor `state.json`,
    /// in one file renamed into place, so weights, optimiser and state always agree.
    pub fn save_resume(
        &self,
        mut tensors: Vec<(String, Tensor)>,
        state: &LoopState,
    ) -> Result<(), TrainError> {
        let json = serde_json::to_vec(state).map_err(|e| TrainError::Read {
            path: self.path(RunFile::Resume),
            reason: e.to_string(),
        })?;
        tensors.push(("state.json".into(), Tensor::from_slice(&json)));
        resnext_model::weights::write_tensors_atomic(&tensors, &self.path(RunFile::Resume))?;
        Ok(())
    }

    /// Loads the resume point.
    pub fn load_resume(&self) -> Result<(HashMap<String, Tensor>, LoopState), TrainError> {
        let p = self.path(RunFile::Resume);
        if !p.exists() {
            return Err(TrainError::NothingToResume(self.dir.clone()));
        }
        let bad = |reason: String| TrainError::Read {
            path: p.clone(),
            reason,
        };
        resnext_data::safe_path::check_regular(&p)?;
        let tensors: HashMap<String, Tensor> = Tensor::read_safetensors(&p)
            .map_err(|e| bad(e.to_string()))?
            .into_iter()
            .collect();
        let state = tensors
            .get("state.json")
            .ok_or_else(|| bad("no state.json entry".into()))?;
        let bytes: Vec<u8> = Vec::<u8>::try_from(state).map_err(|e| bad(e.to_string()))?;
        let state: LoopState = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        Ok((tensors, state))
    }
}
