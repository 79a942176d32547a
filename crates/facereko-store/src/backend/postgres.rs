//! PostgreSQL: a pool shared by the doors of a site. Placeholders are rewritten from `?` to `$n` once per
//! statement text; an advisory lock keeps two doors from migrating at once.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, Postgres as Db};

use crate::{Error, Result};

type Pool = sqlx::Pool<Db>;
type Conn = <Db as sqlx::Database>::Connection;
type Query<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "history by time",
        include_str!("../../migrations/postgres/0002_history_by_time.sql"),
    ),
    (
        3,
        "invitations",
        include_str!("../../migrations/postgres/0003_invitations.sql"),
    ),
    (
        4,
        "replication",
        include_str!("../../migrations/postgres/0004_replication.sql"),
    ),
    (
        5,
        "face photos",
        include_str!("../../migrations/postgres/0005_face_photos.sql"),
    ),
    (
        6,
        "audit trail",
        include_str!("../../migrations/postgres/0006_audit.sql"),
    ),
    (
        7,
        "groups and holidays",
        include_str!("../../migrations/postgres/0007_groups_holidays.sql"),
    ),
];
const TRANSACTIONAL_DDL: bool = true;

/// `?` → `$1`, `$2`, … (the statements here never contain a literal `?`).
fn sql(s: &'static str) -> Cow<'static, str> {
    let mut out = String::with_capacity(s.len() + 8);
    let mut n = 0;
    for c in s.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn ins(s: &'static str) -> Cow<'static, str> {
    Cow::Owned(format!("{} RETURNING id", sql(s)))
}

async fn insert_id(q: Query<'_>, conn: &mut Conn) -> Result<i64> {
    use sqlx::Row;
    Ok(q.fetch_one(&mut *conn).await?.try_get(0)?)
}

/// A read-only transaction on one consistent snapshot.
async fn begin_snapshot(pool: &Pool) -> Result<sqlx::Transaction<'static, Db>> {
    Ok(pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?)
}

async fn begin(pool: &Pool) -> Result<sqlx::Transaction<'static, Db>> {
    Ok(pool.begin().await?)
}

const UPSERT_SETTING: &str =
    "INSERT INTO settings (door_id, name, value, updated) VALUES (?, ?, ?, ?) \
     ON CONFLICT (door_id, name) DO UPDATE SET value = excluded.value, updated = excluded.updated";

// "FaceReko" in ASCII: the advisory lock key of migrations.
const LOCK_KEY: i64 = 0x4661_6365_5265_6b6f;

/// The planner picks the right index for a history page on its own.
fn attempts_index_hint(_q: &crate::AttemptQuery) -> &'static str {
    ""
}

async fn lock_migrations(conn: &mut Conn) -> Result<()> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn unlock_migrations(conn: &mut Conn) -> Result<()> {
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The server's pool. With `start_when_down`, a server that cannot be reached now is not an error: the
/// pool connects on first use instead, and the error is handed back for the store to start as "down".
pub(crate) async fn connect(
    url: &str,
    max_connections: u32,
    start_when_down: bool,
) -> Result<(Sql, Option<Error>)> {
    let options = PgConnectOptions::from_str(url).map_err(|e| crate::connect_error(url, e))?;
    let pool_options = PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(Duration::from_secs(5));
    let (pool, down) = match pool_options.clone().connect_with(options.clone()).await {
        Ok(pool) => (pool, None),
        Err(e) => match crate::connect_error(url, e) {
            e if start_when_down && e.is_unavailable() => {
                (pool_options.connect_lazy_with(options), Some(e))
            }
            e => return Err(e),
        },
    };
    Ok((
        Sql {
            read: pool.clone(),
            write: pool,
        },
        down,
    ))
}

include!("common.rs");
