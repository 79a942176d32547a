//! Safe handling of uploaded and stored images: the header is read first and an image larger than allowed
//! is refused before any pixel is decoded; then the whole image is decoded under allocation limits, so a
//! truncated or hostile file is refused with a clear message instead of reaching the face engine.

use std::io::Cursor;

use facereko_domain::{ImageFormat, Photo};
use image::{ImageReader, Limits};

/// Why an image was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("the file is not a JPEG or PNG image")]
    NotAnImage,
    #[error("the image is {width}×{height} pixels; the most allowed is {max} pixels per side")]
    TooLarge { width: u32, height: u32, max: u32 },
    #[error("the image is damaged or incomplete and cannot be read")]
    Corrupt,
    #[error("the image is empty")]
    Empty,
}

fn limits(max_side: u32) -> Limits {
    let mut l = Limits::default();
    l.max_image_width = Some(max_side);
    l.max_image_height = Some(max_side);
    // Four bytes per pixel at the largest allowed size, plus decoder overhead.
    l.max_alloc = Some(u64::from(max_side) * u64::from(max_side) * 4 + 16 * 1024 * 1024);
    l
}

/// Checks an uploaded file: JPEG or PNG by its bytes, at most `max_side` pixels per side, fully decodable.
/// Returns the photo ready for enrolment. CPU-bound: call it from `spawn_blocking`.
pub fn check_photo(bytes: Vec<u8>, max_side: u32) -> Result<Photo, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let format = ImageFormat::sniff(&bytes).ok_or(ImageError::NotAnImage)?;
    let fmt = match format {
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Png => image::ImageFormat::Png,
    };
    // The header alone (the default limits bound what reading it may allocate); sizes are judged here.
    let reader = ImageReader::with_format(Cursor::new(&bytes), fmt);
    let (width, height) = reader.into_dimensions().map_err(|_| ImageError::Corrupt)?;
    if width > max_side || height > max_side {
        return Err(ImageError::TooLarge {
            width,
            height,
            max: max_side,
        });
    }
    if width == 0 || height == 0 {
        return Err(ImageError::Corrupt);
    }
    // JPEG decoders fill in a cut-off image with grey; a complete file ends with the EOI marker (some
    // cameras append a little metadata after it).
    if format == ImageFormat::Jpeg {
        let tail = &bytes[bytes.len().saturating_sub(4096)..];
        if !tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
            return Err(ImageError::Corrupt);
        }
    }
    let mut reader = ImageReader::with_format(Cursor::new(&bytes), fmt);
    reader.limits(limits(max_side));
    reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => ImageError::TooLarge {
            width,
            height,
            max: max_side,
        },
        _ => ImageError::Corrupt,
    })?;
    Ok(Photo { bytes, format })
}

/// A JPEG thumbnail at most `side` pixels wide and high, or `None` if the image cannot be read safely.
pub fn thumbnail(bytes: &[u8], side: u32, max_side: u32) -> Option<Vec<u8>> {
    let format = ImageFormat::sniff(bytes)?;
    let fmt = match format {
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Png => image::ImageFormat::Png,
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), fmt);
    reader.limits(limits(max_side));
    let img = reader.decode().ok()?;
    let thumb = img.thumbnail(side, side).to_rgb8();
    let mut out = Vec::new();
    thumb
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
        .ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
            .unwrap();
        out
    }

    #[test]
    fn good_images_pass_and_keep_their_bytes() {
        let b = jpeg(64, 48);
        let p = check_photo(b.clone(), 100).unwrap();
        assert_eq!(p.bytes, b);
        assert_eq!(p.format, ImageFormat::Jpeg);
    }

    #[test]
    fn oversized_images_are_refused_by_their_header() {
        let e = check_photo(jpeg(200, 20), 100).unwrap_err();
        assert_eq!(
            e,
            ImageError::TooLarge {
                width: 200,
                height: 20,
                max: 100
            }
        );
        assert!(e.to_string().contains("200×20"));
    }

    #[test]
    fn corrupt_and_foreign_files_are_refused() {
        for keep in [3, 2] {
            let mut b = jpeg(64, 64);
            b.truncate(b.len() * (keep - 1) / keep);
            assert_eq!(check_photo(b, 100).unwrap_err(), ImageError::Corrupt);
        }
        assert_eq!(
            check_photo(b"GIF89a....".to_vec(), 100).unwrap_err(),
            ImageError::NotAnImage
        );
        assert_eq!(check_photo(vec![], 100).unwrap_err(), ImageError::Empty);
        // A PNG header claiming a gigantic size with no data behind it.
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(
            check_photo(png, 6000).unwrap_err(),
            ImageError::TooLarge { .. } | ImageError::Corrupt
        ));
    }

    #[test]
    fn thumbnails_are_small_jpegs() {
        let t = thumbnail(&jpeg(640, 480), 160, 1000).unwrap();
        assert_eq!(ImageFormat::sniff(&t), Some(ImageFormat::Jpeg));
        let img = image::load_from_memory(&t).unwrap();
        assert_eq!((img.width(), img.height()), (160, 120));
        assert!(thumbnail(b"junk", 160, 1000).is_none());
    }
}
