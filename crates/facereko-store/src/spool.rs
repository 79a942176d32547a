//! The local attempt spool: while a shared MySQL/PostgreSQL server is unreachable, attempts go to
//! `<data_dir>/spool.db` (SQLite, `synchronous=FULL`) and are replayed when it is back.
//!
//! Exactly-once: every attempt carries a random 128-bit uuid, unique in the server's `attempts` table.
//! Replay inserts by uuid (an existing row is taken as already delivered) and only then deletes the spool
//! row, so a crash at any point neither loses an attempt nor stores it twice.

use std::str::FromStr;
use std::time::Duration;

use facereko_domain::{Attempt, NewAttempt};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::{Error, Result};

#[derive(Debug)]
pub(crate) struct Spool {
    pool: SqlitePool,
    /// Held by a replay, so a timer-driven replay and a manual one do not race.
    pub(crate) replaying: tokio::sync::Mutex<()>,
}

fn to_new(a: Attempt) -> (NewAttempt, Option<String>) {
    (
        NewAttempt {
            time: a.time,
            door_id: a.door_id,
            card_uid: a.card_uid,
            person_id: a.person_id,
            person_name: a.person,
            outcome: a.outcome,
            similarity: a.similarity,
            distance: a.distance,
            confidence: a.confidence,
            timings: a.timings,
            detail: a.detail,
        },
        a.photo,
    )
}

/// One spooled attempt: spool row id, uuid, the attempt, its photo.
pub(crate) type Spooled = (i64, [u8; 16], NewAttempt, Option<String>);

impl Spool {
    pub(crate) async fn open(data_dir: &std::path::Path) -> Result<Self> {
        let path = data_dir.join("spool.db");
        crate::backend::sqlite::create_private(&path)?;
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| Error::Io {
                path: path.clone(),
                source: std::io::Error::other(e),
            })?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY AUTOINCREMENT, \
             uuid BLOB NOT NULL UNIQUE, attempt TEXT NOT NULL, photo TEXT)",
        )
        .execute(&pool)
        .await?;
        Ok(Self {
            pool,
            replaying: tokio::sync::Mutex::new(()),
        })
    }

    /// Keeps an attempt; returns it with a provisional negative id (minus the spool row id).
    pub(crate) async fn push(
        &self,
        a: &NewAttempt,
        photo: Option<&str>,
        uuid: &[u8; 16],
    ) -> Result<Attempt> {
        let json = serde_json::to_string(&a.stored(0, photo))
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let id: i64 =
            sqlx::query("INSERT INTO spool (uuid, attempt, photo) VALUES (?, ?, ?) RETURNING id")
                .bind(&uuid[..])
                .bind(json)
                .bind(photo)
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?;
        Ok(a.stored(-id, photo))
    }

    /// The oldest `limit` spooled attempts.
    pub(crate) async fn peek(&self, limit: u32) -> Result<Vec<Spooled>> {
        let rows = sqlx::query("SELECT id, uuid, attempt FROM spool ORDER BY id LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let id: i64 = r.try_get("id")?;
                let uuid: Vec<u8> = r.try_get("uuid")?;
                let uuid: [u8; 16] = uuid
                    .try_into()
                    .map_err(|_| Error::Corrupt("spool uuid is not 16 bytes".into()))?;
                let json: String = r.try_get("attempt")?;
                let stored: Attempt = serde_json::from_str(&json)
                    .map_err(|e| Error::Corrupt(format!("spooled attempt: {e}")))?;
                let (a, photo) = to_new(stored);
                Ok((id, uuid, a, photo))
            })
            .collect()
    }

    pub(crate) async fn remove(&self, id: i64) -> Result<()> {
        sqlx::query("DELETE FROM spool WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn len(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM spool")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Photos the spooled attempts reference (the orphan sweep must keep them).
    pub(crate) async fn photos(&self) -> Result<Vec<String>> {
        let v: Vec<Option<String>> = sqlx::query_scalar("SELECT photo FROM spool")
            .fetch_all(&self.pool)
            .await?;
        Ok(v.into_iter().flatten().collect())
    }
}
