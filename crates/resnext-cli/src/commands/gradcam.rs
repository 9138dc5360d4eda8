//! Grad-CAM (Selvaraju et al. 2017): the last stage's feature maps weighted by the spatial mean of
//! the class score's gradient, ReLU, upsampled to the image and drawn over it as a heatmap.

use anyhow::{Context, Result};
use image::{Rgb, RgbImage};
use resnext_model::ResNeXt;
use std::path::Path;
use tch::{Kind, Tensor};

/// The class-activation map in 0..1 at the feature map's resolution, [h, w] row-major.
pub struct Cam {
    pub values: Vec<f32>,
    pub width: usize,
    pub height: usize,
}

pub fn grad_cam(net: &ResNeXt, x: &Tensor, class: i64) -> Result<Cam> {
    let features = net.features(x, false);
    let logits = net.head(&features);
    let score = logits.select(1, class).sum(Kind::Float);
    let grads = Tensor::run_backward(&[&score], &[&features], false, false);
    let g = &grads[0];
    let weights = g.mean_dim(&[2i64, 3][..], true, Kind::Float);
    let cam = (features.detach() * weights)
        .sum_dim_intlist(1, false, Kind::Float)
        .relu()
        .squeeze_dim(0)
        .to_device(tch::Device::Cpu);
    let (h, w) = (cam.size()[0] as usize, cam.size()[1] as usize);
    let max = cam.max().double_value(&[]);
    let cam = if max > 0.0 { cam / max } else { cam };
    let values: Vec<f32> =
        Vec::<f32>::try_from(cam.contiguous().view([-1])).context("reading the CAM")?;
    Ok(Cam {
        values,
        width: w,
        height: h,
    })
}

impl Cam {
    /// Bilinear sample at continuous coordinates (pixel centres).
    fn sample(&self, fx: f32, fy: f32) -> f32 {
        let x = (fx - 0.5).clamp(0.0, (self.width - 1) as f32);
        let y = (fy - 0.5).clamp(0.0, (self.height - 1) as f32);
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(self.width - 1), (y0 + 1).min(self.height - 1));
        let (dx, dy) = (x - x0 as f32, y - y0 as f32);
        let v = |xx: usize, yy: usize| self.values[yy * self.width + xx];
        v(x0, y0) * (1.0 - dx) * (1.0 - dy)
            + v(x1, y0) * dx * (1.0 - dy)
            + v(x0, y1) * (1.0 - dx) * dy
            + v(x1, y1) * dx * dy
    }

    /// Spread of the map: max minus min (0 for a uniform map).
    pub fn contrast(&self) -> f32 {
        let max = self.values.iter().copied().fold(f32::MIN, f32::max);
        let min = self.values.iter().copied().fold(f32::MAX, f32::min);
        max - min
    }
}

/// The "jet" colour map.
fn jet(v: f32) -> [f32; 3] {
    let v = v.clamp(0.0, 1.0);
    let r = (1.5 - (4.0 * v - 3.0).abs()).clamp(0.0, 1.0);
    let g = (1.5 - (4.0 * v - 2.0).abs()).clamp(0.0, 1.0);
    let b = (1.5 - (4.0 * v - 1.0).abs()).clamp(0.0, 1.0);
    [r * 255.0, g * 255.0, b * 255.0]
}

/// Writes `img` with the heatmap blended over it (at the image's own size).
pub fn write_overlay(img: &RgbImage, cam: &Cam, out: &Path) -> Result<()> {
    let (w, h) = img.dimensions();
    let sx = cam.width as f32 / w as f32;
    let sy = cam.height as f32 / h as f32;
    let overlay = RgbImage::from_fn(w, h, |x, y| {
        let v = cam.sample((x as f32 + 0.5) * sx, (y as f32 + 0.5) * sy);
        let c = jet(v);
        let p = img.get_pixel(x, y).0;
        let a = 0.45;
        Rgb(std::array::from_fn(|k| {
            (p[k] as f32 * (1.0 - a) + c[k] * a)
                .round()
                .clamp(0.0, 255.0) as u8
        }))
    });
    let tmp = out.with_extension("png.tmp");
    overlay
        .save_with_format(&tmp, image::ImageFormat::Png)
        .with_context(|| format!("cannot write {}", out.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}
