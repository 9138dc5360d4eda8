//! `[optim]`: the update rule `name` chooses, with its own settings ([`AdamConfig`] for `adam`
//! and `adamw`, [`SgdConfig`] for `sgd`), and the settings every rule shares. The TOML is flat,
//! as users write it; a key of another rule is an error naming that rule.

use super::adam::AdamConfig;
use super::sgd::SgdConfig;
use crate::component::{parse, serialize_flat, Components};
use crate::error::TrainError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

/// `[optim]`. Its `Serialize` and `Deserialize` are the whole section; the inherent
/// `OptimSection::serialize`/`deserialize` that `remote = "Self"` derives read and write only
/// the keys every rule shares (see [`crate::component`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields, default)]
pub struct OptimSection {
    /// `name`, with the rule's own keys.
    #[serde(skip)]
    pub rule: UpdateRule,
    pub lr: f64,
    pub weight_decay: f64,
    /// Apply weight decay to BatchNorm parameters and biases too.
    pub decay_norm_and_bias: bool,
    /// Clip the global gradient norm to this value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip_grad_norm: Option<f64>,
    /// The classifier head's learning rate is `lr × head_lr_mult`.
    pub head_lr_mult: f64,
}

impl Default for OptimSection {
    fn default() -> Self {
        Self {
            rule: UpdateRule::default(),
            lr: 1e-4,
            weight_decay: 0.0,
            decay_norm_and_bias: false,
            clip_grad_norm: None,
            head_lr_mult: 1.0,
        }
    }
}

pub(crate) const RULES: Components = Components {
    section: "optim",
    list: &[
        ("adam", AdamConfig::KEYS),
        ("adamw", AdamConfig::KEYS),
        ("sgd", SgdConfig::KEYS),
    ],
};

impl<'de> Deserialize<'de> for OptimSection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let rule = |name: &str, own| -> Result<_, String> {
            Ok(match name {
                "adam" => UpdateRule::Adam(parse(own)?),
                "adamw" => UpdateRule::AdamW(parse(own)?),
                _ => UpdateRule::Sgd(parse(own)?),
            })
        };
        let (rule, shared) = RULES.deserialize(d, rule, Self::deserialize)?;
        Ok(Self { rule, ..shared })
    }
}

impl Serialize for OptimSection {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Shared<'a>(&'a OptimSection);
        impl Serialize for Shared<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                OptimSection::serialize(self.0, s)
            }
        }
        let name = self.rule.name();
        match &self.rule {
            UpdateRule::Adam(c) | UpdateRule::AdamW(c) => serialize_flat(s, name, Shared(self), c),
            UpdateRule::Sgd(c) => serialize_flat(s, name, Shared(self), c),
        }
    }
}
