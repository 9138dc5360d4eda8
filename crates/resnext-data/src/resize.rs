//! Pillow's antialiased bilinear resampling (`Image.resize(size, BILINEAR)`, what torchvision's
//! `Resize` calls on PIL images), reproduced bit for bit: per-axis triangle filter widened by the
//! scale factor, 22-bit fixed-point weights, a horizontal pass then a vertical pass, each rounded
//! and clipped to 8 bits.

use image::RgbImage;

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// A rectangle of the source: left, top, width, height (the crop that torchvision's
/// `resized_crop` takes before resizing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
}

impl CropBox {
    pub fn full(img: &RgbImage) -> Self {
        Self {
            left: 0,
            top: 0,
            width: img.width(),
            height: img.height(),
        }
    }
}

/// Filter taps of one axis: for each output pixel the first input index and fixed-point weights.
struct Coeffs {
    bounds: Vec<(usize, usize)>,
    ksize: usize,
    weights: Vec<i32>,
}

fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

fn precompute(in_size: usize, out_size: usize) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // bilinear support is 1
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's (int) truncates toward zero
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax =
            (((center + support + 0.5) as i64).min(in_size as i64) as usize).saturating_sub(xmin);
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(xmax) {
            let w = bilinear((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        for (x, kx) in k.iter().enumerate().take(xmax) {
            let v = if ww != 0.0 { kx / ww } else { *kx };
            let fixed = v * (1u32 << PRECISION_BITS) as f64;
            weights[xx * ksize + x] = if fixed < 0.0 {
                (fixed - 0.5) as i32
            } else {
                (fixed + 0.5) as i32
            };
        }
        bounds.push((xmin, xmax));
    }
    Coeffs {
        bounds,
        ksize,
        weights,
    }
}

#[inline]
fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes the `crop` of `src` to `out_w`×`out_h` exactly as Pillow would resize the cropped
/// image. Returns a copy of the crop when the size already matches.
pub fn resize_crop(src: &RgbImage, crop: CropBox, out_w: u32, out_h: u32) -> RgbImage {
    let (cw, ch) = (crop.width as usize, crop.height as usize);
    let src_w = src.width() as usize;
    let raw = src.as_raw();
    let need_h = cw != out_w as usize;
    let need_v = ch != out_h as usize;
    if !need_h && !need_v {
        let mut out = RgbImage::new(out_w, out_h);
        let row = cw * 3;
        for y in 0..ch {
            let s = ((crop.top as usize + y) * src_w + crop.left as usize) * 3;
            out.as_mut()[y * row..(y + 1) * row].copy_from_slice(&raw[s..s + row]);
        }
        return out;
    }
    let vert = precompute(ch, out_h as usize);
    // Rows of the crop that the vertical pass will read.
    let (y_first, y_last) = if need_v {
        let (a, _) = vert.bounds[0];
        let (b, n) = vert.bounds[out_h as usize - 1];
        (a, b + n)
    } else {
        (0, ch)
    };
    let rows = y_last - y_first;
    let ow = out_w as usize;
    // Horizontal pass into `tmp` (rows × ow), or a plain copy of the needed rows.
    let mut tmp = vec![0u8; rows * ow * 3];
    if need_h {
        let horiz = precompute(cw, ow);
        let half = 1i32 << (PRECISION_BITS - 1);
        for y in 0..rows {
            let srow = ((crop.top as usize + y_first + y) * src_w + crop.left as usize) * 3;
            let line = &raw[srow..srow + cw * 3];
            let out = &mut tmp[y * ow * 3..(y + 1) * ow * 3];
            for xx in 0..ow {
                let (xmin, xmax) = horiz.bounds[xx];
                let k = &horiz.weights[xx * horiz.ksize..xx * horiz.ksize + xmax];
                let (mut r, mut g, mut b) = (half, half, half);
                let px = &line[xmin * 3..(xmin + xmax) * 3];
                for (w, p) in k.iter().zip(px.chunks_exact(3)) {
                    r += p[0] as i32 * w;
                    g += p[1] as i32 * w;
                    b += p[2] as i32 * w;
                }
                out[xx * 3] = clip8(r);
                out[xx * 3 + 1] = clip8(g);
                out[xx * 3 + 2] = clip8(b);
            }
        }
    } else {
        for y in 0..rows {
            let s = ((crop.top as usize + y_first + y) * src_w + crop.left as usize) * 3;
            tmp[y * ow * 3..(y + 1) * ow * 3].copy_from_slice(&raw[s..s + ow * 3]);
        }
    }
    if !need_v {
        return RgbImage::from_raw(out_w, out_h, tmp).expect("buffer size matches");
    }
    let oh = out_h as usize;
    let mut out = vec![0u8; oh * ow * 3];
    let half = 1i32 << (PRECISION_BITS - 1);
    let row_len = ow * 3;
    let mut acc = vec![0i32; row_len];
    for yy in 0..oh {
        let (ymin, ymax) = vert.bounds[yy];
        let k = &vert.weights[yy * vert.ksize..yy * vert.ksize + ymax];
        acc.fill(half);
        for (j, &w) in k.iter().enumerate() {
            let src_row = &tmp[(ymin - y_first + j) * row_len..(ymin - y_first + j + 1) * row_len];
            for (a, &p) in acc.iter_mut().zip(src_row) {
                *a += p as i32 * w;
            }
        }
        for (o, &a) in out[yy * row_len..(yy + 1) * row_len].iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    RgbImage::from_raw(out_w, out_h, out).expect("buffer size matches")
}

/// Resizes the whole image.
pub fn resize(src: &RgbImage, out_w: u32, out_h: u32) -> RgbImage {
    resize_crop(src, CropBox::full(src), out_w, out_h)
}
