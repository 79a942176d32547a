//! The local engine: dlib's HOG detector, 5-point landmarks and ResNet encoder, on this machine's CPU.
//!
//! One photo goes: decode (with limits) → detect on a copy scaled to at most `detect_max_side` → 5-point
//! landmarks on the full photo → quality gate → pick the largest face nearest the centre → the face
//! chip's 128-d embedding, averaged with the embedding of the mirrored chip (on `lfw-dev` this lifts the
//! true-accept rate at FAR 0.1 % from 93.8 % to 95.3 %; the mirrored pass runs on a second core when
//! there is one). dlib's detector and network are not thread-safe, so each worker owns a full copy of
//! the pipeline behind a mutex, and every call runs on tokio's blocking pool, never on the async
//! runtime's threads.
//!
//! Speed note: the process must run with `OPENBLAS_NUM_THREADS=1` (see [`crate::blas`]), else OpenBLAS's
//! own thread pool fights the workers for the cores and a frame takes about twice as long.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use async_trait::async_trait;
use dlib_face_recognition::{
    FaceDetector, FaceDetectorTrait, FaceEncoderNetwork, FaceEncoderTrait, FaceLandmarks,
    ImageMatrix, LandmarkPredictor, LandmarkPredictorTrait, Rectangle,
};
use facereko_domain::{millis, PersonId, Photo};
use image::RgbImage;

use crate::config::VisionConfig;
use crate::decode::decode_rgb;
use crate::gallery::{Embedding, Gallery, Match, EMBEDDING_DIM};
use crate::{models, Error, FaceEngine, FaceFound, Result, Verdict};

/// dlib's frontal HOG detector does not find faces under about 80 pixels; small photos are upscaled
/// once (2×) when nothing was found at their own size.
const UPSCALE_BELOW_SIDE: u32 = 320;

/// Enrolment photos (phone pictures, uploads) are searched at least at this size: slower, but a face that
/// fills only a tenth of a 12-megapixel photo is still found. Door frames use `detect_max_side`.
const ENROL_DETECT_MAX_SIDE: u32 = 1280;

/// One enrolment: the embedding of the photo's single usable face.
#[derive(Clone, Debug, PartialEq)]
pub struct Enrolment {
    pub embedding: Embedding,
    pub face: FaceFound,
    /// Milliseconds spent decoding, detecting and describing.
    pub ms: u32,
}

/// A probe described for matching.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    pub embedding: Embedding,
    pub face: FaceFound,
}

/// The usable faces of one photo ([`LocalEngine::describe_all_blocking`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PhotoFaces {
    /// Size of the decoded photo, pixels.
    pub width: u32,
    pub height: u32,
    /// Faces the detector saw, usable or not.
    pub detected: usize,
    /// Faces that passed the quality gate (may be more than `faces` holds).
    pub usable: usize,
    /// The best usable faces, best first.
    pub faces: Vec<FaceBox>,
}

/// One described face and its box in photo pixels, clamped to the photo.
#[derive(Clone, Debug, PartialEq)]
pub struct FaceBox {
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
    pub embedding: Embedding,
}

/// The offline engine (see the module note).
#[derive(Debug, Clone)]
pub struct LocalEngine {
    inner: Arc<Inner>,
}

struct Inner {
    config: VisionConfig,
    workers: Vec<Mutex<Pipeline>>,
    next_worker: AtomicUsize,
    gallery: RwLock<Arc<Gallery>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEngine")
            .field("config", &self.config)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

struct Pipeline {
    detector: FaceDetector,
    predictor: LandmarkPredictor,
    encoder: FaceEncoderNetwork,
    /// A second copy of the network for the mirrored face, run on another core at the same time, when
    /// there is more than one core: one photo's latency is then detection plus one embedding.
    mirror_encoder: Option<FaceEncoderNetwork>,
}

/// A detected face that passed the quality gate.
struct Candidate {
    rect: Rectangle,
    landmarks: FaceLandmarks,
    rank: f64,
}

/// What the detector saw in one photo.
struct Faces {
    /// The photo in dlib's format, reused for the embedding.
    full: ImageMatrix,
    usable: Vec<Candidate>,
    detected: usize,
}

impl LocalEngine {
    /// Loads the models from `models_dir` (checked first: a missing file names the command that
    /// installs it). Blocking, ≈ 1.5 s per worker: call it from `spawn_blocking` or before the runtime.
    pub fn load(config: &VisionConfig, models_dir: &Path) -> Result<Self> {
        config.validate()?;
        let paths = models::check(models_dir)?;
        let predictor = LandmarkPredictor::open(&paths.landmarks)
            .map_err(|e| Error::Engine(format!("loading the landmark model: {e}")))?;
        let encoder = FaceEncoderNetwork::open(&paths.encoder)
            .map_err(|e| Error::Engine(format!("loading the face encoder: {e}")))?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = (0..config.workers)
            .map(|_| {
                Mutex::new(Pipeline {
                    detector: FaceDetector::new(),
                    predictor: predictor.clone(),
                    encoder: encoder.clone(),
                    mirror_encoder: (config.mirror && cores > 1).then(|| encoder.clone()),
                })
            })
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                config: config.clone(),
                workers,
                next_worker: AtomicUsize::new(0),
                gallery: RwLock::new(Arc::new(Gallery::empty())),
            }),
        })
    }

    pub fn config(&self) -> &VisionConfig {
        &self.inner.config
    }

    /// Replaces the enrolled faces at once; calls in flight finish with the gallery they started with.
    pub fn set_gallery(&self, gallery: Gallery) {
        *self
            .inner
            .gallery
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(gallery);
    }

    /// The current gallery snapshot.
    pub fn gallery(&self) -> Arc<Gallery> {
        self.inner
            .gallery
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Enrolment: the embedding of the photo's one usable face. Refuses a photo with no usable face
    /// ([`Error::NoFace`]) or with several ([`Error::ManyFaces`]).
    pub async fn embed(&self, photo: &Photo) -> Result<Enrolment> {
        let this = self.clone();
        let bytes = photo.bytes.clone();
        tokio::task::spawn_blocking(move || this.embed_blocking(&bytes))
            .await
            .map_err(|e| Error::Engine(format!("enrolment task failed: {e}")))?
    }

    /// [`LocalEngine::embed`] for callers already off the async runtime (the CLI's `enrol --dir`).
    pub fn embed_blocking(&self, bytes: &[u8]) -> Result<Enrolment> {
        let started = Instant::now();
        let cfg = &self.inner.config;
        let img = decode_rgb(bytes, cfg.max_image_side)?;
        let mut p = self.pipeline();
        let faces = p.find_faces(&img, cfg, cfg.detect_max_side.max(ENROL_DETECT_MAX_SIDE));
        let candidate = match faces.usable.len() {
            0 => {
                return Err(Error::NoFace {
                    min_face_px: cfg.min_face_px,
                })
            }
            1 => &faces.usable[0],
            n => return Err(Error::ManyFaces(n)),
        };
        let embedding = p.embed(&img, &faces.full, candidate, cfg.enrol_jitters, cfg.mirror)?;
        Ok(Enrolment {
            embedding,
            face: face_found(candidate, faces.detected),
            ms: millis(started.elapsed()),
        })
    }

    /// The probe path used at the door and by `eval`: the best usable face's embedding, or `None`.
    pub fn describe_blocking(&self, bytes: &[u8]) -> Result<Option<Probe>> {
        let cfg = &self.inner.config;
        let img = decode_rgb(bytes, cfg.max_image_side)?;
        self.describe_image(&img)
    }

    /// [`LocalEngine::describe_blocking`] on pixels already decoded (benchmarks feed camera frames).
    pub fn describe_image(&self, img: &RgbImage) -> Result<Option<Probe>> {
        let cfg = &self.inner.config;
        let mut p = self.pipeline();
        let faces = p.find_faces(img, cfg, cfg.detect_max_side);
        let Some(best) = faces.usable.iter().max_by(|a, b| a.rank.total_cmp(&b.rank)) else {
            return Ok(None);
        };
        let embedding = p.embed(img, &faces.full, best, 0, cfg.mirror)?;
        Ok(Some(Probe {
            embedding,
            face: face_found(best, faces.detected),
        }))
    }

    /// Every usable face in a photo, best first (largest nearest the centre), at most `max_faces`, with
    /// its box: for callers that answer per face (the Rekognition-compatible endpoint). `thorough`
    /// searches at enrolment size and applies `enrol_jitters`, as indexing a face for later matching should.
    pub fn describe_all_blocking(
        &self,
        bytes: &[u8],
        max_faces: usize,
        thorough: bool,
    ) -> Result<PhotoFaces> {
        let cfg = &self.inner.config;
        let img = decode_rgb(bytes, cfg.max_image_side)?;
        let (width, height) = img.dimensions();
        let mut p = self.pipeline();
        let side = if thorough {
            cfg.detect_max_side.max(ENROL_DETECT_MAX_SIDE)
        } else {
            cfg.detect_max_side
        };
        let mut faces = p.find_faces(&img, cfg, side);
        faces.usable.sort_by(|a, b| b.rank.total_cmp(&a.rank));
        let usable = faces.usable.len();
        let jitters = if thorough { cfg.enrol_jitters } else { 0 };
        let mut out = Vec::new();
        for c in faces.usable.iter().take(max_faces) {
            let embedding = p.embed(&img, &faces.full, c, jitters, cfg.mirror)?;
            let clamp = |v: i64, max: u32| v.clamp(0, i64::from(max)) as u32;
            let (left, top) = (clamp(c.rect.left, width), clamp(c.rect.top, height));
            out.push(FaceBox {
                left,
                top,
                width: clamp(c.rect.right, width).saturating_sub(left),
                height: clamp(c.rect.bottom, height).saturating_sub(top),
                embedding,
            });
        }
        Ok(PhotoFaces {
            width,
            height,
            detected: faces.detected,
            usable,
            faces: out,
        })
    }

    /// Describes `photo` off the runtime, then matches it with `compare` against the current gallery.
    async fn decide(
        &self,
        photo: &Photo,
        compare: impl FnOnce(&Gallery, &Embedding) -> Option<Match>,
    ) -> Result<(Verdict, Option<Match>)> {
        let this = self.clone();
        let bytes = photo.bytes.clone();
        let started = Instant::now();
        let probe = tokio::task::spawn_blocking(move || this.describe_blocking(&bytes))
            .await
            .map_err(|e| Error::Engine(format!("face task failed: {e}")))??;
        let mut verdict = Verdict {
            engine: "local".into(),
            detect_ms: Some(millis(started.elapsed())),
            ..Verdict::default()
        };
        let Some(probe) = probe else {
            return Ok((verdict, None));
        };
        verdict.face = Some(probe.face);
        let matching = Instant::now();
        let gallery = self.gallery();
        let best = compare(&gallery, &probe.embedding);
        verdict.match_ms = Some(millis(matching.elapsed()));
        if let Some(m) = best {
            verdict.similarity = Some(m.similarity);
            verdict.distance = Some(m.distance);
            if m.similarity >= self.inner.config.threshold {
                verdict.matched = Some(m.person);
            }
        }
        Ok((verdict, best))
    }

    /// A free worker if there is one, else waits for one in turn.
    fn pipeline(&self) -> MutexGuard<'_, Pipeline> {
        for w in &self.inner.workers {
            if let Ok(g) = w.try_lock() {
                return g;
            }
        }
        let i = self.inner.next_worker.fetch_add(1, Ordering::Relaxed) % self.inner.workers.len();
        self.inner.workers[i]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

fn face_found(c: &Candidate, detected: usize) -> FaceFound {
    FaceFound {
        confidence: None,
        width_px: Some(c.rect.width().max(0) as u32),
        faces_in_photo: Some(detected as u32),
    }
}

#[async_trait]
impl FaceEngine for LocalEngine {
    fn name(&self) -> &str {
        "local"
    }

    async fn verify(&self, photo: &Photo, person: PersonId) -> Result<Verdict> {
        let (verdict, _) = self.decide(photo, |g, e| g.best_of(person, e)).await?;
        Ok(verdict)
    }

    async fn identify(&self, photo: &Photo) -> Result<Verdict> {
        let (mut verdict, best) = self.decide(photo, |g, e| g.best_person(e)).await?;
        verdict.best_candidate = best.map(|m| m.person);
        Ok(verdict)
    }
}

/// The dlib view of RGB pixels (copied into dlib's own matrix type).
fn matrix(img: &RgbImage) -> ImageMatrix {
    // dlib-face-recognition takes its own `image` version's buffer; borrow our pixels into one.
    let view = image024::ImageBuffer::<image024::Rgb<u8>, &[u8]>::from_raw(
        img.width(),
        img.height(),
        img.as_raw().as_slice(),
    )
    .expect("an RgbImage's buffer always has width × height × 3 bytes");
    ImageMatrix::from_image(&view)
}

impl Pipeline {
    /// Faces in `img`, detected on a copy scaled to at most `max_side`, landmarks and gate on the full
    /// photo.
    fn find_faces(&mut self, img: &RgbImage, cfg: &VisionConfig, max_side: u32) -> Faces {
        let (w, h) = img.dimensions();
        let full = matrix(img);
        let longest = w.max(h);
        let mut rects: Vec<Rectangle> = if longest > max_side {
            let s = max_side as f64 / longest as f64;
            let small = image::imageops::resize(
                img,
                ((w as f64 * s).round() as u32).max(1),
                ((h as f64 * s).round() as u32).max(1),
                image::imageops::FilterType::Triangle,
            );
            self.detect(&matrix(&small), 1.0 / s)
        } else {
            self.detect(&full, 1.0)
        };
        if rects.is_empty() && longest <= UPSCALE_BELOW_SIDE {
            let big =
                image::imageops::resize(img, w * 2, h * 2, image::imageops::FilterType::Triangle);
            rects = self.detect(&matrix(&big), 0.5);
        }
        let detected = rects.len();
        let centre = (w as f64 / 2.0, h as f64 / 2.0);
        let half_diag = (centre.0.powi(2) + centre.1.powi(2)).sqrt();
        let usable = rects
            .into_iter()
            .filter(|r| r.width() >= cfg.min_face_px as i64)
            .filter_map(|rect| {
                let landmarks = self.predictor.face_landmarks(&full, &rect);
                landmarks_sane(&rect, &landmarks).then(|| {
                    let d = ((rect.center_x() - centre.0).powi(2)
                        + (rect.center_y() - centre.1).powi(2))
                    .sqrt();
                    // Largest face nearest the centre: size, discounted by distance from the centre.
                    let rank = rect.width() as f64 * (1.0 - 0.75 * (d / half_diag).min(1.0));
                    Candidate {
                        rect,
                        landmarks,
                        rank,
                    }
                })
            })
            .collect();
        Faces {
            full,
            usable,
            detected,
        }
    }

    /// HOG detections, mapped back to the full photo's coordinates by `to_full`.
    fn detect(&mut self, m: &ImageMatrix, to_full: f64) -> Vec<Rectangle> {
        let scale = |v: i64| (v as f64 * to_full).round() as i64;
        self.detector
            .face_locations(m)
            .iter()
            .map(|r| Rectangle {
                left: scale(r.left),
                top: scale(r.top),
                right: scale(r.right),
                bottom: scale(r.bottom),
            })
            .collect()
    }

    fn embed(
        &mut self,
        img: &RgbImage,
        full: &ImageMatrix,
        c: &Candidate,
        jitters: u32,
        mirror: bool,
    ) -> Result<Embedding> {
        if !mirror {
            return Embedding::new(encode(&self.encoder, full, &c.landmarks, jitters)?);
        }
        let (crop, rect) = mirrored_crop(img, &c.rect);
        let m = matrix(&crop);
        let landmarks = self.predictor.face_landmarks(&m, &rect);
        let (plain, flipped) = match &mut self.mirror_encoder {
            Some(second) => std::thread::scope(|s| {
                let (m, landmarks) = (&m, &landmarks);
                let other = s.spawn(move || encode(second, m, landmarks, jitters));
                let plain = encode(&self.encoder, full, &c.landmarks, jitters);
                let flipped = other.join().unwrap_or_else(|_| {
                    Err(Error::Engine("the mirrored embedding panicked".into()))
                });
                (plain, flipped)
            }),
            None => (
                encode(&self.encoder, full, &c.landmarks, jitters),
                encode(&self.encoder, &m, &landmarks, jitters),
            ),
        };
        let mut sum = plain?;
        sum.iter_mut().zip(flipped?).for_each(|(a, b)| *a += b);
        Embedding::new(sum)
    }
}

fn encode(
    encoder: &FaceEncoderNetwork,
    m: &ImageMatrix,
    landmarks: &FaceLandmarks,
    jitters: u32,
) -> Result<Vec<f32>> {
    let encodings = encoder.get_face_encodings(m, std::slice::from_ref(landmarks), jitters);
    let e = encodings
        .first()
        .ok_or_else(|| Error::Engine("the encoder returned no embedding".into()))?;
    let values: Vec<f32> = e.as_ref().iter().map(|&v| v as f32).collect();
    if values.len() != EMBEDDING_DIM {
        return Err(Error::Engine(format!(
            "the encoder returned {} values, expected {EMBEDDING_DIM}",
            values.len()
        )));
    }
    Ok(values)
}

/// The face's surroundings, flipped left–right, and the face's box inside that flipped crop.
fn mirrored_crop(img: &RgbImage, r: &Rectangle) -> (RgbImage, Rectangle) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let margin = r.width().max(r.height()) * 3 / 4;
    let x0 = (r.left - margin).clamp(0, w - 1);
    let y0 = (r.top - margin).clamp(0, h - 1);
    let x1 = (r.right + margin).clamp(x0, w - 1);
    let y1 = (r.bottom + margin).clamp(y0, h - 1);
    let crop = image::imageops::crop_imm(
        img,
        x0 as u32,
        y0 as u32,
        (x1 - x0 + 1) as u32,
        (y1 - y0 + 1) as u32,
    )
    .to_image();
    let crop = image::imageops::flip_horizontal(&crop);
    let cw = crop.width() as i64;
    let rect = Rectangle {
        left: cw - 1 - (r.right - x0),
        right: cw - 1 - (r.left - x0),
        top: r.top - y0,
        bottom: r.bottom - y0,
    };
    (crop, rect)
}

/// Rejects HOG's false faces (clothing, background) and faces turned too far for a good embedding, from
/// the 5 landmarks: two corners of each eye and the base of the nose.
fn landmarks_sane(rect: &Rectangle, lm: &FaceLandmarks) -> bool {
    if lm.len() != 5 {
        return false;
    }
    let p = |i: usize| (lm[i].x() as f64, lm[i].y() as f64);
    let mid = |a: (f64, f64), b: (f64, f64)| ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0);
    let eye_a = mid(p(0), p(1));
    let eye_b = mid(p(2), p(3));
    let nose = p(4);
    let (ex, ey) = (eye_b.0 - eye_a.0, eye_b.1 - eye_a.1);
    let eye_dist = (ex * ex + ey * ey).sqrt();
    let width = rect.width().max(1) as f64;
    // Eyes a plausible distance apart for the box.
    if !(0.2..=0.8).contains(&(eye_dist / width)) {
        return false;
    }
    // Head roll under ~40°: the eye line is closer to horizontal than vertical.
    if ey.abs() > ex.abs() * 0.85 {
        return false;
    }
    let centre = mid(eye_a, eye_b);
    let (ux, uy) = (ex / eye_dist, ey / eye_dist);
    let (nx, ny) = (nose.0 - centre.0, nose.1 - centre.1);
    // Perpendicular offset, signed so that "down the face" is positive whichever way the eyes were
    // ordered; the nose must hang below the eyes, and not be beyond either eye sideways (profile).
    let down = (ux * ny - uy * nx) * ux.signum();
    let along = ux * nx + uy * ny;
    if !(0.2..=1.5).contains(&(down / eye_dist)) || along.abs() > 0.5 * eye_dist {
        return false;
    }
    // All landmarks near the box.
    let slack = width * 0.5;
    lm.iter().all(|q| {
        let (x, y) = (q.x() as f64, q.y() as f64);
        x >= rect.left as f64 - slack
            && x <= rect.right as f64 + slack
            && y >= rect.top as f64 - slack
            && y <= rect.bottom as f64 + slack
    })
}
