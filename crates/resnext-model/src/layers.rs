//! Building blocks with torchvision's parameter names: a bias-free convolution and a BatchNorm
//! that keeps `num_batches_tracked` (Ioffe & Szegedy 2015, "Batch Normalization").
//!
//! Both follow the input's dtype: given a bf16 input, the fp32 master weights are cast to bf16
//! inside the forward (differentiably), which is mixed precision without an autocast context.

use crate::sync_bn::SyncBatchNorm;
use std::sync::Arc;
use tch::nn::{self, Init};
use tch::{Kind, TchError, Tensor};

/// A 2-D convolution without bias, weight named `weight`.
#[derive(Debug)]
pub struct Conv2d {
    pub weight: Tensor,
    /// Only after [`Conv2d::fold_batchnorm`]: torchvision's convolutions have none.
    pub bias: Option<Tensor>,
    stride: i64,
    padding: i64,
    groups: i64,
}

/// The shape of a convolution: input/output channels, kernel, stride, padding and groups.
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    pub in_channels: i64,
    pub out_channels: i64,
    pub kernel: i64,
    pub stride: i64,
    pub padding: i64,
    pub groups: i64,
}

impl ConvSpec {
    /// A 1×1 convolution.
    pub fn pointwise(in_channels: i64, out_channels: i64, stride: i64) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel: 1,
            stride,
            padding: 0,
            groups: 1,
        }
    }
    /// A 3×3 convolution with padding 1.
    pub fn grouped3x3(in_channels: i64, out_channels: i64, stride: i64, groups: i64) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel: 3,
            stride,
            padding: 1,
            groups,
        }
    }
}

/// Kaiming-normal, fan_out, ReLU gain: torchvision's initialisation of every ResNet conv.
pub const KAIMING_FAN_OUT: Init = Init::Kaiming {
    dist: nn::init::NormalOrUniform::Normal,
    fan: nn::init::FanInOut::FanOut,
    non_linearity: nn::init::NonLinearity::ReLU,
};

thread_local! {
    /// Set while [`crate::ResNeXt::new_zeroed`] builds a network whose weights will be loaded.
    static ZEROED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every initialisation replaced by zeros (a `memset`, not a random draw).
pub(crate) fn zeroed<T>(f: impl FnOnce() -> T) -> T {
    let before = ZEROED.with(|z| z.replace(true));
    let out = f();
    ZEROED.with(|z| z.set(before));
    out
}

/// `init`, or zeros inside [`zeroed`].
fn or_zeros(init: Init) -> Init {
    if ZEROED.with(|z| z.get()) {
        Init::Const(0.0)
    } else {
        init
    }
}

impl Conv2d {
    pub fn new(p: nn::Path, spec: ConvSpec) -> Self {
        let dims = [
            spec.out_channels,
            spec.in_channels / spec.groups,
            spec.kernel,
            spec.kernel,
        ];
        let weight = p.var("weight", &dims, or_zeros(KAIMING_FAN_OUT));
        Self {
            weight,
            bias: None,
            stride: spec.stride,
            padding: spec.padding,
            groups: spec.groups,
        }
    }

    pub fn forward(&self, xs: &Tensor) -> Result<Tensor, TchError> {
        let w = cast_like(&self.weight, xs)?;
        let b = self.bias.as_ref().map(|b| cast_like(b, xs)).transpose()?;
        xs.f_conv2d(
            &w,
            b.as_ref(),
            [self.stride; 2],
            [self.padding; 2],
            [1, 1],
            self.groups,
        )
    }

    /// Stride, padding and groups, as an exporter needs them.
    pub fn geometry(&self) -> (i64, i64, i64) {
        (self.stride, self.padding, self.groups)
    }

    /// Absorbs the eval-mode BatchNorm that follows this convolution: with
    /// s = γ / √(running_var + ε), the weight becomes w·s (per output channel) and the bias
    /// β − running_mean·s. The pair then computes what conv + BatchNorm did in eval mode, in one
    /// op. The weight is changed in place (in its variable store).
    pub fn fold_batchnorm(&mut self, bn: &BatchNorm2d) -> Result<(), TchError> {
        tch::no_grad(|| {
            let scale = bn
                .weight
                .f_div(&bn.running_var.f_add_scalar(BN_EPS)?.f_sqrt()?)?;
            let folded_w = self.weight.f_mul(&scale.f_view([-1, 1, 1, 1])?)?;
            let old_bias = match &self.bias {
                Some(b) => b.shallow_clone(),
                None => bn.running_mean.f_zeros_like()?,
            };
            let bias = bn
                .bias
                .f_add(&old_bias.f_sub(&bn.running_mean)?.f_mul(&scale)?)?;
            self.weight.f_copy_(&folded_w)?;
            self.bias = Some(bias);
            Ok(())
        })
    }
}

/// BatchNorm2d with eps 1e-5 and momentum 0.1, parameters `weight`, `bias` and buffers
/// `running_mean`, `running_var`, `num_batches_tracked` (int64, counted in train mode).
#[derive(Debug)]
pub struct BatchNorm2d {
    pub weight: Tensor,
    pub bias: Tensor,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub num_batches_tracked: Tensor,
    /// Train mode normalises with the statistics of all processes' batches (data-parallel
    /// training with `sync_batchnorm`).
    pub sync: Option<Arc<SyncBatchNorm>>,
}

pub const BN_EPS: f64 = 1e-5;
pub const BN_MOMENTUM: f64 = 0.1;

impl BatchNorm2d {
    pub fn new(p: nn::Path, channels: i64, zero_weight: bool) -> Self {
        let weight = p.var(
            "weight",
            &[channels],
            Init::Const(if zero_weight { 0.0 } else { 1.0 }),
        );
        let bias = p.var("bias", &[channels], Init::Const(0.0));
        let running_mean = p.zeros_no_train("running_mean", &[channels]);
        let running_var = p.ones_no_train("running_var", &[channels]);
        let num_batches_tracked = p.add(
            "num_batches_tracked",
            Tensor::zeros([], (Kind::Int64, p.device())),
            false,
        );
        Self {
            weight,
            bias,
            running_mean,
            running_var,
            num_batches_tracked,
            sync: None,
        }
    }

    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor, TchError> {
        if let (true, Some(sync)) = (train, &self.sync) {
            let state = crate::sync_bn::BnState {
                weight: &self.weight,
                bias: &self.bias,
                running_mean: &self.running_mean,
                running_var: &self.running_var,
                num_batches_tracked: &self.num_batches_tracked,
                eps: BN_EPS,
                momentum: BN_MOMENTUM,
            };
            return sync.forward(state, xs);
        }
        if train {
            tch::no_grad(|| {
                self.num_batches_tracked
                    .shallow_clone()
                    .f_add_scalar_(1)
                    .map(drop)
            })?;
        }
        // A float64 input over float32 parameters (ATen's batch_norm wants one dtype for both):
        // parameters and statistics in float64 for the call, the statistics copied back.
        // Otherwise as they are: ATen's CPU and CUDA batch_norm accept a bf16/fp16 input with
        // fp32 parameters and statistics, so the running statistics stay in fp32 under mixed
        // precision.
        let double = xs.kind() == Kind::Double && self.weight.kind() != Kind::Double;
        let [w, b, mean, var] = if double {
            let w = self.weight.f_to_kind(Kind::Double)?;
            let b = self.bias.f_to_kind(Kind::Double)?;
            let stats = |t: &Tensor| tch::no_grad(|| t.f_to_kind(Kind::Double));
            [w, b, stats(&self.running_mean)?, stats(&self.running_var)?]
        } else {
            [
                &self.weight,
                &self.bias,
                &self.running_mean,
                &self.running_var,
            ]
            .map(Tensor::shallow_clone)
        };
        let out = Tensor::f_batch_norm(
            xs,
            Some(&w),
            Some(&b),
            Some(&mean),
            Some(&var),
            train,
            BN_MOMENTUM,
            BN_EPS,
            true,
        )?;
        if double && train {
            tch::no_grad(|| -> Result<(), TchError> {
                self.running_mean.shallow_clone().f_copy_(&mean)?;
                self.running_var.shallow_clone().f_copy_(&var)
            })?;
        }
        Ok(out)
    }
}

/// A fully connected layer `fc` with PyTorch's default initialisation.
#[derive(Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Linear {
    pub fn new(p: nn::Path, in_features: i64, out_features: i64) -> Self {
        let bound = 1.0 / (in_features as f64).sqrt();
        let uniform = or_zeros(Init::Uniform {
            lo: -bound,
            up: bound,
        });
        let weight = p.var("weight", &[out_features, in_features], uniform);
        let bias = p.var("bias", &[out_features], uniform);
        Self { weight, bias }
    }

    pub fn forward(&self, xs: &Tensor) -> Result<Tensor, TchError> {
        let w = cast_like(&self.weight, xs)?;
        let b = cast_like(&self.bias, xs)?;
        xs.f_linear(&w, Some(&b))
    }
}

/// The weight in the input's floating dtype (a no-op when they agree).
fn cast_like(w: &Tensor, xs: &Tensor) -> Result<Tensor, TchError> {
    if w.kind() == xs.kind() {
        Ok(w.shallow_clone())
    } else {
        w.f_to_kind(xs.kind())
    }
}
