//! A face engine for tests only: it does not look at faces at all.
//!
//! [`ScriptedEngine`] answers each call with the next verdict a test queued. It exists so that the door
//! controller's logic (timing, cues, outcomes) can be tested without model files; the daemon never uses it.
//!
//! For a door that watches continuously, [`ScriptedEngine::with_frames`] adds a frame-level side,
//! [`ScriptedFrames`], that reads who is in a frame from the frame itself: [`frame`] makes a tiny PNG
//! whose pixels say "person 3, quality 0.8" (or nobody). Its embeddings are real unit vectors and its
//! fusion is the real rule, so tests of the door exercise the same arithmetic as the daemon.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use facereko_domain::{PersonId, Photo};

use image::RgbImage;

use crate::fusion::{self, Observation, FUSE_FRAMES};
use crate::geometry::{Point, Rect};
use crate::quality::Quality;
use crate::{Embedding, Error, FaceEngine, FaceFound, FrameJudge, Result, Verdict};

/// What a [`ScriptedEngine`] says next.
#[derive(Clone, Debug, PartialEq)]
pub enum Script {
    /// The face matches (the card owner for `verify`, this person for `identify`), with this similarity.
    Match {
        person: Option<PersonId>,
        similarity: f32,
    },
    /// A face, but not the one asked for (or nobody enrolled), with this similarity.
    Mismatch { similarity: f32 },
    /// No usable face in the photo.
    NoFace,
    /// The engine fails.
    Fail(String),
}

/// Test-only engine that replays queued [`Script`]s; with nothing queued it fails loudly.
#[derive(Debug, Default)]
pub struct ScriptedEngine {
    queue: Mutex<VecDeque<Script>>,
    calls: Mutex<Vec<Option<PersonId>>>,
    one_photo: AtomicBool,
    frames: Option<Arc<ScriptedFrames>>,
}

impl ScriptedEngine {
    pub fn new() -> Self {
        Self::default()
    }

    /// An engine with a frame-level side ([`ScriptedFrames`]): a door using it watches continuously.
    pub fn with_frames() -> Self {
        Self {
            frames: Some(Arc::new(ScriptedFrames::default())),
            ..Self::default()
        }
    }

    /// The frame-level side, when the engine has one.
    pub fn frame_judge(&self) -> Option<Arc<ScriptedFrames>> {
        self.frames.clone()
    }

    pub fn push(&self, s: Script) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(s);
    }

    /// Makes the engine ask for one photo per look, as a per-call-billed engine does.
    pub fn set_one_photo_per_look(&self, yes: bool) {
        self.one_photo.store(yes, Ordering::Relaxed);
    }

    /// The person each call asked about (`None` for `identify`), oldest first.
    pub fn calls(&self) -> Vec<Option<PersonId>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn next(&self, asked: Option<PersonId>) -> Result<Verdict> {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(asked);
        let script = self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
            .ok_or_else(|| Error::Engine("scripted engine: no verdict queued".into()))?;
        let face = Some(FaceFound {
            confidence: Some(99.0),
            width_px: None,
            faces_in_photo: Some(1),
        });
        let base = Verdict {
            engine: "scripted".into(),
            detect_ms: Some(0),
            match_ms: Some(0),
            ..Verdict::default()
        };
        Ok(match script {
            Script::Match { person, similarity } => Verdict {
                face,
                matched: person.or(asked),
                similarity: Some(similarity),
                ..base
            },
            Script::Mismatch { similarity } => Verdict {
                face,
                similarity: Some(similarity),
                ..base
            },
            Script::NoFace => base,
            Script::Fail(msg) => return Err(Error::Engine(msg)),
        })
    }
}

#[async_trait]
impl FaceEngine for ScriptedEngine {
    fn name(&self) -> &str {
        "scripted"
    }

    async fn verify(&self, _photo: &Photo, person: PersonId) -> Result<Verdict> {
        self.next(Some(person))
    }

    async fn identify(&self, _photo: &Photo) -> Result<Verdict> {
        self.next(None)
    }

    fn one_photo_per_look(&self) -> bool {
        self.one_photo.load(Ordering::Relaxed)
    }

    fn frames(&self) -> Option<Arc<dyn FrameJudge>> {
        self.frames.clone().map(|f| f as Arc<dyn FrameJudge>)
    }
}

/// The similarity at or above which [`ScriptedFrames`] says two faces match.
pub const SCRIPTED_THRESHOLD: f32 = 80.0;
const SCRIPTED_DIM: usize = 16;
/// People 1 to this are enrolled; 8–15 are strangers.
pub const SCRIPTED_ENROLLED: u8 = 7;
const SCRIPTED_MODEL: &str = "scripted";

/// A frame of [`ScriptedFrames`]: person `person` (1–15; 0 = nobody in view) at `quality` (0–1),
/// looking straight at the camera, as a 64×48 PNG.
pub fn frame(person: u8, quality: f32) -> Photo {
    turned_frame(person, quality, 0.0)
}

/// [`frame`] with the head turned: `yaw` is the nose's sideways offset in eye distances (−0.5–0.5).
///
/// Besides its first pixel (the code [`ScriptedFrames`] reads), a frame with someone in it draws a
/// textured ball — the head — in front of a textured wall, turned by about `2 × yaw` radians, so that
/// a liveness check that tracks the face's texture sees a 3-D shape turning: the ball's surface does not
/// move as one plane, and the wall behind it does not move at all. The same arguments give the same
/// pixels.
pub fn turned_frame(person: u8, quality: f32, yaw: f32) -> Photo {
    let q = (quality.clamp(0.0, 1.0) * 255.0).round() as u8;
    let yaw = yaw.clamp(-0.5, 0.5);
    let y = (128.0 + yaw * 254.0).round() as u8;
    let (sin, cos) = (2.0 * yaw).sin_cos();
    let img = RgbImage::from_fn(64, 48, |px, py| {
        if (px, py) == (0, 0) {
            return image::Rgb([person, q, y]);
        }
        if person == 0 {
            return image::Rgb([0, 0, 0]);
        }
        let (x, yy) = (px as f32 - 32.0, py as f32 - 24.0);
        let r2 = 30.0f32 * 30.0;
        let v = if x * x + yy * yy < r2 {
            // A point of the ball's surface, turned back to where it was before the head turned.
            let z = (r2 - x * x - yy * yy).sqrt();
            let (bx, bz) = (x * cos + z * sin, -x * sin + z * cos);
            let (lon, lat) = (bx.atan2(bz), (yy / 30.0).asin());
            0.5 + 0.25 * (7.0 * lon).sin() * (6.0 * lat).cos()
                + 0.15 * (11.0 * lon + 5.0 * lat).sin()
        } else {
            0.5 + 0.2 * (0.9 * x).sin() * (0.7 * yy).cos()
        };
        let g = (v * 255.0).clamp(0.0, 255.0) as u8;
        image::Rgb([g, g, g])
    });
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .expect("encoding a PNG in memory");
    Photo::from_bytes(bytes).expect("a PNG")
}

/// Who a [`frame`] shows: `(person, quality)`, `None` for nobody.
pub fn read_frame(photo: &Photo) -> Option<(u8, f32)> {
    let img = crate::decode::decode_rgb(&photo.bytes, 4096).ok()?;
    let px = img.get_pixel(0, 0);
    (px[0] > 0).then(|| (px[0], px[1] as f32 / 255.0))
}

fn one_hot(person: u8) -> Embedding {
    let mut v = vec![0.0; SCRIPTED_DIM];
    v[person as usize % SCRIPTED_DIM] = 1.0;
    Embedding::new(v).expect("a unit vector")
}

/// The frame-level side of [`ScriptedEngine`]: a frame's first pixel says who is there (red = person,
/// green = quality); person *n*'s embedding is the *n*-th unit vector; people 1–7 are enrolled (1:N finds
/// them), 8–15 are strangers.
#[derive(Debug, Default)]
pub struct ScriptedFrames {
    observed: AtomicUsize,
}

impl ScriptedFrames {
    /// How many frames were analysed (`observe` calls), to see the motion gate at work.
    pub fn observed(&self) -> usize {
        self.observed.load(Ordering::SeqCst)
    }

    fn decide(&self, observations: &[Observation], people: &[u8]) -> Verdict {
        let mut verdict = Verdict {
            engine: "scripted".into(),
            match_ms: Some(0),
            ..Verdict::default()
        };
        let Some((fused, _)) = fusion::fuse(observations, SCRIPTED_MODEL, FUSE_FRAMES) else {
            return verdict;
        };
        verdict.face = Some(FaceFound {
            confidence: Some(99.0),
            width_px: Some(64),
            faces_in_photo: Some(1),
        });
        let best = people
            .iter()
            .map(|&p| (p, fused.cosine(&one_hot(p)) * 100.0))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((p, similarity)) = best {
            verdict.similarity = Some(similarity);
            verdict.best_candidate = Some(PersonId(p as i64));
            if similarity >= SCRIPTED_THRESHOLD {
                verdict.matched = Some(PersonId(p as i64));
            }
        }
        verdict
    }
}

#[async_trait]
impl FrameJudge for ScriptedFrames {
    fn decode(&self, photo: &Photo) -> Result<RgbImage> {
        crate::decode::decode_rgb(&photo.bytes, 4096)
    }

    fn observe(&self, frame: &RgbImage, max_faces: usize) -> Result<Vec<Observation>> {
        self.observed.fetch_add(1, Ordering::SeqCst);
        let px = frame.get_pixel(0, 0);
        if px[0] == 0 || max_faces == 0 {
            return Ok(Vec::new());
        }
        let q = px[1] as f32 / 255.0;
        // Eyes 24 px apart; the nose moves sideways with the yaw, the other points stay: a turned head,
        // not a flat picture.
        let yaw = (px[2] as f32 - 128.0) / 254.0;
        let (eye_r, eye_l) = (Point::new(20.0, 20.0), Point::new(44.0, 20.0));
        let nose = Point::new(32.0 + yaw * 24.0, 30.0);
        Ok(vec![Observation {
            rect: Rect {
                left: 0.0,
                top: 0.0,
                right: 64.0,
                bottom: 48.0,
            },
            keypoints: vec![
                eye_r,
                eye_l,
                nose,
                Point::new(32.0, 38.0),
                Point::new(10.0, 24.0),
                Point::new(54.0, 24.0),
            ],
            eyes: [eye_r, eye_l],
            nose,
            detector_score: Some(0.99),
            quality: Quality {
                sharpness: 1.0,
                size: 1.0,
                pose: 1.0,
                exposure: q,
                overall: q,
            },
            embedding: one_hot(px[0]),
            model_id: SCRIPTED_MODEL.into(),
        }])
    }

    async fn verify_fused(&self, observations: &[Observation], person: PersonId) -> Verdict {
        let asked = u8::try_from(person.0).unwrap_or(0);
        let mut v = self.decide(observations, &[asked]);
        if v.matched.is_none() {
            v.best_candidate = None;
        }
        v
    }

    async fn identify_fused(&self, observations: &[Observation]) -> Verdict {
        let people: Vec<u8> = (1..=SCRIPTED_ENROLLED).collect();
        self.decide(observations, &people)
    }

    fn threshold(&self) -> f32 {
        SCRIPTED_THRESHOLD
    }
}
