//! Synchronised BatchNorm for data-parallel training: in train mode every BatchNorm normalises
//! with the statistics of the *global* batch (all processes' samples), forward and backward, as
//! PyTorch's `SyncBatchNorm` does. The network is then the same function of the global batch at
//! any number of processes.
//!
//! tch has no custom autograd functions, so the backward is done in segments. In the forward pass
//! each BatchNorm computes the global mean and variance (one sum over processes), normalises
//! without autograd, and hands on `x̂·γ + β` where `x̂` is a fresh leaf: the graph is cut at every
//! `x̂`. [`SyncBatchNorm::backward`] then walks the cuts from the last to the first:
//!
//! 1. the loss's backward fills the gradients of the parameters and of the cuts after the last
//!    BatchNorm;
//! 2. at each cut, in reverse creation order (every consumer of a cut was created after it, so its
//!    gradient is complete by then), the BatchNorm backward of the global batch,
//!    `∂x = σ⁻¹·(g − mean(g) − x̂·mean(g·x̂))` with `g = ∂x̂` and both means over all processes
//!    (a second sum over processes), is sent back into the segment before the cut.
//!
//! The graph is kept (`keep_graph`) across the segments, since a block's input feeds two cuts
//! (its first convolution and its shortcut); it goes when the step's tensors do.
//!
//! The sums across processes come from a [`StatsReducer`]; one process (a reducer that leaves the
//! values as they are) gives ordinary train-mode BatchNorm.

use std::sync::{Arc, Mutex};
use tch::{Kind, TchError, Tensor};

/// Sums values over every process of the group (in place), the same call on every process in
/// the same order.
pub trait StatsReducer: Send + Sync {
    fn sum(&self, values: &mut [f64]) -> Result<(), TchError>;
}

/// What the backward needs of one BatchNorm call.
struct Cut {
    /// The BatchNorm's input, still attached to the graph before it.
    input: Tensor,
    /// The normalised input, a leaf of the graph after it.
    xhat: Tensor,
    /// 1/σ per channel, [1, C, 1, 1] in the compute dtype ([`compute_kind`]).
    invstd: Tensor,
    /// Values per channel over the global batch.
    count: f64,
}

/// What a synchronised forward needs of the BatchNorm it stands in for: the affine parameters,
/// the running statistics it updates, and the constants (the layer passes them, so this file
/// does not depend on the layer's).
pub(crate) struct BnState<'a> {
    pub weight: &'a Tensor,
    pub bias: &'a Tensor,
    pub running_mean: &'a Tensor,
    pub running_var: &'a Tensor,
    pub num_batches_tracked: &'a Tensor,
    pub eps: f64,
    pub momentum: f64,
}

/// The BatchNorms of one network sharing a reducer; the cuts of the current step.
pub struct SyncBatchNorm {
    reducer: Arc<dyn StatsReducer>,
    tape: Mutex<Vec<Cut>>,
}

impl std::fmt::Debug for SyncBatchNorm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncBatchNorm").finish_non_exhaustive()
    }
}

fn tape_error() -> TchError {
    TchError::Torch("the synchronised BatchNorm's record was poisoned by a panic".into())
}

/// A [1, C, 1, 1] view for broadcasting per-channel values over NCHW.
fn per_channel(t: &Tensor) -> Result<Tensor, TchError> {
    t.f_view([1, -1, 1, 1])
}

/// The dtype BatchNorm computes in: float64 for a float64 input, float32 for every other (the
/// statistics of bf16/fp16 activations in fp32, as ATen's batch_norm).
fn compute_kind(t: &Tensor) -> Kind {
    if t.kind() == Kind::Double {
        Kind::Double
    } else {
        Kind::Float
    }
}

/// `v` as a tensor of `kind` on `device`.
fn tensor_of(v: &[f64], kind: Kind, device: tch::Device) -> Result<Tensor, TchError> {
    Tensor::f_from_slice(v)?
        .f_to_kind(kind)?
        .f_to_device(device)
}

/// Per-channel sums of `t` ([N, C, H, W]) in f64, as a Vec.
fn channel_sums(t: &Tensor) -> Result<Vec<f64>, TchError> {
    let s = t.f_sum_dim_intlist([0i64, 2, 3].as_slice(), false, Kind::Double)?;
    Vec::<f64>::try_from(&s)
}

impl SyncBatchNorm {
    pub fn new(reducer: Arc<dyn StatsReducer>) -> Arc<Self> {
        Arc::new(Self {
            reducer,
            tape: Mutex::new(Vec::new()),
        })
    }

    /// Forgets the cuts of a step whose backward did not run (an error or a skipped step).
    pub fn clear(&self) {
        if let Ok(mut t) = self.tape.lock() {
            t.clear();
        }
    }

    /// Train-mode BatchNorm of `xs` with the statistics of the global batch; updates the running
    /// statistics with them (the unbiased variance, as PyTorch).
    pub(crate) fn forward(&self, bn: BnState<'_>, xs: &Tensor) -> Result<Tensor, TchError> {
        let size = xs.size();
        if size.len() != 4 {
            return Err(TchError::Shape(format!(
                "synchronised BatchNorm takes NCHW input, got {size:?}"
            )));
        }
        let c = size[1] as usize;
        let local = (size[0] * size[2] * size[3]) as f64;
        let kind = compute_kind(xs);
        let x = xs.f_detach()?.f_to_kind(kind)?;
        let mut stats = channel_sums(&x)?;
        stats.extend(channel_sums(&x.f_square()?)?);
        stats.push(local);
        self.reducer.sum(&mut stats)?;
        let count = stats[2 * c];
        if count < 2.0 {
            return Err(TchError::Shape(format!(
                "BatchNorm needs more than one value per channel over all processes, got {count}"
            )));
        }
        let mean: Vec<f64> = stats[..c].iter().map(|s| s / count).collect();
        let var: Vec<f64> = stats[c..2 * c]
            .iter()
            .zip(&mean)
            .map(|(sq, m)| (sq / count - m * m).max(0.0))
            .collect();
        let mean_t = tensor_of(&mean, kind, xs.device())?;
        let var_t = tensor_of(&var, kind, xs.device())?;
        let invstd = per_channel(&var_t.f_add_scalar(bn.eps)?.f_rsqrt()?)?;
        let xhat = tch::no_grad(|| x.f_sub(&per_channel(&mean_t)?)?.f_mul(&invstd))?;
        tch::no_grad(|| -> Result<(), TchError> {
            let unbiased = var_t.f_mul_scalar(count / (count - 1.0))?;
            let m = bn.momentum;
            let stats_kind = bn.running_mean.kind();
            for (running, batch) in [(bn.running_mean, &mean_t), (bn.running_var, &unbiased)] {
                running
                    .shallow_clone()
                    .f_mul_scalar_(1.0 - m)?
                    .f_add_(&batch.f_mul_scalar(m)?.f_to_kind(stats_kind)?)
                    .map(drop)?;
            }
            bn.num_batches_tracked
                .shallow_clone()
                .f_add_scalar_(1)
                .map(drop)
        })?;
        let xhat = xhat.f_set_requires_grad(true)?;
        let out = xhat
            .f_mul(&per_channel(&bn.weight.f_to_kind(kind)?)?)?
            .f_add(&per_channel(&bn.bias.f_to_kind(kind)?)?)?
            .f_to_kind(xs.kind())?;
        self.tape.lock().map_err(|_| tape_error())?.push(Cut {
            input: xs.shallow_clone(),
            xhat,
            invstd,
            count,
        });
        Ok(out)
    }

    /// The gradients of `loss` with respect to `params` (undefined tensors for parameters the
    /// loss does not reach), through the BatchNorm cuts of the forward pass since the last call,
    /// with the cross-process terms. Every process must call it after the same forward.
    pub fn backward(&self, loss: &Tensor, params: &[&Tensor]) -> Result<Vec<Tensor>, TchError> {
        let cuts = std::mem::take(&mut *self.tape.lock().map_err(|_| tape_error())?);
        let leaves: Vec<&Tensor> = cuts.iter().map(|c| &c.xhat).collect();
        let mut param_grads: Vec<Option<Tensor>> = params.iter().map(|_| None).collect();
        let mut leaf_grads: Vec<Option<Tensor>> = cuts.iter().map(|_| None).collect();
        // One backward of `root` into the parameters and the cuts before `upto`.
        let mut propagate = |root: &Tensor,
                             upto: usize,
                             leaf_grads: &mut Vec<Option<Tensor>>|
         -> Result<(), TchError> {
            let mut inputs: Vec<&Tensor> = params.to_vec();
            inputs.extend(&leaves[..upto]);
            let grads = Tensor::f_run_backward(&[root], &inputs, true, false)?;
            let (pg, lg) = grads.split_at(params.len());
            for (acc, g) in param_grads.iter_mut().zip(pg) {
                accumulate(acc, g)?;
            }
            for (acc, g) in leaf_grads.iter_mut().zip(lg) {
                accumulate(acc, g)?;
            }
            Ok(())
        };
        propagate(loss, cuts.len(), &mut leaf_grads)?;
        for j in (0..cuts.len()).rev() {
            let cut = &cuts[j];
            let Some(g) = leaf_grads[j].take() else {
                // nothing after this BatchNorm reaches the loss; the other processes agree,
                // since every process runs the same graph
                let c = cut.xhat.size()[1] as usize;
                let mut zeros = vec![0.0; 2 * c];
                self.reducer.sum(&mut zeros)?;
                continue;
            };
            let kind = compute_kind(&g);
            let g = g.f_to_kind(kind)?;
            let c = g.size()[1] as usize;
            let mut sums = channel_sums(&g)?;
            sums.extend(channel_sums(&g.f_mul(&cut.xhat.f_detach()?)?)?);
            self.reducer.sum(&mut sums)?;
            let mean_g: Vec<f64> = sums[..c].iter().map(|s| s / cut.count).collect();
            let mean_gx: Vec<f64> = sums[c..].iter().map(|s| s / cut.count).collect();
            let t = |v: &[f64]| per_channel(&tensor_of(v, kind, g.device())?);
            let grad_in = tch::no_grad(|| -> Result<Tensor, TchError> {
                g.f_sub(&t(&mean_g)?)?
                    .f_sub(&cut.xhat.f_detach()?.f_mul(&t(&mean_gx)?)?)?
                    .f_mul(&cut.invstd)?
                    .f_to_kind(cut.input.kind())
            })?;
            if !cut.input.requires_grad() {
                continue;
            }
            // Σ input·∂input has ∂input as its gradient with respect to the input.
            let root = cut.input.f_mul(&grad_in)?.f_sum(kind)?;
            propagate(&root, j, &mut leaf_grads)?;
        }
        Ok(param_grads
            .into_iter()
            .map(|g| g.unwrap_or_else(Tensor::new))
            .collect())
    }
}

fn accumulate(acc: &mut Option<Tensor>, g: &Tensor) -> Result<(), TchError> {
    if !g.defined() {
        return Ok(());
    }
    *acc = Some(match acc.take() {
        Some(a) => a.f_add(g)?,
        None => g.shallow_clone(),
    });
    Ok(())
}
