//! Grad-CAM (Selvaraju et al. 2017): the last stage's feature maps weighted by the spatial mean of
//! the class score's gradient, summed over channels, ReLU. A [`Heatmap`] places the map on the
//! region of the source image that the network saw, and draws it over that image ("jet").

use crate::error::InferError;
use image::{Rgb, RgbImage};
use resnext_model::ResNeXt;
use tch::{Device, Kind, Tensor};

/// The longest side of the overlay that [`Heatmap::overlay_png`] draws (`resnext predict --cam`,
/// `POST /v1/explain`): a larger photo is drawn scaled down to it, keeping its aspect, so that
/// drawing and encoding cost the same for any photo.
pub const MAX_OVERLAY_SIDE: u32 = 1024;

/// A class-activation map at the last stage's resolution, row-major.
#[derive(Debug, Clone)]
pub struct Cam {
    /// Raw Grad-CAM values (after ReLU), not normalised.
    pub values: Vec<f32>,
    pub width: usize,
    pub height: usize,
}

/// Grad-CAM of `class` for a single prepared input `x` ([1, 3, H, W], on the model's device).
pub fn grad_cam(net: &ResNeXt, x: &Tensor, class: i64) -> Result<Cam, InferError> {
    let features = net.features(x, false)?;
    let logits = net.head(&features)?;
    let score = logits.f_select(1, class)?.f_sum(Kind::Float)?;
    let grads = Tensor::f_run_backward(&[&score], &[&features], false, false)?;
    let weights = grads[0].f_mean_dim(&[2i64, 3][..], true, Kind::Float)?;
    let cam = (features.detach().f_to_kind(Kind::Float)? * weights)
        .f_sum_dim_intlist(1, false, Kind::Float)?
        .f_relu()?
        .f_squeeze_dim(0)?
        .f_to_device(Device::Cpu)?
        .f_contiguous()?;
    let (height, width) = (cam.size()[0] as usize, cam.size()[1] as usize);
    let values: Vec<f32> = Vec::<f32>::try_from(cam.f_view([-1])?)?;
    Ok(Cam {
        values,
        width,
        height,
    })
}

impl Cam {
    /// (max − min) / max: 0 for a uniform map, 1 when some cell is zero.
    pub fn relative_spread(&self) -> f32 {
        let max = self.values.iter().copied().fold(f32::MIN, f32::max);
        let min = self.values.iter().copied().fold(f32::MAX, f32::min);
        if max <= 0.0 {
            0.0
        } else {
            (max - min) / max
        }
    }

    /// Min-max normalised to 0..1 (all zeros for a uniform map), as heatmaps are drawn.
    pub fn normalised(&self) -> Vec<f32> {
        let max = self.values.iter().copied().fold(f32::MIN, f32::max);
        let min = self.values.iter().copied().fold(f32::MAX, f32::min);
        let range = max - min;
        self.values
            .iter()
            .map(|&v| if range > 0.0 { (v - min) / range } else { 0.0 })
            .collect()
    }

    /// Bilinear sample of the normalised map at `(fx, fy)` in map cells (pixel-centre convention).
    pub fn sample(normalised: &[f32], width: usize, height: usize, fx: f32, fy: f32) -> f32 {
        let x = (fx - 0.5).clamp(0.0, (width - 1) as f32);
        let y = (fy - 0.5).clamp(0.0, (height - 1) as f32);
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(width - 1), (y0 + 1).min(height - 1));
        let (dx, dy) = (x - x0 as f32, y - y0 as f32);
        let v = |xx: usize, yy: usize| normalised[yy * width + xx];
        v(x0, y0) * (1.0 - dx) * (1.0 - dy)
            + v(x1, y0) * dx * (1.0 - dy)
            + v(x0, y1) * (1.0 - dx) * dy
            + v(x1, y1) * dx * dy
    }
}

/// A Grad-CAM map placed on its source image.
#[derive(Debug, Clone)]
pub struct Heatmap {
    pub cam: Cam,
    /// The class it explains.
    pub class: usize,
    /// `[left, top, right, bottom]` of the source image that the network input showed (the eval
    /// transform's crop), in source pixels.
    pub region: [f32; 4],
}

/// The "jet" colour map.
fn jet(v: f32) -> [f32; 3] {
    let v = v.clamp(0.0, 1.0);
    let r = (1.5 - (4.0 * v - 3.0).abs()).clamp(0.0, 1.0);
    let g = (1.5 - (4.0 * v - 2.0).abs()).clamp(0.0, 1.0);
    let b = (1.5 - (4.0 * v - 1.0).abs()).clamp(0.0, 1.0);
    [r * 255.0, g * 255.0, b * 255.0]
}

impl Heatmap {
    /// The normalised map's value at source pixel `(x, y)`, or `None` outside the region the
    /// network saw.
    pub fn value_at(&self, normalised: &[f32], x: u32, y: u32) -> Option<f32> {
        let [l, t, r, b] = self.region;
        let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
        if px < l || px >= r || py < t || py >= b {
            return None;
        }
        let fx = (px - l) / (r - l) * self.cam.width as f32;
        let fy = (py - t) / (b - t) * self.cam.height as f32;
        Some(Cam::sample(
            normalised,
            self.cam.width,
            self.cam.height,
            fx,
            fy,
        ))
    }

    /// `image` with the heatmap blended over the region the network saw; the rest is dimmed.
    pub fn overlay(&self, image: &RgbImage) -> RgbImage {
        let norm = self.cam.normalised();
        RgbImage::from_fn(image.width(), image.height(), |x, y| {
            let p = image.get_pixel(x, y).0;
            match self.value_at(&norm, x, y) {
                Some(v) => {
                    let c = jet(v);
                    let a = 0.45;
                    Rgb(std::array::from_fn(|k| {
                        (p[k] as f32 * (1.0 - a) + c[k] * a)
                            .round()
                            .clamp(0.0, 255.0) as u8
                    }))
                }
                None => Rgb(std::array::from_fn(|k| (p[k] as f32 * 0.35).round() as u8)),
            }
        })
    }

    /// [`Heatmap::overlay`] on `image` scaled down (Pillow's bilinear, keeping the aspect) so that
    /// its longest side is at most `max_side`; a smaller image is drawn at its own size.
    pub fn overlay_at_most(&self, image: &RgbImage, max_side: u32) -> RgbImage {
        let (w, h) = image.dimensions();
        let long = w.max(h);
        if long <= max_side.max(1) {
            return self.overlay(image);
        }
        let scale = f64::from(max_side.max(1)) / f64::from(long);
        let side = |n: u32| ((f64::from(n) * scale).round() as u32).clamp(1, max_side.max(1));
        let (sw, sh) = (side(w), side(h));
        let small = resnext_data::resize::resize(image, sw, sh);
        let (fx, fy) = (sw as f32 / w as f32, sh as f32 / h as f32);
        let [l, t, r, b] = self.region;
        let scaled = Heatmap {
            cam: self.cam.clone(),
            class: self.class,
            region: [l * fx, t * fy, r * fx, b * fy],
        };
        scaled.overlay(&small)
    }

    /// The overlay as PNG bytes, at most [`MAX_OVERLAY_SIDE`] pixels on its longest side.
    pub fn overlay_png(&self, image: &RgbImage) -> Result<Vec<u8>, InferError> {
        self.overlay_png_at_most(image, MAX_OVERLAY_SIDE)
    }

    /// The overlay as PNG bytes, at most `max_side` pixels on its longest side.
    pub fn overlay_png_at_most(
        &self,
        image: &RgbImage,
        max_side: u32,
    ) -> Result<Vec<u8>, InferError> {
        let mut bytes = Vec::new();
        self.overlay_at_most(image, max_side)
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .map_err(|e| InferError::Encode(e.to_string()))?;
        Ok(bytes)
    }
}
