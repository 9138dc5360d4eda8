//! Random Erasing (Zhong et al. 2020) on the normalised image, as torchvision's
//! `RandomErasing`: a rectangle of random area and aspect ratio filled with zeros or noise.

use super::config::RandomErasingConfig;
use super::layout::Layout;
use crate::rng::Rng;

pub(crate) fn index(layout: Layout, w: usize, h: usize, y: usize, x: usize, k: usize) -> usize {
    match layout {
        Layout::Nchw => k * w * h + y * w + x,
        Layout::Nhwc => (y * w + x) * 3 + k,
    }
}

/// torchvision's `RandomErasing.get_params`: (top, left, height, width), or None.
pub(crate) fn erase_box(
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

/// Fills the box [`erase_box`] draws (if any) with `value(rng)`, element by element.
pub(crate) fn random_erasing<T>(
    dst: &mut [T],
    (w, h, layout): (usize, usize, Layout),
    e: &RandomErasingConfig,
    rng: &mut Rng,
    value: impl Fn(&mut Rng) -> T,
) {
    if let Some((top, left, eh, ew)) = erase_box(w, h, e, rng) {
        for y in top..top + eh {
            for x in left..left + ew {
                for k in 0..3 {
                    dst[index(layout, w, h, y, x, k)] = value(rng);
                }
            }
        }
    }
}
