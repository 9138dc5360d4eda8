//! TrivialAugmentWide (Müller and Hutter 2021) and RandAugment (Cubuk et al. 2020) on 8-bit
//! images, with torchvision's operation set, magnitude bins and arithmetic on uint8 tensors
//! (`torchvision.transforms.autoaugment` over `_functional_tensor`), step by step in the same
//! float32 operations, so that every operation gives torchvision's bytes:
//!
//! - blends (brightness, colour, contrast, sharpness): `ratio·a + (1 − ratio)·b` in f32, clamped
//!   to [0, 255] and truncated (torchvision's `.to(uint8)` does not round);
//! - grey levels: `0.2989·R + 0.587·G + 0.114·B` in f32, truncated; contrast blends with their
//!   mean (exact up to 65,793 pixels, where torchvision's f32 sum of integers is exact too);
//! - sharpness: the 3×3 kernel (1, centre 5)/13, rounded, the border left as it is;
//! - autocontrast: `(x − min)·scale` per channel in f32, truncated, where `scale` is
//!   `(1 / (max − min))·255` (Python's `255 / tensor` is a reciprocal times 255);
//! - equalize: torchvision's histogram steps per channel, in integers;
//! - shear, translate, rotate: torchvision's inverse affine matrix (f64), its sampling grid in f32
//!   (`(x·a + y·b) + c`), `grid_sample`'s unnormalisation as a fused multiply-add
//!   `(g + 1)·(W/2) − 0.5` and its nearest pixel (round half to even), zeros outside;
//! - magnitudes: `torch.linspace` in f32 (with its fused multiply-add), posterize's bits rounded
//!   half to even.

use super::config::{RandAugmentConfig, TrivialAugmentConfig};
use crate::rng::Rng;
use image::RgbImage;

/// An operation of torchvision's augmentation space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AugmentOp {
    Identity,
    ShearX,
    ShearY,
    TranslateX,
    TranslateY,
    Rotate,
    Brightness,
    /// Saturation.
    Color,
    Contrast,
    Sharpness,
    Posterize,
    Solarize,
    AutoContrast,
    Equalize,
}

impl AugmentOp {
    /// In torchvision's order (the order of `_augmentation_space`, from which an index is drawn).
    pub const ALL: [AugmentOp; 14] = [
        AugmentOp::Identity,
        AugmentOp::ShearX,
        AugmentOp::ShearY,
        AugmentOp::TranslateX,
        AugmentOp::TranslateY,
        AugmentOp::Rotate,
        AugmentOp::Brightness,
        AugmentOp::Color,
        AugmentOp::Contrast,
        AugmentOp::Sharpness,
        AugmentOp::Posterize,
        AugmentOp::Solarize,
        AugmentOp::AutoContrast,
        AugmentOp::Equalize,
    ];

    /// torchvision's name of the operation.
    pub fn name(self) -> &'static str {
        match self {
            AugmentOp::Identity => "Identity",
            AugmentOp::ShearX => "ShearX",
            AugmentOp::ShearY => "ShearY",
            AugmentOp::TranslateX => "TranslateX",
            AugmentOp::TranslateY => "TranslateY",
            AugmentOp::Rotate => "Rotate",
            AugmentOp::Brightness => "Brightness",
            AugmentOp::Color => "Color",
            AugmentOp::Contrast => "Contrast",
            AugmentOp::Sharpness => "Sharpness",
            AugmentOp::Posterize => "Posterize",
            AugmentOp::Solarize => "Solarize",
            AugmentOp::AutoContrast => "AutoContrast",
            AugmentOp::Equalize => "Equalize",
        }
    }

    /// The operation of a torchvision name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.name() == name)
    }

    /// Whether a drawn sign flips the magnitude.
    pub fn signed(self) -> bool {
        matches!(
            self,
            AugmentOp::ShearX
                | AugmentOp::ShearY
                | AugmentOp::TranslateX
                | AugmentOp::TranslateY
                | AugmentOp::Rotate
                | AugmentOp::Brightness
                | AugmentOp::Color
                | AugmentOp::Contrast
                | AugmentOp::Sharpness
        )
    }

    /// Whether the operation has magnitude bins (identity, autocontrast and equalize have none).
    pub fn has_magnitude(self) -> bool {
        !matches!(
            self,
            AugmentOp::Identity | AugmentOp::AutoContrast | AugmentOp::Equalize
        )
    }
}

/// The magnitude ranges of the two policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MagnitudeSpace {
    /// TrivialAugmentWide's wide ranges: shear 0.99, translate 32 px, rotate 135°, enhance 0.99,
    /// posterize down to 2 bits.
    Wide,
    /// RandAugment's: shear 0.3, translate 150/331 of the side, rotate 30°, enhance 0.9,
    /// posterize down to 4 bits.
    Rand,
}

/// `torch.linspace(start, end, steps)[i]` in float32, as its CPU kernel computes it.
fn linspace_at(start: f32, end: f32, steps: u32, i: u32) -> f32 {
    if steps <= 1 {
        return start;
    }
    let step = (end - start) / (steps - 1) as f32;
    if i < steps / 2 {
        step.mul_add(i as f32, start)
    } else {
        (-step).mul_add((steps - i - 1) as f32, end)
    }
}

impl MagnitudeSpace {
    /// The magnitude torchvision reads for `op` at `bin` of `bins` on a `width`×`height` image
    /// (the float32 value, widened), before the sign; None for an operation without bins.
    pub fn magnitude(
        self,
        op: AugmentOp,
        bin: u32,
        bins: u32,
        width: u32,
        height: u32,
    ) -> Option<f64> {
        let wide = self == MagnitudeSpace::Wide;
        let lin = |end: f64| Some(linspace_at(0.0, end as f32, bins, bin) as f64);
        match op {
            AugmentOp::Identity | AugmentOp::AutoContrast | AugmentOp::Equalize => None,
            AugmentOp::ShearX | AugmentOp::ShearY => lin(if wide { 0.99 } else { 0.3 }),
            AugmentOp::TranslateX | AugmentOp::TranslateY => {
                let side = if op == AugmentOp::TranslateX {
                    width
                } else {
                    height
                };
                lin(if wide {
                    32.0
                } else {
                    150.0 / 331.0 * side as f64
                })
            }
            AugmentOp::Rotate => lin(if wide { 135.0 } else { 30.0 }),
            AugmentOp::Brightness
            | AugmentOp::Color
            | AugmentOp::Contrast
            | AugmentOp::Sharpness => lin(if wide { 0.99 } else { 0.9 }),
            AugmentOp::Posterize => {
                // 8 - (arange(bins) / ((bins - 1) / d)).round().int()
                let d = if wide { 6.0 } else { 4.0 };
                let div = ((bins.max(2) - 1) as f64 / d) as f32;
                Some(8.0 - (bin as f32 / div).round_ties_even() as f64)
            }
            AugmentOp::Solarize => Some(linspace_at(255.0, 0.0, bins, bin) as f64),
        }
    }
}

/// torchvision's `_apply_op(img, op, magnitude)` with nearest interpolation and no fill.
pub fn apply_op(img: &mut RgbImage, op: AugmentOp, magnitude: f64) {
    let (w, h) = (img.width() as f64, img.height() as f64);
    match op {
        AugmentOp::Identity => {}
        AugmentOp::ShearX | AugmentOp::ShearY => {
            // about the top-left corner: center [0, 0] in pixels is (-w/2, -h/2) from the centre
            let s = magnitude.atan().to_degrees();
            let shear = if op == AugmentOp::ShearX {
                [s, 0.0]
            } else {
                [0.0, s]
            };
            let m = inverse_affine([-w * 0.5, -h * 0.5], 0.0, [0.0, 0.0], 1.0, shear);
            *img = warp(img, m);
        }
        AugmentOp::TranslateX | AugmentOp::TranslateY => {
            let t = magnitude.trunc();
            let translate = if op == AugmentOp::TranslateX {
                [t, 0.0]
            } else {
                [0.0, t]
            };
            let m = inverse_affine([0.0, 0.0], 0.0, translate, 1.0, [0.0, 0.0]);
            *img = warp(img, m);
        }
        AugmentOp::Rotate => {
            // F.rotate passes -angle to the affine matrix
            let m = inverse_affine([0.0, 0.0], -magnitude, [0.0, 0.0], 1.0, [0.0, 0.0]);
            *img = warp(img, m);
        }
        AugmentOp::Brightness => {
            let b = Blend::new(1.0 + magnitude);
            for v in img.iter_mut() {
                *v = b.apply(*v, 0.0);
            }
        }
        AugmentOp::Color => {
            let b = Blend::new(1.0 + magnitude);
            for px in img.as_mut().chunks_exact_mut(3) {
                let g = grey(px) as f32;
                for v in px.iter_mut() {
                    *v = b.apply(*v, g);
                }
            }
        }
        AugmentOp::Contrast => {
            let b = Blend::new(1.0 + magnitude);
            let n = img.width() as u64 * img.height() as u64;
            let sum: u64 = img.as_raw().chunks_exact(3).map(|p| grey(p) as u64).sum();
            let mean = sum as f32 / n.max(1) as f32;
            for v in img.iter_mut() {
                *v = b.apply(*v, mean);
            }
        }
        AugmentOp::Sharpness => sharpness(img, 1.0 + magnitude),
        AugmentOp::Posterize => {
            let bits = (magnitude.trunc() as i64).clamp(0, 8);
            let mask = (-(1i64 << (8 - bits))) as u8;
            for v in img.iter_mut() {
                *v &= mask;
            }
        }
        AugmentOp::Solarize => {
            let t = magnitude as f32;
            for v in img.iter_mut() {
                if *v as f32 >= t {
                    *v = 255 - *v;
                }
            }
        }
        AugmentOp::AutoContrast => autocontrast(img),
        AugmentOp::Equalize => equalize(img),
    }
}

/// torchvision's `_blend(img1, img2, ratio)` on uint8: `ratio·img1 + (1 − ratio)·img2` in f32
/// (ratio and 1 − ratio computed in f64, as Python does, then cast), clamped and truncated.
struct Blend {
    ratio: f32,
    rest: f32,
}

impl Blend {
    fn new(ratio: f64) -> Self {
        Self {
            ratio: ratio as f32,
            rest: (1.0 - ratio) as f32,
        }
    }

    fn apply(&self, a: u8, b: f32) -> u8 {
        (self.ratio * a as f32 + self.rest * b).clamp(0.0, 255.0) as u8
    }
}

/// torchvision's `rgb_to_grayscale` on uint8: f32 weights, truncated.
fn grey(p: &[u8]) -> u8 {
    (0.2989f32 * p[0] as f32 + 0.587f32 * p[1] as f32 + 0.114f32 * p[2] as f32) as u8
}

/// torchvision's `adjust_sharpness`: blend with the image smoothed by (1, centre 5)/13 inside a
/// one-pixel border (the border is the image itself).
fn sharpness(img: &mut RgbImage, factor: f64) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w <= 2 || h <= 2 {
        return;
    }
    let src = img.as_raw().clone();
    let b = Blend::new(factor);
    let dst = img.as_mut();
    for y in 0..h {
        for x in 0..w {
            for k in 0..3 {
                let i = (y * w + x) * 3 + k;
                let degenerate = if y == 0 || x == 0 || y == h - 1 || x == w - 1 {
                    src[i]
                } else {
                    let mut s = 4 * src[i] as u32;
                    for dy in 0..3 {
                        for dx in 0..3 {
                            s += src[((y + dy - 1) * w + x + dx - 1) * 3 + k] as u32;
                        }
                    }
                    // round(s / 13): s / 13 is never a half, so f32 rounding cannot matter
                    ((2 * s + 13) / 26) as u8
                };
                dst[i] = b.apply(src[i], degenerate as f32);
            }
        }
    }
}

/// torchvision's `autocontrast`: each channel stretched to [0, 255]; a flat channel is kept.
fn autocontrast(img: &mut RgbImage) {
    for k in 0..3 {
        let channel = || img.as_raw().iter().skip(k).step_by(3).copied();
        let lo = channel().min().unwrap_or(0) as f32;
        let hi = channel().max().unwrap_or(0) as f32;
        let (lo, scale) = if hi > lo {
            (lo, (1.0f32 / (hi - lo)) * 255.0)
        } else {
            (0.0, 1.0)
        };
        for v in img.as_mut().iter_mut().skip(k).step_by(3) {
            *v = ((*v as f32 - lo) * scale).clamp(0.0, 255.0) as u8;
        }
    }
}

/// torchvision's tensor `equalize`: per channel, the histogram's cumulative sums in steps of
/// (pixels − the top level's count) / 255, the first level mapped to 0.
fn equalize(img: &mut RgbImage) {
    for k in 0..3 {
        let mut hist = [0u64; 256];
        for &v in img.as_raw().iter().skip(k).step_by(3) {
            hist[v as usize] += 1;
        }
        let total: u64 = hist.iter().sum();
        let last = hist.iter().rev().find(|&&c| c != 0).copied().unwrap_or(0);
        let step = (total - last) / 255;
        if step == 0 {
            continue;
        }
        let mut lut = [0u8; 256];
        let mut cum = 0u64;
        for (level, &count) in hist.iter().enumerate().take(255) {
            cum += count;
            lut[level + 1] = ((cum + step / 2) / step).min(255) as u8;
        }
        for v in img.as_mut().iter_mut().skip(k).step_by(3) {
            *v = lut[*v as usize];
        }
    }
}

/// torchvision's `_get_inverse_affine_matrix` (inverted), operation for operation in f64:
/// output pixel → input pixel, coordinates from the image centre.
fn inverse_affine(
    center: [f64; 2],
    angle: f64,
    translate: [f64; 2],
    scale: f64,
    shear: [f64; 2],
) -> [f64; 6] {
    let rot = angle.to_radians();
    let sx = shear[0].to_radians();
    let sy = shear[1].to_radians();
    let [cx, cy] = center;
    let [tx, ty] = translate;
    let a = (rot - sy).cos() / sy.cos();
    let b = -(rot - sy).cos() * sx.tan() / sy.cos() - rot.sin();
    let c = (rot - sy).sin() / sy.cos();
    let d = -(rot - sy).sin() * sx.tan() / sy.cos() + rot.cos();
    let mut m = [d, -b, 0.0, -c, a, 0.0].map(|v| v / scale);
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
    m[2] += cx;
    m[5] += cy;
    m
}

/// torchvision's tensor `affine`/`rotate` with nearest interpolation and zero fill: the matrix
/// in f32, `_gen_affine_grid`'s normalised grid, `grid_sample`'s unnormalisation
/// (align_corners = false, fused as libtorch's CPU kernel does) and round half to even.
fn warp(img: &RgbImage, m: [f64; 6]) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let t = m.map(|v| v as f32);
    let (hw, hh) = ((0.5 * w as f64) as f32, (0.5 * h as f64) as f32);
    // rescaled_theta = theta^T / [w/2, h/2]
    let r = [
        [t[0] / hw, t[3] / hh],
        [t[1] / hw, t[4] / hh],
        [t[2] / hw, t[5] / hh],
    ];
    let x0 = (-(w as f64) * 0.5 + 0.5) as f32;
    let y0 = (-(h as f64) * 0.5 + 0.5) as f32;
    let (sw, sh) = (w as f32 / 2.0, h as f32 / 2.0);
    let src = img.as_raw();
    let mut out = RgbImage::new(w, h);
    let dst = out.as_mut();
    for oy in 0..h {
        let y = oy as f32 + y0;
        for ox in 0..w {
            let x = ox as f32 + x0;
            let gx = x * r[0][0] + y * r[1][0] + r[2][0];
            let gy = x * r[0][1] + y * r[1][1] + r[2][1];
            let ix = (gx + 1.0).mul_add(sw, -0.5).round_ties_even();
            let iy = (gy + 1.0).mul_add(sh, -0.5).round_ties_even();
            if ix >= 0.0 && ix < w as f32 && iy >= 0.0 && iy < h as f32 {
                let s = (iy as usize * w as usize + ix as usize) * 3;
                let d = (oy as usize * w as usize + ox as usize) * 3;
                dst[d..d + 3].copy_from_slice(&src[s..s + 3]);
            }
        }
    }
    out
}

/// Draws an operation, and its magnitude from `bin` (None: a uniform bin of `bins`) and the sign,
/// in torchvision's order: op index, then bin (ops with bins), then sign (signed ops).
fn draw(img: &mut RgbImage, space: MagnitudeSpace, bin: Option<u32>, bins: u32, rng: &mut Rng) {
    let op = AugmentOp::ALL[rng.below(AugmentOp::ALL.len() as u64) as usize];
    let mut magnitude = 0.0;
    if op.has_magnitude() {
        let bin = bin.unwrap_or_else(|| rng.below(bins as u64) as u32);
        magnitude = space
            .magnitude(op, bin, bins, img.width(), img.height())
            .unwrap_or(0.0);
    }
    if op.signed() && rng.below(2) == 1 {
        magnitude = -magnitude;
    }
    apply_op(img, op, magnitude);
}

/// TrivialAugmentWide: one uniformly drawn operation at a uniformly drawn wide magnitude.
pub(crate) fn trivial_augment(img: &mut RgbImage, c: &TrivialAugmentConfig, rng: &mut Rng) {
    draw(img, MagnitudeSpace::Wide, None, c.bins, rng);
}

/// RandAugment: `n` uniformly drawn operations, each at magnitude bin `m`.
pub(crate) fn rand_augment(img: &mut RgbImage, c: &RandAugmentConfig, rng: &mut Rng) {
    for _ in 0..c.n {
        draw(img, MagnitudeSpace::Rand, Some(c.m), c.bins, rng);
    }
}
