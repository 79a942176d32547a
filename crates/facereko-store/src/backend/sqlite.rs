//! SQLite: the embedded default. WAL, `synchronous=FULL`, `busy_timeout`, and one writer connection so
//! transactions never fight over the write lock; readers use a small pool of their own.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    Sqlite as Db, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};

use crate::{Error, Result};

type Pool = sqlx::Pool<Db>;
type Conn = <Db as sqlx::Database>::Connection;
type Query<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "history by time",
        include_str!("../../migrations/sqlite/0002_history_by_time.sql"),
    ),
    (
        3,
        "invitations",
        include_str!("../../migrations/sqlite/0003_invitations.sql"),
    ),
];
const TRANSACTIONAL_DDL: bool = true;

fn sql(s: &'static str) -> Cow<'static, str> {
    Cow::Borrowed(s)
}

fn ins(s: &'static str) -> Cow<'static, str> {
    Cow::Owned(format!("{s} RETURNING id"))
}

async fn insert_id(q: Query<'_>, conn: &mut Conn) -> Result<i64> {
    use sqlx::Row;
    Ok(q.fetch_one(&mut *conn).await?.try_get(0)?)
}

/// `BEGIN IMMEDIATE`: take the write lock up front. A deferred transaction that reads first would fail
/// with `SQLITE_BUSY` (not wait) if another process wrote in between.
async fn begin(pool: &Pool) -> Result<sqlx::Transaction<'static, Db>> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

const UPSERT_SETTING: &str =
    "INSERT INTO settings (door_id, name, value, updated) VALUES (?, ?, ?, ?) \
     ON CONFLICT (door_id, name) DO UPDATE SET value = excluded.value, updated = excluded.updated";

/// The planner picks the right index for a history page on its own.
fn attempts_index_hint(_q: &crate::AttemptQuery) -> &'static str {
    ""
}

async fn lock_migrations(_conn: &mut Conn) -> Result<()> {
    // The single writer connection already serialises everything.
    Ok(())
}

async fn unlock_migrations(_conn: &mut Conn) -> Result<()> {
    Ok(())
}

/// Opens (creating the file if needed) with the durability settings the door needs.
pub(crate) async fn connect(url: &str) -> Result<Sql> {
    let memory = url.contains(":memory:") || url.contains("mode=memory");
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(if memory {
            SqliteJournalMode::Memory
        } else {
            SqliteJournalMode::Wal
        })
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    if !memory {
        let path = options.get_filename();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        create_private(path)?;
    }
    // An in-memory database lives as long as its one connection: keep it forever.
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options.clone())
        .await?;
    let read = if memory {
        write.clone()
    } else {
        SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_lazy_with(options)
    };
    Ok(Sql { read, write })
}

/// Creates an SQLite file that does not exist yet as an empty file readable by its owner only (SQLite
/// itself would make it 0644 under the usual umask). People, faces and password hashes live in it; SQLite
/// gives the `-wal` and `-shm` files it creates later the database file's mode. An existing file is left
/// as it is.
pub(crate) fn create_private(path: &std::path::Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// A consistent copy of the whole database in a new file at `dest` (SQLite's `VACUUM INTO`: one read
/// transaction, so it is safe while the daemon writes). The copy is made private like the original.
pub(crate) async fn vacuum_into(sql: &Sql, dest: &std::path::Path) -> Result<()> {
    if dest.exists() {
        return Err(Error::Conflict(dest.display().to_string()));
    }
    let target = dest
        .to_str()
        .ok_or_else(|| Error::Invalid(format!("{} is not a UTF-8 path", dest.display())))?;
    sqlx::query("VACUUM INTO ?")
        .bind(target)
        .execute(&sql.write)
        .await?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(dest, e))?;
    }
    Ok(())
}

include!("common.rs");
