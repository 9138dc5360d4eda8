//! One optimisation step: backward, fp16 loss scaling, gradient clipping, the optimiser update,
//! the EMA update, and the check that the weights are still finite.

use crate::dist::grads::{sum_gradients, ReduceStats, BUCKET_BYTES};
use crate::dist::Collective;
use crate::ema::Ema;
use crate::error::TrainError;
use crate::optim::Optimizer;
use resnext_model::sync_bn::SyncBatchNorm;
use tch::Tensor;

/// fp16's dynamic loss scale, as `torch.cuda.amp.GradScaler`: the loss is multiplied by the
/// scale before backward; a step whose gradients overflow is skipped and halves the scale, and
/// every 2000 good steps double it.
#[derive(Debug, Clone, PartialEq)]
pub struct LossScaler {
    pub scale: f64,
    good_steps: usize,
}

impl Default for LossScaler {
    fn default() -> Self {
        Self {
            scale: 65536.0,
            good_steps: 0,
        }
    }
}

impl LossScaler {
    pub const GROWTH_INTERVAL: usize = 2000;

    pub fn with_scale(scale: f64) -> Self {
        Self {
            scale,
            good_steps: 0,
        }
    }

    /// Unscales the gradients; false (and a halved scale) when they overflowed.
    fn unscale(&mut self, opt: &mut Optimizer) -> Result<bool, TrainError> {
        let norm = opt.grad_norm() / self.scale;
        if !norm.is_finite() {
            self.scale /= 2.0;
            self.good_steps = 0;
            return Ok(false);
        }
        opt.scale_grads(1.0 / self.scale)?;
        self.good_steps += 1;
        if self.good_steps.is_multiple_of(Self::GROWTH_INTERVAL) {
            self.scale *= 2.0;
        }
        Ok(true)
    }
}

/// The settings of a step that do not change between steps.
#[derive(Debug, Clone, Copy)]
pub struct StepConfig {
    /// Clip the global gradient norm to this value.
    pub clip_grad_norm: Option<f64>,
}

/// Where a step is, for the error when the weights stop being finite.
#[derive(Debug, Clone, Copy)]
pub struct StepAt {
    pub epoch: usize,
    pub batch: usize,
}

/// Data-parallel training: the processes of the job, and synchronised BatchNorm's cuts when it
/// is on. The loss of each process is its share of the global batch's loss.
#[derive(Clone, Copy)]
pub struct StepDist<'a> {
    pub comm: &'a dyn Collective,
    pub sync_batchnorm: Option<&'a SyncBatchNorm>,
}

/// What a step did.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepOutcome {
    /// False when fp16's loss scaler skipped the update.
    pub updated: bool,
    /// The sum of the gradients across processes (zero on one process).
    pub reduce: ReduceStats,
}

/// Backward through `loss`, the gradients summed across processes under `dist`, and one update
/// at learning rate `lr`.
#[allow(clippy::too_many_arguments)]
pub fn optimisation_step(
    opt: &mut Optimizer,
    loss: &Tensor,
    lr: f64,
    cfg: StepConfig,
    scaler: Option<&mut LossScaler>,
    ema: Option<&mut Ema>,
    at: StepAt,
    dist: Option<StepDist<'_>>,
) -> Result<StepOutcome, TrainError> {
    let sync = dist.and_then(|d| d.sync_batchnorm);
    let mut outcome = StepOutcome::default();
    let mut backward = |opt: &mut Optimizer, loss: &Tensor| -> Result<(), TrainError> {
        opt.backward_with(loss, sync)?;
        if let Some(d) = dist {
            outcome.reduce = sum_gradients(d.comm, opt, BUCKET_BYTES)?;
        }
        Ok(())
    };
    match scaler {
        Some(scaler) => {
            backward(opt, &(loss * scaler.scale))?;
            if !scaler.unscale(opt)? {
                return Ok(outcome);
            }
        }
        None => backward(opt, loss)?,
    }
    if let Some(max) = cfg.clip_grad_norm {
        opt.clip_grad_norm(max)?;
    }
    opt.step(lr)?;
    if !opt.params_finite()? {
        return Err(TrainError::NonFiniteWeights {
            epoch: at.epoch,
            batch: at.batch,
        });
    }
    if let Some(ema) = ema {
        ema.update()?;
    }
    outcome.updated = true;
    Ok(outcome)
}
