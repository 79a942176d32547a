//! Turning untrusted photo bytes into pixels, refusing hostile input before it costs memory.
//!
//! Photos come from a camera, but also from uploads and folders an installer points us at, so a
//! corrupt, truncated or deliberately huge image must end in a clear [`Error::Image`], never a panic or
//! an allocation of gigabytes. The header is read first and its dimensions checked against
//! `max_side`; the decoder then runs under `image`'s allocation limit as a second line of defence.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{ImageDecoder, ImageReader, Limits, RgbImage};

use facereko_domain::ImageFormat;

use crate::{Error, Result};

/// Photos smaller than this on either side cannot hold a face any detector finds.
pub const MIN_SIDE: u32 = 32;

/// Upper bound on what one decode may allocate.
const MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// Decodes JPEG or PNG bytes into RGB pixels, refusing images over `max_side` on a side, under
/// [`MIN_SIDE`], or that fail to decode.
pub fn decode_rgb(bytes: &[u8], max_side: u32) -> Result<RgbImage> {
    if bytes.is_empty() {
        return Err(Error::Image("the photo is empty (0 bytes)".into()));
    }
    let reader = |limited: bool| -> Result<ImageReader<Cursor<&[u8]>>> {
        let mut r = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| Error::Image(format!("cannot read the header: {e}")))?;
        match r.format() {
            Some(image::ImageFormat::Jpeg) | Some(image::ImageFormat::Png) => {}
            Some(other) => {
                return Err(Error::Image(format!(
                    "{other:?} photos are not accepted; use JPEG or PNG"
                )))
            }
            None => return Err(Error::Image("not a JPEG or PNG file".into())),
        }
        if limited {
            let mut limits = Limits::default();
            limits.max_image_width = Some(max_side);
            limits.max_image_height = Some(max_side);
            limits.max_alloc = Some(MAX_ALLOC);
            r.limits(limits);
        } else {
            // Reading the header allocates nothing of the image's size; its dimensions make a clearer
            // error than the decoder's "exceeds limit".
            r.no_limits();
        }
        Ok(r)
    };
    let (w, h) = reader(false)?
        .into_dimensions()
        .map_err(|e| Error::Image(describe(e, max_side)))?;
    if w > max_side || h > max_side {
        return Err(Error::Image(format!(
            "the photo is {w}×{h} pixels; the largest accepted is {max_side}×{max_side}"
        )));
    }
    if w < MIN_SIDE || h < MIN_SIDE {
        return Err(Error::Image(format!(
            "the photo is {w}×{h} pixels; too small to hold a face (at least {MIN_SIDE}×{MIN_SIDE})"
        )));
    }
    if ImageFormat::sniff(bytes) == Some(ImageFormat::Jpeg) && !ends_with_eoi(bytes) {
        return Err(Error::Image(
            "the photo is truncated (the JPEG has no end-of-image marker)".into(),
        ));
    }
    let fail = |e| Error::Image(describe(e, max_side));
    let mut decoder = reader(true)?.into_decoder().map_err(fail)?;
    // `from_decoder` does not apply the allocation limit the way `ImageReader::decode` does: check the
    // decoded size (and the RGB copy made after it) ourselves.
    let rgb_bytes = u64::from(w) * u64::from(h) * 3;
    if decoder.total_bytes().max(rgb_bytes) > MAX_ALLOC {
        return Err(Error::Image(format!(
            "the photo is {w}×{h} pixels: decoding it would need more than {} MB",
            MAX_ALLOC >> 20
        )));
    }
    // Phones store portraits sideways with an EXIF orientation tag; the detector needs them upright.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(fail)?;
    img.apply_orientation(orientation);
    Ok(img.into_rgb8())
}

/// Whether a JPEG ends with its end-of-image marker (ignoring zero padding some encoders add): a
/// truncated file does not, and the decoder would otherwise fill the missing part with grey.
fn ends_with_eoi(bytes: &[u8]) -> bool {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    bytes[..end].ends_with(&[0xFF, 0xD9])
}

fn describe(e: image::ImageError, max_side: u32) -> String {
    match e {
        image::ImageError::Limits(l) => format!(
            "the photo exceeds the decoding limits ({l}); the largest accepted is {max_side}×{max_side}"
        ),
        image::ImageError::Decoding(d) => format!("the photo is corrupt or truncated: {d}"),
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the photo is truncated".into()
        }
        other => format!("the photo cannot be decoded: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::jpeg::JpegEncoder;
    use image::codecs::png::PngEncoder;
    use image::ImageEncoder;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 85)
            .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
        out
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::new(w, h);
        let mut out = Vec::new();
        PngEncoder::new(&mut out)
            .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
        out
    }

    fn err(r: Result<RgbImage>) -> String {
        match r {
            Ok(img) => panic!(
                "decoded a {}×{} image, expected an error",
                img.width(),
                img.height()
            ),
            Err(e) => e.to_string(),
        }
    }

    /// A JPEG whose SOF0 header claims `w`×`h`, with no real image data behind it.
    pub(crate) fn jpeg_header_claiming(w: u16, h: u16) -> Vec<u8> {
        let mut b = jpeg(64, 64);
        // Find the SOF0 marker (FF C0) and rewrite its height and width fields.
        let i = b.windows(2).position(|p| p == [0xFF, 0xC0]).unwrap();
        b[i + 5..i + 7].copy_from_slice(&h.to_be_bytes());
        b[i + 7..i + 9].copy_from_slice(&w.to_be_bytes());
        b
    }

    #[test]
    fn decodes_a_good_jpeg_and_png() {
        assert_eq!(
            decode_rgb(&jpeg(120, 90), 8192).unwrap().dimensions(),
            (120, 90)
        );
        assert_eq!(
            decode_rgb(&png(40, 50), 8192).unwrap().dimensions(),
            (40, 50)
        );
    }

    #[test]
    fn a_one_pixel_image_is_too_small() {
        let e = err(decode_rgb(&png(1, 1), 8192));
        assert!(e.contains("1×1") && e.contains("too small"), "{e}");
    }

    #[test]
    fn a_huge_header_is_refused_before_decoding() {
        let b = jpeg_header_claiming(20000, 20000);
        let e = err(decode_rgb(&b, 8192));
        assert!(
            e.contains("20000×20000") && e.contains("largest accepted"),
            "{e}"
        );
    }

    #[test]
    fn a_huge_header_within_the_side_limit_is_still_bounded_by_the_allocation_limit() {
        // 16000×16000 RGB would need 768 MB: over MAX_ALLOC even with max_side raised.
        let b = jpeg_header_claiming(16000, 16000);
        let e = err(decode_rgb(&b, 16384));
        assert!(e.contains("16000×16000") && e.contains("512 MB"), "{e}");
    }

    #[test]
    fn truncated_and_corrupt_jpegs_are_clear_errors() {
        let good = jpeg(200, 150);
        let e = err(decode_rgb(&good[..good.len() / 2], 8192));
        assert!(e.contains("image could not be read"), "{e}");
        let mut bad = good.clone();
        for b in bad.iter_mut().skip(300).step_by(7) {
            *b = 0xFF;
        }
        // Either a decode error or garbage pixels, but never a panic.
        let _ = decode_rgb(&bad, 8192);
        let e = err(decode_rgb(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0], 8192));
        assert!(e.contains("image could not be read"), "{e}");
    }

    #[test]
    fn other_formats_and_empty_input_are_refused() {
        assert!(err(decode_rgb(b"", 8192)).contains("empty"));
        assert!(decode_rgb(b"GIF89a....", 8192).is_err());
        assert!(err(decode_rgb(b"hello world", 8192)).contains("not a JPEG or PNG"));
    }
}
