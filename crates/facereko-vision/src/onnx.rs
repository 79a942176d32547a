//! The ONNX pipeline: BlazeFace finds faces and six keypoints, a similarity transform aligns each face
//! to MobileFaceNet's 112×112 template, and MobileFaceNet describes it (192-d), photo and mirror in one
//! batch of two, averaged.
//!
//! Two BlazeFace variants cover the distances: the 128-pixel "front" model for faces filling much of the
//! picture (phone photos, LFW, tight crops) and the 256-pixel "back" model for smaller faces, such as a
//! person a metre or two from a 640×480 door camera. The frame is resized once, into the 256-pixel
//! square, and halved for the 128-pixel one. The front model runs first; when it finds a clear, large
//! face the back model is skipped (saving ≈ 3 ms on this machine); otherwise both run and, where they
//! found the same face, the more confident detection is kept.
//!
//! ONNX Runtime is loaded at run time from the checksum-verified `libonnxruntime.so` installed with the
//! models (`ort`'s `load-dynamic`): nothing is downloaded by the build or at run time. Each worker owns
//! its sessions, single-threaded inside, so workers never fight over cores.

use std::path::Path;
use std::sync::Mutex;

use image::RgbImage;
use ort::session::Session;
use ort::value::TensorRef;

use crate::blazeface::{self, kp, Detection, Letterbox};
use crate::detected::{Face, Found, Native, PhotoState};
use crate::gallery::{Embedding, ONNX_EMBEDDING_DIM};
use crate::geometry::{Similarity, TEMPLATE_112};
use crate::models::{self, OnnxPaths};
use crate::{Error, Result};

/// Detections below this BlazeFace score are dropped (the quality gate then checks the keypoints).
const MIN_SCORE: f32 = 0.5;
/// Detections of one face overlap by more than this.
const NMS_IOU: f32 = 0.3;
/// The front model alone is trusted when it finds a face at least this confident…
const FRONT_SURE_SCORE: f32 = 0.85;
/// …and at least this wide, as a share of the photo's longer side.
const FRONT_SURE_WIDTH: f32 = 0.25;
/// Side of MobileFaceNet's aligned input.
const CROP: usize = 112;

/// ONNX Runtime is one library per process: loaded once, from the first models folder asked for.
static RUNTIME: Mutex<Option<String>> = Mutex::new(None);

fn init_runtime(path: &Path) -> Result<()> {
    let mut loaded = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if loaded.is_some() {
        return Ok(());
    }
    let shown = path.display().to_string();
    // `ort` panics, rather than erring, when the library cannot be loaded; the file was verified just
    // before, so a panic here means a system problem (a foreign architecture, a missing libstdc++).
    let committed =
        std::panic::catch_unwind(|| ort::init_from(shown.clone()).commit()).map_err(|_| {
            Error::Engine(format!(
                "ONNX Runtime at {shown} could not be loaded (is it for this CPU?)"
            ))
        })?;
    committed.map_err(|e| Error::Engine(format!("starting ONNX Runtime from {shown}: {e}")))?;
    *loaded = Some(shown);
    Ok(())
}

fn session(path: &Path, threads: usize) -> Result<Session> {
    let fail = |e: ort::Error| Error::Engine(format!("loading {}: {e}", path.display()));
    Session::builder()
        .map_err(fail)?
        .with_intra_threads(threads)
        .map_err(fail)?
        .with_inter_threads(1)
        .map_err(fail)?
        .commit_from_file(path)
        .map_err(fail)
}

/// One BlazeFace model and its anchors.
struct Detector {
    session: Session,
    input: usize,
    anchors: Vec<crate::geometry::Point>,
    buf: Vec<f32>,
}

impl Detector {
    fn new(path: &Path, input: usize, threads: usize) -> Result<Self> {
        Ok(Self {
            session: session(path, threads)?,
            input,
            anchors: blazeface::anchors(input),
            buf: vec![0.0; input * input * 3],
        })
    }

    /// Faces in a photo already fitted into this model's square (`scaled` is the photo at `lb`'s
    /// size), in photo pixels, after weighted NMS.
    fn run(&mut self, scaled: &RgbImage, lb: Letterbox) -> Result<Vec<Detection>> {
        // Channels-last, [-1, 1]; the letterbox border is black (−1).
        self.buf.fill(-1.0);
        let (dx, dy) = (lb.dx as usize, lb.dy as usize);
        for (y, row) in scaled
            .as_raw()
            .chunks_exact(scaled.width() as usize * 3)
            .enumerate()
            .take(self.input - dy)
        {
            let start = ((y + dy) * self.input + dx) * 3;
            let len = row.len().min((self.input - dx) * 3);
            for (o, &v) in self.buf[start..start + len].iter_mut().zip(row) {
                *o = v as f32 / 127.5 - 1.0;
            }
        }
        let input =
            TensorRef::from_array_view(([1usize, self.input, self.input, 3], &self.buf[..]))
                .map_err(|e| Error::Engine(format!("BlazeFace input: {e}")))?;
        let outputs = self
            .session
            .run(ort::inputs![input])
            .map_err(|e| Error::Engine(format!("BlazeFace: {e}")))?;
        let get = |i: usize| -> Result<&[f32]> {
            outputs[i]
                .try_extract_tensor::<f32>()
                .map(|(_, v)| v)
                .map_err(|e| Error::Engine(format!("BlazeFace output {i}: {e}")))
        };
        // Outputs: scores (fine grid, coarse grid), then regressors in the same order.
        let scores = [get(0)?, get(1)?].concat();
        let regs = [get(2)?, get(3)?].concat();
        let dets = blazeface::decode(self.input, &self.anchors, &scores, &regs, MIN_SCORE);
        Ok(blazeface::weighted_nms(dets, NMS_IOU)
            .into_iter()
            .map(|d| lb.detection_to_photo(d))
            .collect())
    }
}

/// `img` fitted into a 256-pixel square (resized once, antialiased), and the same halved by 2×2
/// averaging for the 128-pixel model: one resize of the camera frame serves both detectors.
fn letterboxes(img: &RgbImage) -> ((RgbImage, Letterbox), (RgbImage, Letterbox)) {
    let big = Letterbox::fit(img.width(), img.height(), 256);
    let scaled = if (big.width, big.height) == img.dimensions() {
        img.clone()
    } else {
        image::imageops::resize(
            img,
            big.width,
            big.height,
            image::imageops::FilterType::Triangle,
        )
    };
    let (w, h) = ((big.width / 2).max(1), (big.height / 2).max(1));
    let (sw, src) = (scaled.width() as usize, scaled.as_raw());
    let half = RgbImage::from_fn(w, h, |x, y| {
        let mut px = [0u16; 3];
        for (ox, oy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let (sx, sy) = (
                (2 * x as usize + ox).min(sw - 1),
                (2 * y as usize + oy).min(scaled.height() as usize - 1),
            );
            let i = (sy * sw + sx) * 3;
            for c in 0..3 {
                px[c] += src[i + c] as u16;
            }
        }
        image::Rgb(px.map(|v| ((v + 2) / 4) as u8))
    });
    let small = Letterbox {
        scale: big.scale * w as f32 / big.width as f32,
        dx: ((128 - w) / 2) as f32,
        dy: ((128 - h) / 2) as f32,
        width: w,
        height: h,
    };
    ((half, small), (scaled, big))
}

pub(crate) struct Pipeline {
    front: Detector,
    back: Detector,
    embedder: Session,
    batch: Vec<f32>,
}

impl Pipeline {
    /// One pipeline per worker. Verifies every file's checksum first (a damaged runtime library would
    /// crash the process), then loads ONNX Runtime and the three models.
    pub(crate) fn load_all(workers: usize, models_dir: &Path) -> Result<Vec<Self>> {
        let OnnxPaths {
            detector_front,
            detector_back,
            embedder,
            runtime,
        } = models::verify_onnx(models_dir)?;
        init_runtime(&runtime)?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // A lone worker may use the spare cores inside the embedder; several workers take one each.
        let threads = (cores / workers.max(1)).clamp(1, 4);
        (0..workers)
            .map(|_| {
                Ok(Pipeline {
                    front: Detector::new(&detector_front, 128, 1)?,
                    back: Detector::new(&detector_back, 256, 1)?,
                    embedder: session(&embedder, threads)?,
                    batch: vec![0.0; 2 * 3 * CROP * CROP],
                })
            })
            .collect()
    }

    /// Every face BlazeFace saw (not yet gated). `thorough` always runs both detector variants
    /// (enrolment must see every face to refuse a photo of two people).
    pub(crate) fn detect(&mut self, img: &RgbImage, thorough: bool) -> Result<Found> {
        let ((half, small), (scaled, big)) = letterboxes(img);
        let front = self.front.run(&half, small)?;
        let long = img.width().max(img.height()) as f32;
        let sure = front
            .iter()
            .any(|d| d.score >= FRONT_SURE_SCORE && d.rect.width() >= FRONT_SURE_WIDTH * long);
        let dets = if sure && !thorough {
            front
        } else {
            blazeface::merge(front, self.back.run(&scaled, big)?, NMS_IOU)
        };
        let faces = dets
            .into_iter()
            .map(|d| {
                let k = d.keypoints;
                Face {
                    rect: d.rect,
                    width_px: d.rect.width().max(0.0).round() as u32,
                    keypoints: k.to_vec(),
                    eyes: [k[kp::RIGHT_EYE], k[kp::LEFT_EYE]],
                    nose: k[kp::NOSE_TIP],
                    score: Some(d.score),
                    limits: crate::quality::NOSE_TIP,
                    native: Native::Onnx([
                        k[kp::RIGHT_EYE],
                        k[kp::LEFT_EYE],
                        k[kp::NOSE_TIP],
                        k[kp::MOUTH],
                    ]),
                }
            })
            .collect();
        Ok(Found {
            faces,
            state: PhotoState::None,
        })
    }

    /// The face's embedding: aligned crop and its mirror in one batch, the two unit vectors averaged
    /// (or the plain one alone without `mirror`).
    pub(crate) fn embed(
        &mut self,
        img: &RgbImage,
        points: &[crate::geometry::Point; 4],
        mirror: bool,
    ) -> Result<Embedding> {
        let t = Similarity::estimate(points, &TEMPLATE_112)
            .ok_or_else(|| Error::Engine("the face's keypoints coincide".into()))?;
        let plane = 3 * CROP * CROP;
        let (plain, flipped) = self.batch.split_at_mut(plane);
        crate::geometry::warp_normalised(img, &t, CROP, plain, Some(flipped));
        let input = TensorRef::from_array_view(([2usize, 3, CROP, CROP], &self.batch[..]))
            .map_err(|e| Error::Engine(format!("MobileFaceNet input: {e}")))?;
        let outputs = self
            .embedder
            .run(ort::inputs![input])
            .map_err(|e| Error::Engine(format!("MobileFaceNet: {e}")))?;
        let (_, out) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| Error::Engine(format!("MobileFaceNet output: {e}")))?;
        if out.len() != 2 * ONNX_EMBEDDING_DIM {
            return Err(Error::Engine(format!(
                "MobileFaceNet returned {} values, expected {}",
                out.len(),
                2 * ONNX_EMBEDDING_DIM
            )));
        }
        let a = Embedding::new(out[..ONNX_EMBEDDING_DIM].to_vec())?;
        if !mirror {
            return Ok(a);
        }
        let b = Embedding::new(out[ONNX_EMBEDDING_DIM..].to_vec())?;
        Embedding::new(
            a.as_slice()
                .iter()
                .zip(b.as_slice())
                .map(|(x, y)| x + y)
                .collect(),
        )
    }
}
