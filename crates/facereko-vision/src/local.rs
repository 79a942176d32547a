//! The local engine: faces found, described and matched on this machine's CPU, offline.
//!
//! Two pipelines sit behind it, chosen by `vision.local_engine`: `onnx` (BlazeFace +
//! MobileFaceNet on ONNX Runtime) and `dlib` (HOG + ResNet). Everything else is shared: decoding
//! with limits, the quality gate (smallest face, plausible keypoints), picking the largest face nearest
//! the centre, the gallery and its threshold, and the frame-level API ([`LocalEngine::observe_image`],
//! [`LocalEngine::verify_fused`], [`LocalEngine::identify_fused`]). Neither pipeline is shared between
//! threads: each worker owns a full copy behind a mutex, and every call from async code runs on tokio's
//! blocking pool, never on the runtime's threads.
//!
//! Speed note for dlib: the process must run with `OPENBLAS_NUM_THREADS=1` (see [`crate::blas`]), else
//! OpenBLAS's own thread pool fights the workers for the cores and a frame takes about twice as long.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use async_trait::async_trait;
use facereko_domain::{millis, PersonId, Photo};
use image::RgbImage;

use crate::config::{LocalEngineKind, VisionConfig};
use crate::decode::decode_rgb;
use crate::detected::{Face, Found, Native, PhotoState};
use crate::fusion::{self, Observation, FUSE_FRAMES};
use crate::gallery::{Embedding, Gallery, Match};
use crate::geometry::Point;
use crate::{dlib, onnx, quality, Error, FaceEngine, FaceFound, FrameJudge, Result, Verdict};

/// Enrolment photos (phone pictures, uploads) are searched at least at this size by dlib: slower, but a
/// face that fills only a tenth of a 12-megapixel photo is still found. Door frames use
/// `detect_max_side`.
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

enum Pipeline {
    Dlib(Box<dlib::Pipeline>),
    Onnx(Box<onnx::Pipeline>),
}

/// A detected face that passed the gate, and how it ranks (largest nearest the centre first).
struct Candidate {
    index: usize,
    rank: f64,
}

/// The faces of one photo, gated and ranked.
struct Seen {
    found: Found,
    /// Best first.
    usable: Vec<Candidate>,
}

/// The offline engine (see the module note).
#[derive(Debug, Clone)]
pub struct LocalEngine {
    inner: Arc<Inner>,
}

struct Inner {
    config: VisionConfig,
    model_id: String,
    workers: Vec<Mutex<Pipeline>>,
    next_worker: AtomicUsize,
    gallery: RwLock<Arc<Gallery>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEngine")
            .field("local_engine", &self.config.local_engine)
            .field("config", &self.config)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl LocalEngine {
    /// Loads the configured pipeline's models from `models_dir` (checked first: a missing or damaged
    /// file names the command that installs it). Blocking (dlib ≈ 1.5 s per worker, ONNX ≈ 0.3 s): call
    /// it from `spawn_blocking` or before the runtime.
    pub fn load(config: &VisionConfig, models_dir: &Path) -> Result<Self> {
        config.validate()?;
        let workers: Vec<Mutex<Pipeline>> = match config.local_engine {
            LocalEngineKind::Dlib => dlib::Pipeline::load_all(config, models_dir)?
                .into_iter()
                .map(|p| Mutex::new(Pipeline::Dlib(Box::new(p))))
                .collect(),
            LocalEngineKind::Onnx => onnx::Pipeline::load_all(config.workers, models_dir)?
                .into_iter()
                .map(|p| Mutex::new(Pipeline::Onnx(Box::new(p))))
                .collect(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config: config.clone(),
                model_id: config.model_id(),
                workers,
                next_worker: AtomicUsize::new(0),
                gallery: RwLock::new(Arc::new(Gallery::empty())),
            }),
        })
    }

    pub fn config(&self) -> &VisionConfig {
        &self.inner.config
    }

    /// Which pipeline runs.
    pub fn kind(&self) -> LocalEngineKind {
        self.inner.config.local_engine
    }

    /// The id stored with this engine's embeddings ([`VisionConfig::model_id`]).
    pub fn model_id(&self) -> &str {
        &self.inner.model_id
    }

    /// The similarity threshold in force (0–100).
    pub fn threshold(&self) -> f32 {
        self.inner.config.threshold()
    }

    /// Replaces the enrolled faces at once; calls in flight finish with the gallery they started with.
    /// A gallery of another model's embeddings (another length) would never match: it is refused.
    pub fn set_gallery(&self, gallery: Gallery) {
        let dim = self.kind().embedding_dim();
        let gallery = if gallery.is_empty() || gallery.dim() == dim {
            gallery
        } else {
            tracing::error!(
                "a gallery of {}-value embeddings was given to the {} engine ({dim} values): ignored",
                gallery.dim(),
                self.kind()
            );
            Gallery::empty()
        };
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
        let seen = self.see(&mut p, &img, true)?;
        let candidate = match seen.usable.len() {
            0 => {
                return Err(Error::NoFace {
                    min_face_px: cfg.min_face_px,
                })
            }
            1 => &seen.usable[0],
            n => return Err(Error::ManyFaces(n)),
        };
        let face = &seen.found.faces[candidate.index];
        let embedding = embed_face(
            &mut p,
            &img,
            &seen.found,
            face,
            cfg.enrol_jitters,
            cfg.mirror,
        )?;
        Ok(Enrolment {
            embedding,
            face: face_found(face, seen.found.faces.len()),
            ms: millis(started.elapsed()),
        })
    }

    /// The probe path used at the door: the best usable face's embedding, or `None`.
    pub fn describe_blocking(&self, bytes: &[u8]) -> Result<Option<Probe>> {
        let cfg = &self.inner.config;
        let img = decode_rgb(bytes, cfg.max_image_side)?;
        self.describe_image(&img)
    }

    /// [`LocalEngine::describe_blocking`] on pixels already decoded (benchmarks feed camera frames).
    pub fn describe_image(&self, img: &RgbImage) -> Result<Option<Probe>> {
        let cfg = &self.inner.config;
        let mut p = self.pipeline();
        let seen = self.see(&mut p, img, false)?;
        let Some(best) = seen.usable.first() else {
            return Ok(None);
        };
        let face = &seen.found.faces[best.index];
        let embedding = embed_face(&mut p, img, &seen.found, face, 0, cfg.mirror)?;
        Ok(Some(Probe {
            embedding,
            face: face_found(face, seen.found.faces.len()),
        }))
    }

    /// Every usable face in a photo, best first (largest nearest the centre), at most `max_faces`, with
    /// its box: for callers that answer per face (the Rekognition-compatible endpoint). `thorough`
    /// searches as enrolment does and applies `enrol_jitters`, as indexing a face for later matching should.
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
        let seen = self.see(&mut p, &img, thorough)?;
        let jitters = if thorough { cfg.enrol_jitters } else { 0 };
        let mut out = Vec::new();
        for c in seen.usable.iter().take(max_faces) {
            let face = &seen.found.faces[c.index];
            let embedding = embed_face(&mut p, &img, &seen.found, face, jitters, cfg.mirror)?;
            let clamp = |v: f32, max: u32| (v.round().max(0.0) as u32).min(max);
            let (left, top) = (clamp(face.rect.left, width), clamp(face.rect.top, height));
            out.push(FaceBox {
                left,
                top,
                width: clamp(face.rect.right, width).saturating_sub(left),
                height: clamp(face.rect.bottom, height).saturating_sub(top),
                embedding,
            });
        }
        Ok(PhotoFaces {
            width,
            height,
            detected: seen.found.faces.len(),
            usable: seen.usable.len(),
            faces: out,
        })
    }

    /// Frame-level API: the usable faces of one decoded frame, best first (at most `max_faces`), each
    /// with its box, keypoints, quality and embedding. The door keeps these while it watches and decides
    /// at a tap with [`LocalEngine::verify_fused`] / [`LocalEngine::identify_fused`]. Blocking.
    pub fn observe_image(&self, img: &RgbImage, max_faces: usize) -> Result<Vec<Observation>> {
        let cfg = &self.inner.config;
        let mut p = self.pipeline();
        let seen = self.see(&mut p, img, false)?;
        let mut out = Vec::new();
        for c in seen.usable.iter().take(max_faces) {
            let face = &seen.found.faces[c.index];
            let embedding = embed_face(&mut p, img, &seen.found, face, 0, cfg.mirror)?;
            let [a, b] = face.eyes;
            out.push(Observation {
                rect: face.rect,
                keypoints: face.keypoints.clone(),
                eyes: if a.x <= b.x { [a, b] } else { [b, a] },
                nose: face.nose,
                detector_score: face.score,
                quality: quality::assess(
                    img,
                    &face.rect,
                    face.eyes,
                    face.nose,
                    cfg.min_face_px,
                    face.limits,
                ),
                embedding,
                model_id: self.inner.model_id.clone(),
            });
        }
        Ok(out)
    }

    /// [`LocalEngine::observe_image`] on an encoded photo (decoded with the usual limits). Blocking.
    pub fn observe_blocking(&self, bytes: &[u8], max_faces: usize) -> Result<Vec<Observation>> {
        let img = decode_rgb(bytes, self.inner.config.max_image_side)?;
        self.observe_image(&img, max_faces)
    }

    /// [`LocalEngine::observe_blocking`] for the best face of a photo, off the async runtime.
    pub async fn observe(&self, photo: &Photo) -> Result<Vec<Observation>> {
        let this = self.clone();
        let bytes = photo.bytes.clone();
        tokio::task::spawn_blocking(move || this.observe_blocking(&bytes, 1))
            .await
            .map_err(|e| Error::Engine(format!("face task failed: {e}")))?
    }

    /// 1:1 over several frames: fuses the best [`FUSE_FRAMES`] observations (quality-weighted mean of
    /// their embeddings, see [`crate::fusion`]) and compares the result with `person`'s faces.
    /// Observations of another model are ignored; none left gives a verdict with no face.
    pub fn verify_fused(&self, observations: &[Observation], person: PersonId) -> Verdict {
        self.decide_fused(observations, |g, e| g.best_of(person, e))
            .0
    }

    /// 1:N over several frames (see [`LocalEngine::verify_fused`]).
    pub fn identify_fused(&self, observations: &[Observation]) -> Verdict {
        let (mut verdict, best) = self.decide_fused(observations, |g, e| g.best_person(e));
        verdict.best_candidate = best.map(|m| m.person);
        verdict
    }

    fn decide_fused(
        &self,
        observations: &[Observation],
        compare: impl FnOnce(&Gallery, &Embedding) -> Option<Match>,
    ) -> (Verdict, Option<Match>) {
        let started = Instant::now();
        let mut verdict = Verdict {
            engine: "local".into(),
            ..Verdict::default()
        };
        let Some((fused, _)) = fusion::fuse(observations, &self.inner.model_id, FUSE_FRAMES) else {
            return (verdict, None);
        };
        let best_frame = observations
            .iter()
            .filter(|o| o.model_id == self.inner.model_id)
            .max_by(|a, b| a.quality.overall.total_cmp(&b.quality.overall));
        verdict.face = best_frame.map(|o| FaceFound {
            confidence: o.detector_score.map(|s| s * 100.0),
            width_px: Some(o.rect.width().round() as u32),
            faces_in_photo: None,
        });
        let best = compare(&self.gallery(), &fused);
        verdict.match_ms = Some(millis(started.elapsed()));
        self.judge(&mut verdict, best);
        (verdict, best)
    }

    fn judge(&self, verdict: &mut Verdict, best: Option<Match>) {
        if let Some(m) = best {
            verdict.similarity = Some(m.similarity);
            verdict.distance = Some(m.distance);
            if m.similarity >= self.threshold() {
                verdict.matched = Some(m.person);
            }
        }
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
        self.judge(&mut verdict, best);
        Ok((verdict, best))
    }

    /// Detects, gates and ranks the faces of `img`.
    fn see(&self, p: &mut Pipeline, img: &RgbImage, thorough: bool) -> Result<Seen> {
        let cfg = &self.inner.config;
        let found = match p {
            Pipeline::Dlib(d) => {
                let side = if thorough {
                    cfg.detect_max_side.max(ENROL_DETECT_MAX_SIDE)
                } else {
                    cfg.detect_max_side
                };
                d.detect(img, side)
            }
            Pipeline::Onnx(o) => o.detect(img, thorough)?,
        };
        let (w, h) = img.dimensions();
        let centre = Point::new(w as f32 / 2.0, h as f32 / 2.0);
        let half_diag = (centre.x.powi(2) + centre.y.powi(2)).sqrt() as f64;
        let mut usable: Vec<Candidate> = found
            .faces
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                f.width_px >= cfg.min_face_px
                    && quality::plausible(&f.rect, f.eyes, f.nose, &f.keypoints, f.limits)
            })
            .map(|(index, f)| {
                let d = f.rect.centre().dist(centre) as f64;
                // Largest face nearest the centre: size, discounted by distance from the centre.
                let rank = f.width_px as f64 * (1.0 - 0.75 * (d / half_diag).min(1.0));
                Candidate { index, rank }
            })
            .collect();
        usable.sort_by(|a, b| b.rank.total_cmp(&a.rank));
        Ok(Seen { found, usable })
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

fn embed_face(
    p: &mut Pipeline,
    img: &RgbImage,
    found: &Found,
    face: &Face,
    jitters: u32,
    mirror: bool,
) -> Result<Embedding> {
    match (p, &face.native, &found.state) {
        (Pipeline::Dlib(d), Native::Dlib(f), PhotoState::Dlib(full)) => {
            d.embed(img, full, f, jitters, mirror)
        }
        (Pipeline::Onnx(o), Native::Onnx(points), _) => o.embed(img, points, mirror),
        _ => Err(Error::Engine(
            "a face detected by one pipeline was given to another".into(),
        )),
    }
}

fn face_found(face: &Face, detected: usize) -> FaceFound {
    FaceFound {
        confidence: face.score.map(|s| s * 100.0),
        width_px: Some(face.width_px),
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

    fn frames(&self) -> Option<Arc<dyn FrameJudge>> {
        Some(Arc::new(self.clone()))
    }
}

#[async_trait]
impl FrameJudge for LocalEngine {
    fn decode(&self, photo: &Photo) -> Result<RgbImage> {
        decode_rgb(&photo.bytes, self.inner.config.max_image_side)
    }

    fn observe(&self, frame: &RgbImage, max_faces: usize) -> Result<Vec<Observation>> {
        self.observe_image(frame, max_faces)
    }

    async fn verify_fused(&self, observations: &[Observation], person: PersonId) -> Verdict {
        LocalEngine::verify_fused(self, observations, person)
    }

    async fn identify_fused(&self, observations: &[Observation]) -> Verdict {
        LocalEngine::identify_fused(self, observations)
    }

    fn threshold(&self) -> f32 {
        LocalEngine::threshold(self)
    }
}
