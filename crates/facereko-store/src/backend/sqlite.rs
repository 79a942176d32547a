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
    (
        4,
        "replication",
        include_str!("../../migrations/sqlite/0004_replication.sql"),
    ),
    (
        5,
        "face photos",
        include_str!("../../migrations/sqlite/0005_face_photos.sql"),
    ),
    (
        6,
        "audit trail",
        include_str!("../../migrations/sqlite/0006_audit.sql"),
    ),
    (
        7,
        "groups and holidays",
        include_str!("../../migrations/sqlite/0007_groups_holidays.sql"),
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

/// A read transaction: in WAL mode its first read fixes the snapshot every later read sees.
async fn begin_snapshot(pool: &Pool) -> Result<sqlx::Transaction<'static, Db>> {
    Ok(pool.begin().await?)
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

// ---------------------------------------------------------------------- a door's replica

impl Sql {
    /// Applies a batch of central directory changes to this replica in one transaction: rows in revision
    /// order (a card removed and given again ends up given), names of people about to change freed first
    /// (two people swapping names never collide), `faces_version` bumped when faces changed, and the
    /// replica's revision moved from `changes.since` to `changes.rev`. A whole copy (`since` < 0)
    /// replaces everything; other changes are refused unless the replica is at `changes.since`.
    ///
    /// Groups go first — deleted ones, then the others with their names freed — because people name
    /// them; foreign keys are checked at commit, since each row comes at its *latest* revision (a card
    /// given before its owner was renamed comes before its owner).
    pub(crate) async fn apply_directory_changes(
        &self,
        changes: &crate::DirectoryChanges,
        synced_at: DateTime<Utc>,
    ) -> Result<()> {
        use crate::DirectoryChange as C;
        let mut tx = begin(&self.write).await?;
        sqlx::query("PRAGMA defer_foreign_keys = ON")
            .execute(&mut *tx)
            .await?;
        let at = Self::replica_rev(&mut tx).await?;
        let mut faces_changed = false;
        if changes.since < 0 {
            // A whole copy replaces whatever the replica held (its cards and faces go with the people).
            let r = sqlx::query("DELETE FROM people").execute(&mut *tx).await?;
            faces_changed = r.rows_affected() > 0;
            sqlx::query("DELETE FROM person_groups")
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM holidays")
                .execute(&mut *tx)
                .await?;
        } else if at != Some(changes.since) {
            return Err(Error::Conflict(format!(
                "replica at revision {} cannot take changes since {}",
                at.unwrap_or(-1),
                changes.since
            )));
        }
        // (A whole copy starts from an empty replica: no name to free.)
        for change in changes.changes.iter().filter(|_| changes.since >= 0) {
            let (table, id) = match change {
                C::Person { person, .. } => {
                    ("UPDATE people SET name = ? WHERE id = ?", person.id.0)
                }
                C::Group { group, .. } => {
                    ("UPDATE person_groups SET name = ? WHERE id = ?", group.id.0)
                }
                C::GroupDeleted { id, .. } => {
                    // Its members are in no group now (ON DELETE SET NULL, as centrally).
                    sqlx::query("DELETE FROM person_groups WHERE id = ?")
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await?;
                    continue;
                }
                _ => continue,
            };
            sqlx::query(table)
                .bind(format!("\u{1}{id}"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        for change in &changes.changes {
            if let C::Group { rev, group } = change {
                sqlx::query(
                    "INSERT INTO person_groups (id, name, schedule, rev) VALUES (?, ?, ?, ?) \
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
                     schedule = excluded.schedule, rev = excluded.rev",
                )
                .bind(group.id.0)
                .bind(&group.name)
                .bind(json_of(group.schedule.as_ref())?)
                .bind(rev)
                .execute(&mut *tx)
                .await?;
            }
        }
        for change in &changes.changes {
            match change {
                C::Person {
                    rev,
                    person: p,
                    created,
                } => {
                    let schedule = schedule_json(p)?;
                    sqlx::query(
                        "INSERT INTO people (id, name, active, valid_from, valid_until, schedule, \
                         group_id, created, rev) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
                         ON CONFLICT (id) DO UPDATE SET \
                         name = excluded.name, active = excluded.active, \
                         valid_from = excluded.valid_from, valid_until = excluded.valid_until, \
                         schedule = excluded.schedule, group_id = excluded.group_id, \
                         rev = excluded.rev",
                    )
                    .bind(p.id.0)
                    .bind(&p.name)
                    .bind(p.active)
                    .bind(p.valid_from)
                    .bind(p.valid_until)
                    .bind(schedule)
                    .bind(p.group.as_ref().map(|g| g.id.0))
                    .bind(created)
                    .bind(rev)
                    .execute(&mut *tx)
                    .await?;
                }
                C::Card { rev, card, created } => {
                    sqlx::query(
                        "INSERT INTO cards (uid, person_id, label, active, created, rev) \
                         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (uid) DO UPDATE SET \
                         person_id = excluded.person_id, label = excluded.label, \
                         active = excluded.active, rev = excluded.rev",
                    )
                    .bind(card.uid.as_bytes())
                    .bind(card.person_id.0)
                    .bind(&card.label)
                    .bind(card.active)
                    .bind(created)
                    .bind(rev)
                    .execute(&mut *tx)
                    .await?;
                }
                C::Face { rev, face } => {
                    // Embeddings only: the photo stays where it was taken.
                    sqlx::query(
                        "INSERT INTO faces (id, person_id, embedding, model_id, photo, created, rev) \
                         VALUES (?, ?, ?, ?, NULL, ?, ?) ON CONFLICT (id) DO UPDATE SET \
                         person_id = excluded.person_id, embedding = excluded.embedding, \
                         model_id = excluded.model_id, rev = excluded.rev",
                    )
                    .bind(face.id)
                    .bind(face.person_id.0)
                    .bind(crate::encode_embedding(&face.embedding))
                    .bind(&face.model_id)
                    .bind(face.created)
                    .bind(rev)
                    .execute(&mut *tx)
                    .await?;
                    faces_changed = true;
                }
                C::PersonDeleted { id, .. } => {
                    let r = sqlx::query("DELETE FROM people WHERE id = ?")
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await?;
                    faces_changed |= r.rows_affected() > 0;
                }
                C::CardDeleted { uid, .. } => {
                    sqlx::query("DELETE FROM cards WHERE uid = ?")
                        .bind(uid.as_bytes())
                        .execute(&mut *tx)
                        .await?;
                }
                C::FaceDeleted { id, .. } => {
                    sqlx::query("DELETE FROM faces WHERE id = ?")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    faces_changed = true;
                }
                // Applied before everything else, above.
                C::Group { .. } | C::GroupDeleted { .. } => {}
                C::Holiday { rev, holiday: h } => {
                    // One holiday per date: one removed and another added on its date between two
                    // syncs arrive in that order, but make sure.
                    sqlx::query("DELETE FROM holidays WHERE day = ? AND id <> ?")
                        .bind(h.date)
                        .bind(h.id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(
                        "INSERT INTO holidays (id, day, name, rev) VALUES (?, ?, ?, ?) \
                         ON CONFLICT (id) DO UPDATE SET day = excluded.day, name = excluded.name, \
                         rev = excluded.rev",
                    )
                    .bind(h.id)
                    .bind(h.date)
                    .bind(&h.name)
                    .bind(rev)
                    .execute(&mut *tx)
                    .await?;
                }
                C::HolidayDeleted { id, .. } => {
                    sqlx::query("DELETE FROM holidays WHERE id = ?")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        if faces_changed {
            sqlx::query("UPDATE counters SET value = value + 1 WHERE name = 'faces_version'")
                .execute(&mut *tx)
                .await?;
        }
        Self::set_replica_state(&mut tx, changes.rev, synced_at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The central revision the replica holds (`None` before the first copy), read inside `conn`'s
    /// transaction.
    async fn replica_rev(conn: &mut Conn) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM counters WHERE name = 'replica_rev'")
                .fetch_optional(&mut *conn)
                .await?,
        )
    }

    async fn set_replica_state(conn: &mut Conn, rev: i64, synced_at: DateTime<Utc>) -> Result<()> {
        for (name, value) in [
            ("replica_rev", rev),
            ("replica_synced_ms", synced_at.timestamp_millis()),
        ] {
            sqlx::query(
                "INSERT INTO counters (name, value) VALUES (?, ?) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )
            .bind(name)
            .bind(value)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// Records that the replica was found current at `synced_at` (a check with nothing to apply).
    pub(crate) async fn mark_replica_synced(
        &self,
        rev: i64,
        synced_at: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = begin(&self.write).await?;
        let at = Self::replica_rev(&mut tx).await?;
        if at != Some(rev) {
            return Err(Error::Conflict(format!(
                "replica at revision {} is not at {rev}",
                at.unwrap_or(-1)
            )));
        }
        Self::set_replica_state(&mut tx, rev, synced_at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The central revision this replica holds and when it was last found current; `None` before the
    /// first copy.
    pub(crate) async fn replica_state(&self) -> Result<Option<crate::ReplicaState>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT name, value FROM counters WHERE name IN ('replica_rev', 'replica_synced_ms')",
        )
        .fetch_all(&self.read)
        .await?;
        let get = |n: &str| rows.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
        Ok(match (get("replica_rev"), get("replica_synced_ms")) {
            (Some(rev), Some(ms)) => Some(crate::ReplicaState {
                rev,
                synced_at: DateTime::from_timestamp_millis(ms)
                    .ok_or_else(|| Error::Corrupt(format!("replica sync time {ms}")))?,
            }),
            _ => None,
        })
    }
}
