//! `[optim]`: the update rule `name` chooses, with its own settings ([`AdamConfig`] for `adam`
//! and `adamw`, [`SgdConfig`] for `sgd`), and the settings every rule shares. The TOML is flat,
//! as users write it; a key of another rule is an error naming that rule.

use super::adam::AdamConfig;
use super::sgd::SgdConfig;
use crate::component::{join, parse, split};
use crate::error::TrainError;
use serde::{Deserialize, Serialize};

/// The update rule and its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateRule {
    Adam(AdamConfig),
    /// Adam with decoupled weight decay.
    AdamW(AdamConfig),
    Sgd(SgdConfig),
}

impl UpdateRule {
    pub fn name(&self) -> &'static str {
        match self {
            UpdateRule::Adam(_) => "adam",
            UpdateRule::AdamW(_) => "adamw",
            UpdateRule::Sgd(_) => "sgd",
        }
    }

    pub fn validate(&self) -> Result<(), TrainError> {
        match self {
            UpdateRule::Adam(c) | UpdateRule::AdamW(c) => c.validate(),
            UpdateRule::Sgd(c) => c.validate(),
        }
    }
}

impl Default for UpdateRule {
    fn default() -> Self {
        UpdateRule::Adam(AdamConfig::default())
    }
}

/// `[optim]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "toml::Table", into = "toml::Table")]
pub struct OptimSection {
    /// `name`, with the rule's own keys.
    pub rule: UpdateRule,
    pub lr: f64,
    pub weight_decay: f64,
    /// Apply weight decay to BatchNorm parameters and biases too.
    pub decay_norm_and_bias: bool,
    /// Clip the global gradient norm to this value.
    pub clip_grad_norm: Option<f64>,
    /// The classifier head's learning rate is `lr × head_lr_mult`.
    pub head_lr_mult: f64,
}

impl Default for OptimSection {
    fn default() -> Self {
        Shared::default().with(UpdateRule::default())
    }
}

/// The keys every update rule takes, as they are parsed and written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Shared {
    lr: f64,
    weight_decay: f64,
    decay_norm_and_bias: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    clip_grad_norm: Option<f64>,
    head_lr_mult: f64,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            lr: 1e-4,
            weight_decay: 0.0,
            decay_norm_and_bias: false,
            clip_grad_norm: None,
            head_lr_mult: 1.0,
        }
    }
}

impl Shared {
    fn with(self, rule: UpdateRule) -> OptimSection {
        OptimSection {
            rule,
            lr: self.lr,
            weight_decay: self.weight_decay,
            decay_norm_and_bias: self.decay_norm_and_bias,
            clip_grad_norm: self.clip_grad_norm,
            head_lr_mult: self.head_lr_mult,
        }
    }
}

pub(crate) const RULES: [(&str, &[&str]); 3] = [
    ("adam", AdamConfig::KEYS),
    ("adamw", AdamConfig::KEYS),
    ("sgd", SgdConfig::KEYS),
];

impl TryFrom<toml::Table> for OptimSection {
    type Error = String;
    fn try_from(table: toml::Table) -> Result<Self, String> {
        let t = split("optim", table, "adam", &RULES)?;
        let rule = match t.name.as_str() {
            "adam" => UpdateRule::Adam(parse(t.own)?),
            "adamw" => UpdateRule::AdamW(parse(t.own)?),
            _ => UpdateRule::Sgd(parse(t.own)?),
        };
        Ok(parse::<Shared>(t.shared)?.with(rule))
    }
}

impl From<OptimSection> for toml::Table {
    fn from(o: OptimSection) -> Self {
        let shared = Shared {
            lr: o.lr,
            weight_decay: o.weight_decay,
            decay_norm_and_bias: o.decay_norm_and_bias,
            clip_grad_norm: o.clip_grad_norm,
            head_lr_mult: o.head_lr_mult,
        };
        match &o.rule {
            UpdateRule::Adam(c) | UpdateRule::AdamW(c) => join(o.rule.name(), &shared, c),
            UpdateRule::Sgd(c) => join(o.rule.name(), &shared, c),
        }
    }
}
