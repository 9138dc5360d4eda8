//! Learning-rate schedules: constant, step, cosine (Loshchilov & Hutter 2017, without restarts),
//! each with optional linear warmup. Evaluated per step at a fractional epoch.

use crate::config::{ScheduleKind, ScheduleSection};

#[derive(Debug, Clone)]
pub struct Schedule {
    cfg: ScheduleSection,
    base_lr: f64,
    epochs: usize,
}

impl Schedule {
    pub fn new(cfg: &ScheduleSection, base_lr: f64, epochs: usize) -> Self {
        Self {
            cfg: cfg.clone(),
            base_lr,
            epochs,
        }
    }

    /// The learning rate at fractional epoch `t` (0 at the start of training).
    pub fn lr(&self, t: f64) -> f64 {
        let c = &self.cfg;
        let base = match c.name {
            ScheduleKind::Constant => self.base_lr,
            ScheduleKind::Step => {
                self.base_lr * c.gamma.powi((t.floor() as usize / c.step_size) as i32)
            }
            ScheduleKind::Cosine => {
                let span = (self.epochs as f64 - c.warmup_epochs).max(1e-9);
                let p = ((t - c.warmup_epochs) / span).clamp(0.0, 1.0);
                c.min_lr
                    + 0.5 * (self.base_lr - c.min_lr) * (1.0 + (std::f64::consts::PI * p).cos())
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
    }
}
