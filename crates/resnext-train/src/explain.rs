//! Grad-CAM (Selvaraju et al. 2017): the last stage's feature maps weighted by the spatial mean of
//! the class score's gradient, summed over channels, ReLU.

use crate::error::TrainError;
use resnext_model::ResNeXt;
use tch::{Device, Kind, Tensor};

/// A class-activation map at the last stage's resolution, row-major.
#[derive(Debug, Clone)]
pub struct Cam {
    /// Raw Grad-CAM values (after ReLU), not normalised.
    pub values: Vec<f32>,
    pub width: usize,
    pub height: usize,
}

/// Grad-CAM of `class` for a single prepared input `x` ([1, 3, H, W], on the model's device).
pub fn grad_cam(net: &ResNeXt, x: &Tensor, class: i64) -> Result<Cam, TrainError> {
    let features = net.features(x, false);
    let logits = net.head(&features);
    let score = logits.select(1, class).sum(Kind::Float);
    let grads = Tensor::run_backward(&[&score], &[&features], false, false);
    let weights = grads[0].mean_dim(&[2i64, 3][..], true, Kind::Float);
    let cam = (features.detach().to_kind(Kind::Float) * weights)
        .sum_dim_intlist(1, false, Kind::Float)
        .relu()
        .squeeze_dim(0)
        .to_device(Device::Cpu)
        .contiguous();
    let (height, width) = (cam.size()[0] as usize, cam.size()[1] as usize);
    let values: Vec<f32> = Vec::<f32>::try_from(cam.view([-1]))?;
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
