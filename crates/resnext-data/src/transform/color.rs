//! torchvision's ColorJitter on 8-bit images, with PIL's arithmetic: brightness, contrast,
//! saturation and hue, applied in a random order.

use super::config::ColorJitterConfig;
use crate::rng::Rng;
use image::RgbImage;

/// The four colour-jitter operations; their order in a sample is a random permutation of
/// [`ColorOp::ALL`] (the order torchvision draws from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorOp {
    /// Blend with black.
    Brightness,
    /// Blend with the mean grey level.
    Contrast,
    /// Blend with each pixel's grey level.
    Saturation,
    /// Rotate the hue.
    Hue,
}

impl ColorOp {
    pub const ALL: [ColorOp; 4] = [
        ColorOp::Brightness,
        ColorOp::Contrast,
        ColorOp::Saturation,
        ColorOp::Hue,
    ];
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
pub(crate) fn color_jitter(img: &mut RgbImage, j: &ColorJitterConfig, rng: &mut Rng) {
    let mut order = ColorOp::ALL;
    rng.shuffle(&mut order);
    let factor = |rng: &mut Rng, v: f64| rng.range((1.0 - v).max(0.0), 1.0 + v) as f32;
    let b = (j.brightness > 0.0).then(|| factor(rng, j.brightness));
    let c = (j.contrast > 0.0).then(|| factor(rng, j.contrast));
    let s = (j.saturation > 0.0).then(|| factor(rng, j.saturation));
    let h = (j.hue > 0.0).then(|| rng.range(-j.hue, j.hue) as f32);
    for op in order {
        match (op, b, c, s, h) {
            (ColorOp::Brightness, Some(f), ..) => {
                for v in img.iter_mut() {
                    *v = blend(0.0, *v as f32, f);
                }
            }
            (ColorOp::Contrast, _, Some(f), ..) => {
                let n = (img.width() * img.height()).max(1) as f32;
                let mean = (img.as_raw().chunks_exact(3).map(luma).sum::<f32>() / n).round();
                for v in img.iter_mut() {
                    *v = blend(mean, *v as f32, f);
                }
            }
            (ColorOp::Saturation, _, _, Some(f), _) => {
                for px in img.as_mut().chunks_exact_mut(3) {
                    let l = luma(px).round();
                    for v in px.iter_mut() {
                        *v = blend(l, *v as f32, f);
                    }
                }
            }
            (ColorOp::Hue, .., Some(shift)) => {
                for px in img.as_mut().chunks_exact_mut(3) {
                    shift_hue(px, shift);
                }
            }
            // a jitter of 0 leaves its stage out
            _ => {}
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
