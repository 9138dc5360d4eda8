//! Helpers shared by the data tests: generated ImageFolders and `../shared` lookup.
#![allow(dead_code)]

use image::{Rgb, RgbImage};
use std::path::{Path, PathBuf};

/// `../shared` lookup, shared by every crate's tests.
#[allow(unused_imports)] // not every test binary that includes this module uses it
pub use resnext_testkit::shared;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A solid-ish image with a gradient so that transforms change it.
pub fn gradient(w: u32, h: u32, tint: [u8; 3]) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            tint[0].wrapping_add((x * 255 / w.max(1)) as u8 / 2),
            tint[1].wrapping_add((y * 255 / h.max(1)) as u8 / 2),
            tint[2],
        ])
    })
}

/// Writes `per_class` PNGs for each class name under `root/<class>/`.
pub fn make_folder(root: &Path, classes: &[&str], per_class: usize, size: (u32, u32)) {
    for (c, class) in classes.iter().enumerate() {
        let dir = root.join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..per_class {
            let img = gradient(size.0, size.1, [(c * 80) as u8, (i * 7) as u8, 100]);
            img.save(dir.join(format!("img_{i:03}.png"))).unwrap();
        }
    }
}
