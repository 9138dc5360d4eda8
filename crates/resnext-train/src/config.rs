//! The training config: TOML with sections `[model]`, `[data]`, `[optim]`, `[schedule]`,
//! `[train]`; unknown keys are errors that name them. `--set section.key=value` overrides any key.

use crate::component::{below_one, check, positive};
use crate::error::TrainError;
use resnext_data::mix::MixConfig;
use resnext_data::{BadImagePolicy, SplitConfig, TransformConfig};
use resnext_infer::device::DeviceChoice;
use resnext_infer::precision::{LayoutChoice, PrecisionChoice};
use resnext_model::{Arch, ModelConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Run name: the default run directory is `runs/<name>`.
    pub name: String,
    pub model: ModelSection,
    pub data: DataSection,
    pub optim: OptimSection,
    pub schedule: ScheduleSection,
    pub train: TrainSection,
    pub loss: LossSection,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            name: "run".into(),
            model: ModelSection::default(),
            data: DataSection::default(),
            optim: OptimSection::default(),
            schedule: ScheduleSection::default(),
            train: TrainSection::default(),
            loss: LossSection::default(),
        }
    }
}

/// The loss's class weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LossSection {
    /// `"none"`, `"balanced"` (n / (classes · count of the class) on the training part), or one
    /// weight per class.
    pub class_weights: ClassWeights,
}

/// How the classes of the loss are weighted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(untagged)]
pub enum ClassWeights {
    #[default]
    #[serde(with = "none_str")]
    None,
    Named(NamedWeights),
    List(Vec<f64>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamedWeights {
    Balanced,
}

/// `ClassWeights::None` as the string `"none"`.
mod none_str {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("none")
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
        let v = String::deserialize(d)?;
        if v == "none" {
            Ok(())
        } else {
            Err(serde::de::Error::custom("not \"none\""))
        }
    }
}

impl ClassWeights {
    /// The weight of each class, from the training part's class counts; `None` for no weights.
    pub fn resolve(&self, counts: &[usize]) -> Result<Option<Vec<f64>>, TrainError> {
        match self {
            ClassWeights::None => Ok(None),
            ClassWeights::Named(NamedWeights::Balanced) => {
                let (n, k) = (counts.iter().sum::<usize>() as f64, counts.len() as f64);
                let weight = |c: usize| if c == 0 { 0.0 } else { n / (k * c as f64) };
                Ok(Some(counts.iter().map(|&c| weight(c)).collect()))
            }
            ClassWeights::List(w) => {
                let reason = format!("has {} weights for {} classes", w.len(), counts.len());
                check(w.len() == counts.len(), "loss.class_weights", &reason)?;
                Ok(Some(w.clone()))
            }
        }
    }
}

/// What `train.freeze` holds still.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Freeze {
    #[default]
    None,
    /// Everything but the classifier head (`fc`), BatchNorm statistics included.
    Backbone,
}

/// Whether BatchNorm layers learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BatchNormMode {
    /// Batch statistics in training, running statistics updated, affine parameters learned.
    #[default]
    Train,
    /// The running statistics (e.g. imported ones) normalise in training too; they and the
    /// affine parameters stay fixed.
    Frozen,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    pub arch: Arch,
    /// For `arch = "custom"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<[usize; 4]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width_per_group: Option<i64>,
    pub zero_init_residual: bool,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            arch: Arch::Resnext50_32x4d,
            layers: None,
            groups: None,
            width_per_group: None,
            zero_init_residual: false,
        }
    }
}

impl ModelSection {
    pub fn to_config(&self, num_classes: i64) -> Result<ModelConfig, TrainError> {
        let custom = self.arch == Arch::Custom;
        let shape = (self.layers, self.groups, self.width_per_group);
        check(
            !custom || matches!(shape, (Some(_), Some(_), Some(_))),
            "model.arch",
            "\"custom\" needs model.layers, model.groups and model.width_per_group",
        )?;
        check(
            custom || shape == (None, None, None),
            "model.arch",
            &format!(
                "model.layers/groups/width_per_group go with arch = \"custom\", not {}",
                self.arch
            ),
        )?;
        let mut c = match shape {
            (Some(l), Some(g), Some(w)) if custom => ModelConfig::custom(l, g, w, num_classes),
            _ => ModelConfig::from_arch(self.arch, num_classes)?,
        };
        c.zero_init_residual = self.zero_init_residual;
        c.validate()?;
        Ok(c)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSection {
    /// ImageFolder root.
    pub root: PathBuf,
    pub val: f64,
    pub test: f64,
    /// Seed of the split.
    pub split_seed: u64,
    /// Group key regex on file names, e.g. `^([^_.]+)` for MSLD patients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_regex: Option<String>,
    /// Reuse this split JSON instead of computing one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split_file: Option<PathBuf>,
    pub batch_size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_batch_size: Option<usize>,
    pub drop_last: bool,
    /// Decoding threads; 0 chooses so that decoding and libtorch do not oversubscribe the cores.
    pub threads: usize,
    pub prefetch: usize,
    /// Keep decoded images in memory (small datasets).
    pub cache: bool,
    /// Let split entries be links that lead outside `root` (a root assembled from links).
    pub follow_links: bool,
    pub on_bad_image: BadImagePolicy,
    pub train_transform: TransformConfig,
    pub eval_transform: TransformConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mix: Option<MixConfig>,
}

impl Default for DataSection {
    fn default() -> Self {
        Self {
            root: PathBuf::from("data/msld"),
            val: 0.2,
            test: 0.0,
            split_seed: 0,
            group_regex: None,
            split_file: None,
            batch_size: 32,
            eval_batch_size: None,
            drop_last: false,
            threads: 0,
            prefetch: 2,
            cache: false,
            follow_links: false,
            on_bad_image: BadImagePolicy::default(),
            train_transform: TransformConfig::resize_exact(224),
            eval_transform: TransformConfig::resize_exact(224),
            mix: None,
        }
    }
}

impl DataSection {
    pub fn split_config(&self) -> SplitConfig {
        SplitConfig {
            val: self.val,
            test: self.test,
            seed: self.split_seed,
            group_regex: self.group_regex.clone(),
        }
    }
}

pub use crate::optim::adam::AdamConfig;
pub use crate::optim::config::{OptimSection, UpdateRule};
pub use crate::optim::sgd::SgdConfig;
pub use crate::schedule::{CosineConfig, ScheduleRule, ScheduleSection, StepConfig};

pub use resnext_infer::precision::Precision;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StopMetric {
    #[default]
    ValAcc,
    ValLoss,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    pub epochs: usize,
    /// Seed of initialisation, shuffling and augmentation.
    pub seed: u64,
    /// cpu, cuda, cuda:N or auto.
    pub device: DeviceChoice,
    /// fp32 (default), bf16, fp16 (CUDA), fp64, or auto: resolved on the run's device each time it
    /// starts or resumes ([`resnext_infer::precision::resolve`]).
    pub precision: PrecisionChoice,
    /// true (channels-last), false (NCHW, default) or auto.
    pub channels_last: LayoutChoice,
    /// libtorch intra-op threads; 0 means one per core.
    pub threads: usize,
    pub label_smoothing: f64,
    /// Decay of an exponential moving average of the weights (e.g. 0.999); validation and
    /// checkpoints then use the averaged weights.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ema_decay: Option<f64>,
    /// Stop after this many epochs without improvement of `early_stopping_metric`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_stopping_patience: Option<usize>,
    pub early_stopping_metric: StopMetric,
    /// `"backbone"`: train the head only (for `freeze_epochs` epochs, or throughout when 0).
    pub freeze: Freeze,
    pub freeze_epochs: usize,
    pub batchnorm: BatchNormMode,
    /// Data-parallel training: BatchNorm normalises with the statistics of all processes'
    /// batches, forward and backward (PyTorch's `SyncBatchNorm`). Off, each process normalises
    /// with its share of the batch, as DDP does.
    pub sync_batchnorm: bool,
    /// The number of processes that trained the run last: a note the trainer writes into the
    /// run's `config.toml` (a run resumes on any number). Absent means one.
    #[serde(skip_serializing_if = "is_one")]
    pub ranks: usize,
    /// Gradient accumulation: the optimiser steps once every this many batches, on the
    /// gradients of one batch of `accumulate`·`data.batch_size` (BatchNorm still normalises
    /// each batch with its own statistics). 1 (default) steps every batch.
    #[serde(skip_serializing_if = "is_one")]
    pub accumulate: usize,
    /// Writes TensorBoard event files into the run's `tb/` folder (per step, per epoch, the
    /// hyper-parameters and images; [`crate::tensorboard`]). Off by default.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tensorboard: bool,
    /// Stochastic weight averaging from `start_epoch` at learning rate `lr` (the `swa`
    /// checkpoint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swa: Option<crate::swa::SwaConfig>,
    /// Keep the weights of the last this many epochs as `epoch-NNN.safetensors` (for
    /// `resnext average`); 0 (default) keeps none.
    #[serde(skip_serializing_if = "is_zero")]
    pub keep_checkpoints: usize,
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            epochs: 10,
            seed: 0,
            device: DeviceChoice::default(),
            precision: PrecisionChoice::default(),
            channels_last: LayoutChoice::default(),
            threads: 0,
            label_smoothing: 0.0,
            ema_decay: None,
            early_stopping_patience: None,
            early_stopping_metric: StopMetric::default(),
            freeze: Freeze::default(),
            freeze_epochs: 0,
            batchnorm: BatchNormMode::default(),
            sync_batchnorm: false,
            ranks: 1,
            accumulate: 1,
            tensorboard: false,
            swa: None,
            keep_checkpoints: 0,
        }
    }
}

/// Typed overrides from command-line flags, applied after the file and `--set` and before
/// validation; an invalid one is blamed on its flag.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--data`: `data.root`.
    pub data_root: Option<PathBuf>,
    /// `--epochs`: `train.epochs`.
    pub epochs: Option<usize>,
    /// `--batch-size`: `data.batch_size`.
    pub batch_size: Option<usize>,
    /// `--device`: `train.device`.
    pub device: Option<DeviceChoice>,
    /// `--precision`: `train.precision`.
    pub precision: Option<PrecisionChoice>,
    /// `--channels-last`: `train.channels_last`.
    pub channels_last: Option<LayoutChoice>,
    /// `--accumulate`: `train.accumulate`.
    pub accumulate: Option<usize>,
}

impl Overrides {
    fn apply(&self, c: &mut TrainConfig) {
        if let Some(d) = &self.data_root {
            c.data.root.clone_from(d);
        }
        c.train.epochs = self.epochs.unwrap_or(c.train.epochs);
        c.data.batch_size = self.batch_size.unwrap_or(c.data.batch_size);
        c.train.device = self.device.unwrap_or(c.train.device);
        c.train.precision = self.precision.unwrap_or(c.train.precision);
        c.train.channels_last = self.channels_last.unwrap_or(c.train.channels_last);
        c.train.accumulate = self.accumulate.unwrap_or(c.train.accumulate);
    }

    /// The flag that set `key`, if one did.
    fn flag_for(&self, key: &str) -> Option<String> {
        match key {
            "train.epochs" => self.epochs.map(|e| format!("--epochs {e}")),
            "data.batch_size" => self.batch_size.map(|b| format!("--batch-size {b}")),
            "train.accumulate" => self.accumulate.map(|n| format!("--accumulate {n}")),
            _ => None,
        }
    }
}

/// The most threads a config may ask for (libtorch or decoding): more only oversubscribes the
/// machine, and tens of thousands exhaust it.
pub const MAX_THREADS: usize = 256;

impl TrainConfig {
    /// Parses TOML text; `origin` names the source in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, TrainError> {
        let table = parse_table(text, origin)?;
        Self::from_table(table, origin, &[], &Overrides::default())
    }

    /// Deserialises, applies the flags' overrides and validates; an error is blamed on the flag
    /// or `--set` that caused it when one did, else on `origin`.
    fn from_table(
        table: toml::Table,
        origin: &Path,
        sets: &[String],
        overrides: &Overrides,
    ) -> Result<Self, TrainError> {
        let in_file = |reason: String| TrainError::Config {
            path: origin.into(),
            reason,
        };
        let mut config = typed(table).map_err(in_file)?;
        overrides.apply(&mut config);
        config.validate().map_err(|e| match e {
            TrainError::InvalidValue { key, reason } => {
                if let Some(flag) = overrides.flag_for(key) {
                    return TrainError::BadFlag { flag, reason };
                }
                match sets.iter().rev().find(|s| set_key(s) == key) {
                    Some(set) => TrainError::BadOverride {
                        set: set.clone(),
                        reason: format!("{key}: {reason}"),
                    },
                    None => in_file(format!("{key}: {reason}")),
                }
            }
            other => other,
        })?;
        Ok(config)
    }

    /// Reads a config file, applies `section.key=value` overrides and then the flags'.
    pub fn load_with(
        path: Option<&Path>,
        sets: &[String],
        overrides: &Overrides,
    ) -> Result<Self, TrainError> {
        let origin = path
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("<defaults>"));
        let mut table: toml::Table = match path {
            Some(p) => {
                resnext_data::safe_path::check_regular(p)?;
                let text = std::fs::read_to_string(p).map_err(|source| TrainError::ReadIo {
                    path: p.into(),
                    source,
                })?;
                parse_table(&text, p)?
            }
            None => toml::Table::new(),
        };
        if !sets.is_empty() {
            // The file alone must deserialise, so that a type error in an override is blamed
            // on the override.
            typed(table.clone()).map_err(|reason| TrainError::Config {
                path: origin.clone(),
                reason,
            })?;
        }
        for set in sets {
            apply_set(&mut table, set)?;
            typed(table.clone()).map_err(|reason| TrainError::BadOverride {
                set: set.clone(),
                reason,
            })?;
        }
        Self::from_table(table, &origin, sets, overrides)
    }

    /// The resolved config a run directory was trained with (`config.toml`).
    pub fn of_run(run: &resnext_infer::run::Run) -> Result<Self, TrainError> {
        let path = run.path(resnext_infer::run::RunFile::Config);
        Self::from_run_toml(&run.read_text(resnext_infer::run::RunFile::Config)?, &path)
    }

    /// A run's `config.toml`: as [`Self::from_toml`], except that keys of optimisers and
    /// schedules other than the run's are dropped, as runs written before each component owned
    /// its keys list them all (at values that had no effect).
    pub fn from_run_toml(text: &str, origin: &Path) -> Result<Self, TrainError> {
        let mut table = parse_table(text, origin)?;
        for c in [&crate::optim::config::RULES, &crate::schedule::SCHEDULES] {
            if let Some(toml::Value::Table(t)) = table.get_mut(c.section) {
                c.drop_foreign_keys(t);
            }
        }
        Self::from_table(table, origin, &[], &Overrides::default())
    }

    /// The config as TOML; fails only for a value TOML cannot hold, which `validate` refuses.
    pub fn to_toml(&self) -> Result<String, TrainError> {
        toml::to_string_pretty(self).map_err(|e| TrainError::InvalidValue {
            key: "config",
            reason: format!("cannot be written as TOML: {e}"),
        })
    }

    /// Checks every value against its domain; the error names the `section.key`.
    pub fn validate(&self) -> Result<(), TrainError> {
        let (d, o, s, t) = (&self.data, &self.optim, &self.schedule, &self.train);
        // paths are written to config.toml and the sidecars, which hold UTF-8 text
        let utf8 = |p: &Path, key| check(p.to_str().is_some(), key, "must be valid UTF-8");
        utf8(&d.root, "data.root")?;
        if let Some(f) = &d.split_file {
            utf8(f, "data.split_file")?;
        }
        check(t.epochs >= 1, "train.epochs", "must be at least 1")?;
        check(t.ranks >= 1, "train.ranks", "must be at least 1")?;
        if let Some(swa) = &t.swa {
            swa.validate(t.epochs)?;
        }
        at_most(t.keep_checkpoints, 10_000, "train.keep_checkpoints")?;
        check(
            (1..=65536).contains(&t.accumulate),
            "train.accumulate",
            &format!("must be between 1 and 65536, got {}", t.accumulate),
        )?;
        at_most(t.epochs, 1_000_000, "train.epochs")?;
        let batch =
            |b: usize, key| check((1..=65536).contains(&b), key, "must be between 1 and 65536");
        batch(d.batch_size, "data.batch_size")?;
        if let Some(b) = d.eval_batch_size {
            batch(b, "data.eval_batch_size")?;
        }
        let threads = format!("must be at most {MAX_THREADS} (0 chooses from the cores)");
        check(d.threads <= MAX_THREADS, "data.threads", &threads)?;
        check(t.threads <= MAX_THREADS, "train.threads", &threads)?;
        at_most(d.prefetch, 64, "data.prefetch")?;
        positive(o.lr, "optim.lr")?;
        non_negative(o.weight_decay, "optim.weight_decay")?;
        o.rule.validate()?;
        if let Some(c) = o.clip_grad_norm {
            positive(c, "optim.clip_grad_norm")?;
        }
        s.validate(o.lr)?;
        below_one(t.label_smoothing, "train.label_smoothing")?;
        if let Some(e) = t.ema_decay {
            below_one(e, "train.ema_decay")?;
        }
        positive(o.head_lr_mult, "optim.head_lr_mult")?;
        check(
            t.freeze_epochs == 0 || t.freeze == Freeze::Backbone,
            "train.freeze_epochs",
            "goes with freeze = \"backbone\"",
        )?;
        if let ClassWeights::List(w) = &self.loss.class_weights {
            check(
                !w.is_empty()
                    && w.iter().all(|v| v.is_finite() && *v >= 0.0)
                    && w.iter().any(|v| *v > 0.0),
                "loss.class_weights",
                "must be \"none\", \"balanced\" or a list of finite weights ≥ 0, not all 0",
            )?;
        }
        check(
            t.early_stopping_patience.is_none_or(|p| p >= 1),
            "train.early_stopping_patience",
            "must be at least 1 (leave it out to never stop early)",
        )?;
        self.model.to_config(2)?;
        self.data.split_config().validate()?;
        for (t, key) in [
            (&self.data.train_transform, "data.train_transform"),
            (&self.data.eval_transform, "data.eval_transform"),
        ] {
            let size = t.validate()?;
            let side = resnext_infer::checkpoint::INPUT_SIDE;
            let (lo, hi) = (side.start(), side.end());
            check(
                size.iter().all(|s| side.contains(s)),
                key,
                &format!("makes {size:?}; a network input is {lo} to {hi} pixels a side"),
            )?;
        }
        if let Some(m) = &self.data.mix {
            m.validate()?;
        }
        Ok(())
    }
}

/// Finite and >= 0.
fn non_negative(v: f64, key: &'static str) -> Result<(), TrainError> {
    check(
        v.is_finite() && v >= 0.0,
        key,
        &format!("must be a finite number >= 0, got {v}"),
    )
}

/// At most `max`.
fn at_most(v: usize, max: usize, key: &'static str) -> Result<(), TrainError> {
    check(v <= max, key, &format!("must be at most {max}"))
}

/// The `section.key` an override sets (array indices dropped).
fn set_key(set: &str) -> String {
    set.split_once('=')
        .map_or(set, |(k, _)| k)
        .trim()
        .to_string()
}

/// Parses TOML text; `origin` names the source in errors.
fn parse_table(text: &str, origin: &Path) -> Result<toml::Table, TrainError> {
    toml::from_str(text).map_err(|e| TrainError::Config {
        path: origin.into(),
        reason: one_line(&e.to_string()),
    })
}

/// Deserialises a config table (not yet validated); the error is one line.
fn typed(table: toml::Table) -> Result<TrainConfig, String> {
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| one_line(&e.to_string()))
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with('|') && !l.chars().all(|c| c == '^' || c == ' ')
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Applies `a.b.c=value` to a TOML table; the value is read as TOML (number, bool, array,
/// quoted string) or else taken as a bare string.
pub fn apply_set(table: &mut toml::Table, set: &str) -> Result<(), TrainError> {
    let bad = |reason: String| TrainError::BadOverride {
        set: set.to_string(),
        reason,
    };
    let (key, raw) = set
        .split_once('=')
        .ok_or_else(|| bad("must look like section.key=value".into()))?;
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad("empty key part".into()));
    }
    let raw = raw.trim();
    let parsed = toml::from_str::<toml::Table>(&format!("v = {raw}")).ok();
    let value = parsed.and_then(|mut t| t.remove("v"));
    let value = value.unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let mut cur = table;
    for p in &parts[..parts.len() - 1] {
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| bad(format!("`{p}` is not a section")))?;
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}
