//! A site under load: many doors against one PostgreSQL server and one Mosquitto broker, in this process.
//!
//! Each door is what `facereko serve` runs for it, minus the web app: the real controller
//! (`facereko_door::start`, card mode, simulated reader and outputs), its replica with the sync loop,
//! the MQTT change signal, the notifier (outbox → MQTT) and its own connection pool to the central
//! database. Taps arrive at random doors at a fixed total rate; an administrator disables or enables a
//! card every 10 s, and every door must learn it. Then: how long a whole copy of 10 000 and 100 000
//! people with cards takes.
//!
//! ```text
//! FACEREKO_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//! FACEREKO_TEST_MQTT_URL=mqtt://127.0.0.1:1883 \
//! cargo bench -p facereko-fleet --bench site
//! ```
//! Knobs: `FACEREKO_BENCH_DOORS` (50), `FACEREKO_BENCH_TAPS_PER_SEC` (10), `FACEREKO_BENCH_SECS` (600),
//! `FACEREKO_BENCH_SYNC_PEOPLE` (`10000,100000`), `FACEREKO_BENCH_POOL` (connections per door, 2).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use facereko_domain::{CardUid, Mode};
use facereko_door::{DoorConfig, Parts};
use facereko_fleet::{FleetConfig, FleetStore, Replica};
use facereko_hardware::sim::{self, SimCamera, SimOutputs};
use facereko_hardware::CardTap;
use facereko_notify::mqtt::SiteLink;
use facereko_store::{OpenOptions, Store};
use rand::{Rng, SeedableRng};
use sqlx::Connection;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn with_db(admin: &str, db: &str) -> String {
    let base = admin.split_once('?').map_or(admin, |(b, _)| b);
    format!("{}/{db}", &base[..base.rfind('/').unwrap()])
}

async fn create_db(admin: &str, name: &str) -> String {
    let mut c = sqlx::PgConnection::connect(admin).await.unwrap();
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await
        .unwrap();
    with_db(admin, name)
}

async fn drop_db(admin: &str, name: &str) {
    if let Ok(mut c) = sqlx::PgConnection::connect(admin).await {
        let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut c)
            .await;
    }
}

/// CPU seconds (user + system) of every process whose command is `postgres`.
fn postgres_cpu_secs() -> f64 {
    let mut ticks = 0u64;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if !head.ends_with("(postgres") {
            continue;
        }
        let f: Vec<&str> = rest.split_whitespace().collect();
        // After the command: state is field 3, utime 14, stime 15 (1-based over the whole line).
        ticks += f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
    }
    ticks as f64 / 100.0
}

fn self_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) as f64 / 100.0
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn uid(i: u32) -> CardUid {
    CardUid::from_bytes(&[0x04, (i >> 16) as u8, (i >> 8) as u8, i as u8]).unwrap()
}

struct Door {
    id: String,
    replica: Arc<Replica>,
    tapper: sim::SimTapper,
    handle: facereko_door::DoorHandle,
    _signal: Arc<SiteLink>,
    _notifier: facereko_notify::NotifierHandle,
    _tasks: Vec<tokio::task::JoinHandle<()>>,
}

async fn start_door(
    i: usize,
    url: &str,
    mqtt: &facereko_notify::MqttConfig,
    dir: &std::path::Path,
    pool: u32,
) -> Door {
    let id = format!("bench-{i:03}");
    let data = dir.join(&id);
    let options = OpenOptions {
        max_connections: pool,
        ..OpenOptions::default()
    };
    let central = Store::open_with(url, &data, &options).await.unwrap();
    let fleet = FleetConfig::default();
    let replica = Replica::open(&id, central.clone(), &data, &fleet)
        .await
        .unwrap();
    if let Err(e) = replica.sync().await {
        panic!("{id}: first copy: {e}");
    }
    let mut tasks = vec![replica.spawn()];
    let signal = Arc::new(SiteLink::start(mqtt, &id).unwrap());
    let mut heard = signal.received();
    let r = replica.clone();
    tasks.push(tokio::spawn(async move {
        while heard.changed().await.is_ok() {
            r.wake();
        }
    }));
    let notify = facereko_notify::NotifyConfig {
        mqtt: mqtt.clone(),
        ..Default::default()
    };
    let notifier = facereko_notify::spawn(central.clone(), &id, &notify, None, None)
        .await
        .unwrap();
    let (reader, tapper) = sim::card_reader();
    let parts = Parts {
        store: Arc::new(FleetStore::new(replica.clone())),
        engine: None,
        camera: Arc::new(SimCamera::new(sim::CameraSource::Nothing)),
        outputs: Arc::new(SimOutputs::new()),
    };
    let config = DoorConfig {
        mode: Mode::Card,
        unlock_seconds: 1.0,
        debounce_ms: 0,
        ..DoorConfig::default()
    };
    let (door, task) = facereko_door::start(&id, config, parts, Box::new(reader), None)
        .await
        .unwrap();
    let n = notifier.clone();
    let mut events = door.subscribe();
    tasks.push(tokio::spawn(async move {
        while events.recv().await.is_ok() {
            n.wake();
        }
    }));
    tasks.push(task);
    Door {
        id,
        replica,
        tapper,
        handle: door.clone(),
        _signal: signal,
        _notifier: notifier,
        _tasks: tasks,
    }
}

async fn load(admin: &str, mqtt_url: &str, log: &TapLog) {
    let doors_n: usize = env_or("FACEREKO_BENCH_DOORS", 50);
    let rate: f64 = env_or("FACEREKO_BENCH_TAPS_PER_SEC", 10.0);
    let secs: u64 = env_or("FACEREKO_BENCH_SECS", 600);
    let pool: u32 = env_or("FACEREKO_BENCH_POOL", 2);
    let people: u32 = 2000;
    let name = format!("facereko_bench_site_{}", std::process::id());
    let url = create_db(admin, &name).await;
    let dir = tempfile::tempdir().unwrap();
    let admin_store = Store::open(&url, &dir.path().join("admin")).await.unwrap();
    for i in 0..people {
        let p = admin_store
            .add_person(&format!("Person {i}"))
            .await
            .unwrap();
        admin_store.add_card(p, &uid(i), None).await.unwrap();
    }
    let mqtt = facereko_notify::MqttConfig {
        url: Some(mqtt_url.to_string()),
        topic_prefix: name.clone(),
        ..Default::default()
    };
    let admin_signal = Arc::new(SiteLink::start(&mqtt, "bench-admin").unwrap());
    let started = Instant::now();
    let mut doors = Vec::new();
    for i in 0..doors_n {
        doors.push(Arc::new(start_door(i, &url, &mqtt, dir.path(), pool).await));
    }
    println!(
        "{doors_n} doors up in {:.1} s ({people} people with cards, pool of {pool} per door)",
        started.elapsed().as_secs_f64()
    );

    let (pg0, me0, t0) = (postgres_cpu_secs(), self_cpu_secs(), Instant::now());
    let end = t0 + Duration::from_secs(secs);
    let tapped = Arc::new(AtomicU64::new(0));
    // The administrator: a card disabled or enabled every 10 s; how long until every door has it.
    let propagation: Arc<std::sync::Mutex<Vec<f64>>> = Arc::default();
    let admin_task = {
        let (doors, store, signal) = (doors.clone(), admin_store.clone(), admin_signal.clone());
        let propagation = propagation.clone();
        tokio::spawn(async move {
            let mut k = 0u32;
            while Instant::now() + Duration::from_secs(10) < end {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let changed = Instant::now();
                store
                    .set_card_active(&uid(people - 1 - k % 100), k % 2 == 1)
                    .await
                    .unwrap();
                let rev = store.directory_rev().await.unwrap();
                signal.announce(rev);
                k += 1;
                let waits = doors.iter().map(|d| {
                    let mut st = d.replica.watch_status();
                    async move {
                        let _ = tokio::time::timeout(
                            Duration::from_secs(60),
                            st.wait_for(|s| s.rev >= Some(rev)),
                        )
                        .await;
                        changed.elapsed().as_secs_f64() * 1000.0
                    }
                });
                let all = futures_join(waits.collect()).await;
                propagation.lock().unwrap().extend(all);
            }
        })
    };
    // Connections to the central database, sampled once a second.
    let max_conns = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (admin, name, max_conns) = (admin.to_string(), name.clone(), max_conns.clone());
        tokio::spawn(async move {
            let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
            loop {
                let n: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
                        .bind(&name)
                        .fetch_one(&mut c)
                        .await
                        .unwrap_or(0);
                max_conns.fetch_max(n as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    // Taps: Poisson arrivals at `rate` per second over random doors; 90 % known cards.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut per_door: HashMap<String, u64> = HashMap::new();
    let mut refused = Vec::new();
    let mut next = Instant::now();
    while Instant::now() < end {
        let gap: f64 = -rng.gen::<f64>().max(1e-9).ln() / rate;
        next += Duration::from_secs_f64(gap);
        tokio::time::sleep_until(next.into()).await;
        let d = &doors[rng.gen_range(0..doors.len())];
        let card = if rng.gen_bool(0.9) {
            uid(rng.gen_range(0..people))
        } else {
            uid(people + rng.gen_range(0..1000))
        };
        match d.tapper.tap(CardTap::new(card)) {
            Ok(()) => {
                tapped.fetch_add(1, Ordering::Relaxed);
                *per_door.entry(d.id.clone()).or_default() += 1;
            }
            Err(e) => refused.push(format!("{}: {e}", d.id)),
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    if !refused.is_empty() {
        println!(
            "{} taps refused by full readers, e.g. {:?}",
            refused.len(),
            &refused[..1]
        );
    }
    let busy = doors.iter().filter(|d| d.handle.status().busy).count();
    let (pg1, me1) = (postgres_cpu_secs(), self_cpu_secs());
    admin_task.abort();
    sampler.abort();
    // Every tap must become a stored attempt (a door busy deciding drops a tap: count those apart).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let check = Store::open(&url, &dir.path().join("check")).await.unwrap();
    let mut all = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let page = check
            .attempts(&facereko_store::AttemptQuery {
                limit: 1000,
                before_id: before,
                ..Default::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|a| a.id);
        all.extend(page);
    }
    let issued = tapped.load(Ordering::Relaxed);
    let not_taken = log.busy.load(Ordering::Relaxed);
    let mut decide: Vec<f64> = all
        .iter()
        .filter_map(|a| a.timings.total_ms.map(f64::from))
        .collect();
    decide.sort_by(f64::total_cmp);
    let mut prop = propagation.lock().unwrap().clone();
    prop.sort_by(f64::total_cmp);
    println!(
        "load: {wall:.0} s, {issued} taps issued ({:.1}/s), {not_taken} not taken (the door was deciding \
         the previous one), {} attempts stored: lost {} ({busy} doors still deciding at the end)",
        issued as f64 / wall,
        all.len(),
        issued as i64 - not_taken as i64 - all.len() as i64
    );
    let errors = log.errors.lock().unwrap().clone();
    println!(
        "{} errors logged{}",
        errors.len(),
        errors
            .first()
            .map_or(String::new(), |e| format!(", e.g. {e}"))
    );
    println!(
        "decision time at the doors (tap → decided, ms): p50 {:.0}, p95 {:.0}, max {:.0}",
        pct(&decide, 0.5),
        pct(&decide, 0.95),
        pct(&decide, 1.0)
    );
    println!(
        "a card change reaching all {doors_n} doors (ms, {} door-changes): p50 {:.0}, p95 {:.0}, max {:.0}",
        prop.len(),
        pct(&prop, 0.5),
        pct(&prop, 0.95),
        pct(&prop, 1.0)
    );
    println!(
        "CPU: PostgreSQL {:.1} % of one core, the {doors_n} doors (this process) {:.1} %; at most {} \
         connections to the database",
        (pg1 - pg0) / wall * 100.0,
        (me1 - me0) / wall * 100.0,
        max_conns.load(Ordering::Relaxed)
    );
    drop(doors);
    check.close().await;
    admin_store.close().await;
    drop_db(admin, &name).await;
}

/// Waits for all futures (no extra dependency for `join_all`).
async fn futures_join(
    fs: Vec<impl std::future::Future<Output = f64> + Send + 'static>,
) -> Vec<f64> {
    let handles: Vec<_> = fs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// A whole copy of `n` people with a card each, then one change.
async fn sync_size(admin: &str, n: i64) {
    let name = format!("facereko_bench_sync_{}_{n}", std::process::id());
    let url = create_db(admin, &name).await;
    let dir = tempfile::tempdir().unwrap();
    let central = Store::open(&url, &dir.path().join("central"))
        .await
        .unwrap();
    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(&format!(
        "INSERT INTO people (name, active, created, rev) \
           SELECT 'Person ' || g, true, now(), g FROM generate_series(1, {n}) g; \
         INSERT INTO cards (uid, person_id, active, created, rev) \
           SELECT decode('04' || lpad(to_hex(id), 6, '0'), 'hex'), id, true, now(), {n} + id FROM people; \
         UPDATE counters SET value = 2 * {n} WHERE name = 'directory_rev';"
    ))
    .execute(&mut c)
    .await
    .unwrap();
    let pg0 = postgres_cpu_secs();
    let replica = Replica::open(
        "sync",
        central.clone(),
        &dir.path().join("door"),
        &FleetConfig::default(),
    )
    .await
    .unwrap();
    let t = Instant::now();
    let whole = replica.sync().await.unwrap().unwrap();
    let took = t.elapsed();
    let pg = postgres_cpu_secs() - pg0;
    let size = std::fs::metadata(dir.path().join("door").join(facereko_fleet::REPLICA_FILE))
        .map(|m| m.len())
        .unwrap_or(0);
    let p = central.person_by_name("Person 1").await.unwrap().unwrap();
    central
        .set_card_active(&p.cards[0].uid, false)
        .await
        .unwrap();
    let t = Instant::now();
    let step = replica.sync().await.unwrap().unwrap();
    let step_took = t.elapsed();
    let t = Instant::now();
    assert!(replica.sync().await.unwrap().is_none());
    let check_took = t.elapsed();
    println!(
        "sync of {n} people with cards: whole copy {:.2} s ({} rows, PostgreSQL CPU {:.2} s, replica \
         {:.1} MB); one change {:.1} ms ({} row); a check with nothing new {:.1} ms",
        took.as_secs_f64(),
        whole.changes,
        pg,
        size as f64 / 1e6,
        step_took.as_secs_f64() * 1000.0,
        step.changes,
        check_took.as_secs_f64() * 1000.0
    );
    drop(replica);
    central.close().await;
    drop(c);
    drop_db(admin, &name).await;
}

/// Counts the log lines that say a tap was not taken: the door was deciding another attempt (one
/// attempt at a time, as the original; the person taps again) — not an attempt lost.
#[derive(Clone, Default)]
struct TapLog {
    busy: Arc<AtomicU64>,
    errors: Arc<std::sync::Mutex<Vec<String>>>,
}

impl std::io::Write for TapLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let line = String::from_utf8_lossy(buf);
        if line.contains("ignored: another attempt is being decided") {
            self.busy.fetch_add(1, Ordering::Relaxed);
        } else if line.contains("ERROR") {
            self.errors.lock().unwrap().push(line.trim().to_string());
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing else: run only as a bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let (Ok(admin), Ok(mqtt)) = (
        std::env::var("FACEREKO_TEST_POSTGRES_URL"),
        std::env::var("FACEREKO_TEST_MQTT_URL"),
    ) else {
        eprintln!(
            "site bench: set FACEREKO_TEST_POSTGRES_URL and FACEREKO_TEST_MQTT_URL (see the file's notes)"
        );
        return;
    };
    let log = TapLog::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let sizes: String = env_or("FACEREKO_BENCH_SYNC_PEOPLE", "10000,100000".to_string());
        for n in sizes.split(',').filter_map(|s| s.trim().parse().ok()) {
            sync_size(&admin, n).await;
        }
        if env_or("FACEREKO_BENCH_SECS", 600u64) > 0 {
            load(&admin, &mqtt, &log).await;
        }
    });
}
