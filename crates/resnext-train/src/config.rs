//! The training config: TOML with sections `[model]`, `[data]`, `[optim]`, `[schedule]`,
//! `[train]`; unknown keys are errors that name them. `--set section.key=value` overrides any key.

use crate::error::TrainError;
use resnext_data::mix::MixConfig;
use resnext_data::{BadImagePolicy, SplitConfig, TransformConfig};
use resnext_model::{Arch, ModelConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Run name: the default run directory is `runs/<name>`.
    #[serde(default = "default_name")]
    pub name: String,
    #[serde(default)]
    pub model: ModelSection,
    #[serde(default)]
    pub data: DataSection,
    #[serde(default)]
    pub optim: OptimSection,
    #[serde(default)]
    pub schedule: ScheduleSection,
    #[serde(default)]
    pub train: TrainSection,
}

fn default_name() -> String {
    "run".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    #[serde(default = "default_arch")]
    pub arch: Arch,
    /// For `arch = "custom"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<[usize; 4]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width_per_group: Option<i64>,
    #[serde(default)]
    pub zero_init_residual: bool,
}

fn default_arch() -> Arch {
    Arch::Resnext50_32x4d
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            arch: default_arch(),
            layers: None,
            groups: None,
            width_per_group: None,
            zero_init_residual: false,
        }
    }
}

impl ModelSection {
    pub fn to_config(&self, num_classes: i64) -> Result<ModelConfig, TrainError> {
        let mut c = if self.arch == Arch::Custom {
            match (self.layers, self.groups, self.width_per_group) {
                (Some(l), Some(g), Some(w)) => ModelConfig::custom(l, g, w, num_classes),
                _ => return Err(TrainError::Invalid("model.arch = \"custom\" needs model.layers, model.groups and model.width_per_group".into())),
            }
        } else {
            if self.layers.is_some() || self.groups.is_some() || self.width_per_group.is_some() {
                return Err(TrainError::Invalid(format!(
                    "model.layers/groups/width_per_group go with arch = \"custom\", not {}",
                    self.arch
                )));
            }
            ModelConfig::from_arch(self.arch, num_classes)?
        };
        c.zero_init_residual = self.zero_init_residual;
        c.validate()?;
        Ok(c)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// ImageFolder root.
    #[serde(default = "default_root")]
    pub root: PathBuf,
    #[serde(default = "default_val")]
    pub val: f64,
    #[serde(default)]
    pub test: f64,
    /// Seed of the split.
    #[serde(default)]
    pub split_seed: u64,
    /// Group key regex on file names, e.g. `^([^_.]+)` for MSLD patients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_regex: Option<String>,
    /// Reuse this split JSON instead of computing one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_file: Option<PathBuf>,
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_batch_size: Option<usize>,
    #[serde(default)]
    pub drop_last: bool,
    /// Decoding threads; 0 chooses so that decoding and libtorch do not oversubscribe the cores.
    #[serde(default)]
    pub threads: usize,
    #[serde(default = "default_prefetch")]
    pub prefetch: usize,
    /// Keep decoded images in memory (small datasets).
    #[serde(default)]
    pub cache: bool,
    #[serde(default)]
    pub on_bad_image: BadImagePolicy,
    #[serde(default = "default_train_transform")]
    pub train_transform: TransformConfig,
    #[serde(default = "default_eval_transform")]
    pub eval_transform: TransformConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mix: Option<MixConfig>,
}

fn default_root() -> PathBuf {
    PathBuf::from("data/msld")
}
fn default_val() -> f64 {
    0.2
}
fn default_batch() -> usize {
    32
}
fn default_prefetch() -> usize {
    2
}
fn default_train_transform() -> TransformConfig {
    TransformConfig::resize_exact(224)
}
fn default_eval_transform() -> TransformConfig {
    TransformConfig::resize_exact(224)
}

impl Default for DataSection {
    fn default() -> Self {
        toml::from_str("").expect("defaults parse")
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Adam,
    AdamW,
    Sgd,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimSection {
    #[serde(default = "default_optimizer")]
    pub name: OptimizerKind,
    #[serde(default = "default_lr")]
    pub lr: f64,
    #[serde(default)]
    pub weight_decay: f64,
    /// Apply weight decay to BatchNorm parameters and biases too.
    #[serde(default)]
    pub decay_norm_and_bias: bool,
    #[serde(default = "default_betas")]
    pub betas: [f64; 2],
    #[serde(default = "default_eps")]
    pub eps: f64,
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    #[serde(default)]
    pub nesterov: bool,
    /// Clip the global gradient norm to this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_grad_norm: Option<f64>,
}

fn default_optimizer() -> OptimizerKind {
    OptimizerKind::Adam
}
fn default_lr() -> f64 {
    1e-4
}
fn default_betas() -> [f64; 2] {
    [0.9, 0.999]
}
fn default_eps() -> f64 {
    1e-8
}
fn default_momentum() -> f64 {
    0.9
}

impl Default for OptimSection {
    fn default() -> Self {
        toml::from_str("").expect("defaults parse")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    Constant,
    Step,
    Cosine,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSection {
    #[serde(default = "default_schedule")]
    pub name: ScheduleKind,
    /// Linear warmup length in epochs (fractions allowed), from `warmup_start_factor`·lr.
    #[serde(default)]
    pub warmup_epochs: f64,
    #[serde(default = "default_warmup_start")]
    pub warmup_start_factor: f64,
    /// Step schedule: multiply by `gamma` every `step_size` epochs.
    #[serde(default = "default_step_size")]
    pub step_size: usize,
    #[serde(default = "default_gamma")]
    pub gamma: f64,
    /// Cosine schedule: the final learning rate.
    #[serde(default)]
    pub min_lr: f64,
}

fn default_schedule() -> ScheduleKind {
    ScheduleKind::Constant
}
fn default_warmup_start() -> f64 {
    0.01
}
fn default_step_size() -> usize {
    30
}
fn default_gamma() -> f64 {
    0.1
}

impl Default for ScheduleSection {
    fn default() -> Self {
        toml::from_str("").expect("defaults parse")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    Bf16,
    Fp16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StopMetric {
    #[default]
    ValAcc,
    ValLoss,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Seed of initialisation, shuffling and augmentation.
    #[serde(default)]
    pub seed: u64,
    /// cpu, cuda, cuda:N or auto.
    #[serde(default = "default_device")]
    pub device: String,
    #[serde(default)]
    pub precision: Precision,
    #[serde(default)]
    pub channels_last: bool,
    /// libtorch intra-op threads; 0 means one per core.
    #[serde(default)]
    pub threads: usize,
    #[serde(default)]
    pub label_smoothing: f64,
    /// Decay of an exponential moving average of the weights (e.g. 0.999); validation and
    /// checkpoints then use the averaged weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema_decay: Option<f64>,
    /// Stop after this many epochs without improvement of `early_stopping_metric`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping_patience: Option<usize>,
    #[serde(default)]
    pub early_stopping_metric: StopMetric,
}

fn default_epochs() -> usize {
    10
}
fn default_device() -> String {
    "cpu".into()
}

impl Default for TrainSection {
    fn default() -> Self {
        toml::from_str("").expect("defaults parse")
    }
}

impl TrainConfig {
    /// Parses TOML text; `origin` names the source in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, TrainError> {
        let value: toml::Table = toml::from_str(text).map_err(|e| TrainError::Config {
            path: origin.into(),
            reason: one_line(&e.to_string()),
        })?;
        Self::from_table(value, origin)
    }

    fn from_table(table: toml::Table, origin: &Path) -> Result<Self, TrainError> {
        let config: TrainConfig =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| TrainError::Config {
                    path: origin.into(),
                    reason: one_line(&e.to_string()),
                })?;
        config.validate().map_err(|e| TrainError::Config {
            path: origin.into(),
            reason: e.to_string(),
        })?;
        Ok(config)
    }

    /// Reads a config file and applies `section.key=value` overrides.
    pub fn load(path: Option<&Path>, sets: &[String]) -> Result<Self, TrainError> {
        let origin = path
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("<defaults>"));
        let mut table: toml::Table = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| TrainError::Read {
                    path: p.into(),
                    reason: e.to_string(),
                })?;
                toml::from_str(&text).map_err(|e| TrainError::Config {
                    path: p.into(),
                    reason: one_line(&e.to_string()),
                })?
            }
            None => toml::Table::new(),
        };
        for s in sets {
            apply_set(&mut table, s)?;
        }
        Self::from_table(table, &origin)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }

    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Invalid(m));
        if self.train.epochs == 0 {
            return bad("train.epochs must be at least 1".into());
        }
        if self.data.batch_size == 0 || self.data.eval_batch_size == Some(0) {
            return bad("data.batch_size must be at least 1".into());
        }
        if !(self.optim.lr.is_finite() && self.optim.lr > 0.0) {
            return bad(format!("optim.lr must be positive, got {}", self.optim.lr));
        }
        if !(self.optim.weight_decay >= 0.0) {
            return bad("optim.weight_decay must be non-negative".into());
        }
        if !(0.0..1.0).contains(&self.optim.betas[0]) || !(0.0..1.0).contains(&self.optim.betas[1])
        {
            return bad(format!(
                "optim.betas {:?} must be in [0, 1)",
                self.optim.betas
            ));
        }
        if !(0.0..=1.0).contains(&self.train.label_smoothing) || self.train.label_smoothing == 1.0 {
            return bad("train.label_smoothing must be in [0, 1)".into());
        }
        if let Some(d) = self.train.ema_decay {
            if !(0.0..1.0).contains(&d) {
                return bad("train.ema_decay must be in [0, 1)".into());
            }
        }
        if let Some(c) = self.optim.clip_grad_norm {
            if !(c > 0.0) {
                return bad("optim.clip_grad_norm must be positive".into());
            }
        }
        if self.schedule.step_size == 0 || !(self.schedule.warmup_epochs >= 0.0) {
            return bad(
                "schedule.step_size must be at least 1 and warmup_epochs non-negative".into(),
            );
        }
        self.model.to_config(2)?;
        self.data.split_config().validate()?;
        self.data.train_transform.validate()?;
        self.data.eval_transform.validate()?;
        if let Some(m) = &self.data.mix {
            m.validate()?;
        }
        Ok(())
    }
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
    let (key, raw) = set.split_once('=').ok_or_else(|| {
        TrainError::Invalid(format!("--set `{set}` must look like section.key=value"))
    })?;
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(TrainError::Invalid(format!(
            "--set `{set}`: empty key part"
        )));
    }
    let value = match toml::from_str::<toml::Table>(&format!("v = {}", raw.trim())) {
        Ok(mut t) => t.remove("v").expect("parsed key"),
        Err(_) => toml::Value::String(raw.trim().to_string()),
    };
    let mut cur = table;
    for p in &parts[..parts.len() - 1] {
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| TrainError::Invalid(format!("--set `{set}`: `{p}` is not a section")))?;
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}
