//! Running a model over a dataset part in eval mode: per-sample logits and probabilities, the
//! mean cross-entropy, and optional test-time augmentation (the mean of the prediction and that
//! of the horizontally flipped image).

use crate::config::Precision;
use crate::error::TrainError;
use crate::loss::cross_entropy;
use crate::precision::{prepare_input, with_autocast};
use resnext_data::Loader;
use resnext_model::ResNeXt;
use tch::nn::ModuleT;
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
pub fn batch_tensor(batch: &resnext_data::Batch) -> Result<Tensor, TrainError> {
    let a = batch
        .f32()
        .ok_or_else(|| TrainError::Invalid("the loader must yield float batches".into()))?;
    let shape: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
    let data = a
        .as_slice()
        .ok_or_else(|| TrainError::Invalid("batch not contiguous".into()))?;
    let t = Tensor::from_slice(data).view(shape.as_slice());
    Ok(match batch.layout {
        resnext_data::Layout::Nhwc => t.permute([0, 3, 1, 2]),
        resnext_data::Layout::Nchw => t,
    })
}

/// Logits of one prepared input in eval mode (fp32 on the CPU).
pub fn logits(net: &ResNeXt, x: &Tensor, opts: RunOptions) -> Tensor {
    let x = prepare_input(
        x.shallow_clone(),
        opts.precision,
        opts.channels_last,
        opts.device,
    );
    tch::no_grad(|| with_autocast(opts.precision, opts.device, || net.forward_t(&x, false)))
        .to_kind(Kind::Float)
        .to_device(Device::Cpu)
}

/// Runs `net` over every batch of `loader`, epoch 0.
pub fn predict(
    net: &ResNeXt,
    loader: &Loader,
    opts: RunOptions,
) -> Result<Predictions, TrainError> {
    let mut out = Predictions::default();
    let mut loss_sum = 0.0;
    for batch in loader.epoch(0) {
        let batch = batch?;
        let x = batch_tensor(&batch)?;
        let l = logits(net, &x, opts);
        let mut probs = l.softmax(1, Kind::Float);
        if opts.tta {
            let flipped = logits(net, &x.flip([3]), opts).softmax(1, Kind::Float);
            probs = (probs + flipped) / 2.0;
        }
        let labels =
            Tensor::from_slice(&batch.labels.iter().map(|&y| y as i64).collect::<Vec<_>>());
        let nll = if opts.tta {
            probs
                .clamp_min(1e-12)
                .log()
                .nll_loss(&labels)
                .double_value(&[])
        } else {
            cross_entropy(&l, &labels).double_value(&[])
        };
        loss_sum += nll * batch.len() as f64;
        let l2: Vec<Vec<f64>> = Vec::<Vec<f64>>::try_from(l.to_kind(Kind::Double))?;
        let p2: Vec<Vec<f64>> = Vec::<Vec<f64>>::try_from(probs.to_kind(Kind::Double))?;
        out.logits.extend(l2);
        out.probs.extend(p2);
        out.labels.extend(batch.labels.iter().copied());
        out.indices.extend(batch.indices.iter().copied());
    }
    out.loss = if out.labels.is_empty() {
        0.0
    } else {
        loss_sum / out.labels.len() as f64
    };
    Ok(out)
}
