//! Controller tests on tokio's paused clock: every cue is asserted with its exact time.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use facereko_domain::{Card, PersonId, WeeklySchedule};
use facereko_hardware::sim::{self, SimOutputs, SimTapper};
use facereko_hardware::Camera;
use facereko_vision::testing::{Script, ScriptedEngine};

use super::*;

/// An in-memory directory for the controller's timing tests.
#[derive(Default)]
struct MemoryStore {
    people: Mutex<HashMap<PersonId, Person>>,
    cards: Mutex<HashMap<CardUid, Card>>,
    attempts: Mutex<Vec<Attempt>>,
    armed: Mutex<HashMap<String, bool>>,
    events: Mutex<Vec<Event>>,
}

impl MemoryStore {
    fn add(&self, id: i64, name: &str, uid: &str) -> PersonId {
        let id = PersonId(id);
        let uid: CardUid = uid.parse().unwrap();
        let card = Card {
            uid: uid.clone(),
            person_id: id,
            label: None,
            active: true,
        };
        self.people.lock().unwrap().insert(
            id,
            Person {
                id,
                name: name.into(),
                active: true,
                valid_from: None,
                valid_until: None,
                schedule: None,
                cards: vec![card.clone()],
            },
        );
        self.cards.lock().unwrap().insert(uid, card);
        id
    }

    fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().unwrap().clone()
    }

    fn outcomes(&self) -> Vec<Outcome> {
        self.attempts().iter().map(|a| a.outcome).collect()
    }
}

#[async_trait]
impl DoorStore for MemoryStore {
    async fn lookup_card(&self, uid: &CardUid) -> Result<Option<(Card, Person)>, PortError> {
        let card = self.cards.lock().unwrap().get(uid).cloned();
        Ok(card.map(|c| {
            let p = self.people.lock().unwrap()[&c.person_id].clone();
            (c, p)
        }))
    }

    async fn person(&self, id: PersonId) -> Result<Option<Person>, PortError> {
        Ok(self.people.lock().unwrap().get(&id).cloned())
    }

    async fn record_attempt(
        &self,
        a: &NewAttempt,
        photo: Option<&Photo>,
    ) -> Result<Attempt, PortError> {
        let mut all = self.attempts.lock().unwrap();
        let stored = Attempt {
            id: all.len() as i64 + 1,
            time: a.time,
            door_id: a.door_id.clone(),
            card_uid: a.card_uid.clone(),
            person_id: a.person_id,
            person: a.person_name.clone(),
            outcome: a.outcome,
            similarity: a.similarity,
            distance: a.distance,
            confidence: a.confidence,
            photo: photo.map(|_| format!("photos/{}.jpg", all.len() + 1)),
            timings: a.timings,
            detail: a.detail.clone(),
        };
        all.push(stored.clone());
        Ok(stored)
    }

    async fn armed(&self, door_id: &str) -> Result<Option<bool>, PortError> {
        Ok(self.armed.lock().unwrap().get(door_id).copied())
    }

    async fn set_armed(&self, door_id: &str, armed: bool) -> Result<(), PortError> {
        self.armed.lock().unwrap().insert(door_id.into(), armed);
        Ok(())
    }

    async fn enqueue_event(&self, _door_id: &str, event: &Event) -> Result<(), PortError> {
        self.events.lock().unwrap().push(event.clone());
        Ok(())
    }
}

/// A camera that always "sees" the same few bytes (the scripted engine never decodes them).
struct StillCamera;

#[async_trait]
impl Camera for StillCamera {
    async fn capture(&self) -> facereko_hardware::Result<Photo> {
        Ok(Photo::from_bytes(vec![0xFF, 0xD8, 0xFF, 0xE0]).unwrap())
    }
    fn describe(&self) -> String {
        "still test camera".into()
    }
}

struct Rig {
    store: Arc<MemoryStore>,
    engine: Arc<ScriptedEngine>,
    outputs: SimOutputs,
    tapper: SimTapper,
    inputs: sim::SimInputsHandle,
    door: DoorHandle,
    task: tokio::task::JoinHandle<()>,
    t0: Instant,
}

const ADA: &str = "04:A2:2B:19";
const BOB: &str = "04:11:22:33:44:55:66";

fn config(mode: Mode) -> DoorConfig {
    DoorConfig {
        mode,
        countdown_ms: 500,
        capture_window_ms: 250,
        ..DoorConfig::default()
    }
}

async fn rig_with(store: Arc<MemoryStore>, config: DoorConfig) -> Rig {
    let engine = Arc::new(ScriptedEngine::new());
    let outputs = SimOutputs::new();
    let (reader, tapper) = sim::card_reader();
    let (inputs, inputs_handle) = sim::inputs();
    let parts = Parts {
        store: store.clone(),
        engine: Some(engine.clone()),
        camera: Arc::new(StillCamera),
        outputs: Arc::new(outputs.clone()),
    };
    let (door, task) = start(
        "front",
        config,
        parts,
        Box::new(reader),
        Some(Box::new(inputs)),
    )
    .await
    .unwrap();
    // Let the controller light red, then measure from a clean log.
    tokio::time::sleep(Duration::from_millis(1)).await;
    outputs.clear();
    Rig {
        store,
        engine,
        outputs,
        tapper,
        inputs: inputs_handle,
        door,
        task,
        t0: Instant::now(),
    }
}

async fn rig(mode: Mode) -> Rig {
    let store = Arc::new(MemoryStore::default());
    store.add(1, "Ada Lovelace", ADA);
    store.add(2, "Bob", BOB);
    rig_with(store, config(mode)).await
}

impl Rig {
    fn tap(&self, uid: &str) {
        self.tapper.tap(CardTap::new(uid.parse().unwrap())).unwrap();
    }

    /// Output changes since the start as (ms, "output on|off").
    fn timeline(&self) -> Vec<(u64, String)> {
        self.outputs
            .changes()
            .iter()
            .map(|c| {
                (
                    (c.at - self.t0).as_millis() as u64,
                    format!("{} {}", c.output, if c.active { "on" } else { "off" }),
                )
            })
            .collect()
    }
}

fn tl(items: &[(u64, &str)]) -> Vec<(u64, String)> {
    items.iter().map(|(t, s)| (*t, s.to_string())).collect()
}

async fn wait(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[tokio::test(start_paused = true)]
async fn granted_card_and_face_plays_the_original_cues() {
    let r = rig(Mode::CardFace).await;
    r.engine.push(Script::Match {
        person: None,
        similarity: 97.5,
    });
    r.tap(ADA);
    wait(15_000).await;
    assert_eq!(
        r.timeline(),
        tl(&[
            (0, "buzzer on"),
            (500, "buzzer off"),
            (500, "red off"),
            (500, "green on"),
            (500, "relay on"),
            (1000, "buzzer on"),
            (3000, "buzzer off"),
            (10_500, "green off"),
            (10_500, "red on"),
            (10_500, "relay off"),
        ])
    );
    let a = &r.store.attempts()[0];
    assert_eq!(a.outcome, Outcome::Granted);
    assert_eq!(a.person.as_deref(), Some("Ada Lovelace"));
    assert_eq!(a.similarity, Some(97.5));
    assert!(a.photo.is_some(), "the photo is kept with the attempt");
    assert_eq!(
        r.engine.calls(),
        vec![Some(PersonId(1))],
        "1:1 against the card owner only"
    );
}

#[tokio::test(start_paused = true)]
async fn granted_card_only_needs_no_camera() {
    let r = rig(Mode::Card).await;
    r.tap(ADA);
    wait(15_000).await;
    assert_eq!(
        r.timeline(),
        tl(&[
            (0, "red off"),
            (0, "green on"),
            (0, "relay on"),
            (0, "buzzer on"),
            (2000, "buzzer off"),
            (10_000, "green off"),
            (10_000, "red on"),
            (10_000, "relay off"),
        ])
    );
    assert_eq!(r.store.outcomes(), vec![Outcome::Granted]);
    assert!(r.engine.calls().is_empty());
}

const DENY_AT_ONCE: [(u64, &str); 6] = [
    (0, "buzzer on"),
    (500, "buzzer off"),
    (1000, "buzzer on"),
    (1500, "buzzer off"),
    (2000, "buzzer on"),
    (2500, "buzzer off"),
];

#[tokio::test(start_paused = true)]
async fn unknown_card_is_denied_at_once_and_logged() {
    let r = rig(Mode::CardFace).await;
    r.tap("DE:AD:BE:EF");
    wait(5000).await;
    assert_eq!(r.timeline(), tl(&DENY_AT_ONCE));
    let a = &r.store.attempts()[0];
    assert_eq!(a.outcome, Outcome::UnknownCard);
    assert_eq!(a.card_uid.as_ref().unwrap().to_string(), "DE:AD:BE:EF");
    assert!(r.engine.calls().is_empty(), "no photo for an unknown card");
}

#[tokio::test(start_paused = true)]
async fn disabled_card_is_denied_at_once() {
    let store = Arc::new(MemoryStore::default());
    store.add(1, "Ada Lovelace", ADA);
    store
        .cards
        .lock()
        .unwrap()
        .get_mut(&ADA.parse::<CardUid>().unwrap())
        .unwrap()
        .active = false;
    let r = rig_with(store, config(Mode::CardFace)).await;
    r.tap(ADA);
    wait(5000).await;
    assert_eq!(r.timeline(), tl(&DENY_AT_ONCE));
    assert_eq!(r.store.outcomes(), vec![Outcome::CardDisabled]);
}

#[tokio::test(start_paused = true)]
async fn card_outside_schedule_is_denied_at_once() {
    let store = Arc::new(MemoryStore::default());
    let id = store.add(1, "Ada Lovelace", ADA);
    // An empty weekly schedule admits at no time at all.
    store.people.lock().unwrap().get_mut(&id).unwrap().schedule = Some(WeeklySchedule::default());
    let r = rig_with(store, config(Mode::CardFace)).await;
    r.tap(ADA);
    wait(5000).await;
    assert_eq!(r.timeline(), tl(&DENY_AT_ONCE));
    assert_eq!(r.store.outcomes(), vec![Outcome::OutsideSchedule]);
}

/// Known card beep, then (after the gap) three denial beeps; red never goes off.
const DENY_AFTER_LOOK: [(u64, &str); 8] = [
    (0, "buzzer on"),
    (500, "buzzer off"),
    (1000, "buzzer on"),
    (1500, "buzzer off"),
    (2000, "buzzer on"),
    (2500, "buzzer off"),
    (3000, "buzzer on"),
    (3500, "buzzer off"),
];

#[tokio::test(start_paused = true)]
async fn no_face_within_the_capture_window_is_denied() {
    let r = rig(Mode::CardFace).await;
    for _ in 0..4 {
        r.engine.push(Script::NoFace);
    }
    r.tap(ADA);
    wait(6000).await;
    assert_eq!(r.timeline(), tl(&DENY_AFTER_LOOK));
    assert_eq!(
        r.engine.calls().len(),
        4,
        "frames at 500, 600, 700 and 800 ms"
    );
    let a = &r.store.attempts()[0];
    assert_eq!(a.outcome, Outcome::NoFace);
    assert!(a.photo.is_some(), "the last frame is kept as evidence");
}

#[tokio::test(start_paused = true)]
async fn an_engine_billed_per_call_is_asked_once_per_tap() {
    let r = rig(Mode::CardFace).await;
    r.engine.set_one_photo_per_look(true);
    r.engine.push(Script::NoFace);
    r.engine.push(Script::Match {
        person: None,
        similarity: 99.0,
    });
    r.tap(ADA);
    wait(6000).await;
    assert_eq!(r.engine.calls().len(), 1, "one SearchFacesByImage per tap");
    assert_eq!(r.store.outcomes(), vec![Outcome::NoFace]);
    assert_eq!(r.timeline(), tl(&DENY_AFTER_LOOK));
}

#[tokio::test(start_paused = true)]
async fn someone_else_s_face_is_denied() {
    let r = rig(Mode::CardFace).await;
    r.engine.push(Script::Mismatch { similarity: 31.0 });
    r.tap(ADA);
    wait(6000).await;
    let expected: Vec<(u64, &str)> = DENY_AFTER_LOOK.to_vec();
    assert_eq!(r.timeline(), tl(&expected));
    let a = &r.store.attempts()[0];
    assert_eq!(a.outcome, Outcome::FaceMismatch);
    assert_eq!(a.similarity, Some(31.0));
    assert!(!r.outputs.level(Output::Relay));
    assert!(r.outputs.level(Output::Red));
}

#[tokio::test(start_paused = true)]
async fn a_card_resting_on_the_reader_is_one_tap() {
    let r = rig(Mode::Card).await;
    // The reader reports a resting card every second for five seconds.
    for _ in 0..5 {
        r.tap(BOB);
        wait(1000).await;
    }
    // Away for longer than the window (3 s), then back: a new tap.
    wait(3000).await;
    r.tap(BOB);
    wait(1000).await;
    assert_eq!(r.store.outcomes(), vec![Outcome::Granted, Outcome::Granted]);
}

#[tokio::test(start_paused = true)]
async fn a_tap_while_unlocked_is_handled_and_extends_the_unlock() {
    let r = rig(Mode::Card).await;
    r.tap(ADA);
    wait(4000).await;
    r.tap(BOB);
    wait(1000).await;
    r.tap("DE:AD:BE:EF");
    wait(20_000).await;
    assert_eq!(
        r.store.outcomes(),
        vec![Outcome::Granted, Outcome::Granted, Outcome::UnknownCard]
    );
    let relay: Vec<_> = r
        .timeline()
        .into_iter()
        .filter(|(_, s)| s.starts_with("relay"))
        .collect();
    assert_eq!(relay, tl(&[(0, "relay on"), (14_000, "relay off")]));
}

#[tokio::test(start_paused = true)]
async fn shutdown_while_unlocked_locks_and_silences() {
    let r = rig(Mode::Card).await;
    r.tap(ADA);
    wait(1000).await;
    assert!(r.outputs.level(Output::Relay));
    assert!(r.outputs.level(Output::Buzzer));
    r.door.shutdown().await;
    assert!(!r.outputs.level(Output::Relay), "relay locked");
    assert!(!r.outputs.level(Output::Buzzer), "buzzer off");
    assert!(!r.outputs.level(Output::Green));
    r.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_controller_task_that_dies_leaves_the_door_locked() {
    let r = rig(Mode::Card).await;
    r.tap(ADA);
    wait(1000).await;
    assert!(r.outputs.level(Output::Relay));
    r.task.abort();
    let _ = r.task.await;
    assert!(!r.outputs.level(Output::Relay));
    assert!(!r.outputs.level(Output::Buzzer));
}

#[tokio::test(start_paused = true)]
async fn offline_taps_are_ignored_and_the_state_survives_a_restart() {
    let r = rig(Mode::Card).await;
    r.door.arm(false).await.unwrap();
    assert!(!r.door.status().armed);
    r.tap(ADA);
    wait(5000).await;
    assert!(
        r.store.attempts().is_empty(),
        "SystemOff taps are not logged"
    );
    assert!(r.timeline().is_empty(), "and play no cue");
    r.door.shutdown().await;

    // A new controller over the same store starts Offline.
    let again = rig_with(r.store.clone(), config(Mode::Card)).await;
    assert!(!again.door.status().armed);
    again.door.arm(true).await.unwrap();
    again.tap(ADA);
    wait(100).await;
    assert_eq!(again.store.outcomes(), vec![Outcome::Granted]);
    let armed_events = again
        .store
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Event::Armed { .. }))
        .count();
    assert_eq!(armed_events, 2);
}

#[tokio::test(start_paused = true)]
async fn exit_button_unlocks_and_forced_door_raises_an_alarm() {
    let r = rig(Mode::Card).await;
    r.inputs.send(InputEvent::DoorOpened).unwrap();
    wait(10).await;
    r.inputs.send(InputEvent::DoorClosed).unwrap();
    r.inputs.send(InputEvent::ExitPressed).unwrap();
    wait(100).await;
    assert!(r.outputs.level(Output::Relay));
    r.inputs.send(InputEvent::DoorOpened).unwrap();
    wait(40_000).await;
    assert!(
        !r.outputs.level(Output::Relay),
        "relocked after unlock_seconds"
    );
    let events = r.store.events.lock().unwrap().clone();
    let alarms: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Alarm { alarm, .. } => Some(*alarm),
            _ => None,
        })
        .collect();
    assert_eq!(alarms, vec![Alarm::ForcedOpen, Alarm::HeldOpen]);
}

#[tokio::test(start_paused = true)]
async fn face_mode_identifies_without_a_card() {
    let r = rig(Mode::Face).await;
    r.engine.push(Script::NoFace);
    r.engine.push(Script::NoFace);
    r.engine.push(Script::NoFace);
    r.engine.push(Script::Match {
        person: Some(PersonId(2)),
        similarity: 90.0,
    });
    wait(3000).await;
    let a = r.store.attempts();
    assert_eq!(a.len(), 1, "frames without a face are not attempts");
    assert_eq!(a[0].outcome, Outcome::Granted);
    assert_eq!(a[0].person.as_deref(), Some("Bob"));
    assert!(r.engine.calls().iter().all(Option::is_none), "1:N");
}

#[tokio::test(start_paused = true)]
async fn a_waiting_command_gets_the_next_card_instead_of_the_door() {
    let r = rig(Mode::Card).await;
    let door = r.door.clone();
    let waiter = tokio::spawn(async move { door.next_card(Duration::from_secs(5)).await });
    wait(10).await;
    r.tap(ADA);
    let tap = waiter.await.unwrap().unwrap();
    assert_eq!(tap.uid.to_string(), ADA);
    wait(100).await;
    assert!(r.store.attempts().is_empty());
    let err = r
        .door
        .next_card(Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoCard(200)));
}
