//! The history page at a million attempts: newest-first pages of 50 at the start, middle and end, and a
//! page filtered by person and outcome. Target: ≤ 30 ms per page.
//!
//! `cargo bench -p facereko-store --bench history`. SQLite always (a file under
//! `FACEREKO_BENCH_DIR`, default the system temp dir, filled once and reused); MariaDB/MySQL too when
//! `FACEREKO_BENCH_MYSQL_URL` names a database the bench may fill (e.g.
//! `mysql://root@127.0.0.1:3306/facereko_bench`, created if missing); PostgreSQL with
//! `FACEREKO_BENCH_POSTGRES_URL`. `FACEREKO_BENCH_ROWS` changes the size (default 1 000 000).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use facereko_domain::{CardUid, NewAttempt, Outcome, PersonId, StageTimings};
use facereko_store::{AttemptQuery, Store};
use tokio::runtime::Runtime;

const PEOPLE: i64 = 100;

fn rows_wanted() -> i64 {
    std::env::var("FACEREKO_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn outcome_of(i: i64) -> Outcome {
    match i % 10 {
        0..=5 => Outcome::Granted,
        6 => Outcome::FaceMismatch,
        7 => Outcome::NoFace,
        8 => Outcome::UnknownCard,
        _ => Outcome::OutsideSchedule,
    }
}

/// Fills the store up to `rows_wanted()` attempts (100 people, two a minute: about a year).
async fn fill(store: &Store, people: &[PersonId]) -> i64 {
    let want = rows_wanted();
    let mut have = store.count_attempts().await.unwrap();
    if have >= want {
        return have;
    }
    let start = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let t0 = Instant::now();
    while have < want {
        let batch: Vec<NewAttempt> = (have..(have + 20_000).min(want))
            .map(|i| {
                let outcome = outcome_of(i);
                let person =
                    (outcome != Outcome::UnknownCard).then(|| people[(i / 10 % PEOPLE) as usize]);
                NewAttempt {
                    time: start + chrono::Duration::seconds(i * 30),
                    door_id: if i % 3 == 0 {
                        "back".into()
                    } else {
                        "front".into()
                    },
                    card_uid: Some(CardUid::from_bytes(&(i as u32).to_be_bytes()).unwrap()),
                    person_id: person,
                    person_name: person.map(|p| format!("Person {}", p.0)),
                    outcome,
                    similarity: person.map(|_| 91.5),
                    distance: person.map(|_| 0.42),
                    confidence: Some(99.1),
                    timings: StageTimings {
                        lookup_ms: Some(1),
                        capture_ms: Some(120),
                        detect_ms: Some(90),
                        match_ms: Some(1),
                        total_ms: Some(215),
                    },
                    detail: None,
                }
            })
            .collect();
        have += store.import_attempts(&batch).await.unwrap() as i64;
    }
    eprintln!(
        "{}: filled to {have} attempts in {:.1} s",
        store.backend(),
        t0.elapsed().as_secs_f64()
    );
    have
}

async fn people(store: &Store) -> Vec<PersonId> {
    let mut ids: Vec<PersonId> = store
        .list_people()
        .await
        .unwrap()
        .iter()
        .map(|p| p.id)
        .collect();
    for i in ids.len() as i64..PEOPLE {
        ids.push(
            store
                .add_person(&format!("Bench person {i:03}"))
                .await
                .unwrap(),
        );
    }
    ids
}

fn bench_store(c: &mut Criterion, rt: &Runtime, label: &str, store: Store) {
    let people = rt.block_on(people(&store));
    let total = rt.block_on(fill(&store, &people));
    let newest = rt
        .block_on(store.attempts(&AttemptQuery {
            limit: 1,
            ..Default::default()
        }))
        .unwrap()[0]
        .id;
    let oldest = newest - total + 1;
    let person = people[3];
    let cases: Vec<(&str, AttemptQuery)> = vec![
        ("start", AttemptQuery::default()),
        (
            "middle",
            AttemptQuery {
                before_id: Some(oldest + total / 2),
                ..Default::default()
            },
        ),
        (
            "end",
            AttemptQuery {
                before_id: Some(oldest + 50),
                ..Default::default()
            },
        ),
        (
            "person+outcome",
            AttemptQuery {
                person: Some(person),
                outcome: Some(Outcome::FaceMismatch),
                ..Default::default()
            },
        ),
        (
            "person+outcome middle",
            AttemptQuery {
                person: Some(person),
                outcome: Some(Outcome::FaceMismatch),
                before_id: Some(oldest + total / 2),
                ..Default::default()
            },
        ),
        (
            "outcome",
            AttemptQuery {
                outcome: Some(Outcome::NoFace),
                ..Default::default()
            },
        ),
        (
            "outcome middle",
            AttemptQuery {
                outcome: Some(Outcome::NoFace),
                before_id: Some(oldest + total / 2),
                ..Default::default()
            },
        ),
        (
            "door middle",
            AttemptQuery {
                door_id: Some("back".into()),
                before_id: Some(oldest + total / 2),
                ..Default::default()
            },
        ),
    ];
    let mut group = c.benchmark_group(format!("history page of 50, {label}, {total} attempts"));
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (name, q) in cases {
        let page = rt.block_on(store.attempts(&q)).unwrap();
        assert!(!page.is_empty(), "{name}: empty page");
        group.bench_function(name, |b| {
            b.iter(|| rt.block_on(store.attempts(&q)).unwrap())
        });
    }
    group.finish();
}

fn history(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let dir = std::env::var_os("FACEREKO_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("facereko-bench"));
    let sqlite = rt
        .block_on(Store::open(&Store::default_url(&dir), &dir))
        .unwrap();
    bench_store(c, &rt, "SQLite", sqlite);

    for (var, label) in [
        ("FACEREKO_BENCH_MYSQL_URL", "MariaDB"),
        ("FACEREKO_BENCH_POSTGRES_URL", "PostgreSQL"),
    ] {
        let Ok(url) = std::env::var(var) else {
            eprintln!("{var} not set: skipping {label}");
            continue;
        };
        rt.block_on(create_database(&url));
        let store = rt.block_on(Store::open(&url, &dir.join(label))).unwrap();
        bench_store(c, &rt, label, store);
    }
}

/// Creates the database the URL names if it does not exist (connecting to the server's default one).
async fn create_database(url: &str) {
    use sqlx::Connection;
    let (base, db) = url.rsplit_once('/').unwrap();
    if url.starts_with("mysql") {
        let mut c = sqlx::MySqlConnection::connect(base).await.unwrap();
        sqlx::raw_sql(&format!("CREATE DATABASE IF NOT EXISTS {db}"))
            .execute(&mut c)
            .await
            .unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(&format!("{base}/postgres"))
            .await
            .unwrap();
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
                .bind(db)
                .fetch_optional(&mut c)
                .await
                .unwrap();
        if exists.is_none() {
            sqlx::raw_sql(&format!("CREATE DATABASE {db}"))
                .execute(&mut c)
                .await
                .unwrap();
        }
    }
}

criterion_group!(benches, history);
criterion_main!(benches);
