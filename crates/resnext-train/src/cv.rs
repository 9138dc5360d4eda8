//! Cross-validation (`resnext cv`): grouped, stratified K folds (optionally repeated), one
//! complete run directory per fold, each evaluated on its test fold with its best checkpoint, and
//! a summary over the out-of-fold predictions.
//!
//! | file | what |
//! | --- | --- |
//! | `cv.toml` | the settings every fold trains with: the resolved training config (its `data.val` the cross-validation's) and `[cv]` (folds, repeats, initial weights); a rerun with other settings is refused, naming the first difference |
//! | `folds.json` | every image's group and test fold per repeat ([`Folds`]) |
//! | `fold-<i>/` (`repeat-<r>/fold-<i>/` with repeats) | a run directory, plus `predictions.json` and the test `eval.json` |
//! | `oof.csv` | `path,repeat,fold,true,pred,<one probability column per class>` |
//! | `cv.json` | per-fold metrics, their mean and std, and the pooled metrics ([`CvSummary`]) |
//! | `cv.png` | per-fold metrics, the pooled confusion matrix, ROC per fold, the pooled reliability diagram (the CLI draws it) |
//!
//! A fold is done once its test `eval.json` is written (after `predictions.json`); a started
//! fold resumes from its checkpoint; so a killed `cv` continues where it stopped, and folds can
//! run on different machines (`--fold`) and be summarised by a last call.

use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::trainer::{Observer, Trainer};
use resnext_data::folds::{FoldConfig, Folds};
use resnext_data::scan::scan;
use resnext_data::ImageFolder;
use resnext_infer::checkpoint::Checkpoint;
use resnext_infer::metric::{EvalReport, Report};
use resnext_infer::progress::Progress;
use resnext_infer::run::{Run, RunFile, SplitPart};
use resnext_infer::run_eval::{EvalOptions, SamplePrediction};
use resnext_infer::InferError;
use resnext_io::write_atomic;
use resnext_model::weights::WeightsFile;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use resnext_infer::cv_dir::PredictionsFile;
pub use resnext_infer::cv_dir::{CvDir, CvFile};

/// A fold's ROC curve (binary problems): (false positive rate, true positive rate) points.
pub type RocCurve = Option<Vec<(f64, f64)>>;

/// One fold of one repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoldId {
    pub repeat: usize,
    pub fold: usize,
}

/// Where a fold stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoldState {
    New,
    Started,
    Done,
}

/// One fold's test metrics in `cv.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldMetrics {
    pub repeat: usize,
    pub fold: usize,
    pub n: usize,
    #[serde(flatten)]
    pub metrics: Metrics,
}

/// The metrics `cv.json` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Metrics {
    pub accuracy: f64,
    pub macro_precision: f64,
    pub macro_recall: f64,
    pub macro_f1: f64,
    pub roc_auc: Option<f64>,
    pub ece: Option<f64>,
}

impl Metrics {
    pub fn of(r: &Report) -> Self {
        Self {
            accuracy: r.accuracy,
            macro_precision: r.macro_avg.precision,
            macro_recall: r.macro_avg.recall,
            macro_f1: r.macro_avg.f1,
            roc_auc: r.roc_auc,
            ece: r.ece,
        }
    }
}

/// Pooled metrics, with their sample count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pooled {
    pub n: usize,
    #[serde(flatten)]
    pub metrics: Metrics,
    pub confusion_matrix: Vec<Vec<usize>>,
    /// The reliability diagram's 15 bins over all out-of-fold predictions.
    pub reliability: Vec<resnext_infer::metric::ReliabilityBin>,
    /// Every metric of the pooled out-of-fold predictions with its 95% bootstrap interval over
    /// patients (`folds.json`'s groups), and calibration intercept and slope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intervals: Option<resnext_stats::Summary>,
}

/// `cv.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvSummary {
    pub classes: Vec<String>,
    pub folds: Vec<FoldMetrics>,
    pub mean: Metrics,
    /// Sample standard deviation over folds (n − 1).
    pub std: Metrics,
    pub pooled: Pooled,
    /// With `--positive` and `--operating-point`: the threshold to deploy (chosen on every
    /// out-of-fold prediction), and the figures of the cross-fitted one (each fold at the
    /// threshold chosen on the other folds' predictions of its repeat, never on its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_point: Option<resnext_infer::metric::operating_point::AtOperatingPoint>,
    /// With `--positive` and `--pauc-min-tpr`: the partial ROC-AUC of the pooled out-of-fold
    /// predictions above that sensitivity, with its patient interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_auc: Option<resnext_infer::metric::operating_point::PartialAuc>,
    /// With `--metadata` and `--by`: every metric of the pooled out-of-fold predictions per
    /// value of the column, with its patient interval and its size.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subgroups: Vec<resnext_infer::subgroups::Subgroup>,
}

/// How to cross-validate: the folds, the repeats, the validation share of each fold's training
/// part, and the weights every fold starts from.
#[derive(Debug, Clone, PartialEq)]
pub struct CvSettings {
    pub folds: usize,
    pub repeats: usize,
    /// The share of each fold's training part held out for validation (best checkpoint, early
    /// stopping); it becomes the folds' `data.val`.
    pub val: f64,
    pub init_weights: Option<WeightsFile>,
    /// The checkpoint each fold is tested with (`swa` needs `train.swa`).
    pub checkpoint: Checkpoint,
}

impl Default for CvSettings {
    fn default() -> Self {
        Self {
            folds: 3,
            repeats: 1,
            val: 0.125,
            init_weights: None,
            checkpoint: Checkpoint::Best,
        }
    }
}

/// The keys of `cv.toml` that may differ on a rerun: where and how fast the work runs, not what
/// it computes. `data.root` may move (folds run on different machines): `folds.json` already
/// holds the images, and a dataset that differs is refused by it.
const MAY_DIFFER: [&str; 8] = [
    "train.device",
    "train.threads",
    "data.root",
    "data.threads",
    "data.prefetch",
    "data.cache",
    "data.eval_batch_size",
    // the weights' content is `init_weights_fnv64`; their path may differ between machines
    "cv.init_weights",
];

/// A cross-validation directory and what it needs.
#[derive(Debug)]
pub struct CrossValidation {
    cfg: TrainConfig,
    out: PathBuf,
    folder: ImageFolder,
    folds: Folds,
    /// The validation share, the initial weights and the checkpoint each fold is tested with.
    settings: CvSettings,
    bootstrap: resnext_infer::run_eval::BootstrapOptions,
    /// `--positive`: the class of the binary intervals (as `eval --positive`), of the operating
    /// point and of the partial AUC.
    positive: Option<String>,
    /// `--operating-point`.
    operating: Option<resnext_stats::Criterion>,
    /// `--pauc-min-tpr`.
    pauc: Option<f64>,
    /// `--by` and each image's value of that column (`--metadata`).
    subgroups: Option<(String, std::collections::HashMap<String, String>)>,
}

impl CrossValidation {
    /// An operating point for class `positive` by `criterion` (`sensitivity=0.95`, …), chosen on
    /// out-of-fold predictions and reported cross-fitted in the summary.
    /// Both are checked now, before any fold trains; `positive` is [`Self::with_positive`]'s.
    pub fn with_operating_point(
        self,
        positive: String,
        criterion: resnext_stats::Criterion,
    ) -> Result<Self, TrainError> {
        Ok(Self {
            operating: Some(criterion),
            ..self.with_positive(positive)?
        })
    }

    /// The partial ROC-AUC of class `positive` above sensitivity `min_tpr` (in [0, 1)) over the
    /// pooled out-of-fold predictions. Both are checked now, before any fold trains; `positive`
    /// is [`Self::with_positive`]'s.
    pub fn with_partial_auc(self, positive: String, min_tpr: f64) -> Result<Self, TrainError> {
        let cv = self.with_positive(positive)?;
        if !(0.0..1.0).contains(&min_tpr) {
            return Err(TrainError::InvalidValue {
                key: "--pauc-min-tpr",
                reason: format!("{min_tpr} must be in [0, 1)"),
            });
        }
        Ok(Self {
            pauc: Some(min_tpr),
            ..cv
        })
    }

    /// The positive class (by name) of the folds' and the pooled binary intervals, as
    /// `eval --positive` names it; checked now, before any fold trains.
    pub fn with_positive(mut self, positive: String) -> Result<Self, TrainError> {
        resnext_infer::metric::operating_point::class_index(&self.folds.classes, &positive)?;
        self.positive = Some(positive);
        Ok(self)
    }

    /// Every metric of the pooled out-of-fold predictions per value of `column`, each image's
    /// value in `metadata` (`resnext_infer::subgroups::read_metadata`).
    pub fn with_subgroups(
        mut self,
        column: String,
        metadata: std::collections::HashMap<String, String>,
    ) -> Self {
        self.subgroups = Some((column, metadata));
        self
    }

    /// Each fold's images decided at the threshold chosen on the other folds' predictions of
    /// their repeat; the point to deploy chosen on all of them. `(p, positive)` is the positive
    /// class's index and name.
    fn cross_fitted(
        &self,
        (p, positive): (usize, &str),
        criterion: resnext_stats::Criterion,
        probs: &[Vec<f64>],
        labels: &[usize],
        groups: &[String],
        folds: &[FoldId],
    ) -> Result<resnext_infer::metric::operating_point::AtOperatingPoint, TrainError> {
        use resnext_infer::metric::operating_point::{choose, report_decisions};
        let mut decided = vec![false; probs.len()];
        for id in self.ids() {
            let (fp, fl): (Vec<Vec<f64>>, Vec<usize>) = (0..probs.len())
                .filter(|&i| folds[i].repeat == id.repeat && folds[i].fold != id.fold)
                .map(|i| (probs[i].clone(), labels[i]))
                .unzip();
            let point = choose(&fp, &fl, p, positive, criterion, "other folds")?;
            for i in (0..probs.len()).filter(|&i| folds[i] == id) {
                decided[i] = probs[i][p] >= point.threshold;
            }
        }
        let deploy = choose(probs, labels, p, positive, criterion, "out-of-fold")?;
        Ok(report_decisions(
            &deploy,
            &decided,
            labels,
            groups,
            "out-of-fold, cross-fitted",
            &self.bootstrap,
        )?)
    }

    /// The confidence intervals of each fold's test report and of the pooled summary (2000
    /// resamples of patients, seed 0, unless set).
    pub fn with_bootstrap(mut self, bootstrap: resnext_infer::run_eval::BootstrapOptions) -> Self {
        self.bootstrap = bootstrap;
        self
    }

    /// Scans the data, assigns the folds, checks that every fold's split can be made, and writes
    /// `cv.toml` and `folds.json`; or, for a directory that has them, checks that these settings
    /// are the recorded ones (a resumed `cv` must not mix settings or assignments). Nothing is
    /// written when a check fails.
    pub fn prepare(
        mut cfg: TrainConfig,
        out: &Path,
        settings: &CvSettings,
    ) -> Result<Self, TrainError> {
        let (k, repeats, val) = (settings.folds, settings.repeats, settings.val);
        // a run directory is not a cross-validation's: each fold is a run of its own
        if let Some(f) = RunFile::ALL.iter().find(|f| out.join(f.name()).exists()) {
            return Err(TrainError::InvalidValue {
                key: "--out",
                reason: format!(
                    "{} is a run directory (it holds {}); choose another directory for the cross-validation",
                    out.display(),
                    f.name()
                ),
            });
        }
        // each fold's config.toml records the validation share it really used
        cfg.data.val = val;
        match settings.checkpoint {
            Checkpoint::Best | Checkpoint::Last => {}
            Checkpoint::Swa if cfg.train.swa.is_some() => {}
            Checkpoint::Swa => {
                return Err(TrainError::InvalidValue {
                    key: "--checkpoint",
                    reason: "swa needs train.swa = { start_epoch, lr } in the config".into(),
                })
            }
            Checkpoint::Average => {
                return Err(TrainError::InvalidValue {
                    key: "--checkpoint",
                    reason: "a fold has no `average` checkpoint (that is `resnext average`'s); use best, last or swa".into(),
                })
            }
        }
        let folder = scan(&cfg.data.root)?;
        if resnext_data::safe_path::is_inside(out, &cfg.data.root) {
            return Err(TrainError::RunInsideData {
                run: out.to_path_buf(),
                root: cfg.data.root.clone(),
            });
        }
        let split = cfg.data.split_config();
        let fc = FoldConfig {
            k,
            repeats,
            seed: split.seed,
            group_regex: split.group_regex,
            val,
        };
        let folds = fc.assign(&folder)?;
        // every fold's train/val split, before anything is written (`--val 0.999` fails here)
        for repeat in 0..repeats {
            for fold in 0..k {
                let split = folds.split(&folder, repeat, fold, val)?;
                check_fold_classes(&split, &fold_name(repeats, FoldId { repeat, fold }))?;
            }
        }
        let path = out.join(CvFile::Folds.name());
        if path.exists() && Folds::load(&path)? != folds {
            return Err(TrainError::InvalidValue {
                key: "cv",
                reason: format!(
                    "{} holds folds made with other settings or data (folds, repeats, seed, group_regex or images differ); use another --out",
                    path.display()
                ),
            });
        }
        let recorded = settings_toml(&cfg, settings)?;
        let settings_path = out.join(CvFile::Settings.name());
        if settings_path.exists() {
            let bytes = resnext_data::safe_path::read_regular(&settings_path)?;
            let text = normalised(&String::from_utf8_lossy(&bytes), &settings_path);
            if let Some(diff) = first_difference(&text, &recorded) {
                return Err(TrainError::InvalidValue {
                    key: "cv",
                    reason: format!(
                        "{} was started with {diff}; the folds of one cross-validation share their settings, so use another --out (or delete {} to start over)",
                        settings_path.display(),
                        out.display()
                    ),
                });
            }
        }
        std::fs::create_dir_all(out).map_err(|e| resnext_data::DataError::io(out, e))?;
        if !path.exists() {
            folds.save(&path)?;
        }
        if !settings_path.exists() {
            write_atomic(&settings_path, recorded.as_bytes())?;
        }
        Ok(Self {
            cfg,
            out: out.to_path_buf(),
            folder,
            folds,
            settings: settings.clone(),
            bootstrap: Default::default(),
            positive: None,
            operating: None,
            pauc: None,
            subgroups: None,
        })
    }

    pub fn folds(&self) -> &Folds {
        &self.folds
    }

    pub fn out(&self) -> &Path {
        &self.out
    }

    pub fn path(&self, file: CvFile) -> PathBuf {
        self.out.join(file.name())
    }

    /// Every fold, repeat by repeat.
    pub fn ids(&self) -> Vec<FoldId> {
        (0..self.folds.repeats)
            .flat_map(|repeat| (0..self.folds.k).map(move |fold| FoldId { repeat, fold }))
            .collect()
    }

    /// `fold-<i>`, or `repeat-<r>/fold-<i>` with repeats.
    pub fn name(&self, id: FoldId) -> String {
        fold_name(self.folds.repeats, id)
    }

    pub fn dir(&self, id: FoldId) -> PathBuf {
        self.out.join(self.name(id))
    }

    pub fn state(&self, id: FoldId) -> FoldState {
        let run = Run::at(self.dir(id));
        let tested = run
            .eval_report()
            .ok()
            .flatten()
            .is_some_and(|e| e.split == SplitPart::Test.name());
        if tested && run.path(RunFile::Predictions).is_file() {
            FoldState::Done
        } else if run.holds_run() {
            FoldState::Started
        } else {
            FoldState::New
        }
    }

    /// Trains (or resumes) one fold, then evaluates its checkpoint (`best` unless
    /// [`CvSettings::checkpoint`] says otherwise) on its test fold and
    /// writes `predictions.json` and `eval.json`. A done fold is left as it is.
    pub fn run_fold(
        &self,
        id: FoldId,
        obs: &mut dyn Observer,
        progress: &dyn Progress,
    ) -> Result<EvalReport, TrainError> {
        let dir = self.dir(id);
        let mut trainer = match self.state(id) {
            FoldState::Done => return Ok(eval_report(&Run::at(&dir))?),
            FoldState::Started => Trainer::resume(&dir, None, None)?,
            FoldState::New => {
                // `Trainer::with_split` creates the fold's directory (and `repeat-<r>/`)
                let s = &self.settings;
                let split = self.folds.split(&self.folder, id.repeat, id.fold, s.val)?;
                Trainer::with_split(self.cfg.clone(), &dir, split, s.init_weights.as_ref())?.0
            }
        };
        trainer.fit(obs)?;
        let opts = EvalOptions {
            part: SplitPart::Test,
            checkpoint: self.settings.checkpoint,
            bootstrap: self.bootstrap,
            positive: self.positive.clone(),
            ..trainer.eval_options()
        };
        let run = trainer.run().clone();
        let _lock = trainer.into_lock();
        let (report, preds) = run.evaluate_with_predictions(&opts, progress)?;
        let json = serde_json::to_vec_pretty(&PredictionsFile::from(&preds[..])).map_err(|e| {
            InferError::Read {
                path: run.path(RunFile::Predictions),
                reason: e.to_string(),
            }
        })?;
        write_atomic(&run.path(RunFile::Predictions), &json)?;
        run.save_eval(&report)?;
        Ok(report)
    }

    /// Whether every fold is done.
    pub fn complete(&self) -> bool {
        self.ids()
            .into_iter()
            .all(|id| self.state(id) == FoldState::Done)
    }

    /// Reads every fold's test predictions and writes `oof.csv` and `cv.json`.
    pub fn summarise(&self) -> Result<(CvSummary, Vec<RocCurve>), TrainError> {
        use resnext_infer::metric::operating_point as op;
        let classes = &self.folds.classes;
        let group_of = self.folds.group_of();
        let (mut fold_metrics, mut curves) = (Vec::new(), Vec::new());
        // every out-of-fold prediction, fold by fold, with its fold and its patient
        let (mut preds, mut ids, mut groups) = (Vec::new(), Vec::new(), Vec::new());
        for id in self.ids() {
            if self.state(id) != FoldState::Done {
                return Err(InferError::NotARun {
                    dir: self.dir(id),
                    reason: "this fold is not finished; run `resnext cv` again (or with --fold) to finish it",
                }
                .into());
            }
            let run = Run::at(self.dir(id));
            let report = eval_report(&run)?;
            let file = PredictionsFile::read(&run.path(RunFile::Predictions), classes.len())?;
            fold_metrics.push(FoldMetrics {
                repeat: id.repeat,
                fold: id.fold,
                n: report.report.samples,
                metrics: Metrics::of(&report.report),
            });
            curves.push(report.roc_curve);
            for p in file.images {
                ids.push(id);
                let path = p.path.as_str();
                groups.push(group_of.get(path).copied().unwrap_or(path).to_string());
                preds.push(SamplePrediction {
                    path: p.path,
                    label: p.label,
                    probs: p.probs,
                    logits: Vec::new(),
                });
            }
        }
        let probs: Vec<Vec<f64>> = preds.iter().map(|p| p.probs.clone()).collect();
        let labels: Vec<usize> = preds.iter().map(|p| p.label).collect();
        let pooled_report = Report::from_predictions(classes, &probs, &labels, 0.0);
        // the class the user named (binary intervals, operating point, partial AUC)
        let positive = match &self.positive {
            Some(name) => Some((op::class_index(classes, name)?, name.as_str())),
            None => None,
        };
        let operating_point = match (positive, self.operating) {
            (Some(p), Some(c)) => Some(self.cross_fitted(p, c, &probs, &labels, &groups, &ids)?),
            _ => None,
        };
        let partial_auc = match (positive, self.pauc) {
            (Some((p, name)), Some(min_tpr)) => Some(op::partial_auc(
                &probs,
                &labels,
                &groups,
                p,
                name,
                min_tpr,
                &self.bootstrap,
            )?),
            _ => None,
        };
        let positive = positive.map(|(p, _)| p);
        let subgroups = match &self.subgroups {
            Some((column, metadata)) => resnext_infer::subgroups::subgroups(
                column,
                metadata,
                &preds,
                &groups,
                &self.bootstrap,
                positive,
            ),
            None => Vec::new(),
        };
        let summary = CvSummary {
            operating_point,
            partial_auc,
            subgroups,
            classes: classes.clone(),
            mean: aggregate(&fold_metrics, false),
            std: aggregate(&fold_metrics, true),
            folds: fold_metrics,
            pooled: Pooled {
                n: labels.len(),
                metrics: Metrics::of(&pooled_report),
                confusion_matrix: pooled_report.confusion_matrix.clone(),
                reliability: resnext_infer::metric::reliability(
                    &probs,
                    &labels,
                    resnext_infer::metric::ECE_BINS,
                ),
                intervals: resnext_infer::run_eval::intervals(
                    &probs,
                    &labels,
                    &groups,
                    &self.bootstrap,
                    positive,
                ),
            },
        };
        let oof = oof_csv(classes, &preds, &ids);
        write_atomic(&self.path(CvFile::Oof), oof.as_bytes())?;
        let json = serde_json::to_string_pretty(&summary).map_err(|e| InferError::Read {
            path: self.path(CvFile::Summary),
            reason: e.to_string(),
        })?;
        write_atomic(&self.path(CvFile::Summary), json.as_bytes())?;
        Ok((summary, curves))
    }
}

/// A done fold's test report (its `eval.json`).
fn eval_report(run: &Run) -> Result<EvalReport, InferError> {
    run.eval_report()?.ok_or(InferError::NotARun {
        dir: run.dir().to_path_buf(),
        reason: "its eval.json went missing",
    })
}

/// `oof.csv`: the out-of-fold predictions `preds` (of folds `ids`), by repeat, then path.
fn oof_csv(classes: &[String], preds: &[SamplePrediction], ids: &[FoldId]) -> String {
    let mut csv = String::from("path,repeat,fold,true,pred");
    for c in classes {
        csv += &format!(",{}", csv_field(c));
    }
    csv.push('\n');
    let mut order: Vec<usize> = (0..preds.len()).collect();
    order.sort_by_key(|&i| (ids[i].repeat, &preds[i].path));
    for i in order {
        let (p, id) = (&preds[i], ids[i]);
        csv += &format!(
            "{},{},{},{},{}",
            csv_field(&p.path),
            id.repeat,
            id.fold,
            csv_field(&classes[p.label]),
            csv_field(&classes[resnext_infer::metric::argmax(&p.probs)])
        );
        for v in &p.probs {
            csv += &format!(",{v}");
        }
        csv.push('\n');
    }
    csv
}

fn fold_name(repeats: usize, id: FoldId) -> String {
    resnext_infer::cv_dir::fold_name(repeats, id.repeat, id.fold)
}

/// Refuses a fold whose test part holds a class its training part has no image of (its
/// validation split took them all): the fold's metrics would be on a class the model never saw.
fn check_fold_classes(split: &resnext_data::Split, name: &str) -> Result<(), TrainError> {
    let class_of = |p: &String| p.split('/').next().unwrap_or("").to_string();
    let trained: std::collections::BTreeSet<String> = split.train.iter().map(class_of).collect();
    match split.test.iter().map(class_of).find(|c| !trained.contains(c)) {
        Some(class) => Err(TrainError::InvalidValue {
            key: "cv",
            reason: format!(
                "{name} would test class `{class}` without training on it (its validation part takes every group of `{class}` left); use a smaller --val or more groups of `{class}`"
            ),
        }),
        None => Ok(()),
    }
}

/// A recorded `cv.toml` as this version writes it: its training config read as a run's (keys of
/// other optimisers, which an earlier version listed, dropped; new keys at their defaults), then
/// `[cv]`. A file that does not read is compared as it is.
fn normalised(text: &str, path: &Path) -> String {
    let Ok(mut table) = text.parse::<toml::Table>() else {
        return text.to_string();
    };
    let cv = table.remove("cv");
    let Ok(train) = toml::to_string(&table) else {
        return text.to_string();
    };
    let Ok(cfg) = TrainConfig::from_run_toml(&train, path).and_then(|c| c.to_toml()) else {
        return text.to_string();
    };
    let rest: toml::Table = cv.map(|cv| ("cv".to_string(), cv)).into_iter().collect();
    format!("{cfg}\n{}", toml::to_string(&rest).unwrap_or_default())
}

/// The FNV-1a 64-bit hash of a file's bytes, in hex.
fn fnv64_file(path: &Path) -> Result<String, TrainError> {
    use std::io::Read;
    let io = |e| resnext_data::DataError::io(path, e);
    resnext_data::safe_path::check_regular(path)?;
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = crate::fnv::Fnv1a::default();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.feed(&buf[..n]);
    }
    Ok(format!("{:016x}", h.finish()))
}

/// `cv.toml`: the resolved training config, then `[cv]`.
fn settings_toml(cfg: &TrainConfig, s: &CvSettings) -> Result<String, TrainError> {
    let mut cv = toml::Table::new();
    cv.insert("folds".into(), (s.folds as i64).into());
    cv.insert("repeats".into(), (s.repeats as i64).into());
    // written only when not the default, so that cv.toml of earlier versions compares equal
    if s.checkpoint != Checkpoint::Best {
        cv.insert("checkpoint".into(), s.checkpoint.name().into());
    }
    if let Some(w) = &s.init_weights {
        cv.insert(
            "init_weights".into(),
            w.path.to_string_lossy().into_owned().into(),
        );
        if let Some(key) = &w.key {
            cv.insert("init_weights_key".into(), key.clone().into());
        }
        // the file's content, not only its path: other weights under the same name differ
        cv.insert("init_weights_fnv64".into(), fnv64_file(&w.path)?.into());
    }
    let mut table = toml::Table::new();
    table.insert("cv".into(), cv.into());
    let cv = toml::to_string_pretty(&table).map_err(|e| TrainError::InvalidValue {
        key: "cv",
        reason: format!("cannot be written as TOML: {e}"),
    })?;
    Ok(format!("{}\n{cv}", cfg.to_toml()?))
}

/// The first key (in order) whose value differs between the recorded settings and these, as
/// `KEY = RECORDED, this run has KEY = NOW`; `None` when they agree.
fn first_difference(recorded: &str, now: &str) -> Option<String> {
    // every value under its dotted key
    let parse = |text: &str| -> BTreeMap<String, String> {
        let Ok(table) = text.parse::<toml::Table>() else {
            return BTreeMap::new();
        };
        let leaves = crate::tensorboard::writer::toml_leaves(&table).into_iter();
        leaves.map(|(k, v)| (k, v.to_string())).collect()
    };
    let (a, b) = (parse(recorded), parse(now));
    if a.is_empty() {
        return Some("settings that cannot be read".into());
    }
    let keys: std::collections::BTreeSet<String> = a.keys().chain(b.keys()).cloned().collect();
    let show = |v: Option<&String>| v.map_or("(not set)".to_string(), Clone::clone);
    // a section's `name` first: another optimiser or schedule is the difference, not the keys
    // that come and go with it
    let mut keys: Vec<String> = keys.into_iter().collect();
    keys.sort_by_key(|k| !k.ends_with(".name"));
    let k = keys
        .into_iter()
        .filter(|k| !MAY_DIFFER.contains(&k.as_str()))
        .find(|k| a.get(k) != b.get(k))?;
    Some(format!(
        "{k} = {}, but this run has {k} = {}",
        show(a.get(&k)),
        show(b.get(&k))
    ))
}

impl CvSummary {
    /// The printed table: one row per fold, then mean ± std and pooled.
    pub fn table(&self, names: &[String]) -> String {
        let fmt = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.4}"));
        let mut s = format!(
            "{:<18} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            "fold", "n", "accuracy", "precision", "recall", "macro F1", "ROC-AUC", "ECE"
        );
        let row = |name: &str, n: String, m: &Metrics| {
            format!(
                "{:<18} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
                name,
                n,
                fmt(Some(m.accuracy)),
                fmt(Some(m.macro_precision)),
                fmt(Some(m.macro_recall)),
                fmt(Some(m.macro_f1)),
                fmt(m.roc_auc),
                fmt(m.ece)
            )
        };
        for (f, name) in self.folds.iter().zip(names) {
            s += &row(name, f.n.to_string(), &f.metrics);
        }
        s += &row("mean", String::new(), &self.mean);
        s += &row("std", String::new(), &self.std);
        s += &row("pooled", self.pooled.n.to_string(), &self.pooled.metrics);
        s
    }
}

/// The mean (or sample std) of each metric over folds; ROC-AUC and ECE over the folds that
/// have them.
fn aggregate(folds: &[FoldMetrics], std: bool) -> Metrics {
    let stat = |values: Vec<f64>| -> Option<f64> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        if !std {
            return Some(mean);
        }
        if values.len() < 2 {
            return Some(0.0);
        }
        Some((values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt())
    };
    let all =
        |f: fn(&Metrics) -> f64| stat(folds.iter().map(|m| f(&m.metrics)).collect()).unwrap_or(0.0);
    Metrics {
        accuracy: all(|m| m.accuracy),
        macro_precision: all(|m| m.macro_precision),
        macro_recall: all(|m| m.macro_recall),
        macro_f1: all(|m| m.macro_f1),
        roc_auc: stat(folds.iter().filter_map(|m| m.metrics.roc_auc).collect()),
        ece: stat(folds.iter().filter_map(|m| m.metrics.ece).collect()),
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_where_needed() {
        assert_eq!(csv_field("Monkey Pox"), "Monkey Pox");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn std_is_the_sample_std_over_folds() {
        let f = |acc: f64| FoldMetrics {
            repeat: 0,
            fold: 0,
            n: 10,
            metrics: Metrics {
                accuracy: acc,
                roc_auc: Some(acc),
                ..Metrics::default()
            },
        };
        let folds = vec![f(0.5), f(0.7), f(0.9)];
        let mean = aggregate(&folds, false);
        let std = aggregate(&folds, true);
        assert!((mean.accuracy - 0.7).abs() < 1e-12);
        assert!((std.accuracy - 0.2).abs() < 1e-12);
        assert_eq!(std.ece, None);
    }
}
