//! Evaluating and calibrating a run's checkpoint on a part of its split: the classification
//! report (`eval.json`), each image's prediction, and temperature scaling fitted on the
//! validation part. Functions of a [`Run`], kept out of `run.rs` so that the directory does not
//! depend on what it feeds.

use crate::checkpoint::Checkpoint;
use crate::error::InferError;
use crate::evaluate::{predict_loader, RunOptions};
use crate::metric::{roc_curve, EvalReport, Report, ECE_BINS};
use crate::progress::Progress;
use crate::run::{Run, SplitPart};
use resnext_data::loader::PixelType;
use resnext_data::{Loader, LoaderConfig};
pub use resnext_stats::{BootstrapOptions, Metrics};
use std::path::PathBuf;

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

/// The probabilities and labels of predictions.
pub(crate) fn probs_labels(preds: &[SamplePrediction]) -> (Vec<Vec<f64>>, Vec<usize>) {
    (
        preds.iter().map(|p| p.probs.clone()).collect(),
        preds.iter().map(|p| p.label).collect(),
    )
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
    /// The confidence intervals: resamples (0: none) and seed; patients are resampled.
    pub bootstrap: resnext_stats::BootstrapOptions,
    /// Binary problems: the class (by name) whose sensitivity, PPV, … the intervals report
    /// (`--positive`); `None` is the second class.
    pub positive: Option<String>,
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
            bootstrap: resnext_stats::BootstrapOptions::default(),
            positive: None,
        }
    }
}

impl EvalOptions {
    /// These options without intervals (no resamples).
    pub(crate) fn without_intervals(&self) -> Self {
        let mut o = self.clone();
        o.bootstrap.n_resamples = 0;
        o
    }
}

impl Run {
    /// The classification report of a checkpoint on a part of the run's split (nothing is
    /// written; [`Self::save_eval`] writes it).
    pub fn evaluate(
        &self,
        opts: &EvalOptions,
        progress: &dyn Progress,
    ) -> Result<EvalReport, InferError> {
        Ok(self.evaluate_with_predictions(opts, progress)?.0)
    }

    /// [`Self::evaluate`], with each image's prediction (in the split's order).
    pub fn evaluate_with_predictions(
        &self,
        opts: &EvalOptions,
        progress: &dyn Progress,
    ) -> Result<(EvalReport, Vec<SamplePrediction>), InferError> {
        let mut predictor = self.predictor(opts.checkpoint, opts.run)?;
        if opts.fold_bn {
            predictor = predictor.with_folded_batchnorm()?;
        }
        let info = predictor.info().cloned().ok_or(InferError::NotARun {
            dir: self.dir().to_path_buf(),
            reason: "its checkpoint has no sidecar",
        })?;
        let split = self.split()?;
        let root = opts.data.clone().unwrap_or_else(|| info.data_root.clone());
        if !root.is_dir() {
            return Err(InferError::DataRootMissing(root));
        }
        let paths = opts.part.paths(&split);
        if paths.is_empty() {
            return Err(InferError::EmptyPart(opts.part.name()));
        }
        // the run's own choice about links out of the data root
        let follow = self.follows_links();
        let samples = split.samples_with(&paths, &root, follow)?;
        let batch = crate::checkpoint::capped_batch(opts.batch_size, info.image_size);
        let mut lc = LoaderConfig::new(batch, info.classes.len());
        lc.pixels = PixelType::F32;
        let loader = Loader::new(&root, &samples, predictor.transform().clone(), lc)?;
        let preds = predict_loader(predictor.net(), &loader, opts.run, progress)?;
        let positive = opts
            .positive
            .as_deref()
            .map(|p| crate::metric::operating_point::class_index(&info.classes, p))
            .transpose()?;
        let report =
            Report::from_predictions(&info.classes, &preds.probs, &preds.labels, preds.loss);
        let roc = (info.classes.len() == 2).then(|| {
            let scores: Vec<f64> = preds.probs.iter().map(|p| p[1]).collect();
            let pos: Vec<bool> = preds.labels.iter().map(|&y| y == 1).collect();
            roc_curve(&scores, &pos)
        });
        let reliability = crate::metric::reliability(&preds.probs, &preds.labels, ECE_BINS);
        let per_image: Vec<SamplePrediction> = preds
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
        // the intervals resample the run's patients
        let groups = self.groups_of(&per_image)?;
        let summary = intervals(
            &preds.probs,
            &preds.labels,
            &groups,
            &opts.bootstrap,
            positive,
        );
        Ok((
            EvalReport {
                report,
                split: opts.part.name().to_string(),
                checkpoint: opts.checkpoint,
                tta: opts.run.tta,
                classes: info.classes,
                roc_curve: roc,
                reliability: Some(reliability),
                intervals: summary,
                operating_point: None,
                partial_auc: None,
                subgroups: Vec::new(),
            },
            per_image,
        ))
    }

    /// The patient of each relative path, by the run's `data.group_regex` (each image its own
    /// without one).
    pub fn groups_of_paths(&self, paths: &[String]) -> Result<Vec<String>, InferError> {
        let split = resnext_data::SplitConfig {
            group_regex: self.group_regex(),
            ..resnext_data::SplitConfig::default()
        };
        Ok(split.groups_of(paths)?)
    }

    /// The patient of each prediction.
    pub fn groups_of(&self, preds: &[SamplePrediction]) -> Result<Vec<String>, InferError> {
        let paths: Vec<String> = preds.iter().map(|p| p.path.clone()).collect();
        self.groups_of_paths(&paths)
    }

    /// Temperature scaling: fits T on the validation part's logits (minimum NLL), stores it in
    /// the checkpoint's sidecar (so `predict` and `serve` use it) and returns what it changed.
    /// The caller holds the run's lock.
    pub fn calibrate(
        &self,
        opts: &EvalOptions,
        progress: &dyn Progress,
    ) -> Result<Calibration, InferError> {
        let val = EvalOptions {
            part: SplitPart::Val,
            ..opts.clone()
        };
        let (_, preds) = self.evaluate_with_predictions(&val, progress)?;
        let logits: Vec<Vec<f64>> = preds.iter().map(|p| p.logits.clone()).collect();
        let labels: Vec<usize> = preds.iter().map(|p| p.label).collect();
        let refuse = |reason: String| InferError::InvalidValue {
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
}

/// Every metric of `probs` with its bootstrap interval over `groups` (one per image), binary
/// ones of class `positive` (`None`: the second class); `None` with no resamples, or when the
/// statistics are undefined (one class present), which `tracing` reports.
pub fn intervals(
    probs: &[Vec<f64>],
    labels: &[usize],
    groups: &[String],
    bootstrap: &resnext_stats::BootstrapOptions,
    positive: Option<usize>,
) -> Option<resnext_stats::Summary> {
    if bootstrap.n_resamples == 0 || probs.is_empty() {
        return None;
    }
    let summary = resnext_stats::Groups::new(groups).and_then(|g| {
        let defaults = resnext_stats::SummaryOptions::default();
        let options = resnext_stats::SummaryOptions {
            bootstrap: *bootstrap,
            positive: positive.unwrap_or(defaults.positive),
            ..defaults
        };
        resnext_stats::summary(probs, labels, Some(&g), &options)
    });
    summary
        .inspect_err(|e| tracing::warn!("no confidence intervals: {e}"))
        .ok()
}
