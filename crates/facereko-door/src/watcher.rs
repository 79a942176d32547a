//! Continuous capture: the door looks before the tap.
//!
//! While the door is armed in `card+face` or `face` mode, and its engine can judge single frames (a
//! [`FrameJudge`]: the local engine; Rekognition cannot), a watcher task takes a frame every
//! `1 / vision.fps` seconds and keeps, in a [`Ring`], the faces it saw during the last
//! `vision.lookback_ms`, each with its quality, embedding and the frame it came from. Frames stay in
//! memory and are dropped when the door is disarmed.
//!
//! Cheap when nobody is there: a [`MotionGate`] compares each frame with the previous one on a 32×24
//! grid of block means, and the face pipeline runs only when the scene moved, when the last analysed
//! frame had a face (someone standing still), when a tap is waiting for a face, or every
//! [`HEARTBEAT`] regardless.
//!
//! At a tap (`card+face`) the attempt takes the faces of the lookback window and, when at least one is
//! good ([`GOOD_QUALITY`]), decides at once on the best of them fused; otherwise, or when they do not
//! match the card owner, it keeps deciding on the newest window as frames come, until
//! `vision.face_timeout_ms` after the tap. The known-card beep plays meanwhile, not before.
//!
//! In `face` mode the watcher itself starts attempts: `vision.trigger_frames` consecutive analysed
//! frames with a good face are identified together and handed to the controller, unless the same person
//! (or, for a face nobody enrolled, the same face by embedding) was decided within the last
//! `vision.face_cooldown_ms` and has been in view since — so someone standing at the door is logged once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use facereko_domain::{Mode, Photo};
use facereko_hardware::Camera;
use facereko_vision::frames::GOOD_QUALITY;
use facereko_vision::fusion::{self, FUSE_FRAMES};
use facereko_vision::{Embedding, FrameJudge, MotionGate, Observation, Verdict, WatchSettings};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};

use crate::DoorStatus;

/// The face pipeline runs at least this often even in an unchanged scene.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// The longest one frame may take to arrive before the watcher counts the camera as failing.
const CAPTURE_WAIT: Duration = Duration::from_secs(5);

/// Pause after a camera failure before the next try.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A face seen in one frame, with that frame.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub at: Instant,
    pub photo: Arc<Photo>,
    pub observation: Observation,
}

impl Seen {
    pub fn good(&self) -> bool {
        self.observation.quality.overall >= GOOD_QUALITY
    }
}

/// The frame of best quality among `seen`.
pub(crate) fn best_frame(seen: &[Seen]) -> Option<&Seen> {
    seen.iter().max_by(|a, b| {
        a.observation
            .quality
            .overall
            .total_cmp(&b.observation.quality.overall)
    })
}

#[derive(Default)]
struct RingState {
    seen: VecDeque<Seen>,
    latest: Option<(Instant, Arc<Photo>)>,
    /// When the newest analysed frame was taken (a frame skipped by the motion gate is not analysed:
    /// it showed the same scene, without a face, as the one before).
    analysed_at: Option<Instant>,
    camera_error: Option<String>,
}

/// The newest face, if it is from the newest analysed frame.
fn newest_face(st: &RingState) -> Option<&Seen> {
    st.seen.back().filter(|n| Some(n.at) == st.analysed_at)
}

/// One frame the watcher handled.
pub(crate) struct Frame {
    pub photo: Arc<Photo>,
    /// Whether the face pipeline ran on it.
    pub analysed: bool,
    /// The face it found.
    pub seen: Option<Seen>,
}

/// The recent faces, written by the watcher and read by attempts.
pub(crate) struct Ring {
    state: Mutex<RingState>,
    /// Bumped after every frame the watcher handled (analysed or not, or a camera failure).
    frames: watch::Sender<u64>,
    /// Attempts waiting for a face: while any waits, every frame is analysed.
    waiting: AtomicUsize,
}

/// Counts one waiting attempt while it lives.
pub(crate) struct Waiting<'a>(&'a Ring);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Ring {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(RingState::default()),
            frames: watch::channel(0).0,
            waiting: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RingState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The faces seen at or after `since`, oldest first.
    #[cfg(test)]
    pub fn since(&self, since: Instant) -> Vec<Seen> {
        self.lock()
            .seen
            .iter()
            .filter(|s| s.at >= since)
            .cloned()
            .collect()
    }

    /// The faces to decide on now: those seen at or after `since` whose embeddings match the face of
    /// the newest analysed frame at `threshold` (a decision never fuses two people who passed the
    /// camera one after the other). Empty when the newest analysed frame shows nobody (they left, or
    /// turned away): a tap is never decided on someone who was in view a moment ago but is not any more.
    pub fn current(&self, since: Instant, threshold: f32) -> Vec<Seen> {
        let st = self.lock();
        let Some(newest) = newest_face(&st) else {
            return Vec::new();
        };
        let anchor = &newest.observation.embedding;
        st.seen
            .iter()
            .filter(|s| {
                s.at >= since && s.observation.embedding.cosine(anchor) * 100.0 >= threshold
            })
            .cloned()
            .collect()
    }

    /// The face of the newest analysed frame, if it had one.
    pub fn newest(&self) -> Option<Seen> {
        newest_face(&self.lock()).cloned()
    }

    /// The newest frame, face or not.
    pub fn latest(&self) -> Option<Arc<Photo>> {
        self.lock().latest.as_ref().map(|(_, p)| p.clone())
    }

    /// The newest frame if it was taken less than `age` ago.
    pub fn latest_within(&self, age: Duration) -> Option<Arc<Photo>> {
        match &self.lock().latest {
            Some((at, p)) if at.elapsed() < age => Some(p.clone()),
            _ => None,
        }
    }

    /// Why the camera gave no frame, while it fails.
    pub fn camera_error(&self) -> Option<String> {
        self.lock().camera_error.clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.frames.subscribe()
    }

    /// Marks an attempt as waiting for a face until the guard is dropped.
    pub fn wait(&self) -> Waiting<'_> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        Waiting(self)
    }

    fn wanted(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }

    fn record(&self, now: Instant, lookback: Duration, frame: Result<Frame, String>) {
        {
            let mut st = self.lock();
            match frame {
                Ok(frame) => {
                    st.latest = Some((now, frame.photo));
                    st.camera_error = None;
                    if frame.analysed {
                        st.analysed_at = Some(now);
                    }
                    st.seen.extend(frame.seen);
                }
                Err(e) => st.camera_error = Some(e),
            }
            while st
                .seen
                .front()
                .is_some_and(|s| now.saturating_duration_since(s.at) > lookback)
            {
                st.seen.pop_front();
            }
        }
        self.frames.send_modify(|n| *n += 1);
    }

    /// Forgets every frame (the door was disarmed).
    fn clear(&self) {
        *self.lock() = RingState::default();
    }
}

/// A stable face in `face` mode, identified, for the controller to decide.
#[derive(Debug)]
pub(crate) struct FaceTrigger {
    pub verdict: Verdict,
    pub seen: Vec<Seen>,
}

/// Who a cool-down is for.
enum Key {
    Person(facereko_domain::PersonId),
    /// A face nobody enrolled, by its fused embedding.
    Unknown(Embedding),
}

impl Key {
    fn same(&self, other: &Key, threshold: f32) -> bool {
        match (self, other) {
            (Key::Person(a), Key::Person(b)) => a == b,
            (Key::Unknown(a), Key::Unknown(b)) => a.cosine(b) * 100.0 >= threshold,
            _ => false,
        }
    }
}

/// The watcher task's parts.
pub(crate) struct Watcher {
    pub judge: Arc<dyn FrameJudge>,
    pub camera: Arc<dyn Camera>,
    pub settings: WatchSettings,
    pub mode: Mode,
    pub ring: Arc<Ring>,
    /// The controller's state: armed, busy. The watcher ends when the controller does.
    pub status: watch::Receiver<DoorStatus>,
    /// `face` mode: stable faces for the controller.
    pub triggers: mpsc::Sender<FaceTrigger>,
}

impl Watcher {
    pub async fn run(mut self) {
        let interval = Duration::from_secs_f64(1.0 / f64::from(self.settings.fps.max(1)));
        let lookback = Duration::from_millis(self.settings.lookback_ms);
        let cooldown = Duration::from_millis(self.settings.cooldown_ms);
        let mut gate = Some(MotionGate::new());
        let mut last_analysis: Option<Instant> = None;
        let mut face_in_last = false;
        let mut streak: Vec<Seen> = Vec::new();
        let mut cooled: Vec<(Key, Instant)> = Vec::new();
        let mut failing = false;
        loop {
            if self.status.has_changed().is_err() {
                return;
            }
            if !self.status.borrow().armed {
                self.ring.clear();
                gate = Some(MotionGate::new());
                (last_analysis, face_in_last) = (None, false);
                streak.clear();
                if self.status.wait_for(|s| s.armed).await.is_err() {
                    return;
                }
            }
            let tick = Instant::now();
            let shot = match tokio::time::timeout(CAPTURE_WAIT, self.camera.capture()).await {
                Ok(Ok(photo)) => Ok(Arc::new(photo)),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!(
                    "the camera gave no frame within {} ms",
                    CAPTURE_WAIT.as_millis()
                )),
            };
            let photo = match shot {
                Ok(photo) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!("the camera gives frames again");
                    }
                    photo
                }
                Err(e) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(
                            "continuous capture: {e}; retrying every {} s",
                            RETRY_AFTER.as_secs()
                        );
                    }
                    self.ring.record(tick, lookback, Err(e));
                    streak.clear();
                    tokio::time::sleep(RETRY_AFTER).await;
                    continue;
                }
            };
            let analyse_anyway = face_in_last
                || self.ring.wanted()
                || last_analysis.is_none_or(|t| tick.duration_since(t) >= HEARTBEAT);
            let judge = self.judge.clone();
            let frame = photo.clone();
            let mut g = gate.take().unwrap_or_default();
            let looked = tokio::task::spawn_blocking(move || {
                let result = judge.decode(&frame).and_then(|img| {
                    let moved = MotionGate::moved(g.update(&img));
                    if moved || analyse_anyway {
                        judge.observe(&img, 1).map(Some)
                    } else {
                        Ok(None)
                    }
                });
                (g, result)
            })
            .await;
            let observed = match looked {
                Ok((g, result)) => {
                    gate = Some(g);
                    result
                }
                Err(e) => Err(facereko_vision::Error::Engine(format!(
                    "frame task failed: {e}"
                ))),
            };
            let seen = match observed {
                Ok(Some(list)) => {
                    last_analysis = Some(tick);
                    face_in_last = !list.is_empty();
                    list.into_iter().next().map(|observation| Seen {
                        at: tick,
                        photo: photo.clone(),
                        observation,
                    })
                }
                Ok(None) => None,
                Err(e) => {
                    tracing::debug!("frame not analysed: {e}");
                    None
                }
            };
            let analysed = last_analysis == Some(tick);
            self.ring.record(
                tick,
                lookback,
                Ok(Frame {
                    photo,
                    analysed,
                    seen: seen.clone(),
                }),
            );
            if self.mode == Mode::Face && analysed {
                match seen.filter(Seen::good) {
                    Some(s) => {
                        // Someone else stepped in: their streak starts over.
                        let threshold = self.judge.threshold();
                        let same = streak.last().is_none_or(|prev| {
                            prev.observation.embedding.cosine(&s.observation.embedding) * 100.0
                                >= threshold
                        });
                        if !same {
                            streak.clear();
                        }
                        streak.push(s);
                    }
                    None => streak.clear(),
                }
                let keep = self.settings.trigger_frames.max(1) as usize;
                if streak.len() > keep {
                    streak.drain(..streak.len() - keep);
                }
                if streak.len() == keep {
                    self.stable_face(tick, cooldown, &streak, &mut cooled).await;
                }
            }
            sleep_until(tick + interval).await;
        }
    }

    /// `face` mode: `streak` holds enough good frames in a row; decide unless cooling down.
    async fn stable_face(
        &self,
        now: Instant,
        cooldown: Duration,
        streak: &[Seen],
        cooled: &mut Vec<(Key, Instant)>,
    ) {
        let observations: Vec<Observation> = streak.iter().map(|s| s.observation.clone()).collect();
        let verdict = self.judge.identify_fused(&observations).await;
        let key = match verdict.matched {
            Some(p) => Key::Person(p),
            None => {
                let model = &observations[0].model_id;
                match fusion::fuse(&observations, model, FUSE_FRAMES) {
                    Some((e, _)) => Key::Unknown(e),
                    None => return,
                }
            }
        };
        cooled.retain(|(_, t)| now.duration_since(*t) < cooldown);
        let threshold = self.judge.threshold();
        if let Some(entry) = cooled.iter_mut().find(|(k, _)| k.same(&key, threshold)) {
            // Still in view: the cool-down runs from the last sighting.
            entry.1 = now;
            return;
        }
        {
            let st = self.status.borrow();
            if !st.armed || st.busy {
                return;
            }
        }
        let trigger = FaceTrigger {
            verdict,
            seen: streak.to_vec(),
        };
        if self.triggers.try_send(trigger).is_ok() && !cooldown.is_zero() {
            cooled.push((key, now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use facereko_vision::testing::frame;

    fn seen(at: Instant, person: u8, q: f32) -> Seen {
        let judge = facereko_vision::testing::ScriptedFrames::default();
        let photo = frame(person, q);
        let img = judge.decode(&photo).unwrap();
        Seen {
            at,
            observation: judge.observe(&img, 1).unwrap().remove(0),
            photo: Arc::new(photo),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_ring_keeps_the_lookback_window_and_the_latest_frame() {
        let ring = Ring::new();
        let t0 = Instant::now();
        let window = Duration::from_millis(1500);
        let mut rx = ring.subscribe();
        for i in 0..10u64 {
            let at = t0 + Duration::from_millis(200 * i);
            let s = seen(at, 1, 0.1 * i as f32);
            let f = Frame {
                photo: s.photo.clone(),
                analysed: true,
                seen: Some(s),
            };
            ring.record(at, window, Ok(f));
        }
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 10);
        let now = t0 + Duration::from_millis(1800);
        let kept = ring.since(t0);
        assert_eq!(
            kept.len(),
            8,
            "frames older than 1.5 s before the newest are gone"
        );
        assert_eq!(kept[0].at, t0 + Duration::from_millis(400));
        assert_eq!(ring.since(now - Duration::from_millis(400)).len(), 3);
        assert!((best_frame(&kept).unwrap().observation.quality.overall - 0.9).abs() < 0.01);
        assert!(ring.latest().is_some());
        assert_eq!(ring.current(t0, 80.0).len(), 8);

        // Someone else in the newest frame: only their face counts.
        let bob_at = now + Duration::from_millis(200);
        let bob = seen(bob_at, 2, 0.9);
        let bobs = Frame {
            photo: bob.photo.clone(),
            analysed: true,
            seen: Some(bob),
        };
        ring.record(bob_at, window, Ok(bobs));
        let current = ring.current(t0, 80.0);
        assert_eq!(current.len(), 1);
        assert_eq!(current[0].at, bob_at);
        // Nobody in the newest analysed frame: nothing to decide on, though faces are in the window.
        let empty = Frame {
            photo: Arc::new(frame(0, 0.0)),
            analysed: true,
            seen: None,
        };
        ring.record(bob_at + Duration::from_millis(200), window, Ok(empty));
        assert!(ring.current(t0, 80.0).is_empty());
        assert_eq!(ring.since(t0).len(), 7);

        ring.record(now, window, Err("unplugged".into()));
        assert_eq!(ring.camera_error().as_deref(), Some("unplugged"));
        ring.clear();
        assert!(ring.since(t0).is_empty() && ring.latest().is_none());
    }

    #[test]
    fn waiting_attempts_are_counted_while_their_guard_lives() {
        let ring = Ring::new();
        assert!(!ring.wanted());
        let a = ring.wait();
        let b = ring.wait();
        drop(a);
        assert!(ring.wanted());
        drop(b);
        assert!(!ring.wanted());
    }
}
