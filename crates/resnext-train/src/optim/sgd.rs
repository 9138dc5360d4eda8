//! SGD with momentum and Nesterov momentum, PyTorch's update rule: the settings of `[optim]` with
//! `name = "sgd"` ([`SgdConfig`]), and one parameter's update.

use crate::component::below_one;
use crate::error::TrainError;
use serde::{Deserialize, Serialize};
use tch::{TchError, Tensor};

/// SGD's own settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SgdConfig {
    pub momentum: f64,
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            momentum: 0.9,
            nesterov: false,
        }
    }
}

impl SgdConfig {
    /// The keys of `[optim]` that are SGD's.
    pub const KEYS: &'static [&'static str] = &["momentum", "nesterov"];

    pub fn validate(&self) -> Result<(), TrainError> {
        below_one(self.momentum, "optim.momentum")
    }
}

/// One step of one parameter with gradient `g` and L2 weight decay `decay`; `buf` is its
/// momentum buffer.
// `g = g + x` on purpose: `g += x` would add in place into the parameter's .grad.
#[allow(clippy::assign_op_pattern)]
pub(super) fn update(
    cfg: &SgdConfig,
    param: &mut Tensor,
    mut g: Tensor,
    buf: &mut Option<Tensor>,
    lr: f64,
    decay: f64,
) -> Result<(), TchError> {
    if decay > 0.0 {
        g = g + &*param * decay;
    }
    if cfg.momentum > 0.0 {
        let b = match buf {
            Some(b) => {
                b.f_mul_scalar_(cfg.momentum).map(drop)?;
                b.f_add_(&g).map(drop)?;
                b.shallow_clone()
            }
            None => {
                let b = g.copy();
                *buf = Some(b.shallow_clone());
                b
            }
        };
        g = if cfg.nesterov {
            g + b * cfg.momentum
        } else {
            b
        };
    }
    param.f_sub_(&(g * lr)).map(drop)
}
