//! Decoding any common image file to RGB8: every colour type (gray, gray+alpha, RGBA, 16-bit,
//! palette, CMYK JPEG), EXIF orientation applied, limits against decompression bombs, and an
//! error that names the file for a corrupt, truncated or empty one.

use crate::error::DataError;
use image::{ImageDecoder, ImageFormat, ImageReader, RgbImage};
use std::io::Cursor;
use std::path::Path;

/// Limits on what one image may claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    pub max_width: u32,
    pub max_height: u32,
    /// Bytes one decode may allocate.
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
    let reader = ImageReader::new(Cursor::new(bytes))
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
    let mut reader = reader;
    reader.limits(l);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| format!("{format:?}: {e}"))?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(format!("image has no pixels ({w}x{h})"));
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img =
        image::DynamicImage::from_decoder(decoder).map_err(|e| format!("{format:?}: {e}"))?;
    img.apply_orientation(orientation);
    Ok(match img {
        image::DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    })
}

/// Reads and decodes one file.
pub fn decode_file(path: &Path, limits: DecodeLimits) -> Result<RgbImage, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_bytes(&bytes, limits).map_err(|reason| DataError::BadImage {
        path: path.to_path_buf(),
        reason,
    })
}
