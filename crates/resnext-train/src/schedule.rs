//! Learning-rate schedules: constant, step, cosine (Loshchilov & Hutter 2017, without restarts),
//! each with optional linear warmup, evaluated per step at a fractional epoch; and `[schedule]`,
//! the schedule `name` chooses with its own settings ([`StepConfig`], [`CosineConfig`]) and the
//! warmup every schedule shares.

use crate::component::{check, parse, positive, serialize_flat, Components};
use crate::error::TrainError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The step schedule's settings: multiply by `gamma` every `step_size` epochs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StepConfig {
    pub step_size: usize,
    pub gamma: f64,
}

impl Default for StepConfig {
    fn default() -> Self {
        Self {
            step_size: 30,
            gamma: 0.1,
        }
    }
}

impl StepConfig {
    pub const KEYS: &'static [&'static str] = &["step_size", "gamma"];

    pub fn validate(&self) -> Result<(), TrainError> {
        check(
            self.step_size >= 1,
            "schedule.step_size",
            "must be at least 1",
        )?;
        positive(self.gamma, "schedule.gamma")
    }
}

/// The cosine schedule's settings: the final learning rate.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CosineConfig {
    pub min_lr: f64,
}

impl CosineConfig {
    pub const KEYS: &'static [&'static str] = &["min_lr"];

    /// `lr` is the optimiser's, which `min_lr` must not exceed.
    pub fn validate(&self, lr: f64) -> Result<(), TrainError> {
        at_least_zero(self.min_lr, "schedule.min_lr")?;
        check(
            !(self.min_lr > lr),
            "schedule.min_lr",
            &format!("must not exceed optim.lr ({lr})"),
        )
    }
}

/// Finite and ≥ 0.
fn at_least_zero(v: f64, key: &'static str) -> Result<(), TrainError> {
    check(
        v >= 0.0 && v.is_finite(),
        key,
        &format!("must be a finite number ≥ 0, got {v}"),
    )
}

/// The schedule and its settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ScheduleRule {
    #[default]
    Constant,
    Step(StepConfig),
    Cosine(CosineConfig),
}

impl ScheduleRule {
    pub fn name(&self) -> &'static str {
        match self {
            ScheduleRule::Constant => "constant",
            ScheduleRule::Step(_) => "step",
            ScheduleRule::Cosine(_) => "cosine",
        }
    }
}

/// `[schedule]`. Its `Serialize` and `Deserialize` are the whole section; the inherent
/// `ScheduleSection::serialize`/`deserialize` that `remote = "Self"` derives read and write only
/// the keys every schedule shares (see [`crate::component`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields, default)]
pub struct ScheduleSection {
    /// `name`, with the schedule's own keys.
    #[serde(skip)]
    pub rule: ScheduleRule,
    /// Linear warmup length in epochs (fractions allowed), from `warmup_start_factor`·lr.
    pub warmup_epochs: f64,
    pub warmup_start_factor: f64,
}

impl Default for ScheduleSection {
    fn default() -> Self {
        Self {
            rule: ScheduleRule::default(),
            warmup_epochs: 0.0,
            warmup_start_factor: 0.01,
        }
    }
}

impl ScheduleSection {
    /// `lr` is the optimiser's.
    pub fn validate(&self, lr: f64) -> Result<(), TrainError> {
        at_least_zero(self.warmup_epochs, "schedule.warmup_epochs")?;
        let factor = self.warmup_start_factor;
        check(
            factor > 0.0 && factor <= 1.0,
            "schedule.warmup_start_factor",
            &format!("must be in (0, 1], got {factor}"),
        )?;
        match &self.rule {
            ScheduleRule::Constant => Ok(()),
            ScheduleRule::Step(s) => s.validate(),
            ScheduleRule::Cosine(c) => c.validate(lr),
        }
    }
}

pub(crate) const SCHEDULES: Components = Components {
    section: "schedule",
    list: &[
        ("constant", &[]),
        ("step", StepConfig::KEYS),
        ("cosine", CosineConfig::KEYS),
    ],
};

impl<'de> Deserialize<'de> for ScheduleSection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `constant` has no keys of its own, so it never has any to parse
        let rule = |name: &str, own| -> Result<_, String> {
            Ok(match name {
                "constant" => ScheduleRule::Constant,
                "step" => ScheduleRule::Step(parse(own)?),
                _ => ScheduleRule::Cosine(parse(own)?),
            })
        };
        let (rule, shared) = SCHEDULES.deserialize(d, rule, Self::deserialize)?;
        Ok(Self { rule, ..shared })
    }
}

impl Serialize for ScheduleSection {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Shared<'a>(&'a ScheduleSection);
        impl Serialize for Shared<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                ScheduleSection::serialize(self.0, s)
            }
        }
        let name = self.rule.name();
        match &self.rule {
            ScheduleRule::Constant => serialize_flat(s, name, Shared(self), toml::Table::new()),
            ScheduleRule::Step(c) => serialize_flat(s, name, Shared(self), c),
            ScheduleRule::Cosine(c) => serialize_flat(s, name, Shared(self), c),
        }
    }
}

/// Optimiser steps in an epoch of `batches` batches when the optimiser steps every `accumulate`
/// of them (the last step takes what is left): the schedule's unit, ceil(batches / accumulate).
pub fn steps_per_epoch(batches: usize, accumulate: usize) -> usize {
    batches.div_ceil(accumulate.max(1))
}

#[derive(Debug, Clone)]
pub struct Schedule {
    cfg: ScheduleSection,
    base_lr: f64,
    epochs: usize,
    /// `train.swa`: from the start of this epoch (1-based) on, this learning rate.
    swa: Option<(usize, f64)>,
}

impl Schedule {
    pub fn new(cfg: &ScheduleSection, base_lr: f64, epochs: usize) -> Self {
        Self {
            cfg: cfg.clone(),
            base_lr,
            epochs,
            swa: None,
        }
    }

    /// The schedule held at `lr` from the start of epoch `start_epoch` (1-based) on: SWA's
    /// constant learning rate.
    pub fn with_swa(mut self, start_epoch: usize, lr: f64) -> Self {
        self.swa = Some((start_epoch, lr));
        self
    }

    /// The learning rate at fractional epoch `t` (0 at the start of training).
    pub fn lr(&self, t: f64) -> f64 {
        if let Some((start, lr)) = self.swa {
            if t >= start.saturating_sub(1) as f64 {
                return lr;
            }
        }
        let c = &self.cfg;
        let base = match &c.rule {
            ScheduleRule::Constant => self.base_lr,
            ScheduleRule::Step(s) => {
                self.base_lr * s.gamma.powi((t.floor() as usize / s.step_size) as i32)
            }
            ScheduleRule::Cosine(cos) => {
                let span = (self.epochs as f64 - c.warmup_epochs).max(1e-9);
                let p = ((t - c.warmup_epochs) / span).clamp(0.0, 1.0);
                cos.min_lr
                    + 0.5 * (self.base_lr - cos.min_lr) * (1.0 + (std::f64::consts::PI * p).cos())
            }
        };
        if c.warmup_epochs > 0.0 && t < c.warmup_epochs {
            let f = c.warmup_start_factor + (1.0 - c.warmup_start_factor) * (t / c.warmup_epochs);
            base * f
        } else {
            base
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(text: &str) -> ScheduleSection {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn an_epoch_counts_optimiser_steps() {
        assert_eq!(steps_per_epoch(10, 1), 10);
        assert_eq!(steps_per_epoch(10, 4), 3);
        assert_eq!(steps_per_epoch(12, 4), 3);
        assert_eq!(steps_per_epoch(3, 8), 1);
        assert_eq!(steps_per_epoch(0, 4), 0);
    }

    #[test]
    fn shapes() {
        let c = Schedule::new(&sched(""), 0.1, 10);
        assert_eq!(c.lr(0.0), 0.1);
        assert_eq!(c.lr(9.9), 0.1);
        let s = Schedule::new(
            &sched("name = \"step\"\nstep_size = 3\ngamma = 0.5"),
            1.0,
            10,
        );
        assert_eq!((s.lr(0.5), s.lr(3.0), s.lr(6.2)), (1.0, 0.5, 0.25));
        let cos = Schedule::new(&sched("name = \"cosine\"\nmin_lr = 0.0"), 1.0, 10);
        assert!((cos.lr(5.0) - 0.5).abs() < 1e-12);
        assert!(cos.lr(10.0).abs() < 1e-12);
        let w = Schedule::new(
            &sched("name = \"cosine\"\nwarmup_epochs = 2.0\nwarmup_start_factor = 0.0"),
            1.0,
            12,
        );
        assert!((w.lr(1.0) - 0.5).abs() < 1e-12);
        assert!((w.lr(2.0) - 1.0).abs() < 1e-12);
        assert!(w.lr(7.0) < 1.0 && w.lr(7.0) > 0.4);
        // SWA holds its learning rate from the start of its first epoch
        let swa =
            Schedule::new(&sched("name = \"cosine\"\nmin_lr = 0.0"), 1.0, 10).with_swa(8, 0.05);
        assert_eq!(swa.lr(6.99), cos.lr(6.99));
        assert_eq!((swa.lr(7.0), swa.lr(9.5)), (0.05, 0.05));
    }
}
