//! Optimisers with state the project owns, so a run resumes exactly: Adam (Kingma & Ba 2015),
//! AdamW (Loshchilov & Hutter 2019) and SGD with momentum/Nesterov, following PyTorch's update
//! rules. Weight decay can leave BatchNorm parameters and biases (every 1-D tensor) alone.

use crate::config::{OptimSection, OptimizerKind};
use crate::error::TrainError;
use tch::{Kind, Tensor};

/// A trainable parameter and its optimiser state.
struct Slot {
    name: String,
    param: Tensor,
    decay: bool,
    exp_avg: Option<Tensor>,
    exp_avg_sq: Option<Tensor>,
    momentum: Option<Tensor>,
}

pub struct Optimizer {
    cfg: OptimSection,
    slots: Vec<Slot>,
    /// Steps taken (Adam's bias correction uses it).
    pub step: i64,
}

impl std::fmt::Debug for Optimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Optimizer")
            .field("kind", &self.cfg.name)
            .field("params", &self.slots.len())
            .field("step", &self.step)
            .finish()
    }
}

impl Optimizer {
    /// `params` are (name, tensor) pairs of the trainable variables.
    pub fn new(cfg: &OptimSection, mut params: Vec<(String, Tensor)>) -> Self {
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = params
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .map(|(name, param)| {
                let decay = cfg.decay_norm_and_bias || param.dim() > 1;
                Slot {
                    name,
                    param,
                    decay,
                    exp_avg: None,
                    exp_avg_sq: None,
                    momentum: None,
                }
            })
            .collect();
        Self {
            cfg: cfg.clone(),
            slots,
            step: 0,
        }
    }

    pub fn zero_grad(&mut self) {
        for s in &mut self.slots {
            s.param.zero_grad();
        }
    }

    /// The global L2 norm of the gradients.
    pub fn grad_norm(&self) -> f64 {
        tch::no_grad(|| {
            let mut total = 0.0;
            for s in &self.slots {
                let g = s.param.grad();
                if g.defined() {
                    let n = g.norm().double_value(&[]);
                    total += n * n;
                }
            }
            total.sqrt()
        })
    }

    /// Scales gradients so their global norm is at most `max_norm`; returns the norm before.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let norm = self.grad_norm();
        if norm > max_norm && norm.is_finite() {
            self.scale_grads(max_norm / (norm + 1e-6));
        }
        norm
    }

    /// Multiplies every gradient by `factor` in place (clipping, loss-scale removal).
    pub fn scale_grads(&mut self, factor: f64) {
        tch::no_grad(|| {
            for s in &self.slots {
                let mut g = s.param.grad();
                if g.defined() {
                    let _ = g.f_mul_scalar_(factor);
                }
            }
        });
    }

    /// One update with learning rate `lr`.
    // `g = g + x` on purpose: `g += x` would add in place into the parameter's .grad.
    #[allow(clippy::assign_op_pattern)]
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let t = self.step as f64;
        let c = &self.cfg;
        let wd = c.weight_decay;
        tch::no_grad(|| {
            for s in &mut self.slots {
                let g = s.param.grad();
                if !g.defined() {
                    continue;
                }
                let mut g = g.to_kind(Kind::Float);
                let decay = if s.decay { wd } else { 0.0 };
                match c.name {
                    OptimizerKind::Adam | OptimizerKind::AdamW => {
                        if c.name == OptimizerKind::AdamW && decay > 0.0 {
                            let _ = s.param.f_mul_scalar_(1.0 - lr * decay);
                        } else if decay > 0.0 {
                            g = g + &s.param * decay;
                        }
                        let (b1, b2) = (c.betas[0], c.betas[1]);
                        let m = s.exp_avg.get_or_insert_with(|| s.param.zeros_like());
                        let _ = m.f_mul_scalar_(b1);
                        let _ = m.f_add_(&(&g * (1.0 - b1)));
                        let v = s.exp_avg_sq.get_or_insert_with(|| s.param.zeros_like());
                        let _ = v.f_mul_scalar_(b2);
                        let _ = v.f_addcmul_(&g, &(&g * (1.0 - b2)));
                        let bc1 = 1.0 - b1.powf(t);
                        let bc2 = 1.0 - b2.powf(t);
                        let denom = (v.sqrt() / bc2.sqrt()) + c.eps;
                        let update = m.shallow_clone() / denom * (lr / bc1);
                        let _ = s.param.f_sub_(&update);
                    }
                    OptimizerKind::Sgd => {
                        if decay > 0.0 {
                            g = g + &s.param * decay;
                        }
                        if c.momentum > 0.0 {
                            let buf = match &mut s.momentum {
                                Some(b) => {
                                    let _ = b.f_mul_scalar_(c.momentum);
                                    let _ = b.f_add_(&g);
                                    b.shallow_clone()
                                }
                                None => {
                                    let b = g.copy();
                                    s.momentum = Some(b.shallow_clone());
                                    b
                                }
                            };
                            g = if c.nesterov {
                                g + buf * c.momentum
                            } else {
                                buf
                            };
                        }
                        let _ = s.param.f_sub_(&(g * lr));
                    }
                }
            }
        });
    }

    /// The state as named tensors (for the resume checkpoint), prefixed `optim.`.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("optim.step".to_string(), Tensor::from_slice(&[self.step]))];
        for s in &self.slots {
            for (kind, t) in [
                ("exp_avg", &s.exp_avg),
                ("exp_avg_sq", &s.exp_avg_sq),
                ("momentum", &s.momentum),
            ] {
                if let Some(t) = t {
                    out.push((
                        format!("optim.{kind}.{}", s.name),
                        t.detach().to_device(tch::Device::Cpu).contiguous(),
                    ));
                }
            }
        }
        out
    }

    /// Restores the state saved by [`state_tensors`](Self::state_tensors).
    pub fn load_state(
        &mut self,
        tensors: &std::collections::HashMap<String, Tensor>,
    ) -> Result<(), TrainError> {
        let step = tensors
            .get("optim.step")
            .ok_or_else(|| TrainError::Invalid("checkpoint lacks optim.step".into()))?;
        self.step = step.int64_value(&[0]);
        for s in &mut self.slots {
            let device = s.param.device();
            let get = |kind: &str| -> Result<Option<Tensor>, TrainError> {
                match tensors.get(&format!("optim.{kind}.{}", s.name)) {
                    None => Ok(None),
                    Some(t) if t.size() != s.param.size() => Err(TrainError::Invalid(format!(
                        "optimiser state for {} has shape {:?}, expected {:?}",
                        s.name,
                        t.size(),
                        s.param.size()
                    ))),
                    Some(t) => Ok(Some(t.to_device(device).to_kind(Kind::Float))),
                }
            };
            s.exp_avg = get("exp_avg")?;
            s.exp_avg_sq = get("exp_avg_sq")?;
            s.momentum = get("momentum")?;
        }
        Ok(())
    }
}
