//! Decoding every kind of image, and Pillow-exact resizing.

mod common;

use resnext_data::decode::{check_size, decode_bytes, decode_file, DecodeLimits, MAX_PIXELS};
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

/// A PNG claiming `w`×`h` pixels of 16-bit RGBA, with no pixel data behind its header.
fn png_header_rgba16(w: u32, h: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    let chunk = |png: &mut Vec<u8>, kind: &[u8], data: &[u8]| {
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        png.extend_from_slice(&body);
        png.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[16, 6, 0, 0, 0]); // 16-bit, RGBA
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &[]);
    chunk(&mut png, b"IEND", &[]);
    png
}

#[test]
fn the_decoded_size_is_refused_from_the_header_before_any_pixel_buffer() {
    // 16000 x 16000 is inside the 16384-a-side limit, but 256 Mpx of 16-bit RGBA is 2 GB decoded
    // (2.9 GB at the peak with the RGB8 copy): refused from the header, naming the size
    let err =
        decode_bytes(&png_header_rgba16(16_000, 16_000), DecodeLimits::default()).unwrap_err();
    assert!(
        err.contains("16000x16000") && err.contains("Mpx") && err.contains("limit"),
        "{err}"
    );

    // a real image whose decoded buffer (8 bytes a pixel) and RGB8 copy outgrow max_alloc,
    // although the file is small and the sides are within their limits
    let img = image::ImageBuffer::<image::Rgba<u16>, _>::from_fn(512, 512, |x, y| {
        image::Rgba([(x * 128) as u16, (y * 128) as u16, 4000, 65535])
    });
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let limits = DecodeLimits {
        max_width: 1024,
        max_height: 1024,
        max_alloc: 2 << 20,
    };
    // 512 x 512 x (8 + 3) bytes = 2.75 MiB
    let err = decode_bytes(&png, limits).unwrap_err();
    assert!(
        err.contains("512x512") && err.contains("Rgba16") && err.contains("memory limit"),
        "{err}"
    );
    let roomy = DecodeLimits {
        max_alloc: 3 << 20,
        ..limits
    };
    assert_eq!(decode_bytes(&png, roomy).unwrap().dimensions(), (512, 512));

    // the arithmetic: Pillow's pixel limit, 16-bit RGBA at it fits the default 1 GiB
    use image::ColorType::{Rgb8, Rgba16};
    let d = DecodeLimits::default();
    check_size(9459, 9459, Rgba16, false, d).unwrap();
    assert!(check_size(9460, 9460, Rgb8, false, d)
        .unwrap_err()
        .contains("Mpx"));
    // an RGB8 image holds one buffer, two when the EXIF orientation rotates it
    let one_mib = DecodeLimits {
        max_alloc: 1 << 20,
        ..d
    };
    check_size(512, 512, Rgb8, false, one_mib).unwrap();
    assert!(check_size(512, 512, Rgb8, true, one_mib).is_err());
    assert_eq!(MAX_PIXELS, 89_478_485);
}
