//! The ResNeXt classifier (Xie et al. 2017): stem, four stages of bottleneck blocks, global
//! average pooling and a linear head. `forward_t` returns logits; softmax belongs to the caller
//! (the original tutorial applied softmax inside the model before cross-entropy, a double softmax).

use crate::ablation::Ablation;
use crate::block::{BlockSpec, Bottleneck, EXPANSION};
use crate::config::ModelConfig;
use crate::error::ModelError;
use crate::layers::{BatchNorm2d, Conv2d, ConvSpec, Linear};
use crate::sync_bn::SyncBatchNorm;
use std::sync::Arc;
use tch::{nn, Kind, TchError, Tensor};

/// The layers of a network as an exporter sees them.
#[derive(Debug)]
pub struct NetworkParts<'a> {
    pub stem: (&'a Conv2d, Option<&'a BatchNorm2d>),
    pub stages: Vec<Vec<crate::block::BlockParts<'a>>>,
    pub fc: &'a Linear,
}

/// What a parameter is in the network: the classifier head's, a normalisation layer's, a bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ParamRole {
    pub head: bool,
    pub norm: bool,
    pub bias: bool,
}

impl ParamRole {
    /// A convolution's (or the head's) weight.
    pub const WEIGHT: ParamRole = ParamRole {
        head: false,
        norm: false,
        bias: false,
    };
    pub const BIAS: ParamRole = ParamRole {
        bias: true,
        ..Self::WEIGHT
    };
    /// A BatchNorm weight or bias.
    pub const NORM: ParamRole = ParamRole {
        norm: true,
        ..Self::WEIGHT
    };
    pub const HEAD: ParamRole = ParamRole {
        head: true,
        ..Self::WEIGHT
    };
}

/// Names of the four stages, as in torchvision.
pub const STAGES: [&str; 4] = ["layer1", "layer2", "layer3", "layer4"];

#[derive(Debug)]
pub struct ResNeXt {
    config: ModelConfig,
    conv1: Conv2d,
    bn1: BatchNorm2d,
    stages: Vec<Vec<Bottleneck>>,
    fc: Linear,
    ablation: Ablation,
    /// BatchNorm folded into the convolutions (inference only).
    folded: bool,
}

impl ResNeXt {
    /// Builds the network under `p` (use `vs.root()` for torchvision's names).
    pub fn new(p: &nn::Path, config: &ModelConfig) -> Result<Self, ModelError> {
        config.validate()?;
        let conv1 = Conv2d::new(
            p / "conv1",
            ConvSpec {
                in_channels: 3,
                out_channels: 64,
                kernel: 7,
                stride: 2,
                padding: 3,
                groups: 1,
            },
        );
        let bn1 = BatchNorm2d::new(p / "bn1", 64, false);
        let mut in_channels = 64;
        let mut stages = Vec::with_capacity(4);
        for (i, (&name, &blocks)) in STAGES.iter().zip(config.layers.iter()).enumerate() {
            let planes = 64 << i;
            let stage_path = p / name;
            let mut stage = Vec::with_capacity(blocks);
            for b in 0..blocks {
                let stride = if i > 0 && b == 0 { 2 } else { 1 };
                let spec = BlockSpec {
                    in_channels,
                    planes,
                    stride,
                    groups: config.groups,
                    width_per_group: config.width_per_group,
                    zero_init_residual: config.zero_init_residual,
                };
                stage.push(Bottleneck::new(&stage_path / b, spec));
                in_channels = planes * EXPANSION;
            }
            stages.push(stage);
        }
        let fc = Linear::new(p / "fc", in_channels, config.num_classes);
        Ok(Self {
            config: config.clone(),
            conv1,
            bn1,
            stages,
            fc,
            ablation: Ablation::default(),
            folded: false,
        })
    }

    /// Builds the network with every weight zero instead of randomly initialised: for a network
    /// whose weights are loaded next (prediction, export), where a random draw of every weight
    /// is time thrown away.
    pub fn new_zeroed(p: &nn::Path, config: &ModelConfig) -> Result<Self, ModelError> {
        crate::layers::zeroed(|| Self::new(p, config))
    }

    /// Skips BatchNorm and/or ReLU everywhere, for a diagnostic measurement of what the rest of
    /// a step costs (see [`Ablation`]); `Ablation::default()` restores the real network.
    pub fn set_ablation(&mut self, ablation: Ablation) {
        self.ablation = ablation;
        for block in self.stages.iter_mut().flatten() {
            block.set_ablation(ablation);
        }
    }

    /// Makes every BatchNorm normalise with the statistics of all processes' batches in train
    /// mode (see [`crate::sync_bn`]), or, with `None`, with this process's batch again.
    pub fn set_sync_batchnorm(&mut self, sync: Option<Arc<SyncBatchNorm>>) {
        self.bn1.sync = sync.clone();
        for block in self.stages.iter_mut().flatten() {
            for bn in block.batchnorms_mut() {
                bn.sync = sync.clone();
            }
        }
    }

    pub fn ablation(&self) -> Ablation {
        self.ablation
    }

    /// Folds every BatchNorm into the convolution before it (inference only: the weights in the
    /// variable store change, and training this network afterwards would be wrong). Logits in
    /// eval mode are unchanged up to rounding; the forward pass skips the BatchNorm ops.
    pub fn fold_batchnorm(&mut self) -> Result<(), TchError> {
        if self.folded {
            return Ok(());
        }
        self.conv1.fold_batchnorm(&self.bn1)?;
        for block in self.stages.iter_mut().flatten() {
            block.fold_batchnorm()?;
        }
        self.folded = true;
        Ok(())
    }

    pub fn is_folded(&self) -> bool {
        self.folded
    }

    /// The stem's convolution and BatchNorm (`None` once folded), the blocks of each stage and
    /// the head, for an exporter.
    pub fn parts(&self) -> NetworkParts<'_> {
        NetworkParts {
            stem: (&self.conv1, (!self.folded).then_some(&self.bn1)),
            stages: self
                .stages
                .iter()
                .map(|s| s.iter().map(Bottleneck::parts).collect())
                .collect(),
            fc: &self.fc,
        }
    }

    /// Every parameter tensor with what it is in the network, read from the structure (not
    /// from names): the optimiser decides weight decay, the head's learning rate and freezing
    /// from these.
    pub fn parameter_roles(&self) -> Vec<(Tensor, ParamRole)> {
        let mut out = Vec::new();
        let conv = |c: &Conv2d, bn: Option<&BatchNorm2d>, out: &mut Vec<(Tensor, ParamRole)>| {
            out.push((c.weight.shallow_clone(), ParamRole::WEIGHT));
            if let Some(b) = &c.bias {
                out.push((b.shallow_clone(), ParamRole::BIAS));
            }
            if let Some(bn) = bn {
                out.push((bn.weight.shallow_clone(), ParamRole::NORM));
                out.push((bn.bias.shallow_clone(), ParamRole::NORM));
            }
        };
        let parts = self.parts();
        conv(parts.stem.0, parts.stem.1, &mut out);
        for block in parts.stages.iter().flatten() {
            for (c, bn) in block.convs.iter().chain(&block.downsample) {
                conv(c, *bn, &mut out);
            }
        }
        out.push((parts.fc.weight.shallow_clone(), ParamRole::HEAD));
        out.push((
            parts.fc.bias.shallow_clone(),
            ParamRole {
                head: true,
                ..ParamRole::BIAS
            },
        ));
        out
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Stem: conv 7×7/2, BatchNorm, ReLU, max-pool 3×3/2.
    pub fn stem(&self, xs: &Tensor, train: bool) -> Result<Tensor, TchError> {
        let a = &Ablation {
            batchnorm: self.ablation.batchnorm || self.folded,
            ..self.ablation
        };
        a.relu_(a.batchnorm(&self.bn1, self.conv1.forward(xs)?, train)?)?
            .f_max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false)
    }

    /// One stage (0..4) of bottleneck blocks.
    pub fn stage(&self, index: usize, xs: &Tensor, train: bool) -> Result<Tensor, TchError> {
        let mut h = xs.shallow_clone();
        for block in &self.stages[index] {
            h = block.forward_t(&h, train)?;
        }
        Ok(h)
    }

    /// The last stage's feature map, `[N, 2048, H/32, W/32]` (used by Grad-CAM).
    pub fn features(&self, xs: &Tensor, train: bool) -> Result<Tensor, TchError> {
        let mut h = self.stem(xs, train)?;
        for i in 0..STAGES.len() {
            h = self.stage(i, &h, train)?;
        }
        Ok(h)
    }

    /// Global average pooling and the linear head; logits are returned in fp32 whatever the
    /// compute dtype.
    pub fn head(&self, features: &Tensor) -> Result<Tensor, TchError> {
        let pooled = features.f_adaptive_avg_pool2d([1, 1])?.f_flatten(1, -1)?;
        self.fc.forward(&pooled)?.f_to_kind(Kind::Float)
    }

    /// Logits of a batch; every libtorch error comes back as an `Err` (the library's paths use
    /// this, not the panicking [`nn::ModuleT`] form).
    pub fn f_forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor, TchError> {
        self.head(&self.features(xs, train)?)
    }
}

/// tch's module trait, for code written against it; it panics where [`ResNeXt::f_forward_t`]
/// returns an error, as tch's own modules do.
impl nn::ModuleT for ResNeXt {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match self.f_forward_t(xs, train) {
            Ok(t) => t,
            Err(e) => panic!("ResNeXt forward: {e}"),
        }
    }
}
