//! Grad-CAM overlays: the map of `resnext_train::explain`, min-max normalised, upsampled to the
//! image and drawn over it with the "jet" colour map.

use anyhow::{Context, Result};
use image::{Rgb, RgbImage};
use resnext_train::explain::Cam;
use std::path::Path;

/// The "jet" colour map.
fn jet(v: f32) -> [f32; 3] {
    let v = v.clamp(0.0, 1.0);
    let r = (1.5 - (4.0 * v - 3.0).abs()).clamp(0.0, 1.0);
    let g = (1.5 - (4.0 * v - 2.0).abs()).clamp(0.0, 1.0);
    let b = (1.5 - (4.0 * v - 1.0).abs()).clamp(0.0, 1.0);
    [r * 255.0, g * 255.0, b * 255.0]
}

/// Writes `img` with the heatmap blended over it (at the image's own size), atomically.
pub fn write_overlay(img: &RgbImage, cam: &Cam, out: &Path) -> Result<()> {
    let (w, h) = img.dimensions();
    let norm = cam.normalised();
    let sx = cam.width as f32 / w as f32;
    let sy = cam.height as f32 / h as f32;
    let overlay = RgbImage::from_fn(w, h, |x, y| {
        let v = Cam::sample(
            &norm,
            cam.width,
            cam.height,
            (x as f32 + 0.5) * sx,
            (y as f32 + 0.5) * sy,
        );
        let c = jet(v);
        let p = img.get_pixel(x, y).0;
        let a = 0.45;
        Rgb(std::array::from_fn(|k| {
            (p[k] as f32 * (1.0 - a) + c[k] * a)
                .round()
                .clamp(0.0, 255.0) as u8
        }))
    });
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = out.with_file_name(format!(".{name}.tmp.png"));
    overlay
        .save_with_format(&tmp, image::ImageFormat::Png)
        .with_context(|| format!("cannot write {}", out.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}
