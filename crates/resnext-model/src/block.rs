//! The ResNeXt bottleneck block (Xie et al. 2017, Fig. 3c): 1×1 reduce, grouped 3×3 with the
//! stride (ResNet v1.5, as torchvision), 1×1 expand, and a projection shortcut `downsample` only
//! where the shape changes (He et al. 2016, option B).

use crate::ablation::Ablation;
use crate::layers::{BatchNorm2d, Conv2d, ConvSpec};
use tch::{nn, TchError, Tensor};

/// Output channels are `planes * EXPANSION`.
pub const EXPANSION: i64 = 4;

/// The shape of one bottleneck block.
#[derive(Debug, Clone, Copy)]
pub struct BlockSpec {
    pub in_channels: i64,
    pub planes: i64,
    pub stride: i64,
    pub groups: i64,
    pub width_per_group: i64,
    pub zero_init_residual: bool,
}

/// A block's layers as an exporter sees them.
#[derive(Debug)]
pub struct BlockParts<'a> {
    /// The three convolutions, each with its BatchNorm (`None` once folded).
    pub convs: [(&'a Conv2d, Option<&'a BatchNorm2d>); 3],
    pub downsample: Option<(&'a Conv2d, Option<&'a BatchNorm2d>)>,
}

#[derive(Debug)]
pub struct Bottleneck {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    conv3: Conv2d,
    bn3: BatchNorm2d,
    downsample: Option<(Conv2d, BatchNorm2d)>,
    ablation: Ablation,
    /// BatchNorm folded into the convolutions: the BatchNorms are skipped.
    folded: bool,
}

impl Bottleneck {
    pub fn new(p: nn::Path, s: BlockSpec) -> Self {
        // torchvision: width = int(planes * (base_width / 64.)) * groups
        let width = (s.planes * s.width_per_group / 64) * s.groups;
        let out = s.planes * EXPANSION;
        let conv1 = Conv2d::new(&p / "conv1", ConvSpec::pointwise(s.in_channels, width, 1));
        let bn1 = BatchNorm2d::new(&p / "bn1", width, false);
        let conv2 = Conv2d::new(
            &p / "conv2",
            ConvSpec::grouped3x3(width, width, s.stride, s.groups),
        );
        let bn2 = BatchNorm2d::new(&p / "bn2", width, false);
        let conv3 = Conv2d::new(&p / "conv3", ConvSpec::pointwise(width, out, 1));
        let bn3 = BatchNorm2d::new(&p / "bn3", out, s.zero_init_residual);
        let downsample = (s.stride != 1 || s.in_channels != out).then(|| {
            let d = &p / "downsample";
            (
                Conv2d::new(&d / "0", ConvSpec::pointwise(s.in_channels, out, s.stride)),
                BatchNorm2d::new(&d / "1", out, false),
            )
        });
        Self {
            conv1,
            bn1,
            conv2,
            bn2,
            conv3,
            bn3,
            downsample,
            ablation: Ablation::default(),
            folded: false,
        }
    }

    /// Folds every BatchNorm into the convolution before it, for inference (see
    /// [`Conv2d::fold_batchnorm`]).
    pub fn fold_batchnorm(&mut self) -> Result<(), TchError> {
        if self.folded {
            return Ok(());
        }
        self.conv1.fold_batchnorm(&self.bn1)?;
        self.conv2.fold_batchnorm(&self.bn2)?;
        self.conv3.fold_batchnorm(&self.bn3)?;
        if let Some((conv, bn)) = &mut self.downsample {
            conv.fold_batchnorm(bn)?;
        }
        self.folded = true;
        Ok(())
    }

    /// The block's layers, for an exporter: (conv1, bn1), (conv2, bn2), (conv3, bn3) and the
    /// projection shortcut; BatchNorms are `None` once folded.
    pub fn parts(&self) -> BlockParts<'_> {
        let bn = |b| (!self.folded).then_some(b);
        BlockParts {
            convs: [
                (&self.conv1, bn(&self.bn1)),
                (&self.conv2, bn(&self.bn2)),
                (&self.conv3, bn(&self.bn3)),
            ],
            downsample: self.downsample.as_ref().map(|(c, b)| (c, bn(b))),
        }
    }

    /// Every BatchNorm of the block, in forward order.
    pub(crate) fn batchnorms_mut(&mut self) -> Vec<&mut BatchNorm2d> {
        let mut v = vec![&mut self.bn1, &mut self.bn2, &mut self.bn3];
        if let Some((_, bn)) = &mut self.downsample {
            v.push(bn);
        }
        v
    }

    /// Skips BatchNorm and/or ReLU for a diagnostic measurement (see [`Ablation`]).
    pub fn set_ablation(&mut self, ablation: Ablation) {
        self.ablation = ablation;
    }

    /// ReLUs and the residual addition work in place, as torchvision's `inplace=True` modules
    /// do: BatchNorm's and addition's backward never read their outputs, and it saves one
    /// activation-sized tensor and one pass over it per ReLU.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor, TchError> {
        let a = &Ablation {
            batchnorm: self.ablation.batchnorm || self.folded,
            ..self.ablation
        };
        let h = a.relu_(a.batchnorm(&self.bn1, self.conv1.forward(xs)?, train)?)?;
        let h = a.relu_(a.batchnorm(&self.bn2, self.conv2.forward(&h)?, train)?)?;
        let mut h = a.batchnorm(&self.bn3, self.conv3.forward(&h)?, train)?;
        let h = match &self.downsample {
            Some((conv, bn)) => h.f_add_(&a.batchnorm(bn, conv.forward(xs)?, train)?)?,
            None => h.f_add_(xs)?,
        };
        a.relu_(h)
    }
}
