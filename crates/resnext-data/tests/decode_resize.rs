//! Decoding every kind of image, and Pillow-exact resizing.

mod common;

use resnext_data::decode::{decode_bytes, decode_file, DecodeLimits};
use resnext_data::resize::{resize, resize_crop, CropBox};

fn load(name: &str) -> image::RgbImage {
    decode_file(&common::fixture(name), DecodeLimits::default()).unwrap()
}

#[test]
fn resize_matches_pillow_bit_for_bit() {
    let src = load("pil_src.png");
    for (name, w, h) in [
        ("down_16x12", 16, 12),
        ("up_80x60", 80, 60),
        ("vert_53x20", 53, 20),
        ("horiz_20x41", 20, 41),
    ] {
        let want = load(&format!("pil_{name}.png"));
        let got = resize(&src, w, h);
        assert_eq!(got.dimensions(), want.dimensions(), "{name}");
        let diff = got
            .as_raw()
            .iter()
            .zip(want.as_raw())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(diff, 0, "{name}: {diff} bytes differ from Pillow");
    }
    let want = load("pil_crop_5_7_30_25_to_24x24.png");
    let got = resize_crop(
        &src,
        CropBox {
            left: 5,
            top: 7,
            width: 30,
            height: 25,
        },
        24,
        24,
    );
    assert_eq!(
        got.as_raw(),
        want.as_raw(),
        "crop then resize differs from Pillow"
    );
}

#[test]
fn same_size_resize_is_identity() {
    let src = load("pil_src.png");
    assert_eq!(resize(&src, 53, 41).as_raw(), src.as_raw());
}

#[test]
fn unusual_kinds_decode_to_rgb8() {
    for name in [
        "gray.png",
        "gray_alpha.png",
        "rgba.png",
        "gray16.png",
        "palette.png",
        "palette.gif",
        "cmyk.jpg",
        "plain.bmp",
        "plain.tiff",
        "plain.webp",
    ] {
        let img = decode_file(&common::fixture(name), DecodeLimits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(img.width() > 0 && img.height() > 0, "{name}");
    }
    // lossless kinds carry the same pixels as the source
    let src = load("pil_src.png");
    for name in ["plain.bmp", "plain.tiff", "plain.webp"] {
        assert_eq!(load(name).as_raw(), src.as_raw(), "{name}");
    }
    // CMYK came out as colours near the source, not garbage
    let cmyk = load("cmyk.jpg");
    let mean_err: f64 = cmyk
        .as_raw()
        .iter()
        .zip(src.as_raw())
        .map(|(a, b)| (*a as f64 - *b as f64).abs())
        .sum::<f64>()
        / src.as_raw().len() as f64;
    assert!(
        mean_err < 40.0,
        "CMYK JPEG decoded far from its source: mean error {mean_err}"
    );
}

#[test]
fn exif_orientation_is_applied() {
    let img = load("exif_rot6.jpg");
    assert_eq!(img.dimensions(), (41, 53));
}

#[test]
fn corrupt_truncated_empty_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(common::fixture("exif_rot6.jpg")).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.jpg", vec![]),
        ("truncated.jpg", good[..good.len() / 2].to_vec()),
        ("garbage.png", b"this is not an image at all".to_vec()),
        (
            "cut.png",
            std::fs::read(common::fixture("pil_src.png")).unwrap()[..500].to_vec(),
        ),
    ];
    for (name, bytes) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let err = decode_file(&p, DecodeLimits::default()).unwrap_err();
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
}

#[test]
fn decompression_bombs_are_refused() {
    // a PNG header that claims 100000 x 100000 pixels
    let img = image::RgbImage::new(1, 1);
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .unwrap();
    let limits = DecodeLimits {
        max_width: 16,
        max_height: 16,
        max_alloc: 1 << 20,
    };
    let big = image::RgbImage::new(64, 64);
    let mut big_bytes = Vec::new();
    big.write_to(
        &mut std::io::Cursor::new(&mut big_bytes),
        image::ImageFormat::Png,
    )
    .unwrap();
    assert!(decode_bytes(&bytes, limits).is_ok());
    let err = decode_bytes(&big_bytes, limits).unwrap_err();
    assert!(err.to_lowercase().contains("limit"), "{err}");
}
