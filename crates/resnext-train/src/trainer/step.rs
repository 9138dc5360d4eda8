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

/// The weight of a micro-batch in the step's mean loss: the sum over its samples of
/// `Σ_c target_c · w_c` with class weights `w` (as [`crate::loss::weighted_soft_cross_entropy`]
/// weights its mean), or its number of samples without. A micro-batch's loss (its weighted
/// mean) times its weight over the step's total weight is its share of the step's loss.
pub fn loss_weight(soft: ndarray::ArrayView2<'_, f32>, class_weights: Option<&[f64]>) -> f64 {
    match class_weights {
        Some(w) => soft
            .rows()
            .into_iter()
            .map(|q| q.iter().zip(w).map(|(&p, &c)| p as f64 * c).sum::<f64>())
            .sum(),
        None => soft.nrows() as f64,
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

/// Backward through one micro-batch's `loss` (its share of the optimiser step's loss: gradient
/// accumulation sums the shares' gradients), multiplied by fp16's loss scale when there is one.
/// `accumulate` adds to the gradients of the micro-batches before it since the last step; the
/// first micro-batch of a step passes false. Nothing is summed across processes here: that is
/// once per step, in [`apply_step`].
pub fn micro_backward(
    opt: &mut Optimizer,
    loss: &Tensor,
    scaler: Option<&LossScaler>,
    sync: Option<&SyncBatchNorm>,
    accumulate: bool,
) -> Result<(), TrainError> {
    match scaler {
        Some(scaler) => opt.backward_into(&loss.f_mul_scalar(scaler.scale)?, sync, accumulate),
        None => opt.backward_into(loss, sync, accumulate),
    }
}

/// The update after a step's backward passes ([`micro_backward`]): the gradients summed across
/// processes under `dist` (once per step), fp16's unscaling and overflow check, clipping (once,
/// on the accumulated gradients), the update at learning rate `lr`, the finite-weights check
/// and the EMA update (once per step); fp16's loss scaler skips the update when the gradients
/// overflowed. What summing the gradients cost (nothing on one process).
pub fn apply_step(
    opt: &mut Optimizer,
    lr: f64,
    cfg: StepConfig,
    scaler: Option<&mut LossScaler>,
    ema: Option<&mut Ema>,
    at: StepAt,
    dist: Option<StepDist<'_>>,
) -> Result<ReduceStats, TrainError> {
    let reduce = match dist {
        Some(d) => sum_gradients(d.comm, opt, BUCKET_BYTES)?,
        None => ReduceStats::default(),
    };
    if let Some(scaler) = scaler {
        if !scaler.unscale(opt)? {
            return Ok(reduce);
        }
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
    Ok(reduce)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::weighted_soft_cross_entropy;
    use crate::optim::config::OptimSection;
    use tch::{nn, nn::Module, Device, Kind};

    /// The gradients of a linear model (no BatchNorm) after backward passes over `parts` of the
    /// rows, each weighted by its share of the whole, as the trainer weights micro-batches.
    fn grads_over(parts: &[std::ops::Range<usize>], class_weights: Option<&[f64]>) -> Vec<Tensor> {
        grads_scaled(parts, class_weights, None)
    }

    /// [`grads_over`] with fp16's loss scaling: each micro-batch's backward scaled, the
    /// accumulated gradients unscaled (and checked) once.
    fn grads_scaled(
        parts: &[std::ops::Range<usize>],
        class_weights: Option<&[f64]>,
        mut scaler: Option<LossScaler>,
    ) -> Vec<Tensor> {
        tch::manual_seed(7);
        let vs = nn::VarStore::new(Device::Cpu);
        let lin = nn::linear(vs.root() / "fc", 5, 3, Default::default());
        let params: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        let mut opt = Optimizer::new(&OptimSection::default(), params, &[]);
        let x = Tensor::randn([10, 5], (Kind::Float, Device::Cpu));
        // soft targets (as mixup makes them) and class weights
        let raw = Tensor::rand([10, 3], (Kind::Float, Device::Cpu));
        let targets = &raw / raw.sum_dim_intlist(1, true, Kind::Float);
        let soft: ndarray::Array2<f32> = ndarray::Array2::from_shape_vec(
            (10, 3),
            Vec::<f32>::try_from(targets.view(-1)).unwrap(),
        )
        .unwrap();
        let w = class_weights
            .map(|w| Tensor::from_slice(&w.iter().map(|&v| v as f32).collect::<Vec<_>>()));
        let weight = |r: &std::ops::Range<usize>| {
            loss_weight(soft.slice(ndarray::s![r.clone(), ..]), class_weights)
        };
        let total: f64 = parts.iter().map(weight).sum();
        for (i, r) in parts.iter().enumerate() {
            let (xs, ts) = (
                x.narrow(0, r.start as i64, r.len() as i64),
                targets.narrow(0, r.start as i64, r.len() as i64),
            );
            let loss =
                weighted_soft_cross_entropy(&lin.forward(&xs), &ts, 0.1, w.as_ref()).unwrap();
            let share = loss * (weight(r) / total);
            micro_backward(&mut opt, &share, scaler.as_ref(), None, i > 0).unwrap();
        }
        if let Some(s) = &mut scaler {
            assert!(s.unscale(&mut opt).unwrap(), "no overflow at this scale");
        }
        opt.active_grads_mut()
            .map(|(_, g)| g.as_ref().unwrap().copy())
            .collect()
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // one part: the big batch
    fn accumulated_micro_batches_give_the_big_batch_gradients() {
        for weights in [None, Some(&[1.0, 3.0, 0.5][..])] {
            let big = grads_over(&[0..10], weights);
            // four micro-batches of 3, 3, 3 and 1 (an epoch's last, smaller one)
            let micro = grads_over(&[0..3, 3..6, 6..9, 9..10], weights);
            assert_eq!(big.len(), 2);
            for (b, m) in big.iter().zip(&micro) {
                let diff = (b - m).abs().max().double_value(&[]);
                assert!(
                    diff < 1e-5,
                    "gradients differ by {diff} (class weights {weights:?})"
                );
                assert!(
                    b.abs().max().double_value(&[]) > 1e-3,
                    "a zero gradient tests nothing"
                );
            }
            // fp16's loss scale multiplies each micro-batch and is removed once, at the step
            let scaled = grads_scaled(
                &[0..3, 3..6, 6..9, 9..10],
                weights,
                Some(LossScaler::with_scale(1024.0)),
            );
            for (b, m) in big.iter().zip(&scaled) {
                let diff = (b - m).abs().max().double_value(&[]);
                assert!(diff < 1e-5, "scaled gradients differ by {diff}");
            }
            // without accumulating, only the last micro-batch's gradient would be left
            let last = grads_over(&[9..10], weights);
            let diff = (&big[0] - &last[0]).abs().max().double_value(&[]);
            assert!(diff > 1e-4, "the test cannot tell accumulation from none");
        }
    }
}
