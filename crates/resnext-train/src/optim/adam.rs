//! Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019), PyTorch's update rules: the
//! settings of `[optim]` with `name = "adam"` or `"adamw"` ([`AdamConfig`]), and one parameter's
//! update (on the CPU, fp32 parameters go to the fused kernel of `fused.rs`).

use super::fused;
use crate::component::{below_one, positive};
use crate::error::TrainError;
use serde::{Deserialize, Serialize};
use tch::{TchError, Tensor};

/// Adam's own settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamConfig {
    pub betas: [f64; 2],
    pub eps: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            betas: [0.9, 0.999],
            eps: 1e-8,
        }
    }
}

impl AdamConfig {
    /// The keys of `[optim]` that are Adam's.
    pub const KEYS: &'static [&'static str] = &["betas", "eps"];

    pub fn validate(&self) -> Result<(), TrainError> {
        for (b, key) in self.betas.iter().zip(["optim.betas[0]", "optim.betas[1]"]) {
            below_one(*b, key)?;
        }
        positive(self.eps, "optim.eps")
    }
}

/// The moments of one parameter.
#[derive(Default)]
pub(super) struct Moments {
    pub exp_avg: Option<Tensor>,
    pub exp_avg_sq: Option<Tensor>,
}

/// Step `t` (from 1) of one parameter with gradient `g`: AdamW's decay is decoupled (the
/// parameter shrinks by `lr·decay` first), Adam's is an L2 term in the gradient. When `fuse` and
/// the fused kernel can take the tensors, nothing is computed here and its operands are returned
/// (the caller keeps `g` alive until the kernel ran).
// `g = g + x` on purpose: `g += x` would add in place into the parameter's .grad.
#[allow(clippy::assign_op_pattern)]
#[allow(clippy::too_many_arguments)]
pub(super) fn update(
    cfg: &AdamConfig,
    decoupled: bool,
    param: &mut Tensor,
    mut g: Tensor,
    state: &mut Moments,
    lr: f64,
    decay: f64,
    t: f64,
    fuse: bool,
) -> Result<Option<fused::Operands>, TchError> {
    let (b1, b2) = (cfg.betas[0], cfg.betas[1]);
    let step_size = lr / (1.0 - b1.powf(t));
    let sqrt_bc2 = (1.0 - b2.powf(t)).sqrt();
    let m = state.exp_avg.get_or_insert_with(|| param.zeros_like());
    let v = state.exp_avg_sq.get_or_insert_with(|| param.zeros_like());
    let constants = fused::AdamStep {
        beta1: b1 as f32,
        beta2: b2 as f32,
        eps: cfg.eps as f32,
        step_size: step_size as f32,
        inv_sqrt_bc2: (1.0 / sqrt_bc2) as f32,
        l2: if decoupled { 0.0 } else { decay as f32 },
        decoupled: if decoupled {
            (1.0 - lr * decay) as f32
        } else {
            1.0
        },
    };
    if fuse {
        if let Some(op) = fused::Operands::new(param, &g, m, v, constants) {
            return Ok(Some(op));
        }
    }
    if decoupled && decay > 0.0 {
        param.f_mul_scalar_(1.0 - lr * decay).map(drop)?;
    } else if decay > 0.0 {
        g = g + &*param * decay;
    }
    // PyTorch's single-tensor Adam, with the constants folded so that the update is 7 kernels
    // and 2 temporaries per parameter:
    // m ← lerp(m, g, 1-β1); v ← lerp(v, g², 1-β2); p ← p + m / ((√v/√bc2 + eps) · (-bc1/lr)).
    m.f_lerp_(&g, 1.0 - b1).map(drop)?;
    v.f_lerp_(&(&g * &g), 1.0 - b2).map(drop)?;
    let mut denom = v.sqrt();
    denom
        .f_mul_scalar_(-1.0 / (sqrt_bc2 * step_size))
        .map(drop)?;
    denom.f_add_scalar_(-cfg.eps / step_size).map(drop)?;
    param.f_addcdiv_(m, &denom).map(drop)?;
    Ok(None)
}
