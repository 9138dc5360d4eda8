//! The geometric stages with torchvision's arithmetic: the shorter-side resize size, the centre
//! crop and RandomResizedCrop's box.

use super::config::RandomResizedCropConfig;
use crate::resize::CropBox;
use crate::rng::Rng;
use image::RgbImage;

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
