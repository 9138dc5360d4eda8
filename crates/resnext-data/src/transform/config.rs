//! Transform configs (TOML sections `[data.train_transform]`, `[data.eval_transform]`) and their
//! validation.

use crate::error::DataError;
use serde::{Deserialize, Serialize};

/// ImageNet's per-channel mean, on pixel values scaled to 0..1.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel standard deviation.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomResizedCropConfig {
    /// Output [height, width].
    pub size: [u32; 2],
    #[serde(default = "default_rrc_scale")]
    pub scale: [f64; 2],
    #[serde(default = "default_rrc_ratio")]
    pub ratio: [f64; 2],
}

fn default_rrc_scale() -> [f64; 2] {
    [0.08, 1.0]
}
fn default_rrc_ratio() -> [f64; 2] {
    [3.0 / 4.0, 4.0 / 3.0]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ColorJitterConfig {
    pub brightness: f64,
    pub contrast: f64,
    pub saturation: f64,
    /// At most 0.5.
    pub hue: f64,
}

/// What Random Erasing fills the rectangle with (in normalised space, as torchvision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EraseValue {
    #[default]
    Zero,
    Random,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RandomErasingConfig {
    pub p: f64,
    pub scale: [f64; 2],
    pub ratio: [f64; 2],
    pub value: EraseValue,
}

impl Default for RandomErasingConfig {
    fn default() -> Self {
        Self {
            p: 0.5,
            scale: [0.02, 0.33],
            ratio: [0.3, 3.3],
            value: EraseValue::Zero,
        }
    }
}

/// TrivialAugmentWide (torchvision's `TrivialAugmentWide`): one operation, drawn uniformly, at a
/// magnitude bin drawn uniformly, with the wide ranges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrivialAugmentConfig {
    /// Magnitude bins (torchvision's `num_magnitude_bins`), 2..=256.
    pub bins: u32,
}

impl Default for TrivialAugmentConfig {
    fn default() -> Self {
        Self { bins: 31 }
    }
}

/// RandAugment (torchvision's `RandAugment`): `n` operations drawn uniformly, each at magnitude
/// bin `m` of `bins`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RandAugmentConfig {
    /// Operations per image (torchvision's `num_ops`), 1..=16.
    pub n: u32,
    /// Magnitude bin (torchvision's `magnitude`), 0..=bins-1.
    pub m: u32,
    /// Magnitude bins (torchvision's `num_magnitude_bins`), 2..=256.
    pub bins: u32,
}

impl Default for RandAugmentConfig {
    fn default() -> Self {
        Self {
            n: 2,
            m: 9,
            bins: TrivialAugmentConfig::default().bins,
        }
    }
}

/// A transform pipeline. Stages run in this order: random_resized_crop, or resize then
/// center_crop; flips; trivial_augment or rand_augment; colour jitter; to float and normalise;
/// random erasing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransformConfig {
    /// Resize to exactly [height, width] (torchvision `Resize([h, w])`).
    pub resize: Option<[u32; 2]>,
    /// Resize so the shorter side has this length (torchvision `Resize(n)`).
    pub resize_shorter: Option<u32>,
    /// [height, width].
    pub center_crop: Option<[u32; 2]>,
    pub random_resized_crop: Option<RandomResizedCropConfig>,
    /// Probability of a horizontal flip.
    pub hflip: f64,
    pub vflip: f64,
    pub trivial_augment: Option<TrivialAugmentConfig>,
    pub rand_augment: Option<RandAugmentConfig>,
    pub color_jitter: Option<ColorJitterConfig>,
    pub random_erasing: Option<RandomErasingConfig>,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// No stage, ImageNet normalisation: what the keys a section leaves out take.
impl Default for TransformConfig {
    fn default() -> Self {
        Self {
            resize: None,
            resize_shorter: None,
            center_crop: None,
            random_resized_crop: None,
            hflip: 0.0,
            vflip: 0.0,
            trivial_augment: None,
            rand_augment: None,
            color_jitter: None,
            random_erasing: None,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }
}

impl TransformConfig {
    /// The original tutorial's transform (train and eval alike): resize to exactly size×size,
    /// ImageNet normalisation.
    pub fn resize_exact(size: u32) -> Self {
        Self {
            resize: Some([size, size]),
            ..Self::default()
        }
    }

    /// torchvision's reference training transform: RandomResizedCrop and horizontal flip.
    pub fn rrc_flip(size: u32) -> Self {
        Self {
            resize: None,
            random_resized_crop: Some(RandomResizedCropConfig {
                size: [size, size],
                scale: default_rrc_scale(),
                ratio: default_rrc_ratio(),
            }),
            hflip: 0.5,
            ..Self::resize_exact(size)
        }
    }

    /// The [height, width] every output has, or an error when it is not fixed.
    pub fn output_size(&self) -> Result<[u32; 2], DataError> {
        if let Some(rrc) = &self.random_resized_crop {
            if self.resize.is_some() || self.resize_shorter.is_some() || self.center_crop.is_some()
            {
                return Err(DataError::InvalidTransform(
                    "random_resized_crop replaces resize and center_crop; give one or the other"
                        .into(),
                ));
            }
            return Ok(rrc.size);
        }
        if self.resize.is_some() && self.resize_shorter.is_some() {
            return Err(DataError::InvalidTransform(
                "give resize or resize_shorter, not both".into(),
            ));
        }
        if let Some(c) = self.center_crop {
            return Ok(c);
        }
        if let Some(r) = self.resize {
            return Ok(r);
        }
        Err(DataError::InvalidTransform(
            "the output size is not fixed: set resize = [h, w], center_crop = [h, w] or random_resized_crop".into(),
        ))
    }

    pub fn validate(&self) -> Result<[u32; 2], DataError> {
        let size = self.output_size()?;
        let bad = |m: String| Err(DataError::InvalidTransform(m));
        let check_size = |s: [u32; 2], what: &str| -> Result<(), DataError> {
            if s[0] == 0 || s[1] == 0 || s[0] > 8192 || s[1] > 8192 {
                return Err(DataError::InvalidTransform(format!(
                    "{what} {s:?} must be between 1 and 8192"
                )));
            }
            Ok(())
        };
        check_size(size, "output size")?;
        if let Some(r) = self.resize {
            check_size(r, "resize")?;
        }
        if let Some(s) = self.resize_shorter {
            check_size([s, s], "resize_shorter")?;
        }
        let prob = |p: f64| (0.0..=1.0).contains(&p);
        if !prob(self.hflip) || !prob(self.vflip) {
            return bad(format!(
                "flip probabilities must be in [0, 1], got hflip {} vflip {}",
                self.hflip, self.vflip
            ));
        }
        if let Some(rrc) = &self.random_resized_crop {
            if !(rrc.scale[0] > 0.0 && rrc.scale[0] <= rrc.scale[1] && rrc.scale[1] <= 1.0) {
                return bad(format!(
                    "random_resized_crop scale {:?} must satisfy 0 < lo <= hi <= 1",
                    rrc.scale
                ));
            }
            if !(rrc.ratio[0] > 0.0 && rrc.ratio[0] <= rrc.ratio[1]) {
                return bad(format!(
                    "random_resized_crop ratio {:?} must satisfy 0 < lo <= hi",
                    rrc.ratio
                ));
            }
        }
        if self.trivial_augment.is_some() && self.rand_augment.is_some() {
            return bad("give trivial_augment or rand_augment, not both".into());
        }
        let check_bins = |bins: u32, stage: &str| {
            if (2..=256).contains(&bins) {
                Ok(())
            } else {
                Err(DataError::InvalidTransform(format!(
                    "{stage}.bins = {bins} must be between 2 and 256"
                )))
            }
        };
        if let Some(t) = &self.trivial_augment {
            check_bins(t.bins, "trivial_augment")?;
        }
        if let Some(r) = &self.rand_augment {
            check_bins(r.bins, "rand_augment")?;
            if !(1..=16).contains(&r.n) {
                return bad(format!(
                    "rand_augment.n = {} must be between 1 and 16 (operations per image)",
                    r.n
                ));
            }
            if r.m >= r.bins {
                return bad(format!(
                    "rand_augment.m = {} must be at most bins - 1 = {}",
                    r.m,
                    r.bins - 1
                ));
            }
        }
        if let Some(j) = &self.color_jitter {
            if [j.brightness, j.contrast, j.saturation, j.hue]
                .iter()
                .any(|v| !(v.is_finite() && *v >= 0.0))
                || j.hue > 0.5
            {
                return bad("color_jitter values must be non-negative, hue at most 0.5".into());
            }
        }
        if let Some(e) = &self.random_erasing {
            if !prob(e.p)
                || !(e.scale[0] > 0.0 && e.scale[0] <= e.scale[1] && e.scale[1] < 1.0)
                || !(e.ratio[0] > 0.0 && e.ratio[0] <= e.ratio[1])
            {
                return bad(format!(
                    "random_erasing p {} scale {:?} ratio {:?} out of range",
                    e.p, e.scale, e.ratio
                ));
            }
        }
        // Bounds keep 1/(255·std) and mean/std finite in f32 (a denormal std would not).
        if self.std.iter().any(|s| !(s.is_finite() && *s >= 1e-6))
            || self.mean.iter().any(|m| !(m.is_finite() && m.abs() <= 1e6))
        {
            return bad(format!(
                "std {:?} must be at least 1e-6 and mean {:?} finite, at most 1e6 in magnitude",
                self.std, self.mean
            ));
        }
        Ok(size)
    }

    /// True when the pipeline draws random numbers.
    pub fn is_random(&self) -> bool {
        self.random_resized_crop.is_some()
            || self.hflip > 0.0
            || self.vflip > 0.0
            || self.trivial_augment.is_some()
            || self.rand_augment.is_some()
            || self.color_jitter.is_some()
            || self.random_erasing.as_ref().is_some_and(|e| e.p > 0.0)
    }
}
