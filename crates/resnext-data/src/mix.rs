//! Batch-level Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) with soft targets, as timm
//! does them: each batch is mixed with itself reversed, with λ ~ Beta(α, α).

use crate::error::DataError;
use crate::rng::Rng;
use crate::transform::Layout;
use ndarray::{Array2, Array4, Axis};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixConfig {
    /// Mixup's α; 0 turns Mixup off.
    #[serde(default)]
    pub mixup_alpha: f64,
    /// CutMix's α; 0 turns CutMix off.
    #[serde(default)]
    pub cutmix_alpha: f64,
    /// Probability that a batch is mixed at all.
    #[serde(default = "one")]
    pub prob: f64,
    /// With both on, the probability of CutMix rather than Mixup.
    #[serde(default = "half")]
    pub switch_prob: f64,
}

fn one() -> f64 {
    1.0
}
fn half() -> f64 {
    0.5
}

impl MixConfig {
    pub fn validate(&self) -> Result<(), DataError> {
        let bad = |key: &str, v: f64, domain: &str| {
            Err(DataError::InvalidLoader(format!(
                "data.mix.{key} must be {domain}, got {v}"
            )))
        };
        for (key, v) in [
            ("mixup_alpha", self.mixup_alpha),
            ("cutmix_alpha", self.cutmix_alpha),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(key, v, "a finite number >= 0");
            }
        }
        for (key, v) in [("prob", self.prob), ("switch_prob", self.switch_prob)] {
            if !(0.0..=1.0).contains(&v) {
                return bad(key, v, "in [0, 1]");
            }
        }
        Ok(())
    }

    pub fn enabled(&self) -> bool {
        self.prob > 0.0 && (self.mixup_alpha > 0.0 || self.cutmix_alpha > 0.0)
    }
}

/// One-hot targets.
pub fn one_hot(labels: &[usize], num_classes: usize) -> Array2<f32> {
    let mut t = Array2::zeros((labels.len(), num_classes));
    for (i, &l) in labels.iter().enumerate() {
        t[[i, l]] = 1.0;
    }
    t
}

/// Mixes `images` in place and returns the soft targets. `images` is [N, C, H, W] or
/// [N, H, W, C] per `layout`.
pub fn mix_batch(
    images: &mut Array4<f32>,
    layout: Layout,
    labels: &[usize],
    num_classes: usize,
    cfg: &MixConfig,
    rng: &mut Rng,
) -> Array2<f32> {
    let targets = one_hot(labels, num_classes);
    let n = labels.len();
    if n < 2 || !cfg.enabled() || !rng.bernoulli(cfg.prob) {
        return targets;
    }
    let use_cutmix = if cfg.mixup_alpha > 0.0 && cfg.cutmix_alpha > 0.0 {
        rng.bernoulli(cfg.switch_prob)
    } else {
        cfg.cutmix_alpha > 0.0
    };
    let reversed = images.slice(ndarray::s![..;-1, .., .., ..]).to_owned();
    let lam = if use_cutmix {
        let lam = rng.beta(cfg.cutmix_alpha, cfg.cutmix_alpha);
        let (h, w) = match layout {
            Layout::Nchw => (images.shape()[2], images.shape()[3]),
            Layout::Nhwc => (images.shape()[1], images.shape()[2]),
        };
        // timm's rand_bbox: a box of area (1 - λ), centred uniformly, clipped to the image.
        let cut = (1.0 - lam).sqrt();
        let (ch, cw) = ((h as f64 * cut) as i64, (w as f64 * cut) as i64);
        let cy = rng.below(h as u64) as i64;
        let cx = rng.below(w as u64) as i64;
        let y0 = (cy - ch / 2).clamp(0, h as i64) as usize;
        let y1 = (cy + ch / 2).clamp(0, h as i64) as usize;
        let x0 = (cx - cw / 2).clamp(0, w as i64) as usize;
        let x1 = (cx + cw / 2).clamp(0, w as i64) as usize;
        match layout {
            Layout::Nchw => images
                .slice_mut(ndarray::s![.., .., y0..y1, x0..x1])
                .assign(&reversed.slice(ndarray::s![.., .., y0..y1, x0..x1])),
            Layout::Nhwc => images
                .slice_mut(ndarray::s![.., y0..y1, x0..x1, ..])
                .assign(&reversed.slice(ndarray::s![.., y0..y1, x0..x1, ..])),
        }
        // λ corrected to the clipped box's real area
        1.0 - ((y1 - y0) * (x1 - x0)) as f64 / (h * w) as f64
    } else {
        let lam = rng.beta(cfg.mixup_alpha, cfg.mixup_alpha);
        let l = lam as f32;
        images.zip_mut_with(&reversed, |a, &b| *a = *a * l + b * (1.0 - l));
        lam
    };
    let l = lam as f32;
    let rev_targets = targets.slice(ndarray::s![..;-1, ..]).to_owned();
    let mut mixed = targets * l;
    mixed.scaled_add(1.0 - l, &rev_targets);
    debug_assert_eq!(mixed.len_of(Axis(0)), n);
    mixed
}
