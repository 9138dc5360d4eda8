//! The per-sample pipeline, built from config, with torchvision's semantics: resize (exact size as
//! the original tutorial, or shorter side), center crop, RandomResizedCrop (Szegedy et al. 2015),
//! horizontal/vertical flips, colour jitter, ImageNet normalisation and Random Erasing (Zhong et
//! al. 2020). Randomness comes from a stream keyed by (seed, epoch, sample index), so the output
//! does not depend on the thread count.

use crate::error::DataError;
use crate::resize::{resize_crop, CropBox};
use crate::rng::Rng;
use crate::{IMAGENET_MEAN, IMAGENET_STD};
use image::RgbImage;
use serde::{Deserialize, Serialize};

/// Memory layout of an image in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Channels first, as PyTorch's default.
    #[default]
    Nchw,
    /// Channels last.
    Nhwc,
}

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
#[serde(deny_unknown_fields)]
pub struct ColorJitterConfig {
    #[serde(default)]
    pub brightness: f64,
    #[serde(default)]
    pub contrast: f64,
    #[serde(default)]
    pub saturation: f64,
    /// At most 0.5.
    #[serde(default)]
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
#[serde(deny_unknown_fields)]
pub struct RandomErasingConfig {
    #[serde(default = "default_erase_p")]
    pub p: f64,
    #[serde(default = "default_erase_scale")]
    pub scale: [f64; 2],
    #[serde(default = "default_erase_ratio")]
    pub ratio: [f64; 2],
    #[serde(default)]
    pub value: EraseValue,
}

fn default_erase_p() -> f64 {
    0.5
}
fn default_erase_scale() -> [f64; 2] {
    [0.02, 0.33]
}
fn default_erase_ratio() -> [f64; 2] {
    [0.3, 3.3]
}

/// A transform pipeline. Stages run in this order: random_resized_crop, or resize then
/// center_crop; flips; colour jitter; to float and normalise; random erasing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformConfig {
    /// Resize to exactly [height, width] (torchvision `Resize([h, w])`).
    #[serde(default)]
    pub resize: Option<[u32; 2]>,
    /// Resize so the shorter side has this length (torchvision `Resize(n)`).
    #[serde(default)]
    pub resize_shorter: Option<u32>,
    /// [height, width].
    #[serde(default)]
    pub center_crop: Option<[u32; 2]>,
    #[serde(default)]
    pub random_resized_crop: Option<RandomResizedCropConfig>,
    /// Probability of a horizontal flip.
    #[serde(default)]
    pub hflip: f64,
    #[serde(default)]
    pub vflip: f64,
    #[serde(default)]
    pub color_jitter: Option<ColorJitterConfig>,
    #[serde(default)]
    pub random_erasing: Option<RandomErasingConfig>,
    #[serde(default = "default_mean")]
    pub mean: [f32; 3],
    #[serde(default = "default_std")]
    pub std: [f32; 3],
}

fn default_mean() -> [f32; 3] {
    IMAGENET_MEAN
}
fn default_std() -> [f32; 3] {
    IMAGENET_STD
}

impl TransformConfig {
    /// The original tutorial's transform (train and eval alike): resize to exactly size×size,
    /// ImageNet normalisation.
    pub fn resize_exact(size: u32) -> Self {
        Self {
            resize: Some([size, size]),
            resize_shorter: None,
            center_crop: None,
            random_resized_crop: None,
            hflip: 0.0,
            vflip: 0.0,
            color_jitter: None,
            random_erasing: None,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
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
            || self.color_jitter.is_some()
            || self.random_erasing.as_ref().is_some_and(|e| e.p > 0.0)
    }
}

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
        Rng::keyed(seed, &[0x7a, epoch, index])
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
            random_erasing(dst, w, h, layout, e, rng);
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
            if let Some((top, left, eh, ew)) = erase_box(w, h, e, rng) {
                for y in top..top + eh {
                    for x in left..left + ew {
                        for k in 0..3 {
                            let i = index(layout, w, h, y, x, k);
                            dst[i] = 0;
                        }
                    }
                }
            }
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

/// torchvision's `_compute_resized_output_size` for an int size: (width, height).
pub fn shorter_side_size(w: u32, h: u32, size: u32) -> (u32, u32) {
    if w <= h {
        (size, ((size as u64 * h as u64) / w as u64) as u32)
    } else {
        (((size as u64 * w as u64) / h as u64) as u32, size)
    }
}

/// torchvision's center crop: offsets rounded half to even, zero padding where the image is
/// smaller than the crop.
pub fn center_crop(img: &RgbImage, cw: u32, ch: u32) -> RgbImage {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let top = ((h - ch as i64) as f64 / 2.0).round_ties_even() as i64;
    let left = ((w - cw as i64) as f64 / 2.0).round_ties_even() as i64;
    let mut out = RgbImage::new(cw, ch);
    for y in 0..ch as i64 {
        let sy = y + top;
        if sy < 0 || sy >= h {
            continue;
        }
        for x in 0..cw as i64 {
            let sx = x + left;
            if sx >= 0 && sx < w {
                out.put_pixel(x as u32, y as u32, *img.get_pixel(sx as u32, sy as u32));
            }
        }
    }
    out
}

/// torchvision's `RandomResizedCrop.get_params`.
pub fn random_resized_crop_box(
    width: u32,
    height: u32,
    c: &RandomResizedCropConfig,
    rng: &mut Rng,
) -> CropBox {
    let (w_f, h_f) = (width as f64, height as f64);
    let area = w_f * h_f;
    let (lr0, lr1) = (c.ratio[0].ln(), c.ratio[1].ln());
    for _ in 0..10 {
        let target_area = area * rng.range(c.scale[0], c.scale[1]);
        let aspect = rng.range(lr0, lr1).exp();
        let w = (target_area * aspect).sqrt().round_ties_even() as i64;
        let h = (target_area / aspect).sqrt().round_ties_even() as i64;
        if 0 < w && w <= width as i64 && 0 < h && h <= height as i64 {
            let top = rng.int_inclusive(0, height as i64 - h);
            let left = rng.int_inclusive(0, width as i64 - w);
            return CropBox {
                left: left as u32,
                top: top as u32,
                width: w as u32,
                height: h as u32,
            };
        }
    }
    let in_ratio = w_f / h_f;
    let (w, h) = if in_ratio < c.ratio[0] {
        (
            width,
            ((w_f / c.ratio[0]).round_ties_even() as u32).clamp(1, height),
        )
    } else if in_ratio > c.ratio[1] {
        (
            ((h_f * c.ratio[1]).round_ties_even() as u32).clamp(1, width),
            height,
        )
    } else {
        (width, height)
    };
    CropBox {
        left: (width - w) / 2,
        top: (height - h) / 2,
        width: w,
        height: h,
    }
}

fn blend(a: f32, b: f32, factor: f32) -> u8 {
    // PIL's Image.blend(degenerate, image, factor) = degenerate + factor * (image - degenerate)
    (a + factor * (b - a)).round().clamp(0.0, 255.0) as u8
}

fn luma(p: &[u8]) -> f32 {
    // PIL's L conversion: R*299/1000 + G*587/1000 + B*114/1000
    (p[0] as f32 * 299.0 + p[1] as f32 * 587.0 + p[2] as f32 * 114.0) / 1000.0
}

/// torchvision's ColorJitter on PIL images: the four adjustments in a random order, each factor
/// uniform in [max(0, 1 - v), 1 + v] (hue: shift uniform in [-v, v]).
fn color_jitter(img: &mut RgbImage, j: &ColorJitterConfig, rng: &mut Rng) {
    let mut order = [0usize, 1, 2, 3];
    rng.shuffle(&mut order);
    let factor = |rng: &mut Rng, v: f64| rng.range((1.0 - v).max(0.0), 1.0 + v) as f32;
    let b = (j.brightness > 0.0).then(|| factor(rng, j.brightness));
    let c = (j.contrast > 0.0).then(|| factor(rng, j.contrast));
    let s = (j.saturation > 0.0).then(|| factor(rng, j.saturation));
    let h = (j.hue > 0.0).then(|| rng.range(-j.hue, j.hue) as f32);
    for op in order {
        match op {
            0 => {
                if let Some(f) = b {
                    for v in img.iter_mut() {
                        *v = blend(0.0, *v as f32, f);
                    }
                }
            }
            1 => {
                if let Some(f) = c {
                    let n = (img.width() * img.height()).max(1) as f32;
                    let mean = (img.as_raw().chunks_exact(3).map(luma).sum::<f32>() / n).round();
                    for v in img.iter_mut() {
                        *v = blend(mean, *v as f32, f);
                    }
                }
            }
            2 => {
                if let Some(f) = s {
                    for px in img.as_mut().chunks_exact_mut(3) {
                        let l = luma(px).round();
                        for v in px.iter_mut() {
                            *v = blend(l, *v as f32, f);
                        }
                    }
                }
            }
            _ => {
                if let Some(shift) = h {
                    for px in img.as_mut().chunks_exact_mut(3) {
                        shift_hue(px, shift);
                    }
                }
            }
        }
    }
}

fn shift_hue(px: &mut [u8], shift: f32) {
    let (r, g, b) = (
        px[0] as f32 / 255.0,
        px[1] as f32 / 255.0,
        px[2] as f32 / 255.0,
    );
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let d = max - min;
    if d <= 0.0 {
        return;
    }
    let mut hue = if max == r {
        ((g - b) / d).rem_euclid(6.0)
    } else if max == g {
        (b - r) / d + 2.0
    } else {
        (r - g) / d + 4.0
    } / 6.0;
    hue = (hue + shift).rem_euclid(1.0);
    let s = d / max;
    let v = max;
    let h6 = hue * 6.0;
    let i = h6.floor();
    let f = h6 - i;
    let p = v * (1.0 - s);
    let q = v * (1.0 - s * f);
    let t = v * (1.0 - s * (1.0 - f));
    let (r, g, b) = match i as i32 % 6 {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    };
    px[0] = (r * 255.0).round().clamp(0.0, 255.0) as u8;
    px[1] = (g * 255.0).round().clamp(0.0, 255.0) as u8;
    px[2] = (b * 255.0).round().clamp(0.0, 255.0) as u8;
}

fn index(layout: Layout, w: usize, h: usize, y: usize, x: usize, k: usize) -> usize {
    match layout {
        Layout::Nchw => k * w * h + y * w + x,
        Layout::Nhwc => (y * w + x) * 3 + k,
    }
}

/// torchvision's `RandomErasing.get_params`: (top, left, height, width), or None.
fn erase_box(
    w: usize,
    h: usize,
    e: &RandomErasingConfig,
    rng: &mut Rng,
) -> Option<(usize, usize, usize, usize)> {
    if !rng.bernoulli(e.p) {
        return None;
    }
    let area = (w * h) as f64;
    let (lr0, lr1) = (e.ratio[0].ln(), e.ratio[1].ln());
    for _ in 0..10 {
        let erase_area = area * rng.range(e.scale[0], e.scale[1]);
        let aspect = rng.range(lr0, lr1).exp();
        let eh = (erase_area * aspect).sqrt().round_ties_even() as usize;
        let ew = (erase_area / aspect).sqrt().round_ties_even() as usize;
        if !(eh < h && ew < w) || eh == 0 || ew == 0 {
            continue;
        }
        let top = rng.int_inclusive(0, (h - eh) as i64) as usize;
        let left = rng.int_inclusive(0, (w - ew) as i64) as usize;
        return Some((top, left, eh, ew));
    }
    None
}

fn random_erasing(
    dst: &mut [f32],
    w: usize,
    h: usize,
    layout: Layout,
    e: &RandomErasingConfig,
    rng: &mut Rng,
) {
    if let Some((top, left, eh, ew)) = erase_box(w, h, e, rng) {
        for y in top..top + eh {
            for x in left..left + ew {
                for k in 0..3 {
                    let v = match e.value {
                        EraseValue::Zero => 0.0,
                        EraseValue::Random => rng.normal() as f32,
                    };
                    dst[index(layout, w, h, y, x, k)] = v;
                }
            }
        }
    }
}
