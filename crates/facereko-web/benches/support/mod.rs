//! Shared set-up for the history bench and the API bench server: a store in a temp dir, optionally
//! seeded with many attempts straight through SQL (the door's `record_attempt` writes a photo and an
//! outbox entry per row, far too slow for a million), a door on simulated hardware in card mode, and a
//! signed-in admin.

#![allow(dead_code)]

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use facereko_domain::{Mode, Outcome, PersonId, Photo};
use facereko_door::{DoorConfig, Parts};
use facereko_hardware::sim::{self, CameraSource, SimCamera, SimOutputs};
use facereko_store::{hash_password, NewAccount, Role, Store};
use facereko_web::{AppState, EnrolError, FaceEnroller, WebConfig};

#[derive(Debug)]
pub struct NoEnroller;

#[async_trait]
impl FaceEnroller for NoEnroller {
    async fn enrol(&self, _: PersonId, _: Photo, _: bool) -> Result<i64, EnrolError> {
        Err(EnrolError::Other("no face engine in the bench".into()))
    }
    async fn delete(&self, _: i64) -> Result<(), EnrolError> {
        Ok(())
    }
}

#[derive(Debug)]
pub struct Bench {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub state: AppState,
    /// `facereko_session=<token>` of a signed-in admin.
    pub cookie: String,
    /// A bearer token of the admin.
    pub token: String,
    pub people: Vec<PersonId>,
    /// Taps cards on the door's simulated reader.
    pub tapper: sim::SimTapper,
}

/// Inserts `n` attempts spread over the last `n / 2000` days, ten people, a mix of outcomes.
async fn seed(url: &str, people: &[PersonId], n: u64) {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Connection};
    use std::str::FromStr;
    let mut conn = SqliteConnectOptions::from_str(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let start = Utc::now() - Duration::seconds(n as i64 * 40);
    let outcomes = [
        Outcome::Granted,
        Outcome::Granted,
        Outcome::Granted,
        Outcome::FaceMismatch,
        Outcome::UnknownCard,
        Outcome::NoFace,
    ];
    let mut done = 0u64;
    while done < n {
        let mut tx = conn.begin().await.unwrap();
        for i in done..(done + 50_000).min(n) {
            let who = (i % 11) as usize;
            let (pid, name) = if who < people.len() {
                (Some(people[who].0), Some(format!("Person {who}")))
            } else {
                (None, None)
            };
            let mut uuid = [0u8; 16];
            uuid[..8].copy_from_slice(&i.to_le_bytes());
            uuid[8] = 0xBE;
            sqlx::query(
                "INSERT INTO attempts (uuid, time, door_id, card_uid, person_id, person_name, outcome, \
                 similarity, distance, confidence, photo, total_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&uuid[..])
            .bind(start + Duration::seconds(i as i64 * 40))
            .bind("front")
            .bind(&[0x04u8, 0xA2, 0x2B, (i % 251) as u8][..])
            .bind(pid)
            .bind(name)
            .bind(outcomes[(i % 6) as usize].as_str())
            .bind(Some(80.0f32 + (i % 20) as f32))
            .bind(Some(0.3f32))
            .bind(Some(99.0f32))
            .bind(None::<String>)
            .bind(Some(420i64))
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        done = (done + 50_000).min(n);
    }
}

pub async fn bench(attempts: u64) -> Bench {
    bench_with(attempts, WebConfig::default()).await
}

pub async fn bench_with(attempts: u64, config: WebConfig) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("facereko.db").display());
    let store = Store::open(&url, dir.path()).await.unwrap();
    let mut people = Vec::new();
    for i in 0..10 {
        people.push(store.add_person(&format!("Person {i}")).await.unwrap());
    }
    if attempts > 0 {
        let t = std::time::Instant::now();
        seed(&url, &people, attempts).await;
        eprintln!(
            "seeded {attempts} attempts in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    let (reader, tapper) = sim::card_reader();
    let camera = SimCamera::new(CameraSource::Nothing);
    let parts = Parts {
        store: Arc::new(store.clone()),
        engine: None,
        camera: Arc::new(camera.clone()),
        outputs: Arc::new(SimOutputs::new()),
    };
    let door_config = DoorConfig {
        mode: Mode::Card,
        ..DoorConfig::default()
    };
    let (door, _task) = facereko_door::start("front", door_config, parts, Box::new(reader), None)
        .await
        .unwrap();
    let id = store
        .add_account(&NewAccount {
            username: "bench".into(),
            password_hash: hash_password("bench-password"),
            role: Role::Admin,
            person_id: None,
            card_uid: None,
            must_change_password: false,
        })
        .await
        .unwrap();
    let session = store.create_session(id, Duration::hours(1)).await.unwrap();
    let (_, token) = store.create_api_token(id, "bench", None).await.unwrap();
    let state = AppState::new(store.clone(), door, Arc::new(NoEnroller), config).unwrap();
    Bench {
        dir,
        store,
        state,
        cookie: format!("facereko_session={session}"),
        token,
        people,
        tapper,
    }
}
