//! An exponential moving average of the weights (Polyak averaging, as timm's `ModelEmaV2`):
//! after each step ema ← d·ema + (1 − d)·w for floating tensors; buffers such as
//! `num_batches_tracked` are copied.

use tch::{Kind, Tensor};

pub struct Ema {
    decay: f64,
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
            .map(|(n, v)| {
                let c = v.detach().copy();
                (n, v, c)
            })
            .collect();
        Self { decay, pairs }
    }

    pub fn update(&mut self) {
        tch::no_grad(|| {
            for (_, live, avg) in &mut self.pairs {
                if live.is_floating_point() {
                    let _ = avg.f_mul_scalar_(self.decay);
                    let _ = avg.f_add_(&(live.detach() * (1.0 - self.decay)));
                } else {
                    let _ = avg.f_copy_(live);
                }
            }
        });
    }

    /// Swaps the live weights with the averaged ones (call twice to swap back).
    pub fn swap(&mut self) {
        tch::no_grad(|| {
            for (_, live, avg) in &mut self.pairs {
                let tmp = live.detach().copy();
                let _ = live.f_copy_(avg);
                let _ = avg.f_copy_(&tmp);
            }
        });
    }

    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.pairs
            .iter()
            .map(|(n, _, a)| {
                (
                    format!("ema.{n}"),
                    a.to_device(tch::Device::Cpu).contiguous(),
                )
            })
            .collect()
    }

    pub fn load_state(&mut self, tensors: &std::collections::HashMap<String, Tensor>) {
        tch::no_grad(|| {
            for (n, _, a) in &mut self.pairs {
                if let Some(t) = tensors.get(&format!("ema.{n}")) {
                    let _ = a.f_copy_(&t.to_kind(if a.is_floating_point() {
                        Kind::Float
                    } else {
                        a.kind()
                    }));
                }
            }
        });
    }
}
