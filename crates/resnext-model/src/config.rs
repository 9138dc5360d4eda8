//! Model configuration: named presets of the ResNeXt/ResNet family and custom shapes
//! (Xie et al. 2017, "Aggregated Residual Transformations for Deep Neural Networks").

use crate::error::ModelError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A named architecture, or `Custom` for shapes given by hand (tiny test models).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    Resnext50_32x4d,
    Resnext101_32x8d,
    Resnext101_64x4d,
    Resnet50,
    Custom,
}

impl Arch {
    pub const ALL: [Arch; 5] = [
        Arch::Resnext50_32x4d,
        Arch::Resnext101_32x8d,
        Arch::Resnext101_64x4d,
        Arch::Resnet50,
        Arch::Custom,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Arch::Resnext50_32x4d => "resnext50_32x4d",
            Arch::Resnext101_32x8d => "resnext101_32x8d",
            Arch::Resnext101_64x4d => "resnext101_64x4d",
            Arch::Resnet50 => "resnet50",
            Arch::Custom => "custom",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        Arch::ALL
            .iter()
            .copied()
            .find(|a| a.name() == norm)
            .ok_or_else(|| ModelError::UnknownArch(s.to_string()))
    }
}

/// The full shape of a network of the family. Build one from a preset and change
/// `num_classes`, or fill in `layers` / `groups` / `width_per_group` for a custom one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub arch: Arch,
    /// Bottleneck blocks in each of the four stages.
    pub layers: [usize; 4],
    /// Cardinality: groups of the 3×3 convolution.
    pub groups: i64,
    /// Channels per group in the first stage (torchvision's `width_per_group`).
    pub width_per_group: i64,
    pub num_classes: i64,
    /// Start each block's last BatchNorm weight at zero (Goyal et al. 2017).
    #[serde(default)]
    pub zero_init_residual: bool,
}

impl ModelConfig {
    /// ResNeXt-50 (32×4d): the default.
    pub fn resnext50_32x4d(num_classes: i64) -> Self {
        Self::preset(Arch::Resnext50_32x4d, [3, 4, 6, 3], 32, 4, num_classes)
    }
    /// ResNeXt-101 (32×8d).
    pub fn resnext101_32x8d(num_classes: i64) -> Self {
        Self::preset(Arch::Resnext101_32x8d, [3, 4, 23, 3], 32, 8, num_classes)
    }
    /// ResNeXt-101 (64×4d).
    pub fn resnext101_64x4d(num_classes: i64) -> Self {
        Self::preset(Arch::Resnext101_64x4d, [3, 4, 23, 3], 64, 4, num_classes)
    }
    /// ResNet-50 (v1.5): a ResNeXt with one group of 64.
    pub fn resnet50(num_classes: i64) -> Self {
        Self::preset(Arch::Resnet50, [3, 4, 6, 3], 1, 64, num_classes)
    }
    /// A custom shape, e.g. `custom([1, 1, 1, 1], 4, 4, 3)` for a tiny test model.
    pub fn custom(layers: [usize; 4], groups: i64, width_per_group: i64, num_classes: i64) -> Self {
        Self::preset(Arch::Custom, layers, groups, width_per_group, num_classes)
    }

    /// The preset of a named architecture. `Custom` has no preset.
    pub fn from_arch(arch: Arch, num_classes: i64) -> Result<Self, ModelError> {
        Ok(match arch {
            Arch::Resnext50_32x4d => Self::resnext50_32x4d(num_classes),
            Arch::Resnext101_32x8d => Self::resnext101_32x8d(num_classes),
            Arch::Resnext101_64x4d => Self::resnext101_64x4d(num_classes),
            Arch::Resnet50 => Self::resnet50(num_classes),
            Arch::Custom => {
                return Err(ModelError::InvalidConfig(
                    "arch `custom` needs layers, groups and width_per_group".into(),
                ))
            }
        })
    }

    fn preset(
        arch: Arch,
        layers: [usize; 4],
        groups: i64,
        width_per_group: i64,
        num_classes: i64,
    ) -> Self {
        Self {
            arch,
            layers,
            groups,
            width_per_group,
            num_classes,
            zero_init_residual: false,
        }
    }

    /// Checks that the numbers describe a buildable network.
    pub fn validate(&self) -> Result<(), ModelError> {
        // a named architecture is its preset's shape: anything else is `custom`, and a file that
        // says otherwise would have exports and model cards claim the wrong network
        if self.arch != Arch::Custom {
            let preset = Self::from_arch(self.arch, self.num_classes)?;
            if (self.layers, self.groups, self.width_per_group)
                != (preset.layers, preset.groups, preset.width_per_group)
            {
                return Err(ModelError::InvalidConfig(format!(
                    "arch `{}` is layers {:?}, groups {}, width_per_group {}, not {:?}, {}, {}; a different shape is arch `custom`",
                    self.arch,
                    preset.layers,
                    preset.groups,
                    preset.width_per_group,
                    self.layers,
                    self.groups,
                    self.width_per_group
                )));
            }
        }
        if self.num_classes < 1 {
            return Err(ModelError::InvalidConfig(format!(
                "num_classes must be at least 1, got {}",
                self.num_classes
            )));
        }
        if self.groups < 1 || self.width_per_group < 1 {
            return Err(ModelError::InvalidConfig(format!(
                "groups and width_per_group must be positive, got {} and {}",
                self.groups, self.width_per_group
            )));
        }
        if self.layers.contains(&0) {
            return Err(ModelError::InvalidConfig(format!(
                "every stage needs at least one block, got layers {:?}",
                self.layers
            )));
        }
        if self.layers.iter().any(|&n| n > 200) || self.groups > 4096 || self.width_per_group > 4096
        {
            return Err(ModelError::InvalidConfig(
                "layers, groups or width_per_group implausibly large".into(),
            ));
        }
        let params = self.parameter_count();
        if params > Self::MAX_PARAMETERS {
            return Err(ModelError::InvalidConfig(format!(
                "the model would have {params} parameters ({:.1} GB in fp32); the limit is {} (fewer classes or a smaller architecture)",
                params as f64 * 4e-9,
                Self::MAX_PARAMETERS
            )));
        }
        Ok(())
    }

    /// The most parameters a model may have (4 GB of fp32 weights, before gradients and
    /// optimiser state): a request beyond it is an error, not an allocator abort.
    pub const MAX_PARAMETERS: u64 = 1_000_000_000;

    /// The number of trainable parameters, computed from the shapes alone (nothing allocated).
    pub fn parameter_count(&self) -> u64 {
        let expansion = crate::block::EXPANSION as u64;
        let (groups, wpg) = (
            self.groups.max(1) as u64,
            self.width_per_group.max(0) as u64,
        );
        let mut n = 3 * 64 * 49 + 2 * 64;
        let mut in_ch = 64u64;
        for (i, &blocks) in self.layers.iter().enumerate() {
            let planes = 64u64 << i;
            let width = (planes * wpg / 64) * groups;
            let out = planes * expansion;
            for b in 0..blocks as u64 {
                n += in_ch * width + 2 * width;
                n += width * (width / groups) * 9 + 2 * width;
                n += width * out + 2 * out;
                let stride = if i > 0 && b == 0 { 2 } else { 1 };
                if stride != 1 || in_ch != out {
                    n += in_ch * out + 2 * out;
                }
                in_ch = out;
            }
        }
        n + in_ch * self.num_classes.max(0) as u64 + self.num_classes.max(0) as u64
    }
}

#[cfg(test)]
mod parameter_tests {
    use super::*;

    #[test]
    fn parameter_counts_equal_torchvision_and_huge_requests_are_refused() {
        assert_eq!(
            ModelConfig::resnext50_32x4d(1000).parameter_count(),
            25_028_904
        );
        assert_eq!(
            ModelConfig::resnext101_32x8d(1000).parameter_count(),
            88_791_336
        );
        assert_eq!(
            ModelConfig::resnext101_64x4d(1000).parameter_count(),
            83_455_272
        );
        assert_eq!(ModelConfig::resnet50(1000).parameter_count(), 25_557_032);
        assert_eq!(
            ModelConfig::custom([1, 1, 1, 1], 4, 4, 3).parameter_count(),
            3_371_075
        );
        let e = ModelConfig::resnext50_32x4d(10_000_000)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("parameters"), "{e}");
        assert!(ModelConfig::custom([1, 1, 1, 1], 4096, 4096, 2)
            .validate()
            .is_err());
    }
}
