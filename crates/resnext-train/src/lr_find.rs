//! The learning-rate finder (Smith 2017, "Cyclical learning rates", §3.3; fastai's `lr_find`):
//! optimiser steps on a fresh model built from the config, through the training step itself
//! (same data pipeline, augmentation, optimiser, accumulation and precision), with the learning
//! rate growing exponentially from `start_lr` to `end_lr` over `steps` steps. The loss is
//! smoothed by an exponential moving average with bias correction (β = 0.98, as fastai), and the
//! sweep stops when the smoothed loss exceeds 4 times its best (fastai's divergence test) or the
//! loss is not finite. A suggestion is read off the smoothed curve:
//!
//! - [`SuggestRule::Valley`] (fastai's default since 2.5): the longest stretch over which the
//!   loss keeps falling, and the point 1/3 + 1/6 of the way along it (the middle of its
//!   steepest part, safely before the minimum);
//! - [`SuggestRule::Steepest`]: where the loss falls fastest per decade of learning rate, before
//!   its minimum (fastai's `steepest` looks past it too, where a diverging loss jumps about).
//!
//! As fastai does, the suggestion ignores the first tenth of the steps and the last five.
//! Nothing is written to any run directory: the sweep's model is thrown away.

use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::trainer::sweep::SweepEnd;
use crate::trainer::Trainer;
use resnext_infer::progress::Progress;
use resnext_model::weights::WeightsFile;

/// How the suggested learning rate is chosen from the curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SuggestRule {
    /// fastai's `valley`: in the longest descending stretch, 1/3 + 1/6 of the way along.
    #[default]
    Valley,
    /// The steepest descent of the smoothed loss against log(lr), before its minimum.
    Steepest,
}

impl SuggestRule {
    pub fn name(self) -> &'static str {
        match self {
            SuggestRule::Valley => "valley",
            SuggestRule::Steepest => "steepest",
        }
    }
}

/// The sweep's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LrFindSettings {
    pub start_lr: f64,
    pub end_lr: f64,
    /// Optimiser steps at most (the sweep stops earlier when the loss diverges).
    pub steps: usize,
    pub rule: SuggestRule,
    /// Smoothing of the loss (an exponential moving average with bias correction).
    pub beta: f64,
    /// The sweep stops when the smoothed loss exceeds this many times its best.
    pub divergence: f64,
}

impl Default for LrFindSettings {
    fn default() -> Self {
        Self {
            start_lr: 1e-7,
            end_lr: 10.0,
            steps: 100,
            rule: SuggestRule::Valley,
            beta: 0.98,
            divergence: 4.0,
        }
    }
}

impl LrFindSettings {
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |flag: &str, reason: String| {
            let flag = flag.into();
            Err(TrainError::BadFlag { flag, reason })
        };
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let (start, end) = (self.start_lr, self.end_lr);
        if !positive(start) {
            let reason = format!("must be a finite number > 0, got {start}");
            return bad("--start-lr", reason);
        }
        if !(positive(end) && end > start) {
            let reason = format!("must be finite and above --start-lr ({start}), got {end}");
            return bad("--end-lr", reason);
        }
        if !(end / start).is_finite() {
            // the rates grow by powers of this ratio: an infinite one makes every rate after
            // the first infinite
            let reason =
                format!("{end} / --start-lr {start} is too large a range (not a finite number)");
            return bad("--end-lr", reason);
        }
        let steps = self.steps;
        if !(2..=100_000).contains(&steps) {
            let reason = format!("must be between 2 and 100000, got {steps}");
            return bad("--steps", reason);
        }
        if !(self.beta >= 0.0 && self.beta < 1.0) {
            return bad("beta", format!("must be in [0, 1), got {}", self.beta));
        }
        let divergence = self.divergence;
        if !(divergence > 1.0 && divergence.is_finite()) {
            let reason = format!("must be a finite number > 1, got {divergence}");
            return bad("divergence", reason);
        }
        Ok(())
    }

    /// The learning rate of 0-based step `i`: `start_lr · (end_lr / start_lr)^(i / (steps - 1))`.
    pub fn lr_at(&self, i: usize) -> f64 {
        let f = i as f64 / (self.steps - 1).max(1) as f64;
        self.start_lr * (self.end_lr / self.start_lr).powf(f)
    }
}

/// One step of the sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrPoint {
    pub step: usize,
    pub lr: f64,
    pub loss: f64,
    /// The bias-corrected moving average of the losses up to this step.
    pub smoothed: f64,
}

/// Why the sweep ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepStop {
    /// Every step was taken.
    Completed,
    /// The smoothed loss exceeded `divergence` times its best at this step (which is recorded).
    Diverged { step: usize },
    /// The loss (or the weights) became non-finite at this step (which is not recorded).
    NonFinite { step: usize },
}

/// The suggested learning rate and the rule that chose it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Suggestion {
    pub lr: f64,
    pub rule: SuggestRule,
    /// The index in [`LrFind::points`] of the chosen point.
    pub index: usize,
}

/// The result of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct LrFind {
    pub points: Vec<LrPoint>,
    pub stop: SweepStop,
    /// `None` when too few steps were taken to read a curve.
    pub suggestion: Option<Suggestion>,
}

/// The smoothing and the divergence test, fed one loss at a time.
#[derive(Debug, Clone)]
pub struct Smoother {
    beta: f64,
    avg: f64,
    n: i32,
    best: f64,
}

impl Smoother {
    pub fn new(beta: f64) -> Self {
        Self {
            beta,
            avg: 0.0,
            n: 0,
            best: f64::INFINITY,
        }
    }

    /// Adds a loss; the smoothed value (`avg / (1 - β^n)`) and whether it is `factor` times
    /// above the best so far.
    pub fn add(&mut self, loss: f64, factor: f64) -> (f64, bool) {
        self.n += 1;
        self.avg = self.beta * self.avg + (1.0 - self.beta) * loss;
        let smoothed = self.avg / (1.0 - self.beta.powi(self.n));
        let diverged = smoothed > factor * self.best;
        self.best = self.best.min(smoothed);
        (smoothed, diverged)
    }
}

/// The suggestion of `rule` on the smoothed curve of `points`, ignoring the first tenth of the
/// points and the last five (as fastai, when enough are left).
pub fn suggest(points: &[LrPoint], rule: SuggestRule) -> Option<Suggestion> {
    let n = points.len();
    let (lo, hi) = if n >= 20 { (n / 10, n - 5) } else { (0, n) };
    let part = &points[lo..hi];
    if part.len() < 3 {
        return None;
    }
    let loss: Vec<f64> = part.iter().map(|p| p.smoothed).collect();
    let index = match rule {
        SuggestRule::Valley => {
            // the longest decreasing subsequence ending at each point (fastai's `valley`)
            let m = loss.len();
            let mut lds = vec![1usize; m];
            let (mut max_start, mut max_end) = (0, 0);
            for i in 1..m {
                for j in 0..i {
                    if loss[i] < loss[j] && lds[i] < lds[j] + 1 {
                        lds[i] = lds[j] + 1;
                    }
                    if lds[max_end] < lds[i] {
                        max_end = i;
                        max_start = max_end + 1 - lds[max_end];
                    }
                }
            }
            let sections = (max_end - max_start) as f64 / 3.0;
            max_start + sections as usize + (sections / 2.0) as usize
        }
        SuggestRule::Steepest => {
            // a descent ends at the minimum: the noise of a diverging loss beyond it is no guide
            let min = (0..loss.len())
                .min_by(|&a, &b| loss[a].total_cmp(&loss[b]))
                .unwrap_or(0);
            let mut best = (0, f64::INFINITY);
            for i in 0..min {
                let dx = (part[i + 1].lr.ln() - part[i].lr.ln()).max(1e-300);
                let g = (loss[i + 1] - loss[i]) / dx;
                if g < best.1 {
                    best = (i, g);
                }
            }
            best.0
        }
    };
    let index = lo + index.min(part.len() - 1);
    Some(Suggestion {
        lr: points[index].lr,
        rule,
        index,
    })
}

/// `lr_find.csv`: `step,lr,loss,smoothed`, one line a step.
pub fn csv(points: &[LrPoint]) -> String {
    let mut s = String::from("step,lr,loss,smoothed\n");
    for p in points {
        s.push_str(&format!(
            "{},{:.6e},{:.6},{:.6}\n",
            p.step, p.lr, p.loss, p.smoothed
        ));
    }
    s
}

/// Sweeps the learning rate on a fresh model of `cfg` (from `init_weights` when given) over its
/// training part; `progress` counts the steps.
pub fn lr_find(
    cfg: TrainConfig,
    init_weights: Option<&WeightsFile>,
    settings: &LrFindSettings,
    progress: &dyn Progress,
) -> Result<LrFind, TrainError> {
    settings.validate()?;
    let mut trainer = Trainer::detached(cfg, init_weights)?;
    let lrs: Vec<f64> = (0..settings.steps).map(|i| settings.lr_at(i)).collect();
    let mut smoother = Smoother::new(settings.beta);
    let mut points = Vec::with_capacity(lrs.len());
    let mut diverged = None;
    progress.begin("lr-find", lrs.len());
    let end = trainer.sweep(&lrs, |step, lr, loss| {
        progress.advance(1);
        let (smoothed, over) = smoother.add(loss, settings.divergence);
        points.push(LrPoint {
            step,
            lr,
            loss,
            smoothed,
        });
        if over || !smoothed.is_finite() {
            diverged = Some(step);
            return false;
        }
        true
    });
    progress.end();
    let stop = match (end?, diverged) {
        (SweepEnd::NonFinite(step), _) => SweepStop::NonFinite { step },
        (SweepEnd::Done, Some(step)) => SweepStop::Diverged { step },
        (SweepEnd::Done, None) => SweepStop::Completed,
    };
    let suggestion = suggest(&points, settings.rule);
    Ok(LrFind {
        points,
        stop,
        suggestion,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(losses: &[f64]) -> Vec<LrPoint> {
        let s = LrFindSettings {
            steps: losses.len(),
            ..LrFindSettings::default()
        };
        let mut sm = Smoother::new(0.0);
        losses
            .iter()
            .enumerate()
            .map(|(i, &l)| LrPoint {
                step: i,
                lr: s.lr_at(i),
                loss: l,
                smoothed: sm.add(l, 4.0).0,
            })
            .collect()
    }

    #[test]
    fn the_rates_grow_exponentially_from_start_to_end() {
        let s = LrFindSettings::default();
        assert!((s.lr_at(0) - 1e-7).abs() < 1e-20);
        assert!((s.lr_at(99) - 10.0).abs() < 1e-9);
        let r = s.lr_at(1) / s.lr_at(0);
        assert!((s.lr_at(51) / s.lr_at(50) - r).abs() < 1e-9);
    }

    #[test]
    fn smoothing_is_bias_corrected_and_detects_divergence() {
        let mut s = Smoother::new(0.98);
        // bias correction: a constant loss smooths to itself from the first step
        assert!((s.add(2.0, 4.0).0 - 2.0).abs() < 1e-12);
        assert!((s.add(2.0, 4.0).0 - 2.0).abs() < 1e-12);
        let mut s = Smoother::new(0.5);
        s.add(1.0, 4.0);
        let (_, over) = s.add(100.0, 4.0);
        assert!(over);
    }

    #[test]
    fn valley_and_steepest_fall_in_the_descent() {
        // flat, a fall between steps 30 and 60, a minimum, then a rise
        let losses: Vec<f64> = (0..100)
            .map(|i| match i {
                0..30 => 2.0,
                30..60 => 2.0 - (i - 30) as f64 / 30.0 * 1.5,
                60..75 => 0.5,
                _ => 0.5 + (i - 75) as f64 * 0.2,
            })
            .collect();
        let p = points(&losses);
        let v = suggest(&p, SuggestRule::Valley).unwrap();
        assert!((30..60).contains(&v.index), "{v:?}");
        let s = suggest(&p, SuggestRule::Steepest).unwrap();
        assert!((29..60).contains(&s.index), "{s:?}");
        assert!(suggest(&p[..2], SuggestRule::Valley).is_none());
    }

    #[test]
    fn bad_settings_name_their_flag() {
        let s = LrFindSettings {
            end_lr: 1e-8,
            ..LrFindSettings::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("--end-lr"));
        let s = LrFindSettings {
            steps: 1,
            ..LrFindSettings::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("--steps"));
        let s = LrFindSettings {
            start_lr: 1e-310,
            end_lr: 1e10,
            ..LrFindSettings::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("--end-lr"));
    }
}
