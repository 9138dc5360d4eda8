//! A procedurally drawn ImageFolder for demos and tests that must run offline: four visually
//! distinct classes of pattern (checkerboard, dots, concentric rings, stripes) of random scale,
//! orientation, phase and colour, with pixel noise.

use crate::error::DataError;
use crate::rng::Rng;
use image::{Rgb, RgbImage};
use std::path::Path;

pub const CLASSES: [&str; 4] = ["checker", "dots", "rings", "stripes"];

fn colour(rng: &mut Rng) -> [f32; 3] {
    [
        rng.range(20.0, 235.0) as f32,
        rng.range(20.0, 235.0) as f32,
        rng.range(20.0, 235.0) as f32,
    ]
}

/// Draws one image of class `class` (an index into [`CLASSES`]): a pattern of random scale,
/// phase, orientation and colours, with pixel noise.
pub fn draw(class: usize, size: u32, rng: &mut Rng) -> RgbImage {
    let s = size as f32;
    // a dark and a light colour, in random roles, so the pattern always stands out
    let dark = colour(rng).map(|v| v * 0.35);
    let light = colour(rng).map(|v| 255.0 - (255.0 - v) * 0.35);
    let (fg, bg) = if rng.bernoulli(0.5) {
        (dark, light)
    } else {
        (light, dark)
    };
    let period = rng.range(0.2, 0.3) as f32 * s;
    let angle = rng.range(0.0, std::f64::consts::PI) as f32;
    let (ox, oy) = (
        rng.range(0.0, s as f64) as f32,
        rng.range(0.0, s as f64) as f32,
    );
    let (c, sn) = (angle.cos(), angle.sin());
    let mut noise = Rng::new(rng.next_u64());
    RgbImage::from_fn(size, size, |x, y| {
        let (px, py) = (x as f32 + 0.5 - ox, y as f32 + 0.5 - oy);
        let (u, v) = (px * c + py * sn, -px * sn + py * c);
        let inside = match class {
            0 => (((u / period).floor() + (v / period).floor()) as i64).rem_euclid(2) == 0,
            1 => {
                let (fu, fv) = (
                    (u / period).rem_euclid(1.0) - 0.5,
                    (v / period).rem_euclid(1.0) - 0.5,
                );
                fu * fu + fv * fv < 0.09
            }
            2 => ((px * px + py * py).sqrt() / (period * 0.6)).rem_euclid(1.0) < 0.5,
            _ => (u / period).rem_euclid(1.0) < 0.5,
        };
        let base = if inside { fg } else { bg };
        let n = noise.normal() as f32 * 6.0;
        Rgb(base.map(|v| (v + n).round().clamp(0.0, 255.0) as u8))
    })
}

/// Writes `per_class` PNGs of `size`×`size` for each class under `out/<class>/`.
pub fn write_dataset(
    out: &Path,
    per_class: usize,
    size: u32,
    seed: u64,
) -> Result<usize, DataError> {
    let mut written = 0;
    for (c, name) in CLASSES.iter().enumerate() {
        let dir = out.join(name);
        // a class folder that is a link would put the images wherever it leads
        if dir
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            return Err(DataError::UnsafePath {
                path: dir.display().to_string(),
                reason: "it is a symbolic link; synthetic images go into real folders".into(),
            });
        }
        std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
        for i in 0..per_class {
            let mut rng = Rng::keyed(seed, &[c as u64, i as u64]);
            let img = draw(c, size, &mut rng);
            let path = dir.join(format!("{name}_{i:04}.png"));
            let mut png = std::io::Cursor::new(Vec::new());
            img.write_to(&mut png, image::ImageFormat::Png)
                .map_err(|e| DataError::BadImage {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            resnext_io::write_atomic(&path, png.get_ref())?;
            written += 1;
        }
    }
    Ok(written)
}
