//! The notifier over the real store (embedded SQLite): attempts recorded by the store reach the sinks,
//! and cursors survive a restart of the notifier.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use facereko_domain::{Event, NewAttempt, Outcome, StageTimings};
use facereko_notify::sim::RecordingNotifier;
use facereko_notify::{spawn_sinks, Notifier, NotifierHandle, OutboxConfig};
use facereko_store::Store;

fn fast() -> OutboxConfig {
    OutboxConfig {
        retry_min_secs: 1,
        retry_max_secs: 1,
        poll_interval_ms: 50,
        ..Default::default()
    }
}

fn new_attempt(outcome: Outcome, name: &str) -> NewAttempt {
    NewAttempt {
        time: Utc::now(),
        door_id: "front".into(),
        card_uid: Some("04:A2:2B:19".parse().unwrap()),
        person_id: None,
        person_name: Some(name.into()),
        outcome,
        similarity: Some(91.0),
        distance: None,
        confidence: Some(99.0),
        timings: StageTimings::default(),
        detail: None,
    }
}

async fn start(store: &Store, sink: Arc<RecordingNotifier>) -> NotifierHandle {
    let sinks: Vec<Arc<dyn Notifier>> = vec![sink];
    spawn_sinks(Arc::new(store.clone()), "front", &fast(), sinks).await
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn recorded_attempts_reach_the_sink_and_cursors_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&Store::default_url(dir.path()), dir.path())
        .await
        .unwrap();

    let sink = Arc::new(RecordingNotifier::new("rec"));
    let handle = start(&store, sink.clone()).await;
    let a = store
        .record_attempt(&new_attempt(Outcome::Granted, "Ada"), None)
        .await
        .unwrap();
    handle.wake();
    until("the first attempt", || sink.delivered().len() == 1).await;
    let entry = &sink.entries()[0];
    match &entry.event {
        Event::Attempt { attempt, .. } => {
            assert_eq!(attempt.id, a.id);
            assert_eq!(attempt.person.as_deref(), Some("Ada"));
        }
        other => panic!("expected the attempt, got {other:?}"),
    }
    handle.shutdown().await;

    // The door keeps recording while the notifier is down (a restart, a crash).
    let mut ids = Vec::new();
    for name in ["Bob", "Cy", "Di"] {
        store
            .record_attempt(&new_attempt(Outcome::FaceMismatch, name), None)
            .await
            .unwrap();
    }
    let backlog = facereko_notify::backlog(&store, "front").await.unwrap();
    assert_eq!(backlog[0].sink, "rec");
    assert_eq!(backlog[0].pending, 3);

    let sink2 = Arc::new(RecordingNotifier::new("rec"));
    let handle = start(&store, sink2.clone()).await;
    until("the backlog", || sink2.delivered().len() == 3).await;
    for e in sink2.entries() {
        let Event::Attempt { attempt, .. } = &e.event else {
            panic!("{e:?}")
        };
        ids.push(attempt.person.clone().unwrap());
    }
    assert_eq!(
        ids,
        ["Bob", "Cy", "Di"],
        "in order, and the first one not again"
    );
    assert!(sink2.delivered().windows(2).all(|w| w[0] < w[1]));
    let st = handle.status().await;
    for _ in 0..100 {
        if handle.status().await.sinks[0].pending == Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(handle.status().await.sinks[0].pending, Some(0), "{st:?}");
    handle.shutdown().await;

    // A sink added later starts from now: history is not replayed to it.
    let late = Arc::new(RecordingNotifier::new("late"));
    let handle = start(&store, late.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(late.delivered().is_empty());
    handle.shutdown().await;
}
