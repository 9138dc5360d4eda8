//! Decoding any common image file to RGB8: every colour type (gray, gray+alpha, RGBA, 16-bit,
//! palette, CMYK JPEG), EXIF orientation applied, limits against decompression bombs, and an
//! error that names the file for a corrupt, truncated or empty one.
//!
//! The limits are checked on the header, before any pixel buffer exists: the sides, the pixel
//! count ([`MAX_PIXELS`]) and the bytes the decode will hold at its peak (the decoder's buffer in
//! its own colour type plus the RGB8 copy), against [`DecodeLimits::max_alloc`]. The `image`
//! crate's own `max_alloc` does not cover the decoded buffer when decoding through
//! `into_decoder` (as we must, for the EXIF orientation).

use crate::error::DataError;
use image::metadata::Orientation;
use image::{ImageDecoder, ImageFormat, ImageReader, RgbImage};
use std::io::Cursor;
use std::path::Path;

/// Most pixels one image may have: Pillow's `Image.MAX_IMAGE_PIXELS` (89,478,485, a 9459-pixel
/// square), beyond which Pillow warns of a decompression bomb. A torchvision pipeline decodes
/// everything below it without a word, so a dataset that trains there decodes here.
pub const MAX_PIXELS: u64 = 89_478_485;

/// Limits on what one image may claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    pub max_width: u32,
    pub max_height: u32,
    /// Bytes one decode may hold at its peak: the decoded buffer in the file's colour type (8
    /// bytes a pixel for 16-bit RGBA) plus the RGB8 result (3 a pixel). The pixel count is also
    /// capped, at [`MAX_PIXELS`].
    pub max_alloc: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_width: 16_384,
            max_height: 16_384,
            max_alloc: 1 << 30,
        }
    }
}

/// A JPEG whose entropy-coded data never reaches the end-of-image marker was cut short.
/// (Scan data cannot hold `FF D9`: `FF` is stuffed as `FF 00` there.) The decoder itself is
/// lenient and would fill the missing part with gray.
fn jpeg_is_truncated(bytes: &[u8]) -> bool {
    let Some(sos) = bytes.windows(2).position(|w| w == [0xFF, 0xDA]) else {
        return true;
    };
    !bytes[sos..].windows(2).any(|w| w == [0xFF, 0xD9])
}

/// Decodes image bytes to RGB8. The error is a one-line reason without the file name.
pub fn decode_bytes(bytes: &[u8], limits: DecodeLimits) -> Result<RgbImage, String> {
    decode_inner(bytes, limits).map_err(|e| one_line(&e))
}

/// Decoder messages can end in or contain newlines; errors here are printed as one line.
fn one_line(s: &str) -> String {
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn decode_inner(bytes: &[u8], limits: DecodeLimits) -> Result<RgbImage, String> {
    if bytes.is_empty() {
        return Err("empty file (0 bytes)".into());
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let format = reader.format().ok_or("not a recognised image format")?;
    if format == ImageFormat::Jpeg && jpeg_is_truncated(bytes) {
        return Err("truncated JPEG (no end-of-image marker)".into());
    }
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_width);
    l.max_image_height = Some(limits.max_height);
    l.max_alloc = Some(limits.max_alloc);
    reader.limits(l);
    let mut decoder = reader.into_decoder().map_err(|e| match e {
        // the decoder's own check of the sides, before it says what they are
        image::ImageError::Limits(_) => format!(
            "{format:?}: {e} (at most {}x{} pixels)",
            limits.max_width, limits.max_height
        ),
        e => format!("{format:?}: {e}"),
    })?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(format!("image has no pixels ({w}x{h})"));
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let rotates = !matches!(
        orientation,
        Orientation::NoTransforms | Orientation::FlipHorizontal | Orientation::FlipVertical
    );
    check_size(w, h, decoder.color_type(), rotates, limits)
        .map_err(|e| format!("{format:?}: {e}"))?;
    let img = image::DynamicImage::from_decoder(decoder).map_err(|e| format!("{format:?}: {e}"))?;
    let rgb8 = |img: image::DynamicImage| match img {
        image::DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    };
    // to RGB8 first, so that a rotation copies 3 bytes a pixel, not the decoder's 8
    let mut img = image::DynamicImage::ImageRgb8(rgb8(img));
    img.apply_orientation(orientation);
    Ok(rgb8(img))
}

/// Refuses, from the header alone, an image larger than the limits: its sides, its pixel count,
/// or the bytes its decode would hold at the peak: the decoded buffer in `color`, with the RGB8
/// copy when `color` is not RGB8, or with the rotated copy when the EXIF orientation `rotates`.
pub fn check_size(
    w: u32,
    h: u32,
    color: image::ColorType,
    rotates: bool,
    limits: DecodeLimits,
) -> Result<(), String> {
    if w > limits.max_width || h > limits.max_height {
        return Err(format!(
            "{w}x{h} pixels is over the size limit ({}x{})",
            limits.max_width, limits.max_height
        ));
    }
    let pixels = u64::from(w) * u64::from(h);
    if pixels > MAX_PIXELS {
        return Err(format!(
            "{w}x{h} pixels ({:.1} Mpx) is over the limit of {:.1} Mpx",
            pixels as f64 / 1e6,
            MAX_PIXELS as f64 / 1e6
        ));
    }
    let decoded = pixels.saturating_mul(u64::from(color.bytes_per_pixel()));
    let rgb = pixels.saturating_mul(3);
    // from_decoder's buffer and to_rgb8's copy live together; so do the RGB8 image and its
    // rotation (a flip is done in place)
    let mut peak = if color == image::ColorType::Rgb8 {
        decoded
    } else {
        decoded.saturating_add(rgb)
    };
    if rotates {
        peak = peak.max(rgb.saturating_mul(2));
    }
    if peak > limits.max_alloc {
        let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
        return Err(format!(
            "{w}x{h} pixels of {color:?} need {:.1} MiB to decode, over the memory limit of {:.1} MiB",
            mib(peak),
            mib(limits.max_alloc)
        ));
    }
    Ok(())
}

/// Reads and decodes one file.
pub fn decode_file(path: &Path, limits: DecodeLimits) -> Result<RgbImage, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_bytes(&bytes, limits).map_err(|reason| DataError::BadImage {
        path: path.to_path_buf(),
        reason,
    })
}
