//! The per-sample pipeline, built from config, with torchvision's semantics: resize (exact size as
//! the original tutorial, or shorter side), center crop, RandomResizedCrop (Szegedy et al. 2015),
//! horizontal/vertical flips, TrivialAugmentWide (Müller and Hutter 2021) or RandAugment (Cubuk et
//! al. 2020), colour jitter, ImageNet normalisation and Random Erasing (Zhong et
//! al. 2020). Randomness comes from a stream keyed by (seed, epoch, sample index)
//! ([`crate::rng::stream`]), so the output does not depend on the thread count.
//!
//! - [`config`]: the configs and their validation;
//! - [`geometry`]: resize sizes, centre crop, RandomResizedCrop's box;
//! - [`autoaugment`]: TrivialAugmentWide and RandAugment, torchvision's operations on uint8;
//! - [`color`]: colour jitter;
//! - [`erasing`]: Random Erasing;
//! - this module: the pipeline that runs them.

pub mod autoaugment;
pub mod color;
pub mod config;
pub mod erasing;
pub mod geometry;
pub mod layout;

pub use autoaugment::{apply_op, AugmentOp, MagnitudeSpace};
pub use config::{
    ColorJitterConfig, EraseValue, RandAugmentConfig, RandomErasingConfig, RandomResizedCropConfig,
    TransformConfig, TrivialAugmentConfig,
};
pub use geometry::{center_crop, random_resized_crop_box, shorter_side_size};
pub use layout::Layout;

use crate::error::DataError;
use crate::resize::{resize_crop, CropBox};
use crate::rng::Rng;
use autoaugment::{rand_augment, trivial_augment};
use color::color_jitter;
use erasing::random_erasing;
use image::RgbImage;

/// A validated pipeline.
#[derive(Debug, Clone)]
pub struct Transform {
    config: TransformConfig,
    size: [u32; 2],
}

impl Transform {
    pub fn new(config: TransformConfig) -> Result<Self, DataError> {
        let size = config.validate()?;
        Ok(Self { config, size })
    }

    pub fn config(&self) -> &TransformConfig {
        &self.config
    }

    /// Output [height, width].
    pub fn size(&self) -> [u32; 2] {
        self.size
    }

    /// The random stream of one sample in one epoch.
    pub fn sample_rng(seed: u64, epoch: u64, index: u64) -> Rng {
        Rng::keyed(seed, &[crate::rng::stream::SAMPLE, epoch, index])
    }

    /// Geometric and colour stages on the 8-bit image.
    pub fn apply_u8(&self, img: &RgbImage, rng: &mut Rng) -> RgbImage {
        let c = &self.config;
        let [oh, ow] = self.size;
        let mut out = if let Some(rrc) = &c.random_resized_crop {
            let crop = random_resized_crop_box(img.width(), img.height(), rrc, rng);
            resize_crop(img, crop, ow, oh)
        } else {
            let resized = match (c.resize, c.resize_shorter) {
                (Some([h, w]), _) => resize_crop(img, CropBox::full(img), w, h),
                (None, Some(s)) => {
                    let (w, h) = shorter_side_size(img.width(), img.height(), s);
                    resize_crop(img, CropBox::full(img), w, h)
                }
                (None, None) => img.clone(),
            };
            match c.center_crop {
                Some([h, w]) => center_crop(&resized, w, h),
                None => resized,
            }
        };
        if rng_flip(rng, c.hflip) {
            image::imageops::flip_horizontal_in_place(&mut out);
        }
        if rng_flip(rng, c.vflip) {
            image::imageops::flip_vertical_in_place(&mut out);
        }
        if let Some(t) = &c.trivial_augment {
            trivial_augment(&mut out, t, rng);
        }
        if let Some(r) = &c.rand_augment {
            rand_augment(&mut out, r, rng);
        }
        if let Some(j) = &c.color_jitter {
            color_jitter(&mut out, j, rng);
        }
        out
    }

    /// Writes the normalised image into `dst` (3·H·W floats in `layout`), then applies Random
    /// Erasing there.
    pub fn write_f32(&self, img: &RgbImage, dst: &mut [f32], layout: Layout, rng: &mut Rng) {
        let (w, h) = (img.width() as usize, img.height() as usize);
        debug_assert_eq!(dst.len(), 3 * w * h);
        let c = &self.config;
        let scale: [f32; 3] = std::array::from_fn(|k| 1.0 / (255.0 * c.std[k]));
        let shift: [f32; 3] = std::array::from_fn(|k| -c.mean[k] / c.std[k]);
        let raw = img.as_raw();
        match layout {
            Layout::Nchw => {
                let plane = w * h;
                let (r, rest) = dst.split_at_mut(plane);
                let (g, b) = rest.split_at_mut(plane);
                for (i, px) in raw.chunks_exact(3).enumerate() {
                    r[i] = px[0] as f32 * scale[0] + shift[0];
                    g[i] = px[1] as f32 * scale[1] + shift[1];
                    b[i] = px[2] as f32 * scale[2] + shift[2];
                }
            }
            Layout::Nhwc => {
                for (o, px) in dst.chunks_exact_mut(3).zip(raw.chunks_exact(3)) {
                    o[0] = px[0] as f32 * scale[0] + shift[0];
                    o[1] = px[1] as f32 * scale[1] + shift[1];
                    o[2] = px[2] as f32 * scale[2] + shift[2];
                }
            }
        }
        if let Some(e) = &c.random_erasing {
            random_erasing(dst, (w, h, layout), e, rng, |rng| match e.value {
                EraseValue::Zero => 0.0,
                EraseValue::Random => rng.normal() as f32,
            });
        }
    }

    /// Writes the 8-bit image into `dst` (3·H·W bytes in `layout`), no normalisation.
    pub fn write_u8(&self, img: &RgbImage, dst: &mut [u8], layout: Layout, rng: &mut Rng) {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let raw = img.as_raw();
        match layout {
            Layout::Nhwc => dst.copy_from_slice(raw),
            Layout::Nchw => {
                let plane = w * h;
                for (i, px) in raw.chunks_exact(3).enumerate() {
                    dst[i] = px[0];
                    dst[plane + i] = px[1];
                    dst[2 * plane + i] = px[2];
                }
            }
        }
        if let Some(e) = &self.config.random_erasing {
            random_erasing(dst, (w, h, layout), e, rng, |_| 0);
        }
    }

    /// The rectangle of a `w`×`h` source image that the network input shows, as
    /// `[left, top, right, bottom]` in source pixels (it reaches past the image where a centre
    /// crop pads). Only deterministic pipelines have one; a random crop gives the whole image.
    pub fn view_region(&self, w: u32, h: u32) -> [f32; 4] {
        let c = &self.config;
        let full = [0.0, 0.0, w as f32, h as f32];
        if c.random_resized_crop.is_some() {
            return full;
        }
        let (rw, rh) = match (c.resize, c.resize_shorter) {
            (Some([rh, rw]), _) => (rw, rh),
            (None, Some(s)) => shorter_side_size(w, h, s),
            (None, None) => (w, h),
        };
        let Some([ch, cw]) = c.center_crop else {
            return full;
        };
        let top = ((rh as i64 - ch as i64) as f64 / 2.0).round_ties_even() as f32;
        let left = ((rw as i64 - cw as i64) as f64 / 2.0).round_ties_even() as f32;
        let (sx, sy) = (w as f32 / rw as f32, h as f32 / rh as f32);
        [
            left * sx,
            top * sy,
            (left + cw as f32) * sx,
            (top + ch as f32) * sy,
        ]
    }

    /// The whole pipeline for one decoded image, as a normalised CHW float vector.
    pub fn apply(&self, img: &RgbImage, rng: &mut Rng) -> Vec<f32> {
        let out = self.apply_u8(img, rng);
        let mut v = vec![0f32; 3 * out.width() as usize * out.height() as usize];
        self.write_f32(&out, &mut v, Layout::Nchw, rng);
        v
    }
}

fn rng_flip(rng: &mut Rng, p: f64) -> bool {
    p > 0.0 && rng.bernoulli(p)
}
