//! Running a model over a dataset part in eval mode: per-sample logits and probabilities, the
//! mean cross-entropy, and optional test-time augmentation (the mean of the prediction and that
//! of the horizontally flipped image).

use crate::error::InferError;
use crate::precision::{prepare_input, with_autocast, Precision};
use crate::progress::Progress;
use resnext_data::Loader;
use resnext_model::ResNeXt;
use tch::{Device, Kind, Tensor};

/// Per-sample outputs in loader order.
#[derive(Debug, Clone, Default)]
pub struct Predictions {
    pub indices: Vec<usize>,
    pub labels: Vec<usize>,
    pub logits: Vec<Vec<f64>>,
    pub probs: Vec<Vec<f64>>,
    /// Mean cross-entropy of the (TTA-averaged) probabilities against the labels.
    pub loss: f64,
}

impl Predictions {
    pub fn accuracy(&self) -> f64 {
        if self.labels.is_empty() {
            return 0.0;
        }
        let correct = self
            .probs
            .iter()
            .zip(&self.labels)
            .filter(|(p, &y)| crate::metric::argmax(p) == y)
            .count();
        correct as f64 / self.labels.len() as f64
    }
}

/// How to run the network.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub device: Device,
    pub precision: Precision,
    pub channels_last: bool,
    pub tta: bool,
}

impl RunOptions {
    pub fn cpu() -> Self {
        Self {
            device: Device::Cpu,
            precision: Precision::Fp32,
            channels_last: false,
            tta: false,
        }
    }
}

/// Turns a float batch into an NCHW tensor.
pub fn batch_tensor(batch: &resnext_data::Batch) -> Result<Tensor, InferError> {
    let a = batch.f32().ok_or(InferError::BatchLayout("float pixels"))?;
    let shape: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
    let data = a
        .as_slice()
        .ok_or(InferError::BatchLayout("a contiguous buffer"))?;
    let t = Tensor::f_from_slice(data)?.f_view(shape.as_slice())?;
    Ok(match batch.layout {
        resnext_data::Layout::Nhwc => t.f_permute([0, 3, 1, 2])?,
        resnext_data::Layout::Nchw => t,
    })
}

/// Logits of one prepared input in eval mode (fp32 on the CPU).
pub fn logits(net: &ResNeXt, x: &Tensor, opts: RunOptions) -> Result<Tensor, InferError> {
    let x = prepare_input(
        x.shallow_clone(),
        opts.precision,
        opts.channels_last,
        opts.device,
    )?;
    let l =
        tch::no_grad(|| with_autocast(opts.precision, opts.device, || net.f_forward_t(&x, false)))?;
    Ok(l.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?)
}

/// Class probabilities of a prepared batch: the softmax of its logits (of `logits / temperature`
/// with temperature scaling), averaged with that of the horizontally flipped batch under TTA.
/// Returns (logits, probabilities); a non-finite value in either is an error, never a prediction.
pub fn logits_and_probs_at(
    net: &ResNeXt,
    x: &Tensor,
    opts: RunOptions,
    temperature: Option<f64>,
) -> Result<(Tensor, Tensor), InferError> {
    let scaled = |l: &Tensor| -> Result<Tensor, InferError> {
        let l = l.f_to_kind(Kind::Float)?;
        Ok(match temperature {
            Some(t) => l.f_div_scalar(t)?.f_softmax(1, Kind::Float)?,
            None => l.f_softmax(1, Kind::Float)?,
        })
    };
    let l = logits(net, x, opts)?;
    let mut probs = scaled(&l)?;
    if opts.tta {
        let flipped = scaled(&logits(net, &x.f_flip([3])?, opts)?)?;
        probs = (probs + flipped) / 2.0;
    }
    let finite = l.f_isfinite()?.f_all()?.f_int64_value(&[])? == 1
        && probs.f_isfinite()?.f_all()?.f_int64_value(&[])? == 1;
    if !finite {
        return Err(InferError::NonFiniteOutput);
    }
    Ok((l, probs))
}

/// Runs `net` over every batch of `loader`, epoch 0.
pub fn predict_loader(
    net: &ResNeXt,
    loader: &Loader,
    opts: RunOptions,
    progress: &dyn Progress,
) -> Result<Predictions, InferError> {
    let mut out = Predictions::default();
    let mut loss_sum = 0.0;
    progress.begin("evaluating", loader.num_samples());
    for batch in loader.epoch(0) {
        let batch = batch?;
        let x = batch_tensor(&batch)?;
        let (l, probs) = logits_and_probs_at(net, &x, opts, None)?;
        let labels =
            Tensor::f_from_slice(&batch.labels.iter().map(|&y| y as i64).collect::<Vec<_>>())?;
        let nll = if opts.tta {
            probs
                .f_clamp_min(1e-12)?
                .f_log()?
                .f_nll_loss(&labels, None::<Tensor>, tch::Reduction::Mean, -100)?
                .f_double_value(&[])?
        } else {
            cross_entropy(&l, &labels).f_double_value(&[])?
        };
        loss_sum += nll * batch.len() as f64;
        let l2: Vec<Vec<f64>> = Vec::<Vec<f64>>::try_from(l.to_kind(Kind::Double))?;
        let p2: Vec<Vec<f64>> = Vec::<Vec<f64>>::try_from(probs.to_kind(Kind::Double))?;
        out.logits.extend(l2);
        out.probs.extend(p2);
        out.labels.extend(batch.labels.iter().copied());
        out.indices.extend(batch.indices.iter().copied());
        progress.advance(batch.len());
    }
    progress.end();
    out.loss = if out.labels.is_empty() {
        0.0
    } else {
        loss_sum / out.labels.len() as f64
    };
    Ok(out)
}

/// The mean cross-entropy of `logits` against hard `labels` (the validation and test loss).
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits.to_kind(Kind::Float).cross_entropy_for_logits(labels)
}
