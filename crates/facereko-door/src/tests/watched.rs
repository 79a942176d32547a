//! Continuous capture, on the paused clock: the door watches a scripted scene (who is in view, how
//! good the face is) and decides from the frames it already has.

use std::sync::atomic::AtomicUsize;

use facereko_vision::testing::{turned_frame, ScriptedFrames};
use facereko_vision::LivenessMode;

use super::*;

/// A camera whose scene a test changes: person `n` (0 = nobody) at a quality, as scripted frames.
#[derive(Default)]
struct SceneCamera {
    scene: Mutex<(u8, f32)>,
    yaw: Mutex<f32>,
    captures: AtomicUsize,
    broken: AtomicBool,
    /// When set, what the camera shows instead of the scene, one after the other, round and round.
    picture: Mutex<Vec<Photo>>,
}

impl SceneCamera {
    fn show(&self, person: u8, quality: f32) {
        *self.scene.lock().unwrap() = (person, quality);
    }

    /// The person in view turns their head (nose offset in eye distances).
    fn turn(&self, yaw: f32) {
        *self.yaw.lock().unwrap() = yaw;
    }

    fn captures(&self) -> usize {
        self.captures.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Camera for SceneCamera {
    async fn capture(&self) -> facereko_hardware::Result<Photo> {
        self.captures.fetch_add(1, Ordering::SeqCst);
        if self.broken.load(Ordering::SeqCst) {
            return Err(facereko_hardware::Error::Camera("unplugged".into()));
        }
        let picture = self.picture.lock().unwrap();
        if !picture.is_empty() {
            return Ok(picture[self.captures() % picture.len()].clone());
        }
        let (person, q) = *self.scene.lock().unwrap();
        Ok(turned_frame(person, q, *self.yaw.lock().unwrap()))
    }
    fn describe(&self) -> String {
        "scene test camera".into()
    }
}

struct Watched {
    rig: Rig,
    camera: Arc<SceneCamera>,
    judge: Arc<ScriptedFrames>,
}

/// A door that watches at 5 frames/s with the default lookback (1.5 s) and face timeout (3 s).
async fn watched(mode: Mode, scene: (u8, f32)) -> Watched {
    watched_with(mode, scene, LivenessMode::Off).await
}

async fn watched_with(mode: Mode, scene: (u8, f32), liveness: LivenessMode) -> Watched {
    let store = Arc::new(MemoryStore::default());
    store.add(1, "Ada Lovelace", ADA);
    store.add(2, "Bob", BOB);
    let engine = Arc::new(ScriptedEngine::with_frames());
    let judge = engine.frame_judge().unwrap();
    let camera = Arc::new(SceneCamera::default());
    camera.show(scene.0, scene.1);
    let mut config = config(mode);
    config.watch.liveness = liveness;
    let rig = rig_of(store, config, engine, camera.clone()).await;
    Watched { rig, camera, judge }
}

impl Watched {
    /// Output changes as (ms since `since`, "output on|off").
    fn timeline_since(&self, since: Instant) -> Vec<(u64, String)> {
        self.rig
            .outputs
            .changes()
            .iter()
            .filter(|c| c.at >= since)
            .map(|c| {
                (
                    (c.at - since).as_millis() as u64,
                    format!("{} {}", c.output, if c.active { "on" } else { "off" }),
                )
            })
            .collect()
    }

    fn relay_on_at(&self, since: Instant) -> Option<u64> {
        self.timeline_since(since)
            .into_iter()
            .find(|(_, s)| s == "relay on")
            .map(|(t, _)| t)
    }
}

#[tokio::test(start_paused = true)]
async fn a_face_already_in_view_opens_the_door_as_the_card_touches_the_reader() {
    let w = watched(Mode::CardFace, (1, 0.9)).await;
    wait(2000).await;
    let tapped = Instant::now();
    w.rig.tap(ADA);
    wait(15_000).await;
    assert_eq!(
        w.timeline_since(tapped),
        tl(&[
            (0, "buzzer on"),
            (0, "red off"),
            (0, "green on"),
            (0, "relay on"),
            // The grant took the known-card beep over: one long beep.
            (2000, "buzzer off"),
            (10_000, "green off"),
            (10_000, "red on"),
            (10_000, "relay off"),
        ])
    );
    let a = &w.rig.store.attempts()[0];
    assert_eq!(a.outcome, Outcome::Granted);
    assert_eq!(a.similarity, Some(100.0));
    assert!(a.photo.is_some(), "the deciding frame is kept");
    let detail = a.detail.as_deref().unwrap();
    assert!(
        detail.contains("8 frames"),
        "the whole lookback window: {detail}"
    );
    assert!(
        w.rig.engine.calls().is_empty(),
        "no photo was taken after the tap"
    );
}

#[tokio::test(start_paused = true)]
async fn with_nobody_in_view_the_tap_waits_for_a_face_while_the_beep_plays() {
    let w = watched(Mode::CardFace, (0, 0.0)).await;
    wait(2000).await;
    let tapped = Instant::now();
    w.rig.tap(ADA);
    wait(1000).await;
    w.camera.show(1, 0.9);
    wait(15_000).await;
    let on = w.relay_on_at(tapped).expect("granted");
    assert!(
        (1000..=1200).contains(&on),
        "the next frame decides: {on} ms"
    );
    let t = w.timeline_since(tapped);
    assert_eq!(&t[..2], &tl(&[(0, "buzzer on"), (500, "buzzer off")])[..]);
    assert_eq!(w.rig.store.outcomes(), vec![Outcome::Granted]);
}

#[tokio::test(start_paused = true)]
async fn a_poor_face_decides_only_when_the_time_is_up_and_a_good_one_at_once() {
    let w = watched(Mode::CardFace, (1, 0.1)).await;
    wait(2000).await;
    let tapped = Instant::now();
    w.rig.tap(ADA);
    wait(10).await;
    assert_eq!(w.relay_on_at(tapped), None, "a blurred face alone waits");
    wait(15_000).await;
    assert_eq!(
        w.relay_on_at(tapped),
        Some(3000),
        "decided at vision.face_timeout_ms"
    );
    assert_eq!(w.rig.store.outcomes(), vec![Outcome::Granted]);
}

#[tokio::test(start_paused = true)]
async fn a_stranger_is_refused_at_the_timeout_unless_the_owner_shows_up() {
    // Bob (person 2) stands at the camera with Ada's card.
    let w = watched(Mode::CardFace, (2, 0.9)).await;
    wait(2000).await;
    let tapped = Instant::now();
    w.rig.tap(ADA);
    wait(10_000).await;
    let a = &w.rig.store.attempts()[0];
    assert_eq!(a.outcome, Outcome::FaceMismatch);
    assert_eq!(a.similarity, Some(0.0));
    assert!(a.photo.is_some());
    assert_eq!(a.timings.capture_ms, Some(3000));
    let t = w.timeline_since(tapped);
    assert!(!t.iter().any(|(_, s)| s == "relay on"), "{t:?}");
    assert_eq!(
        t[2],
        (3000, "buzzer on".to_string()),
        "denied at the timeout: {t:?}"
    );

    // Ada's card again, Bob in view, then Ada steps in after a second: she is let in.
    wait(5000).await;
    let tapped = Instant::now();
    w.rig.tap(ADA);
    wait(1000).await;
    w.camera.show(1, 0.9);
    wait(10_000).await;
    assert_eq!(
        w.rig.store.outcomes(),
        vec![Outcome::FaceMismatch, Outcome::Granted]
    );
    let on = w.relay_on_at(tapped).unwrap();
    assert!((1000..=1200).contains(&on), "{on}");
}

#[tokio::test(start_paused = true)]
async fn no_face_within_the_timeout_is_logged_with_the_latest_frame() {
    let w = watched(Mode::CardFace, (0, 0.0)).await;
    wait(2000).await;
    w.rig.tap(ADA);
    wait(10_000).await;
    let a = &w.rig.store.attempts()[0];
    assert_eq!(a.outcome, Outcome::NoFace);
    assert!(a.photo.is_some(), "what the camera saw is kept");
    assert_eq!(a.timings.capture_ms, Some(3000));
}

#[tokio::test(start_paused = true)]
async fn a_camera_that_gives_no_frames_is_a_camera_error_at_the_timeout() {
    let w = watched(Mode::CardFace, (1, 0.9)).await;
    w.camera.broken.store(true, Ordering::SeqCst);
    wait(2000).await;
    w.rig.tap(ADA);
    wait(10_000).await;
    let a = &w.rig.store.attempts()[0];
    assert_eq!(a.outcome, Outcome::CameraError);
    assert!(a.detail.as_deref().unwrap().contains("unplugged"), "{a:?}");
    // Plugged back in: the door sees again.
    w.camera.broken.store(false, Ordering::SeqCst);
    wait(3000).await;
    w.rig.tap(ADA);
    wait(10_000).await;
    assert_eq!(
        w.rig.store.outcomes(),
        vec![Outcome::CameraError, Outcome::Granted]
    );
}

#[tokio::test(start_paused = true)]
async fn an_empty_still_scene_costs_almost_no_analysis_and_a_disarmed_door_takes_no_frames() {
    let w = watched(Mode::CardFace, (0, 0.0)).await;
    wait(10_000).await;
    let captured = w.camera.captures();
    let analysed = w.judge.observed();
    assert!((49..=52).contains(&captured), "5 frames/s: {captured}");
    assert!(
        analysed <= 1 + 10_000 / 2000 + 1,
        "only the first frame and the heartbeat: {analysed} of {captured}"
    );
    // Someone walks in: every frame is analysed while a face is in view.
    w.camera.show(3, 0.9);
    wait(2000).await;
    assert!(w.judge.observed() >= analysed + 9, "{}", w.judge.observed());

    w.rig.door.arm(false).await.unwrap();
    wait(100).await;
    let before = w.camera.captures();
    wait(10_000).await;
    assert_eq!(w.camera.captures(), before, "no frames while Offline");
    w.rig.door.arm(true).await.unwrap();
    wait(1000).await;
    assert!(w.camera.captures() > before);
}

#[tokio::test(start_paused = true)]
async fn face_mode_decides_a_person_once_while_they_stay_in_view() {
    let w = watched(Mode::Face, (0, 0.0)).await;
    wait(1000).await;
    let arrived = Instant::now();
    w.camera.show(1, 0.9);
    wait(30_000).await;
    assert_eq!(
        w.rig.store.outcomes(),
        vec![Outcome::Granted],
        "logged once"
    );
    let on = w.relay_on_at(arrived).unwrap();
    assert!(
        (400..=800).contains(&on),
        "three good frames in a row at 5 frames/s: {on} ms"
    );
    let a = &w.rig.store.attempts()[0];
    assert_eq!(a.person.as_deref(), Some("Ada Lovelace"));
    assert!(a.card_uid.is_none());

    // Ada leaves for longer than the cool-down (10 s) and comes back: a new attempt.
    w.camera.show(0, 0.0);
    wait(11_000).await;
    w.camera.show(1, 0.9);
    wait(5000).await;
    assert_eq!(
        w.rig.store.outcomes(),
        vec![Outcome::Granted, Outcome::Granted]
    );
    // She steps away for a moment only: still the same visit.
    w.camera.show(0, 0.0);
    wait(3000).await;
    w.camera.show(1, 0.9);
    wait(5000).await;
    assert_eq!(w.rig.store.outcomes().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn face_mode_logs_a_stranger_once_and_a_second_stranger_too() {
    let w = watched(Mode::Face, (9, 0.9)).await;
    wait(20_000).await;
    assert_eq!(w.rig.store.outcomes(), vec![Outcome::FaceMismatch]);
    let a = &w.rig.store.attempts()[0];
    assert!(a.person_id.is_none() && a.photo.is_some());
    // Another stranger steps in: another face, another attempt.
    w.camera.show(10, 0.9);
    wait(5000).await;
    assert_eq!(
        w.rig.store.outcomes(),
        vec![Outcome::FaceMismatch, Outcome::FaceMismatch]
    );
    let t = w.timeline_since(w.rig.t0);
    assert!(!t.iter().any(|(_, s)| s == "relay on"));
}

#[tokio::test(start_paused = true)]
async fn face_mode_waits_for_a_steady_good_face() {
    // A face that is never good enough (turned, blurred) starts no attempt.
    let w = watched(Mode::Face, (1, 0.1)).await;
    wait(10_000).await;
    assert!(w.rig.store.attempts().is_empty());
    assert!(
        w.rig.engine.calls().is_empty(),
        "no photo-by-photo polling either"
    );
}

#[tokio::test(start_paused = true)]
async fn the_owner_who_just_walked_past_does_not_open_for_someone_else() {
    // Ada passes the camera; a moment later Bob taps her card.
    let w = watched(Mode::CardFace, (1, 0.9)).await;
    wait(2000).await;
    w.camera.show(2, 0.9);
    wait(400).await;
    w.rig.tap(ADA);
    wait(10_000).await;
    assert_eq!(w.rig.store.outcomes(), vec![Outcome::FaceMismatch]);
    // Ada passes again and nobody is in view at the tap.
    wait(5000).await;
    w.camera.show(1, 0.9);
    wait(1000).await;
    w.camera.show(0, 0.0);
    wait(400).await;
    w.rig.tap(ADA);
    wait(10_000).await;
    assert_eq!(
        w.rig.store.outcomes(),
        vec![Outcome::FaceMismatch, Outcome::NoFace]
    );
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_is_the_newest_watched_frame_or_a_capture() {
    let w = watched(Mode::CardFace, (3, 0.9)).await;
    wait(1000).await;
    let before = w.camera.captures();
    let photo = w.rig.door.snapshot().await.unwrap();
    assert_eq!(facereko_vision::testing::read_frame(&photo).unwrap().0, 3);
    assert_eq!(
        w.camera.captures(),
        before,
        "the watcher's frame, no second capture"
    );
    // Offline: nothing is watched, the camera takes one.
    w.rig.door.arm(false).await.unwrap();
    wait(2000).await;
    let before = w.camera.captures();
    w.rig.door.snapshot().await.unwrap();
    assert_eq!(w.camera.captures(), before + 1);
    w.camera.broken.store(true, Ordering::SeqCst);
    let err = w.rig.door.snapshot().await.unwrap_err();
    assert!(err.to_string().contains("unplugged"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn the_challenge_asks_for_a_head_turn_and_a_turning_head_gets_in() {
    let w = watched_with(Mode::CardFace, (1, 0.9), LivenessMode::Challenge).await;
    wait(2000).await;
    let tapped = Instant::now();
    w.rig.tap(ADA);
    wait(1000).await;
    assert_eq!(
        w.relay_on_at(tapped),
        None,
        "the face matched, the turn is still missing"
    );
    // The head turns as heads do, through the poses between (5 frames/s).
    w.camera.turn(0.1);
    wait(200).await;
    w.camera.turn(0.2);
    wait(5000).await;
    let on = w
        .relay_on_at(tapped)
        .unwrap_or_else(|| panic!("granted after the turn: {:?}", w.rig.store.attempts()));
    assert!((1200..=1400).contains(&on), "{on}");
    let t = w.timeline_since(tapped);
    // Known-card beep, then the three short challenge beeps.
    assert_eq!(
        &t[..4],
        &tl(&[
            (0, "buzzer on"),
            (500, "buzzer off"),
            (1000, "buzzer on"),
            (1100, "buzzer off")
        ])[..]
    );
    let a = &w.rig.store.attempts()[0];
    assert_eq!(a.outcome, Outcome::Granted);
    assert!(a.detail.as_deref().unwrap().contains("head turn"), "{a:?}");
}

#[tokio::test(start_paused = true)]
async fn a_picture_that_never_turns_is_refused_as_a_spoof_with_an_alarm() {
    let w = watched_with(Mode::CardFace, (1, 0.9), LivenessMode::Challenge).await;
    wait(2000).await;
    let tapped = Instant::now();
    w.rig.tap(ADA);
    wait(10_000).await;
    let a = &w.rig.store.attempts()[0];
    assert_eq!(a.outcome, Outcome::SpoofSuspected);
    assert!(a.photo.is_some(), "the photo is kept");
    assert_eq!(a.similarity, Some(100.0), "the face did match");
    assert!(
        a.detail.as_deref().unwrap().contains("no head turn"),
        "{a:?}"
    );
    let t = w.timeline_since(tapped);
    assert!(!t.iter().any(|(_, s)| s == "relay on"), "{t:?}");
    let alarms: Vec<_> = w
        .rig
        .store
        .events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Alarm { alarm, .. } => Some(*alarm),
            _ => None,
        })
        .collect();
    assert_eq!(alarms, vec![Alarm::SpoofSuspected]);
}

#[tokio::test(start_paused = true)]
async fn passive_liveness_refuses_a_still_picture_and_lets_a_moving_head_in() {
    let w = watched_with(Mode::CardFace, (1, 0.9), LivenessMode::Passive).await;
    wait(2000).await;
    w.rig.tap(ADA);
    wait(10_000).await;
    assert_eq!(w.rig.store.outcomes(), vec![Outcome::SpoofSuspected]);
    // A head that moves while it is watched: its keypoints do not move as one plane.
    for (i, yaw) in [0.0, 0.08, 0.15, 0.05, -0.05, 0.1]
        .into_iter()
        .cycle()
        .take(10)
        .enumerate()
    {
        w.camera.turn(yaw);
        wait(200 + i as u64 % 2).await;
    }
    w.rig.tap(ADA);
    wait(10_000).await;
    assert_eq!(
        w.rig.store.outcomes(),
        vec![Outcome::SpoofSuspected, Outcome::Granted]
    );
    let attempts = w.rig.store.attempts();
    let still = attempts[0].detail.as_deref().unwrap();
    assert!(still.contains("moved like a flat picture"), "{still}");
    let moving = attempts[1].detail.as_deref().unwrap();
    assert!(moving.contains("passive liveness 0."), "{moving}");
}

/// A photo of person 1 held up and moved by hand: the seeded print/screen generator's frames of one
/// scene frame, each with the first pixel still saying who it shows (the scripted judge reads it).
fn moved_photo(frames: usize) -> Vec<Photo> {
    let still =
        facereko_vision::decode::decode_rgb(&turned_frame(1, 0.9, 0.0).bytes, 4096).unwrap();
    let code = *still.get_pixel(0, 0);
    facereko_liveness::attack::generate(&still, 11, frames)
        .frames
        .into_iter()
        .map(|mut f| {
            f.put_pixel(0, 0, code);
            let mut bytes = Vec::new();
            f.write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .unwrap();
            Photo::from_bytes(bytes).unwrap()
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn passive_liveness_refuses_a_photo_moved_in_front_of_the_camera() {
    let w = watched_with(Mode::CardFace, (1, 0.9), LivenessMode::Passive).await;
    *w.camera.picture.lock().unwrap() = moved_photo(7);
    wait(2000).await;
    let tapped = Instant::now();
    w.rig.tap(ADA);
    wait(10_000).await;
    let a = &w.rig.store.attempts()[0];
    assert_eq!(a.outcome, Outcome::SpoofSuspected, "{a:?}");
    assert_eq!(a.similarity, Some(100.0), "the face did match");
    let detail = a.detail.as_deref().unwrap();
    assert!(detail.contains("moved like a flat picture"), "{detail}");
    let t = w.timeline_since(tapped);
    assert!(!t.iter().any(|(_, s)| s == "relay on"), "{t:?}");
}

#[tokio::test(start_paused = true)]
async fn face_mode_challenges_the_identified_person_too() {
    let w = watched_with(Mode::Face, (0, 0.0), LivenessMode::Challenge).await;
    wait(1000).await;
    w.camera.show(1, 0.9);
    wait(5000).await;
    assert_eq!(w.rig.store.outcomes(), vec![Outcome::SpoofSuspected]);
    // Out of view past the cool-down, back, and this time the head turns when asked.
    w.camera.show(0, 0.0);
    wait(11_000).await;
    w.camera.show(1, 0.9);
    wait(1500).await;
    w.camera.turn(-0.1);
    wait(200).await;
    w.camera.turn(-0.2);
    wait(5000).await;
    assert_eq!(
        w.rig.store.outcomes(),
        vec![Outcome::SpoofSuspected, Outcome::Granted]
    );
}
