//! Fixtures: a fresh store per test on SQLite (temp dir), MariaDB/MySQL or PostgreSQL (a database of its
//! own on the server named by `FACEREKO_TEST_MYSQL_URL` / `FACEREKO_TEST_POSTGRES_URL`, dropped at the end).
#![allow(dead_code)]

pub mod relay;

use std::path::Path;

use chrono::{DateTime, SubsecRound, Utc};
use facereko_domain::{NewAttempt, Outcome, Person, Photo, StageTimings};
use facereko_store::{Backend, Store};
use sqlx::Connection;
use tempfile::TempDir;

pub const MYSQL_VAR: &str = "FACEREKO_TEST_MYSQL_URL";
pub const POSTGRES_VAR: &str = "FACEREKO_TEST_POSTGRES_URL";

pub struct TestDb {
    pub store: Store,
    pub dir: TempDir,
    pub url: String,
    pub backend: Backend,
    admin_url: Option<String>,
    db_name: Option<String>,
}

pub fn env_url(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: point it at a server this test may create databases on, e.g. \
             mysql://root@127.0.0.1:3306/test or postgres://postgres@127.0.0.1:5432/test"
        )
    })
}

/// `scheme://auth@host/old?query` → `scheme://auth@host/<db>?query`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{db}?{q}"),
        None => format!("{host_part}/{db}"),
    }
}

pub fn unique_name() -> String {
    let n: u64 = rand::random();
    format!("facereko_t_{n:016x}")
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = Store::default_url(dir.path());
        let store = Store::open(&url, dir.path()).await.unwrap();
        TestDb {
            store,
            dir,
            url,
            backend: Backend::Sqlite,
            admin_url: None,
            db_name: None,
        }
    }

    pub async fn mysql() -> TestDb {
        Self::server(Backend::MySql, &env_url(MYSQL_VAR)).await
    }

    pub async fn postgres() -> TestDb {
        Self::server(Backend::Postgres, &env_url(POSTGRES_VAR)).await
    }

    /// A new, empty database on the server (no store opened on it yet).
    pub async fn create_database(backend: Backend, admin: &str) -> (String, String) {
        let name = unique_name();
        match backend {
            Backend::MySql => {
                let mut c = sqlx::MySqlConnection::connect(admin).await.unwrap();
                sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(admin).await.unwrap();
                sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
            Backend::Sqlite => unreachable!(),
        }
        (with_database(admin, &name), name)
    }

    async fn server(backend: Backend, admin: &str) -> TestDb {
        let (url, name) = Self::create_database(backend, admin).await;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&url, dir.path()).await.unwrap();
        TestDb {
            store,
            dir,
            url,
            backend,
            admin_url: Some(admin.to_string()),
            db_name: Some(name),
        }
    }

    /// Opens a second store (another door, another process) on the same database and data dir.
    pub async fn reopen(&self) -> Store {
        Store::open(&self.url, self.dir.path()).await.unwrap()
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs raw SQL on the test database (for tests that must tamper with it).
    pub async fn exec(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
            }
            Backend::MySql => {
                let mut c = sqlx::MySqlConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
            }
        }
    }

    /// Drops the test's database (also done on drop, so a failing test does not leak it).
    pub async fn finish(mut self) {
        self.store.close().await;
        if let (Some(admin), Some(name)) = (self.admin_url.take(), self.db_name.take()) {
            drop_database(self.backend, &admin, &name).await;
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let (Some(admin), Some(name)) = (self.admin_url.take(), self.db_name.take()) {
            drop(DbGuard(self.backend, admin, name));
        }
    }
}

/// Drops a test database when it goes out of scope, even when the test panicked.
pub struct DbGuard(pub Backend, pub String, pub String);

impl Drop for DbGuard {
    fn drop(&mut self) {
        let (backend, admin, name) = (self.0, self.1.clone(), self.2.clone());
        // Drop runs inside the test's runtime: clean up from a thread with a runtime of its own.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(drop_database(backend, &admin, &name));
        })
        .join();
    }
}

pub async fn drop_database(backend: Backend, admin: &str, name: &str) {
    {
        let sql = format!("DROP DATABASE IF EXISTS {name}");
        match backend {
            Backend::MySql => {
                if let Ok(mut c) = sqlx::MySqlConnection::connect(admin).await {
                    let _ = sqlx::raw_sql(&sql).execute(&mut c).await;
                }
            }
            Backend::Postgres => {
                if let Ok(mut c) = sqlx::PgConnection::connect(admin).await {
                    let _ = sqlx::raw_sql(&format!("{sql} WITH (FORCE)"))
                        .execute(&mut c)
                        .await;
                }
            }
            Backend::Sqlite => {}
        }
    }
}

/// Now, at the microsecond precision every backend keeps.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub fn jpeg(tag: u8) -> Photo {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0];
    bytes.extend(std::iter::repeat_n(tag, 64));
    bytes.extend([0xFF, 0xD9]);
    Photo::from_bytes(bytes).unwrap()
}

pub fn attempt(
    door: &str,
    person: Option<&Person>,
    outcome: Outcome,
    time: DateTime<Utc>,
) -> NewAttempt {
    NewAttempt {
        time,
        door_id: door.to_string(),
        card_uid: person.and_then(|p| p.cards.first()).map(|c| c.uid.clone()),
        person_id: person.map(|p| p.id),
        person_name: person.map(|p| p.name.clone()),
        outcome,
        similarity: person.map(|_| 97.25),
        distance: person.map(|_| 0.3125),
        confidence: Some(99.5),
        timings: StageTimings {
            lookup_ms: Some(2),
            capture_ms: Some(150),
            detect_ms: Some(80),
            match_ms: Some(1),
            total_ms: Some(240),
        },
        detail: Some("test".into()),
    }
}
