//! An exponential moving average of the weights (Polyak averaging, as timm's `ModelEmaV2`):
//! after each step ema ← d·ema + (1 − d)·w for floating tensors; buffers such as
//! `num_batches_tracked` are copied.

use tch::{Kind, TchError, Tensor};

pub struct Ema {
    decay: f64,
    /// The prefix of the saved state's names (`ema.`; SWA's running average is `swa.`).
    prefix: &'static str,
    /// (name, live variable, averaged copy)
    pairs: Vec<(String, Tensor, Tensor)>,
}

impl std::fmt::Debug for Ema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ema")
            .field("decay", &self.decay)
            .field("tensors", &self.pairs.len())
            .finish()
    }
}

impl Ema {
    pub fn new(decay: f64, mut vars: Vec<(String, Tensor)>) -> Self {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let pairs = vars
            .into_iter()
            .map(|(n, v)| (n, v.shallow_clone(), v.detach().copy()))
            .collect();
        Self {
            decay,
            prefix: "ema",
            pairs,
        }
    }

    /// The same average saved under `prefix.` instead of `ema.`.
    pub fn named(mut self, prefix: &'static str) -> Self {
        self.prefix = prefix;
        self
    }

    pub fn decay(&self) -> f64 {
        self.decay
    }

    pub fn update(&mut self) -> Result<(), TchError> {
        self.update_with(self.decay)
    }

    /// One update with decay `decay` instead of the fixed one (an equal-weight running average
    /// of n + 1 weights is `decay` = n / (n + 1)).
    pub fn update_with(&mut self, decay: f64) -> Result<(), TchError> {
        tch::no_grad(|| {
            for (_, live, avg) in &mut self.pairs {
                if live.is_floating_point() {
                    avg.f_mul_scalar_(decay).map(drop)?;
                    avg.f_add_(&live.detach().f_mul_scalar(1.0 - decay)?)
                        .map(drop)?;
                } else {
                    avg.f_copy_(live).map(drop)?;
                }
            }
            Ok(())
        })
    }

    /// Swaps the live weights with the averaged ones (call twice to swap back).
    pub fn swap(&mut self) -> Result<(), TchError> {
        tch::no_grad(|| {
            for (_, live, avg) in &mut self.pairs {
                let tmp = live.detach().copy();
                live.f_copy_(avg).map(drop)?;
                avg.f_copy_(&tmp).map(drop)?;
            }
            Ok(())
        })
    }

    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.pairs
            .iter()
            .map(|(n, _, a)| {
                (
                    format!("{}.{n}", self.prefix),
                    a.to_device(tch::Device::Cpu).contiguous(),
                )
            })
            .collect()
    }

    /// Restores the averages saved by [`Self::state_tensors`]; a missing entry is an error, so a
    /// resumed run never averages from the live weights by accident.
    pub fn load_state(
        &mut self,
        tensors: &std::collections::HashMap<String, Tensor>,
    ) -> Result<(), TchError> {
        tch::no_grad(|| {
            for (n, _, a) in &mut self.pairs {
                let key = format!("{}.{n}", self.prefix);
                let t = tensors.get(&key).ok_or_else(|| {
                    TchError::FileFormat(format!("the resume checkpoint lacks {key}"))
                })?;
                let kind = if a.is_floating_point() {
                    Kind::Float
                } else {
                    a.kind()
                };
                a.f_copy_(&t.f_to_kind(kind)?).map(drop)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_average_follows_the_rule_swaps_back_and_restores() {
        let w = Tensor::from_slice(&[0.0f32]);
        let count = Tensor::from_slice(&[0i64]);
        let mut ema = Ema::new(
            0.5,
            vec![
                ("w".into(), w.shallow_clone()),
                ("n".into(), count.shallow_clone()),
            ],
        );
        let mut w_live = w.shallow_clone();
        let mut n_live = count.shallow_clone();
        let mut expected = 0.0;
        for v in [4.0, 8.0] {
            w_live.copy_(&Tensor::from_slice(&[v as f32]));
            n_live.copy_(&Tensor::from_slice(&[v as i64]));
            ema.update().unwrap();
            expected = 0.5 * expected + 0.5 * v;
        }
        // ema = 0.5·(0.5·0 + 0.5·4) + 0.5·8 = 5; integer buffers are copied
        ema.swap().unwrap();
        assert_eq!(w.double_value(&[0]), expected);
        assert_eq!(expected, 5.0);
        assert_eq!(count.int64_value(&[0]), 8);
        ema.swap().unwrap();
        assert_eq!(
            w.double_value(&[0]),
            8.0,
            "a second swap restores the live weights"
        );
        // the saved state restores the average into a fresh EMA
        let saved: std::collections::HashMap<String, Tensor> =
            ema.state_tensors().into_iter().collect();
        let mut other = Ema::new(
            0.5,
            vec![
                ("w".into(), w.shallow_clone()),
                ("n".into(), count.shallow_clone()),
            ],
        );
        other.load_state(&saved).unwrap();
        other.swap().unwrap();
        assert_eq!(w.double_value(&[0]), 5.0);
        let mut missing = Ema::new(0.5, vec![("x".into(), w.shallow_clone())]);
        assert!(
            missing.load_state(&saved).is_err(),
            "a missing entry is an error"
        );
    }
}
