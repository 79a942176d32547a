//! JPEG frames from programs and devices: checking one whole JPEG, and splitting an MJPEG stream into
//! frames (a leaf shared by the `camera` backends and `v4l2`).

use facereko_domain::{ImageFormat, Photo};

use crate::{Error, Result};

/// Checks that what a program printed is a whole JPEG (or a PNG) and wraps it.
pub fn photo_from_output(name: &str, bytes: Vec<u8>) -> Result<Photo> {
    if bytes.is_empty() {
        return Err(Error::Camera(format!("{name} printed nothing")));
    }
    match ImageFormat::sniff(&bytes) {
        Some(ImageFormat::Jpeg) => {
            // Walk the marker structure to the end-of-image marker: a JPEG cut short (a program killed
            // mid-write, a full disk) has none.
            if JpegSplitter::new().push(&bytes).is_empty() {
                return Err(Error::Camera(format!(
                    "{name} printed a truncated JPEG ({} bytes, no end-of-image marker)",
                    bytes.len()
                )));
            }
        }
        Some(ImageFormat::Png) => {}
        None => {
            let preview: String = String::from_utf8_lossy(&bytes[..bytes.len().min(60)])
                .escape_debug()
                .collect();
            return Err(Error::Camera(format!(
                "{name} printed {} bytes that are not a JPEG or PNG (they start with \"{preview}\")",
                bytes.len()
            )));
        }
    }
    Photo::from_bytes(bytes).ok_or_else(|| Error::Camera(format!("{name}: not an image")))
}

/// Splits a stream of concatenated JPEGs (an MJPEG stream as `rpicam-vid --codec mjpeg -o -` writes it) into
/// frames by walking the JPEG marker structure, so an FF D9 inside a segment or in stuffed entropy data is
/// never taken for the end of a frame. Garbage between frames is skipped; a frame larger than 16 MB is
/// dropped.
#[derive(Debug, Default)]
pub struct JpegSplitter {
    buf: Vec<u8>,
    started: bool,
    pos: usize,
    in_scan: bool,
}

enum Step {
    Need,
    Frame(usize),
    Corrupt,
}

/// The largest frame a camera may deliver; the simulated camera's image files are held to it too.
pub const MAX_FRAME: usize = 16 << 20;

impl JpegSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the frames completed by them.
    pub fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        self.buf.extend_from_slice(data);
        let mut frames = Vec::new();
        loop {
            if !self.started {
                match self.buf.windows(2).position(|w| w == [0xFF, 0xD8]) {
                    Some(start) => {
                        self.buf.drain(..start);
                        self.started = true;
                        self.pos = 2;
                        self.in_scan = false;
                    }
                    None => {
                        let keep = usize::from(self.buf.last() == Some(&0xFF));
                        let cut = self.buf.len() - keep;
                        self.buf.drain(..cut);
                        break;
                    }
                }
            }
            match self.advance() {
                Step::Need => {
                    if self.buf.len() > MAX_FRAME {
                        tracing::warn!(target: "facereko::camera", "MJPEG frame over {MAX_FRAME} bytes dropped");
                        self.buf.clear();
                        self.started = false;
                    }
                    break;
                }
                Step::Frame(end) => {
                    frames.push(self.buf.drain(..end).collect());
                    self.started = false;
                }
                Step::Corrupt => {
                    self.buf.drain(..2);
                    self.started = false;
                }
            }
        }
        frames
    }

    fn advance(&mut self) -> Step {
        let b = &self.buf;
        let len = b.len();
        loop {
            if self.in_scan {
                // Entropy-coded data: FF 00 is a stuffed FF, FF D0..D7 are restart markers.
                loop {
                    if self.pos + 1 >= len {
                        return Step::Need;
                    }
                    if b[self.pos] == 0xFF {
                        let n = b[self.pos + 1];
                        if n == 0x00 || (0xD0..=0xD7).contains(&n) {
                            self.pos += 2;
                            continue;
                        }
                        if n == 0xFF {
                            self.pos += 1;
                            continue;
                        }
                        self.in_scan = false;
                        break;
                    }
                    self.pos += 1;
                }
            }
            if self.pos + 1 >= len {
                return Step::Need;
            }
            if b[self.pos] != 0xFF {
                return Step::Corrupt;
            }
            let m = b[self.pos + 1];
            match m {
                0xFF => self.pos += 1,
                0xD9 => return Step::Frame(self.pos + 2),
                0xD8 => return Step::Corrupt,
                0x01 | 0xD0..=0xD7 => self.pos += 2,
                _ => {
                    if self.pos + 3 >= len {
                        return Step::Need;
                    }
                    let seg = usize::from(u16::from_be_bytes([b[self.pos + 2], b[self.pos + 3]]));
                    if seg < 2 {
                        return Step::Corrupt;
                    }
                    self.pos += 2 + seg;
                    if m == 0xDA {
                        self.in_scan = true;
                    }
                }
            }
        }
    }
}
