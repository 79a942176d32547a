// The SQL every backend shares, written once against concrete sqlx types.
//
// This file is `include!`d by `sqlite.rs`, `mysql.rs` and `postgres.rs`. Each of them defines, before the
// include: `Db`, `Pool`, `Conn`, `Query`, `MIGRATIONS`, `TRANSACTIONAL_DDL`, `sql()` (placeholder
// rewriting: `?` → `$n` for PostgreSQL), `ins()` (an INSERT that yields the new id), `insert_id()`,
// `UPSERT_SETTING`, `lock_migrations()` / `unlock_migrations()`. Everything below compiles once per
// backend with native types (no `Any` driver: real timestamps, booleans and bytes everywhere).

#[allow(unused_imports)]
use chrono::{DateTime, Utc};
#[allow(unused_imports)]
use facereko_domain::{
    Attempt, AuditEntry, Card, CardUid, Event, Group, GroupId, Holiday, NewAttempt, NewAudit,
    Outcome, Person, PersonId, StageTimings, WeeklySchedule,
};
#[allow(unused_imports)]
use sqlx::{QueryBuilder, Row as _};

#[allow(unused_imports)]
use crate::{
    Account, AccountUpdate, ApiToken, AttemptQuery, AuditQuery, FaceRecord, Invitation, NewAccount, OutboxEntry, Role,
    Session, SinkStats,
};

/// One backend's pools: `write` takes every statement that changes data, `read` the rest. They are the
/// same pool except on SQLite, where one writer connection avoids lock-upgrade failures.
#[derive(Clone, Debug)]
pub(crate) struct Sql {
    pub(crate) read: Pool,
    pub(crate) write: Pool,
}

type DbRow = <Db as sqlx::Database>::Row;

const ATTEMPT_COLUMNS: &str =
    "id, time, door_id, card_uid, person_id, person_name, outcome, similarity, \
     distance, confidence, photo, lookup_ms, capture_ms, detect_ms, match_ms, total_ms, detail";

const ACCOUNT_COLUMNS: &str =
    "id, username, password_hash, role, person_id, card_uid, failed_logins, \
     locked_until, must_change_password, created, last_login";

fn ms(v: Option<u32>) -> Option<i64> {
    v.map(i64::from)
}

fn ms_back(v: Option<i64>) -> Option<u32> {
    v.map(|v| u32::try_from(v.max(0)).unwrap_or(u32::MAX))
}

fn uid_from(bytes: Vec<u8>) -> Result<CardUid> {
    CardUid::from_bytes(&bytes).map_err(|e| Error::Corrupt(e.to_string()))
}

fn attempt_from_row(row: &DbRow) -> Result<Attempt> {
    let outcome: String = row.try_get("outcome")?;
    let card: Option<Vec<u8>> = row.try_get("card_uid")?;
    Ok(Attempt {
        id: row.try_get("id")?,
        time: row.try_get("time")?,
        door_id: row.try_get("door_id")?,
        card_uid: card.map(uid_from).transpose()?,
        person_id: row.try_get::<Option<i64>, _>("person_id")?.map(PersonId),
        person: row.try_get("person_name")?,
        outcome: outcome
            .parse::<Outcome>()
            .map_err(|e| Error::Corrupt(e.to_string()))?,
        similarity: row.try_get("similarity")?,
        distance: row.try_get("distance")?,
        confidence: row.try_get("confidence")?,
        photo: row.try_get("photo")?,
        timings: StageTimings {
            lookup_ms: ms_back(row.try_get("lookup_ms")?),
            capture_ms: ms_back(row.try_get("capture_ms")?),
            detect_ms: ms_back(row.try_get("detect_ms")?),
            match_ms: ms_back(row.try_get("match_ms")?),
            total_ms: ms_back(row.try_get("total_ms")?),
        },
        detail: row.try_get("detail")?,
    })
}

/// People with their group's name and schedule: every query that reads people starts with this, so a
/// person always comes with the schedule template they follow (see [`person_from_row`]).
const PEOPLE_WITH_GROUPS: &str = "SELECT p.*, g.name AS group_name, g.schedule AS group_schedule \
     FROM people p LEFT JOIN person_groups g ON g.id = p.group_id";

fn schedule_from(column: &str, text: Option<String>) -> Result<Option<WeeklySchedule>> {
    text.map(|s| serde_json::from_str::<WeeklySchedule>(&s))
        .transpose()
        .map_err(|e| Error::Corrupt(format!("{column}: {e}")))
}

/// A person from a row of [`PEOPLE_WITH_GROUPS`] (without cards or holidays, which the caller adds).
fn person_from_row(row: &DbRow) -> Result<Person> {
    let group = match row.try_get::<Option<i64>, _>("group_id")? {
        None => None,
        Some(id) => Some(Group {
            id: GroupId(id),
            // Read on one statement with the person: the group exists (a deleted one sets NULL).
            name: row.try_get::<Option<String>, _>("group_name")?.unwrap_or_default(),
            schedule: schedule_from("group schedule", row.try_get("group_schedule")?)?,
        }),
    };
    Ok(Person {
        id: PersonId(row.try_get("id")?),
        name: row.try_get("name")?,
        active: row.try_get("active")?,
        valid_from: row.try_get("valid_from")?,
        valid_until: row.try_get("valid_until")?,
        schedule: schedule_from("schedule", row.try_get("schedule")?)?,
        group,
        holidays: Vec::new(),
        cards: Vec::new(),
    })
}

fn group_from_row(row: &DbRow) -> Result<Group> {
    Ok(Group {
        id: GroupId(row.try_get("id")?),
        name: row.try_get("name")?,
        schedule: schedule_from("group schedule", row.try_get("schedule")?)?,
    })
}

fn holiday_from_row(row: &DbRow) -> Result<Holiday> {
    Ok(Holiday {
        id: row.try_get("id")?,
        date: row.try_get("day")?,
        name: row.try_get("name")?,
    })
}

/// A schedule as stored: JSON, or NULL for none.
fn json_of(s: Option<&WeeklySchedule>) -> Result<Option<String>> {
    s.map(serde_json::to_string)
        .transpose()
        .map_err(|e| Error::Invalid(e.to_string()))
}

/// A person's schedule as stored: JSON, or NULL for their group's (or any time).
fn schedule_json(p: &Person) -> Result<Option<String>> {
    json_of(p.schedule.as_ref())
}

fn card_from_row(row: &DbRow) -> Result<Card> {
    Ok(Card {
        uid: uid_from(row.try_get("uid")?)?,
        person_id: PersonId(row.try_get("person_id")?),
        label: row.try_get("label")?,
        active: row.try_get("active")?,
    })
}

fn account_from_row(row: &DbRow) -> Result<Account> {
    let role: String = row.try_get("role")?;
    let card: Option<Vec<u8>> = row.try_get("card_uid")?;
    Ok(Account {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        role: role.parse()?,
        person_id: row.try_get::<Option<i64>, _>("person_id")?.map(PersonId),
        card_uid: card.map(uid_from).transpose()?,
        failed_logins: row.try_get("failed_logins")?,
        locked_until: row.try_get("locked_until")?,
        must_change_password: row.try_get("must_change_password")?,
        created: row.try_get("created")?,
        last_login: row.try_get("last_login")?,
    })
}

fn face_from_row(row: &DbRow) -> Result<FaceRecord> {
    let bytes: Vec<u8> = row.try_get("embedding")?;
    Ok(FaceRecord {
        id: row.try_get("id")?,
        person_id: PersonId(row.try_get("person_id")?),
        embedding: crate::decode_embedding(&bytes)?,
        model_id: row.try_get("model_id")?,
        photo: row.try_get("photo")?,
        created: row.try_get("created")?,
    })
}

fn audit_from_row(row: &DbRow) -> Result<AuditEntry> {
    let via: String = row.try_get("via")?;
    Ok(AuditEntry {
        id: row.try_get("id")?,
        time: row.try_get("time")?,
        door_id: row.try_get("door_id")?,
        actor: row.try_get("actor")?,
        via: via.parse().map_err(Error::Corrupt)?,
        origin: row.try_get("origin")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        detail: row.try_get("detail")?,
    })
}

fn push_attempt_filters(qb: &mut QueryBuilder<'_, Db>, q: &AttemptQuery) {
    if let Some(p) = q.person {
        qb.push(" AND person_id = ").push_bind(p.0);
    }
    if let Some(o) = q.outcome {
        qb.push(" AND outcome = ").push_bind(o.as_str());
    }
    if let Some(from) = q.from {
        qb.push(" AND time >= ").push_bind(from);
    }
    if let Some(until) = q.until {
        qb.push(" AND time < ").push_bind(until);
    }
    if let Some(door) = &q.door_id {
        qb.push(" AND door_id = ").push_bind(door.clone());
    }
}

fn push_audit_filters(qb: &mut QueryBuilder<'_, Db>, q: &AuditQuery) {
    if let Some(from) = q.from {
        qb.push(" AND time >= ").push_bind(from);
    }
    if let Some(until) = q.until {
        qb.push(" AND time < ").push_bind(until);
    }
    if let Some(door) = &q.door_id {
        qb.push(" AND door_id = ").push_bind(door.clone());
    }
    if let Some(actor) = &q.actor {
        qb.push(" AND actor = ").push_bind(actor.clone());
    }
    if let Some(action) = &q.action {
        // `person` matches `person.add`, `person.update`, …; a full name matches only itself.
        qb.push(" AND (action = ")
            .push_bind(action.clone())
            .push(" OR action LIKE ")
            .push_bind(format!("{}.%", action.replace(['%', '_', '\\'], "")))
            .push(")");
    }
}

fn outbox_from_row(row: &DbRow) -> Result<OutboxEntry> {
    let event: String = row.try_get("event")?;
    Ok(OutboxEntry {
        id: row.try_get("id")?,
        time: row.try_get("time")?,
        door_id: row.try_get("door_id")?,
        event: serde_json::from_str(&event)
            .map_err(|e| Error::Corrupt(format!("outbox event: {e}")))?,
    })
}

/// Takes the next directory revision inside `tx` (the first statement of every transaction that changes
/// people, cards or faces). The counter row stays locked until `tx` ends, so revisions commit in the
/// order they are taken: a replica that has everything up to a committed revision misses nothing below.
async fn next_rev(conn: &mut Conn) -> Result<i64> {
    sqlx::query("UPDATE counters SET value = value + 1 WHERE name = 'directory_rev'")
        .execute(&mut *conn)
        .await?;
    Ok(
        sqlx::query_scalar("SELECT value FROM counters WHERE name = 'directory_rev'")
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// Records that a directory row is gone, for the replicas.
async fn tombstone(
    conn: &mut Conn,
    rev: i64,
    kind: &str,
    item_id: Option<i64>,
    card_uid: Option<&[u8]>,
) -> Result<()> {
    sqlx::query(&sql(
        "INSERT INTO deletions (rev, kind, item_id, card_uid) VALUES (?, ?, ?, ?)",
    ))
    .bind(rev)
    .bind(kind)
    .bind(item_id)
    .bind(card_uid)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Sql {
    pub(crate) async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    // ------------------------------------------------------------------ migrations

    /// Applies the migrations this binary knows and the database lacks; refuses a newer schema.
    pub(crate) async fn migrate(&self) -> Result<i64> {
        let mut conn = self.write.acquire().await?;
        lock_migrations(&mut conn).await?;
        let result = self.migrate_locked(&mut conn).await;
        let unlocked = unlock_migrations(&mut conn).await;
        let version = result?;
        unlocked?;
        Ok(version)
    }

    async fn migrate_locked(&self, conn: &mut Conn) -> Result<i64> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS facereko_schema (version BIGINT PRIMARY KEY, \
             description VARCHAR(200) NOT NULL)",
        )
        .execute(&mut *conn)
        .await?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM facereko_schema")
            .fetch_all(&mut *conn)
            .await?;
        let supported = MIGRATIONS.last().map_or(0, |m| m.0);
        if let Some(&found) = applied.iter().max() {
            if found > supported {
                return Err(Error::SchemaTooNew { found, supported });
            }
        }
        for &(version, description, script) in MIGRATIONS {
            if applied.contains(&version) {
                continue;
            }
            tracing::info!(version, description, "applying database migration");
            let record = sql("INSERT INTO facereko_schema (version, description) VALUES (?, ?)");
            if TRANSACTIONAL_DDL {
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                sqlx::raw_sql(script).execute(&mut *tx).await?;
                sqlx::query(&record)
                    .bind(version)
                    .bind(description)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            } else {
                // MySQL commits DDL implicitly: the scripts are idempotent (IF NOT EXISTS) instead.
                sqlx::raw_sql(script).execute(&mut *conn).await?;
                sqlx::query(&record)
                    .bind(version)
                    .bind(description)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        Ok(supported)
    }

    /// The newest migration applied to the database (0 for an empty one).
    pub(crate) async fn schema_version(&self) -> Result<i64> {
        let v: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM facereko_schema")
            .fetch_one(&self.read)
            .await?;
        Ok(v.unwrap_or(0))
    }

    // ------------------------------------------------------------------ people and cards

    pub(crate) async fn add_person(&self, name: &str, now: DateTime<Utc>) -> Result<PersonId> {
        let mut tx = begin(&self.write).await?;
        let rev = next_rev(&mut tx).await?;
        let s = ins("INSERT INTO people (name, active, created, rev) VALUES (?, ?, ?, ?)");
        let q = sqlx::query(&s).bind(name).bind(true).bind(now).bind(rev);
        let id = match insert_id(q, &mut tx).await {
            Err(e) if e.unique_violation() => {
                return Err(Error::Conflict(format!("person {name:?}")))
            }
            r => r?,
        };
        tx.commit().await?;
        Ok(PersonId(id))
    }

    async fn cards_of(&self, person: Option<PersonId>) -> Result<Vec<Card>> {
        let rows = match person {
            Some(p) => sqlx::query(&sql(
                "SELECT uid, person_id, label, active FROM cards WHERE person_id = ? ORDER BY uid",
            ))
            .bind(p.0)
            .fetch_all(&self.read)
            .await?,
            None => {
                sqlx::query("SELECT uid, person_id, label, active FROM cards ORDER BY uid")
                    .fetch_all(&self.read)
                    .await?
            }
        };
        rows.iter().map(card_from_row).collect()
    }

    /// The site's holidays as local dates, oldest first: every person read comes with them.
    async fn holiday_dates(&self) -> Result<Vec<chrono::NaiveDate>> {
        Ok(sqlx::query_scalar("SELECT day FROM holidays ORDER BY day")
            .fetch_all(&self.read)
            .await?)
    }

    pub(crate) async fn person(&self, id: PersonId) -> Result<Option<Person>> {
        let mut qb = QueryBuilder::<Db>::new(PEOPLE_WITH_GROUPS);
        qb.push(" WHERE p.id = ").push_bind(id.0);
        let row = qb.build().fetch_optional(&self.read).await?;
        let Some(row) = row else { return Ok(None) };
        let mut p = person_from_row(&row)?;
        p.cards = self.cards_of(Some(p.id)).await?;
        p.holidays = self.holiday_dates().await?;
        Ok(Some(p))
    }

    pub(crate) async fn person_by_name(&self, name: &str) -> Result<Option<Person>> {
        let mut qb = QueryBuilder::<Db>::new(PEOPLE_WITH_GROUPS);
        qb.push(" WHERE p.name = ").push_bind(name.to_string());
        let rows = qb.build().fetch_all(&self.read).await?;
        // MySQL compares case-insensitively; "exact match" means exact everywhere.
        let Some(row) = rows
            .iter()
            .find(|r| r.try_get::<String, _>("name").is_ok_and(|n| n == name))
        else {
            return Ok(None);
        };
        let mut p = person_from_row(row)?;
        p.cards = self.cards_of(Some(p.id)).await?;
        p.holidays = self.holiday_dates().await?;
        Ok(Some(p))
    }

    pub(crate) async fn list_people(&self) -> Result<Vec<Person>> {
        let mut qb = QueryBuilder::<Db>::new(PEOPLE_WITH_GROUPS);
        qb.push(" ORDER BY p.name, p.id");
        let rows = qb.build().fetch_all(&self.read).await?;
        let holidays = self.holiday_dates().await?;
        let mut people = rows
            .iter()
            .map(|r| {
                person_from_row(r).map(|mut p| {
                    p.holidays = holidays.clone();
                    p
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let by_id: std::collections::HashMap<PersonId, usize> =
            people.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
        for card in self.cards_of(None).await? {
            if let Some(&i) = by_id.get(&card.person_id) {
                people[i].cards.push(card);
            }
        }
        Ok(people)
    }

    pub(crate) async fn update_person(&self, p: &Person) -> Result<()> {
        let schedule = schedule_json(p)?;
        let mut tx = begin(&self.write).await?;
        let rev = next_rev(&mut tx).await?;
        let r = sqlx::query(&sql(
            "UPDATE people SET name = ?, active = ?, valid_from = ?, valid_until = ?, schedule = ?, \
             rev = ? WHERE id = ?",
        ))
        .bind(&p.name)
        .bind(p.active)
        .bind(p.valid_from)
        .bind(p.valid_until)
        .bind(schedule)
        .bind(rev)
        .bind(p.id.0)
        .execute(&mut *tx)
        .await
        .map_err(Error::from);
        match r {
            Err(e) if e.unique_violation() => Err(Error::Conflict(format!("person {:?}", p.name))),
            Err(e) => Err(e),
            // The new revision changes the row, so MySQL's count of changed rows is 1 here too.
            Ok(r) if r.rows_affected() == 0 => Err(Error::NotFound(format!("person {}", p.id))),
            Ok(_) => Ok(tx.commit().await?),
        }
    }

    pub(crate) async fn delete_person(&self, id: PersonId) -> Result<Vec<String>> {
        let mut tx = begin(&self.write).await?;
        let rev = next_rev(&mut tx).await?;
        let photos: Vec<Option<String>> =
            sqlx::query_scalar(&sql("SELECT photo FROM faces WHERE person_id = ?"))
                .bind(id.0)
                .fetch_all(&mut *tx)
                .await?;
        let r = sqlx::query(&sql("DELETE FROM people WHERE id = ?"))
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(Error::NotFound(format!("person {id}")));
        }
        // The person's cards and faces go with them (ON DELETE CASCADE), here and in every replica.
        tombstone(&mut tx, rev, "person", Some(id.0), None).await?;
        sqlx::query("UPDATE counters SET value = value + 1 WHERE name = 'faces_version'")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(photos.into_iter().flatten().collect())
    }

    async fn card_owner(&self, uid: &CardUid) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(&sql(
            "SELECT p.name FROM cards c JOIN people p ON p.id = c.person_id WHERE c.uid = ?",
        ))
        .bind(uid.as_bytes())
        .fetch_optional(&self.read)
        .await?)
    }

    pub(crate) async fn add_card(
        &self,
        person: PersonId,
        uid: &CardUid,
        label: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if let Some(owner) = self.card_owner(uid).await? {
            return Err(Error::CardTaken {
                uid: uid.clone(),
                owner,
            });
        }
        let mut tx = begin(&self.write).await?;
        let rev = next_rev(&mut tx).await?;
        let r = sqlx::query(&sql(
            "INSERT INTO cards (uid, person_id, label, active, created, rev) VALUES (?, ?, ?, ?, ?, ?)",
        ))
        .bind(uid.as_bytes())
        .bind(person.0)
        .bind(label)
        .bind(true)
        .bind(now)
        .bind(rev)
        .execute(&mut *tx)
        .await
        .map_err(Error::from);
        match r {
            Ok(_) => Ok(tx.commit().await?),
            Err(e) if e.unique_violation() => Err(Error::CardTaken {
                uid: uid.clone(),
                owner: self.card_owner(uid).await?.unwrap_or_default(),
            }),
            Err(e) if e.foreign_key_violation() => Err(Error::NotFound(format!("person {person}"))),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn set_card_active(&self, uid: &CardUid, active: bool) -> Result<()> {
        let mut tx = begin(&self.write).await?;
        let rev = next_rev(&mut tx).await?;
        let r = sqlx::query(&sql("UPDATE cards SET active = ?, rev = ? WHERE uid = ?"))
            .bind(active)
            .bind(rev)
            .bind(uid.as_bytes())
            .execute(&mut *tx)
            .await?;
        // The new revision changes the row, so MySQL's count of changed rows is 1 here too.
        if r.rows_affected() == 0 {
            return Err(Error::NotFound(format!("card {uid}")));
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn remove_card(&self, uid: &CardUid) -> Result<()> {
        let mut tx = begin(&self.write).await?;
        let rev = next_rev(&mut tx).await?;
        let r = sqlx::query(&sql("DELETE FROM cards WHERE uid = ?"))
            .bind(uid.as_bytes())
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(Error::NotFound(format!("card {uid}")));
        }
        tombstone(&mut tx, rev, "card", None, Some(uid.as_bytes())).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn lookup_card(&self, uid: &CardUid) -> Result<Option<(Card, Person)>> {
        let row = sqlx::query(&sql(
            "SELECT uid, person_id, label, active FROM cards WHERE uid = ?",
        ))
        .bind(uid.as_bytes())
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let card = card_from_row(&row)?;
        Ok(self.person(card.person_id).await?.map(|p| (card, p)))
    }

    // ------------------------------------------------------------------ groups and holidays

    pub(crate) async fn add_group(&self, name: &str) -> Result<GroupId> {
        let mut tx = begin(&self.write).await?;
        let rev = next_rev(&mut tx).await?;
        let s = ins("INSERT INTO person_groups (name, rev) VALUES (?, ?)");
        let q = sqlx::query(&s).bind(name).bind(rev);
        let id = match insert_id(q, &mut tx).await {
            Err(e) if e.unique_violation() => {
                return Err(Error::Conflict(format!("group {name:?}")))
            }
            r => r?,
        };
        tx.commit().await?;
        Ok(GroupId(id))
    }

    pub(crate) async fn group(&self, id: GroupId) -> Result<Option<Group>> {
        let row = sqlx::query(&sql(
            "SELECT id, name, schedule FROM person_groups WHERE id = ?",
        ))
        .bind(id.0)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(group_from_row).transpose()
    }

    /// Every group by name, with how many people belong to it.
    pub(crate) async fn groups(&self) -> Result<Vec<(Group, i64)>> {
        let rows = sqlx::query(
            "SELECT g.id, g.name, g.schedule, \
             (SELECT COUNT(*) FROM people p WHERE p.group_id = g.id) AS members \
             FROM person_groups g ORDER BY g.name, g.id",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((group_from_row(r)?, r.try_get("members")?)))
            .collect()
    }

    /// Renames a group (`name: Some`) or sets its schedule template (`schedule: Some`), under a new
    /// revision.
    pub(crate) async fn update_group(
        &self,
        id: GroupId,
        name: Option<&str>,
        schedule: Option<Option<&WeeklySchedule>>,
    ) -> Result<()> {
        let mut qb = QueryBuilder::<Db>::new("UPDATE person_groups SET rev = ");
        let mut tx = begin(&self.write).await?;
        let rev = next_rev(&mut tx).await?;
        qb.push_bind(rev);
        if let Some(n) = name {
            qb.push(", name = ").push_bind(n.to_string());
        }
        if let Some(s) = schedule {
            qb.push(", schedule = ").push_bind(json_of(s)?);
        }
        qb.push(" WHERE id = ").push_bind(id.0);
        let r = qb.build().execute(&mut *tx).await.map_err(Error::from);
        match r {
            Err(e) if e.unique_violation() => Err(Error::Conflict(format!(
                "group {:?}",
                name.unwrap_or_default()
            ))),
            Err(e) => Err(e),
            // The new revision changes the row, so MySQL's count of changed rows is 1 here too.
            Ok(r) if r.rows_affected() == 0 => Err(Error::NotFound(format!("group {id}"))),
            Ok(_) => Ok(tx.commit().await?),
        }
    }

    /// Deletes a group; its members keep their own schedules and lose the group's (`ON DELETE SET
    /// NULL`, here and in every replica, which applies the tombstone with the same foreign key).
    pub(crate) async fn delete_group(&self, id: GroupId) -> Result<()> {
        let mut tx = begin(&self.write).await?;
        let rev = next_rev(&mut tx).await?;
        let r = sqlx::query(&sql("DELETE FROM person_groups WHERE id = ?"))
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(Error::NotFound(format!("group {id}")));
        }
        tombstone(&mut tx, rev, "group", Some(id.0), None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Puts every one of `people` (distinct ids) in `group`, or in none, in one transaction under one
    /// revision; `NotFound` (and nothing changed) for an unknown group or person.
    pub(crate) async fn assign_group(
        &self,
        group: Option<GroupId>,
        people: &[PersonId],
    ) -> Result<u64> {
        let mut tx = begin(&self.write).await?;
        let rev = next_rev(&mut tx).await?;
        if let Some(g) = group {
            let found: Option<i64> =
                sqlx::query_scalar(&sql("SELECT id FROM person_groups WHERE id = ?"))
                    .bind(g.0)
                    .fetch_optional(&mut *tx)
                    .await?;
            if found.is_none() {
                return Err(Error::NotFound(format!("group {g}")));
            }
        }
        let mut changed = 0;
        for chunk in people.chunks(500) {
            let mut qb = QueryBuilder::<Db>::new("UPDATE people SET group_id = ");
            qb.push_bind(group.map(|g| g.0))
                .push(", rev = ")
                .push_bind(rev)
                .push(" WHERE id IN (");
            let mut ids = qb.separated(", ");
            for p in chunk {
                ids.push_bind(p.0);
            }
            qb.push(")");
            let r = qb.build().execute(&mut *tx).await.map_err(Error::from);
            changed += match r {
                Err(e) if e.foreign_key_violation() => {
                    return Err(Error::NotFound(format!("group {}", group.map_or(0, |g| g.0))))
                }
                r => r?.rows_affected(),
            };
        }
        // The new revision changes every row, so MySQL counts each person found.
        if changed != people.len() as u64 {
            return Err(Error::NotFound(format!(
                "{} of the {} people",
                people.len() as u64 - changed,
                people.len()
            )));
        }
        tx.commit().await?;
        Ok(changed)
    }

    pub(crate) async fn add_holiday(&self, date: chrono::NaiveDate, name: &str) -> Result<i64> {
        let mut tx = begin(&self.write).await?;
        let rev = next_rev(&mut tx).await?;
        let s = ins("INSERT INTO holidays (day, name, rev) VALUES (?, ?, ?)");
        let q = sqlx::query(&s).bind(date).bind(name).bind(rev);
        let id = match insert_id(q, &mut tx).await {
            Err(e) if e.unique_violation() => {
                return Err(Error::Conflict(format!("a holiday on {date}")))
            }
            r => r?,
        };
        tx.commit().await?;
        Ok(id)
    }

    /// Removes a holiday; the holiday as it was.
    pub(crate) async fn remove_holiday(&self, id: i64) -> Result<Holiday> {
        let mut tx = begin(&self.write).await?;
        let rev = next_rev(&mut tx).await?;
        let row = sqlx::query(&sql("SELECT id, day, name FROM holidays WHERE id = ?"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Err(Error::NotFound(format!("holiday {id}")));
        };
        let holiday = holiday_from_row(&row)?;
        sqlx::query(&sql("DELETE FROM holidays WHERE id = ?"))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tombstone(&mut tx, rev, "holiday", Some(id), None).await?;
        tx.commit().await?;
        Ok(holiday)
    }

    pub(crate) async fn holidays(&self) -> Result<Vec<Holiday>> {
        let rows = sqlx::query("SELECT id, day, name FROM holidays ORDER BY day")
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(holiday_from_row).collect()
    }

    // ------------------------------------------------------------------ faces

    pub(crate) async fn add_face(
        &self,
        person: PersonId,
        embedding: &[u8],
        model_id: &str,
        photo: Option<&str>,
        shared: Option<&[u8]>,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let mut tx = begin(&self.write).await?;
        let rev = next_rev(&mut tx).await?;
        let s = ins(
            "INSERT INTO faces (person_id, embedding, model_id, photo, created, rev) \
             VALUES (?, ?, ?, ?, ?, ?)",
        );
        let q = sqlx::query(&s)
            .bind(person.0)
            .bind(embedding)
            .bind(model_id)
            .bind(photo)
            .bind(now)
            .bind(rev);
        let id = match insert_id(q, &mut tx).await {
            Err(e) if e.foreign_key_violation() => {
                return Err(Error::NotFound(format!("person {person}")))
            }
            r => r?,
        };
        if let Some(image) = shared {
            sqlx::query(&sql("INSERT INTO face_photos (face_id, image) VALUES (?, ?)"))
                .bind(id)
                .bind(image)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE counters SET value = value + 1 WHERE name = 'faces_version'")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The copy in the database of the enrolment photo stored at `photo` (`fleet.share_photos`).
    pub(crate) async fn shared_face_photo(&self, photo: &str) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar(&sql(
            "SELECT fp.image FROM face_photos fp JOIN faces f ON f.id = fp.face_id WHERE f.photo = ?",
        ))
        .bind(photo)
        .fetch_optional(&self.read)
        .await?)
    }

    pub(crate) async fn faces(&self, person: Option<PersonId>) -> Result<Vec<FaceRecord>> {
        let rows = match person {
            Some(p) => {
                sqlx::query(&sql("SELECT * FROM faces WHERE person_id = ? ORDER BY id"))
                    .bind(p.0)
                    .fetch_all(&self.read)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM faces ORDER BY id")
                    .fetch_all(&self.read)
                    .await?
            }
        };
        rows.iter().map(face_from_row).collect()
    }

    /// Deletes the face and returns its photo (for the caller to remove from disk).
    pub(crate) async fn delete_face(&self, id: i64) -> Result<Option<String>> {
        let mut tx = begin(&self.write).await?;
        let rev = next_rev(&mut tx).await?;
        let photo: Option<Option<String>> =
            sqlx::query_scalar(&sql("SELECT photo FROM faces WHERE id = ?"))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(photo) = photo else {
            return Err(Error::NotFound(format!("face {id}")));
        };
        sqlx::query(&sql("DELETE FROM faces WHERE id = ?"))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tombstone(&mut tx, rev, "face", Some(id), None).await?;
        sqlx::query("UPDATE counters SET value = value + 1 WHERE name = 'faces_version'")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(photo)
    }

    pub(crate) async fn faces_version(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT value FROM counters WHERE name = 'faces_version'")
                .fetch_one(&self.read)
                .await?,
        )
    }

    /// Every door that has queued an event (each has its outbox head row), by name.
    pub(crate) async fn door_ids(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT door_id FROM outbox_heads ORDER BY door_id")
                .fetch_all(&self.read)
                .await?,
        )
    }

    // ------------------------------------------------------------------ replication

    /// The newest committed directory revision.
    pub(crate) async fn directory_rev(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT value FROM counters WHERE name = 'directory_rev'")
                .fetch_one(&self.read)
                .await?,
        )
    }

    /// Every directory row changed or deleted after revision `since` (all rows when `since` < 0), read
    /// on one snapshot so people, cards, faces and deletions agree with each other and with `rev`.
    pub(crate) async fn directory_changes(&self, since: i64) -> Result<crate::DirectoryChanges> {
        use crate::DirectoryChange as C;
        let mut tx = begin_snapshot(&self.read).await?;
        let rev: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'directory_rev'")
            .fetch_one(&mut *tx)
            .await?;
        let mut changes = Vec::new();
        let mut people = QueryBuilder::<Db>::new(PEOPLE_WITH_GROUPS);
        people.push(" WHERE p.rev > ").push_bind(since);
        for row in people.build().fetch_all(&mut *tx).await? {
            changes.push(C::Person {
                rev: row.try_get("rev")?,
                created: row.try_get("created")?,
                person: person_from_row(&row)?,
            });
        }
        for row in sqlx::query(&sql(
            "SELECT uid, person_id, label, active, created, rev FROM cards WHERE rev > ?",
        ))
        .bind(since)
        .fetch_all(&mut *tx)
        .await?
        {
            changes.push(C::Card {
                rev: row.try_get("rev")?,
                created: row.try_get("created")?,
                card: card_from_row(&row)?,
            });
        }
        for row in sqlx::query(&sql("SELECT * FROM faces WHERE rev > ?"))
            .bind(since)
            .fetch_all(&mut *tx)
            .await?
        {
            changes.push(C::Face {
                rev: row.try_get("rev")?,
                face: face_from_row(&row)?,
            });
        }
        for row in sqlx::query(&sql(
            "SELECT id, name, schedule, rev FROM person_groups WHERE rev > ?",
        ))
        .bind(since)
        .fetch_all(&mut *tx)
        .await?
        {
            changes.push(C::Group {
                rev: row.try_get("rev")?,
                group: group_from_row(&row)?,
            });
        }
        for row in sqlx::query(&sql("SELECT id, day, name, rev FROM holidays WHERE rev > ?"))
            .bind(since)
            .fetch_all(&mut *tx)
            .await?
        {
            changes.push(C::Holiday {
                rev: row.try_get("rev")?,
                holiday: holiday_from_row(&row)?,
            });
        }
        if since >= 0 {
            // A first copy has nothing to delete.
            for row in sqlx::query(&sql(
                "SELECT rev, kind, item_id, card_uid FROM deletions WHERE rev > ?",
            ))
            .bind(since)
            .fetch_all(&mut *tx)
            .await?
            {
                let rev: i64 = row.try_get("rev")?;
                let kind: String = row.try_get("kind")?;
                let id: Option<i64> = row.try_get("item_id")?;
                let uid: Option<Vec<u8>> = row.try_get("card_uid")?;
                changes.push(match (kind.as_str(), id, uid) {
                    ("person", Some(id), _) => C::PersonDeleted {
                        rev,
                        id: PersonId(id),
                    },
                    ("card", _, Some(uid)) => C::CardDeleted {
                        rev,
                        uid: uid_from(uid)?,
                    },
                    ("face", Some(id), _) => C::FaceDeleted { rev, id },
                    ("group", Some(id), _) => C::GroupDeleted {
                        rev,
                        id: GroupId(id),
                    },
                    ("holiday", Some(id), _) => C::HolidayDeleted { rev, id },
                    _ => return Err(Error::Corrupt(format!("deletion {rev} of kind {kind:?}"))),
                });
            }
        }
        tx.commit().await?;
        changes.sort_by_key(C::rev);
        Ok(crate::DirectoryChanges {
            since,
            rev,
            changes,
        })
    }

    // ------------------------------------------------------------------ attempts

    /// Inserts the attempt and (unless importing history) its outbox event in one transaction. `uuid` makes a replay idempotent:
    /// if a row with that uuid exists, it is returned instead of a second one.
    pub(crate) async fn insert_attempt(
        &self,
        a: &NewAttempt,
        photo: Option<&str>,
        uuid: &[u8; 16],
        emit_event: bool,
    ) -> Result<Attempt> {
        let mut tx = begin(&self.write).await?;
        let existing = sqlx::query(&sql(
            "SELECT id, time, door_id, card_uid, person_id, person_name, outcome, similarity, \
             distance, confidence, photo, lookup_ms, capture_ms, detect_ms, match_ms, total_ms, detail \
             FROM attempts WHERE uuid = ?",
        ))
        .bind(&uuid[..])
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            return attempt_from_row(&row);
        }
        let s = ins(
            "INSERT INTO attempts (uuid, time, door_id, card_uid, person_id, person_name, outcome, \
             similarity, distance, confidence, photo, lookup_ms, capture_ms, detect_ms, match_ms, \
             total_ms, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        );
        let t = &a.timings;
        let q = sqlx::query(&s)
            .bind(&uuid[..])
            .bind(a.time)
            .bind(&a.door_id)
            .bind(a.card_uid.as_ref().map(|u| u.as_bytes()))
            .bind(a.person_id.map(|p| p.0))
            .bind(a.person_name.as_deref())
            .bind(a.outcome.as_str())
            .bind(a.similarity)
            .bind(a.distance)
            .bind(a.confidence)
            .bind(photo)
            .bind(ms(t.lookup_ms))
            .bind(ms(t.capture_ms))
            .bind(ms(t.detect_ms))
            .bind(ms(t.match_ms))
            .bind(ms(t.total_ms))
            .bind(a.detail.as_deref());
        let id = insert_id(q, &mut tx).await?;
        let attempt = a.stored(id, photo);
        let event = Event::Attempt {
            door_id: a.door_id.clone(),
            attempt: attempt.clone(),
        };
        if emit_event {
            Self::enqueue_in(&mut tx, &a.door_id, a.time, &event).await?;
        }
        tx.commit().await?;
        Ok(attempt)
    }

    /// Inserts many attempts in one transaction, in batches of multi-row INSERTs, without photos or
    /// outbox events.
    pub(crate) async fn bulk_insert_attempts(
        &self,
        rows: &[(NewAttempt, [u8; 16])],
    ) -> Result<u64> {
        let mut tx = begin(&self.write).await?;
        let mut n = 0;
        for chunk in rows.chunks(500) {
            let mut qb = QueryBuilder::<Db>::new(
                "INSERT INTO attempts (uuid, time, door_id, card_uid, person_id, person_name, outcome, \
                 similarity, distance, confidence, photo, lookup_ms, capture_ms, detect_ms, match_ms, \
                 total_ms, detail) ",
            );
            qb.push_values(chunk, |mut b, (a, uuid)| {
                let t = &a.timings;
                b.push_bind(uuid.to_vec())
                    .push_bind(a.time)
                    .push_bind(a.door_id.clone())
                    .push_bind(a.card_uid.as_ref().map(|u| u.as_bytes().to_vec()))
                    .push_bind(a.person_id.map(|p| p.0))
                    .push_bind(a.person_name.clone())
                    .push_bind(a.outcome.as_str())
                    .push_bind(a.similarity)
                    .push_bind(a.distance)
                    .push_bind(a.confidence)
                    .push_bind(None::<String>)
                    .push_bind(ms(t.lookup_ms))
                    .push_bind(ms(t.capture_ms))
                    .push_bind(ms(t.detect_ms))
                    .push_bind(ms(t.match_ms))
                    .push_bind(ms(t.total_ms))
                    .push_bind(a.detail.clone());
            });
            n += qb.build().execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    pub(crate) async fn attempts(&self, q: &AttemptQuery) -> Result<Vec<Attempt>> {
        let mut qb = QueryBuilder::<Db>::new("SELECT ");
        qb.push(ATTEMPT_COLUMNS);
        qb.push(" FROM attempts");
        qb.push(attempts_index_hint(q));
        qb.push(" WHERE 1 = 1");
        // With a date filter, pages follow (time, id), so a window far in the past starts at its place in
        // the time index instead of walking every newer attempt; the cursor is still the last row's id.
        let by_time = q.from.is_some() || q.until.is_some();
        match (q.before_id, by_time) {
            (Some(before), false) => {
                qb.push(" AND id < ").push_bind(before);
            }
            (Some(before), true) => {
                qb.push(" AND (time < (SELECT c.time FROM attempts c WHERE c.id = ")
                    .push_bind(before)
                    .push(") OR (time = (SELECT c.time FROM attempts c WHERE c.id = ")
                    .push_bind(before)
                    .push(") AND id < ")
                    .push_bind(before)
                    .push("))");
            }
            (None, _) => {}
        }
        push_attempt_filters(&mut qb, q);
        qb.push(if by_time {
            " ORDER BY time DESC, id DESC LIMIT "
        } else {
            " ORDER BY id DESC LIMIT "
        })
        .push_bind(i64::from(q.limit.clamp(1, crate::MAX_PAGE)));
        let rows = qb.build().fetch_all(&self.read).await?;
        rows.iter().map(attempt_from_row).collect()
    }

    pub(crate) async fn attempt(&self, id: i64) -> Result<Option<Attempt>> {
        let mut qb = QueryBuilder::<Db>::new("SELECT ");
        qb.push(ATTEMPT_COLUMNS);
        qb.push(" FROM attempts WHERE id = ").push_bind(id);
        let row = qb.build().fetch_optional(&self.read).await?;
        row.as_ref().map(attempt_from_row).transpose()
    }

    /// How many attempts the query's filters match (its cursor and page size aside).
    pub(crate) async fn count_matching_attempts(&self, q: &AttemptQuery) -> Result<i64> {
        let mut qb = QueryBuilder::<Db>::new("SELECT COUNT(*) FROM attempts WHERE 1 = 1");
        push_attempt_filters(&mut qb, q);
        Ok(qb.build_query_scalar().fetch_one(&self.read).await?)
    }

    pub(crate) async fn count_attempts(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM attempts")
            .fetch_one(&self.read)
            .await?)
    }

    /// The photo an attempt row references, looked up by the uuid its file is named after; `Ok(None)`
    /// when no row has it (the file is an orphan).
    pub(crate) async fn attempt_photo_by_uuid(
        &self,
        uuid: &[u8],
    ) -> Result<Option<Option<String>>> {
        Ok(
            sqlx::query_scalar(&sql("SELECT photo FROM attempts WHERE uuid = ?"))
                .bind(uuid)
                .fetch_optional(&self.read)
                .await?,
        )
    }

    pub(crate) async fn face_photos(&self) -> Result<Vec<String>> {
        let v: Vec<Option<String>> = sqlx::query_scalar("SELECT photo FROM faces")
            .fetch_all(&self.read)
            .await?;
        Ok(v.into_iter().flatten().collect())
    }

    /// Clears the photo column of up to `limit` attempts with `outcome` older than `before`, returning the
    /// paths cleared. The rows are committed first; the caller deletes the files afterwards (a crash in
    /// between leaves an orphan file, which the orphan sweep removes, never a row pointing at nothing).
    pub(crate) async fn take_expired_photos(
        &self,
        outcome: Outcome,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>> {
        let mut tx = begin(&self.write).await?;
        let rows = sqlx::query(&sql(
            "SELECT id, photo FROM attempts WHERE outcome = ? AND time < ? AND photo IS NOT NULL \
             ORDER BY id LIMIT ?",
        ))
        .bind(outcome.as_str())
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let mut paths = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            paths.push(row.try_get::<String, _>("photo")?);
            sqlx::query(&sql("UPDATE attempts SET photo = NULL WHERE id = ?"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(paths)
    }

    // ------------------------------------------------------------------ settings

    pub(crate) async fn setting(&self, door_id: &str, name: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(&sql(
            "SELECT value FROM settings WHERE door_id = ? AND name = ?",
        ))
        .bind(door_id)
        .bind(name)
        .fetch_optional(&self.read)
        .await?)
    }

    /// Every setting of `door_id` whose name starts with `prefix`, by name.
    pub(crate) async fn settings_with_prefix(
        &self,
        door_id: &str,
        prefix: &str,
    ) -> Result<Vec<(String, String)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(&sql(
            "SELECT name, value FROM settings WHERE door_id = ? AND name LIKE ? ORDER BY name",
        ))
        .bind(door_id)
        .bind(format!("{}%", prefix.replace(['%', '_', '\\'], "")))
        .fetch_all(&self.read)
        .await?;
        // LIKE ignores case in MySQL's collation: keep the exact prefix only.
        Ok(rows.into_iter().filter(|(n, _)| n.starts_with(prefix)).collect())
    }

    pub(crate) async fn delete_setting(&self, door_id: &str, name: &str) -> Result<()> {
        sqlx::query(&sql("DELETE FROM settings WHERE door_id = ? AND name = ?"))
            .bind(door_id)
            .bind(name)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    pub(crate) async fn set_setting(&self, door_id: &str, name: &str, value: &str) -> Result<()> {
        sqlx::query(&sql(UPSERT_SETTING))
            .bind(door_id)
            .bind(name)
            .bind(value)
            .bind(Utc::now())
            .execute(&self.write)
            .await?;
        Ok(())
    }

    // ------------------------------------------------------------------ outbox

    /// Locks the door's head row for the rest of the transaction (creating it if needed) and returns
    /// the id of the newest entry. Every enqueue takes this lock first, so entries of one door commit in
    /// id order and a sink can never ack past an id that is still to appear.
    async fn lock_head(conn: &mut Conn, door_id: &str) -> Result<i64> {
        for _ in 0..3 {
            let r = sqlx::query(&sql(
                "UPDATE outbox_heads SET seq = seq + 1 WHERE door_id = ?",
            ))
            .bind(door_id)
            .execute(&mut *conn)
            .await?;
            if r.rows_affected() == 0 {
                let inserted = sqlx::query(&sql(
                    "INSERT INTO outbox_heads (door_id, seq, last_id) VALUES (?, 0, 0)",
                ))
                .bind(door_id)
                .execute(&mut *conn)
                .await
                .map_err(Error::from);
                match inserted {
                    Ok(_) => continue,
                    Err(e) if e.unique_violation() => continue,
                    Err(e) => return Err(e),
                }
            }
            let last: i64 =
                sqlx::query_scalar(&sql("SELECT last_id FROM outbox_heads WHERE door_id = ?"))
                    .bind(door_id)
                    .fetch_one(&mut *conn)
                    .await?;
            return Ok(last);
        }
        Err(Error::Conflict(format!(
            "outbox head of door {door_id:?} (retry)"
        )))
    }

    async fn enqueue_in(
        conn: &mut Conn,
        door_id: &str,
        time: DateTime<Utc>,
        event: &Event,
    ) -> Result<i64> {
        let json = serde_json::to_string(event).map_err(|e| Error::Invalid(e.to_string()))?;
        Self::lock_head(conn, door_id).await?;
        let s = ins("INSERT INTO outbox (door_id, time, event) VALUES (?, ?, ?)");
        let id = insert_id(
            sqlx::query(&s).bind(door_id).bind(time).bind(json),
            &mut *conn,
        )
        .await?;
        sqlx::query(&sql(
            "UPDATE outbox_heads SET last_id = ? WHERE door_id = ?",
        ))
        .bind(id)
        .bind(door_id)
        .execute(&mut *conn)
        .await?;
        Ok(id)
    }

    pub(crate) async fn enqueue_event(
        &self,
        door_id: &str,
        time: DateTime<Utc>,
        event: &Event,
    ) -> Result<i64> {
        let mut tx = begin(&self.write).await?;
        let id = Self::enqueue_in(&mut tx, door_id, time, event).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub(crate) async fn outbox_register_sink(&self, door_id: &str, sink: &str) -> Result<()> {
        let mut tx = begin(&self.write).await?;
        let exists: Option<i64> = sqlx::query_scalar(&sql(
            "SELECT acked_id FROM outbox_sinks WHERE door_id = ? AND sink = ?",
        ))
        .bind(door_id)
        .bind(sink)
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_none() {
            let last = Self::lock_head(&mut tx, door_id).await?;
            let r = sqlx::query(&sql(
                "INSERT INTO outbox_sinks (door_id, sink, acked_id) VALUES (?, ?, ?)",
            ))
            .bind(door_id)
            .bind(sink)
            .bind(last)
            .execute(&mut *tx)
            .await
            .map_err(Error::from);
            match r {
                Ok(_) => {}
                // Registered concurrently by another process: its cursor stands.
                Err(e) if e.unique_violation() => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn sink_cursor(&self, door_id: &str, sink: &str) -> Result<i64> {
        let cursor: Option<i64> = sqlx::query_scalar(&sql(
            "SELECT acked_id FROM outbox_sinks WHERE door_id = ? AND sink = ?",
        ))
        .bind(door_id)
        .bind(sink)
        .fetch_optional(&self.read)
        .await?;
        cursor.ok_or_else(|| Error::NotFound(format!("outbox sink {sink:?} of door {door_id:?}")))
    }

    pub(crate) async fn outbox_pending(
        &self,
        door_id: &str,
        sink: &str,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>> {
        let cursor = self.sink_cursor(door_id, sink).await?;
        let rows = sqlx::query(&sql(
            "SELECT id, time, door_id, event FROM outbox WHERE door_id = ? AND id > ? \
             ORDER BY id LIMIT ?",
        ))
        .bind(door_id)
        .bind(cursor)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(outbox_from_row).collect()
    }

    pub(crate) async fn outbox_ack(&self, door_id: &str, sink: &str, up_to_id: i64) -> Result<()> {
        sqlx::query(&sql(
            "UPDATE outbox_sinks SET acked_id = ? WHERE door_id = ? AND sink = ? AND acked_id < ?",
        ))
        .bind(up_to_id)
        .bind(door_id)
        .bind(sink)
        .bind(up_to_id)
        .execute(&self.write)
        .await?;
        // Cursors only move forward; a missing sink is an error rather than a silent no-op.
        self.sink_cursor(door_id, sink).await.map(|_| ())
    }

    pub(crate) async fn outbox_stats(&self, door_id: &str) -> Result<Vec<SinkStats>> {
        let sinks = sqlx::query(&sql(
            "SELECT sink, acked_id FROM outbox_sinks WHERE door_id = ? ORDER BY sink",
        ))
        .bind(door_id)
        .fetch_all(&self.read)
        .await?;
        let mut out = Vec::with_capacity(sinks.len());
        for row in &sinks {
            let sink: String = row.try_get("sink")?;
            let acked_id: i64 = row.try_get("acked_id")?;
            let pending: i64 = sqlx::query_scalar(&sql(
                "SELECT COUNT(*) FROM outbox WHERE door_id = ? AND id > ?",
            ))
            .bind(door_id)
            .bind(acked_id)
            .fetch_one(&self.read)
            .await?;
            let oldest_pending: Option<DateTime<Utc>> = sqlx::query_scalar(&sql(
                "SELECT time FROM outbox WHERE door_id = ? AND id > ? ORDER BY id LIMIT 1",
            ))
            .bind(door_id)
            .bind(acked_id)
            .fetch_optional(&self.read)
            .await?;
            out.push(SinkStats {
                sink,
                acked_id,
                pending: u64::try_from(pending).unwrap_or(0),
                oldest_pending,
            });
        }
        Ok(out)
    }

    // ------------------------------------------------------------------ audit trail

    /// The entry and its `audit` event in one transaction: a change is in the trail and on its way to
    /// the sinks, or neither.
    pub(crate) async fn record_audit(&self, a: &NewAudit) -> Result<AuditEntry> {
        let mut tx = begin(&self.write).await?;
        let s = ins(
            "INSERT INTO audit (time, door_id, actor, via, origin, action, target, detail) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        );
        let id = insert_id(
            sqlx::query(&s)
                .bind(a.time)
                .bind(&a.door_id)
                .bind(&a.actor)
                .bind(a.via.as_str())
                .bind(&a.origin)
                .bind(&a.action)
                .bind(&a.target)
                .bind(&a.detail),
            &mut tx,
        )
        .await?;
        let entry = a.stored(id);
        let event = Event::Audit {
            door_id: a.door_id.clone(),
            entry: entry.clone(),
        };
        Self::enqueue_in(&mut tx, &a.door_id, a.time, &event).await?;
        tx.commit().await?;
        Ok(entry)
    }

    pub(crate) async fn audit_entries(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let mut qb = QueryBuilder::<Db>::new(
            "SELECT id, time, door_id, actor, via, origin, action, target, detail FROM audit WHERE 1 = 1",
        );
        if let Some(before) = q.before_id {
            qb.push(" AND id < ").push_bind(before);
        }
        push_audit_filters(&mut qb, q);
        qb.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(q.limit.clamp(1, crate::MAX_PAGE)));
        let rows = qb.build().fetch_all(&self.read).await?;
        rows.iter().map(audit_from_row).collect()
    }

    /// How many entries the query's filters match (its cursor and page size aside).
    pub(crate) async fn count_audit(&self, q: &AuditQuery) -> Result<i64> {
        let mut qb = QueryBuilder::<Db>::new("SELECT COUNT(*) FROM audit WHERE 1 = 1");
        push_audit_filters(&mut qb, q);
        Ok(qb.build_query_scalar().fetch_one(&self.read).await?)
    }

    pub(crate) async fn outbox_prune(&self, older_than: DateTime<Utc>) -> Result<u64> {
        let r = sqlx::query(&sql(
            "DELETE FROM outbox WHERE time < ? AND id <= COALESCE((SELECT MIN(s.acked_id) \
             FROM outbox_sinks s WHERE s.door_id = outbox.door_id), id)",
        ))
        .bind(older_than)
        .execute(&self.write)
        .await?;
        Ok(r.rows_affected())
    }

    // ------------------------------------------------------------------ accounts

    pub(crate) async fn add_account(&self, a: &NewAccount, now: DateTime<Utc>) -> Result<i64> {
        let mut conn = self.write.acquire().await?;
        let s = ins(
            "INSERT INTO accounts (username, password_hash, role, person_id, card_uid, failed_logins, \
             must_change_password, created) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
        );
        let q = sqlx::query(&s)
            .bind(&a.username)
            .bind(&a.password_hash)
            .bind(a.role.as_str())
            .bind(a.person_id.map(|p| p.0))
            .bind(a.card_uid.as_ref().map(|u| u.as_bytes()))
            .bind(a.must_change_password)
            .bind(now);
        match insert_id(q, &mut conn).await {
            Err(e) if e.unique_violation() => {
                Err(Error::Conflict(format!("account {:?}", a.username)))
            }
            Err(e) if e.foreign_key_violation() => Err(Error::NotFound(format!(
                "person {}",
                a.person_id.map_or(0, |p| p.0)
            ))),
            r => r,
        }
    }

    pub(crate) async fn account(&self, id: i64) -> Result<Option<Account>> {
        let mut qb = QueryBuilder::<Db>::new("SELECT ");
        qb.push(ACCOUNT_COLUMNS)
            .push(" FROM accounts WHERE id = ")
            .push_bind(id);
        let row = qb.build().fetch_optional(&self.read).await?;
        row.as_ref().map(account_from_row).transpose()
    }

    pub(crate) async fn account_by_username(&self, username: &str) -> Result<Option<Account>> {
        let mut qb = QueryBuilder::<Db>::new("SELECT ");
        qb.push(ACCOUNT_COLUMNS)
            .push(" FROM accounts WHERE username = ")
            .push_bind(username.to_string());
        let row = qb.build().fetch_optional(&self.read).await?;
        let account = row.as_ref().map(account_from_row).transpose()?;
        Ok(account.filter(|a| a.username == username))
    }

    pub(crate) async fn list_accounts(&self) -> Result<Vec<Account>> {
        let mut qb = QueryBuilder::<Db>::new("SELECT ");
        qb.push(ACCOUNT_COLUMNS)
            .push(" FROM accounts ORDER BY username");
        let rows = qb.build().fetch_all(&self.read).await?;
        rows.iter().map(account_from_row).collect()
    }

    pub(crate) async fn update_account(&self, id: i64, u: &AccountUpdate) -> Result<()> {
        let mut qb = QueryBuilder::<Db>::new("UPDATE accounts SET id = id");
        if let Some(h) = &u.password_hash {
            qb.push(", password_hash = ").push_bind(h.clone());
        }
        if let Some(r) = u.role {
            qb.push(", role = ").push_bind(r.as_str());
        }
        if let Some(p) = u.person_id {
            qb.push(", person_id = ").push_bind(p.map(|p| p.0));
        }
        if let Some(c) = &u.card_uid {
            qb.push(", card_uid = ")
                .push_bind(c.as_ref().map(|c| c.as_bytes().to_vec()));
        }
        if let Some(m) = u.must_change_password {
            qb.push(", must_change_password = ").push_bind(m);
        }
        qb.push(" WHERE id = ").push_bind(id);
        qb.build().execute(&self.write).await?;
        if self.account(id).await?.is_none() {
            return Err(Error::NotFound(format!("account {id}")));
        }
        Ok(())
    }

    pub(crate) async fn delete_account(&self, id: i64) -> Result<()> {
        let r = sqlx::query(&sql("DELETE FROM accounts WHERE id = ?"))
            .bind(id)
            .execute(&self.write)
            .await?;
        if r.rows_affected() == 0 {
            return Err(Error::NotFound(format!("account {id}")));
        }
        Ok(())
    }

    /// Counts a failed login; from `lock_after` failures on, locks the account until `lock_until`.
    /// Returns the new failure count.
    pub(crate) async fn record_login_failure(
        &self,
        id: i64,
        lock_after: u32,
        lock_until: DateTime<Utc>,
    ) -> Result<i64> {
        let mut tx = begin(&self.write).await?;
        sqlx::query(&sql(
            "UPDATE accounts SET failed_logins = failed_logins + 1 WHERE id = ?",
        ))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let failures: Option<i64> =
            sqlx::query_scalar(&sql("SELECT failed_logins FROM accounts WHERE id = ?"))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(failures) = failures else {
            return Err(Error::NotFound(format!("account {id}")));
        };
        if failures >= i64::from(lock_after) {
            sqlx::query(&sql("UPDATE accounts SET locked_until = ? WHERE id = ?"))
                .bind(lock_until)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(failures)
    }

    pub(crate) async fn record_login_success(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(&sql(
            "UPDATE accounts SET failed_logins = 0, locked_until = NULL, last_login = ? WHERE id = ?",
        ))
        .bind(now)
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    pub(crate) async fn clear_lockout(&self, id: i64) -> Result<()> {
        sqlx::query(&sql(
            "UPDATE accounts SET failed_logins = 0, locked_until = NULL WHERE id = ?",
        ))
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    pub(crate) async fn create_session(
        &self,
        account_id: i64,
        token_hash: &[u8],
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<()> {
        let r = sqlx::query(&sql(
            "INSERT INTO sessions (token_hash, account_id, created, expires) VALUES (?, ?, ?, ?)",
        ))
        .bind(token_hash)
        .bind(account_id)
        .bind(now)
        .bind(expires)
        .execute(&self.write)
        .await
        .map_err(Error::from);
        match r {
            Err(e) if e.foreign_key_violation() => {
                Err(Error::NotFound(format!("account {account_id}")))
            }
            r => r.map(|_| ()),
        }
    }

    pub(crate) async fn session(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<(Session, Account)>> {
        let row = sqlx::query(&sql(
            "SELECT account_id, created, expires FROM sessions WHERE token_hash = ? AND expires > ?",
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let session = Session {
            account_id: row.try_get("account_id")?,
            created: row.try_get("created")?,
            expires: row.try_get("expires")?,
        };
        Ok(self
            .account(session.account_id)
            .await?
            .map(|a| (session, a)))
    }

    pub(crate) async fn delete_session(&self, token_hash: &[u8]) -> Result<()> {
        sqlx::query(&sql("DELETE FROM sessions WHERE token_hash = ?"))
            .bind(token_hash)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    pub(crate) async fn delete_sessions_of(&self, account_id: i64) -> Result<u64> {
        let r = sqlx::query(&sql("DELETE FROM sessions WHERE account_id = ?"))
            .bind(account_id)
            .execute(&self.write)
            .await?;
        Ok(r.rows_affected())
    }

    pub(crate) async fn delete_other_sessions_of(
        &self,
        account_id: i64,
        keep_hash: &[u8],
    ) -> Result<u64> {
        let r = sqlx::query(&sql(
            "DELETE FROM sessions WHERE account_id = ? AND token_hash <> ?",
        ))
        .bind(account_id)
        .bind(keep_hash)
        .execute(&self.write)
        .await?;
        Ok(r.rows_affected())
    }

    pub(crate) async fn purge_sessions(&self, now: DateTime<Utc>) -> Result<u64> {
        let r = sqlx::query(&sql("DELETE FROM sessions WHERE expires <= ?"))
            .bind(now)
            .execute(&self.write)
            .await?;
        Ok(r.rows_affected())
    }

    pub(crate) async fn add_api_token(
        &self,
        account_id: i64,
        name: &str,
        token_hash: &[u8],
        now: DateTime<Utc>,
        expires: Option<DateTime<Utc>>,
    ) -> Result<i64> {
        let mut conn = self.write.acquire().await?;
        let s = ins(
            "INSERT INTO api_tokens (account_id, name, token_hash, created, expires) VALUES (?, ?, ?, ?, ?)",
        );
        let q = sqlx::query(&s)
            .bind(account_id)
            .bind(name)
            .bind(token_hash)
            .bind(now)
            .bind(expires);
        match insert_id(q, &mut conn).await {
            Err(e) if e.foreign_key_violation() => {
                Err(Error::NotFound(format!("account {account_id}")))
            }
            r => r,
        }
    }

    fn api_token_from_row(row: &DbRow) -> Result<ApiToken> {
        Ok(ApiToken {
            id: row.try_get("id")?,
            account_id: row.try_get("account_id")?,
            name: row.try_get("name")?,
            created: row.try_get("created")?,
            expires: row.try_get("expires")?,
            last_used: row.try_get("last_used")?,
        })
    }

    pub(crate) async fn api_token(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<(ApiToken, Account)>> {
        let row = sqlx::query(&sql(
            "SELECT id, account_id, name, created, expires, last_used FROM api_tokens \
             WHERE token_hash = ? AND (expires IS NULL OR expires > ?)",
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut token = Self::api_token_from_row(&row)?;
        sqlx::query(&sql("UPDATE api_tokens SET last_used = ? WHERE id = ?"))
            .bind(now)
            .bind(token.id)
            .execute(&self.write)
            .await?;
        token.last_used = Some(now);
        Ok(self.account(token.account_id).await?.map(|a| (token, a)))
    }

    pub(crate) async fn api_tokens(&self, account_id: Option<i64>) -> Result<Vec<ApiToken>> {
        let mut qb = QueryBuilder::<Db>::new(
            "SELECT id, account_id, name, created, expires, last_used FROM api_tokens",
        );
        if let Some(a) = account_id {
            qb.push(" WHERE account_id = ").push_bind(a);
        }
        qb.push(" ORDER BY id");
        let rows = qb.build().fetch_all(&self.read).await?;
        rows.iter().map(Self::api_token_from_row).collect()
    }

    pub(crate) async fn revoke_api_token(&self, id: i64) -> Result<()> {
        let r = sqlx::query(&sql("DELETE FROM api_tokens WHERE id = ?"))
            .bind(id)
            .execute(&self.write)
            .await?;
        if r.rows_affected() == 0 {
            return Err(Error::NotFound(format!("API token {id}")));
        }
        Ok(())
    }

    pub(crate) async fn add_invitation(
        &self,
        person_id: i64,
        code_hash: &[u8],
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<i64> {
        let mut conn = self.write.acquire().await?;
        let s = ins(
            "INSERT INTO invitations (code_hash, person_id, created, expires) VALUES (?, ?, ?, ?)",
        );
        let q = sqlx::query(&s)
            .bind(code_hash)
            .bind(person_id)
            .bind(now)
            .bind(expires);
        match insert_id(q, &mut conn).await {
            Err(e) if e.foreign_key_violation() => Err(Error::NotFound(format!("person {person_id}"))),
            r => r,
        }
    }

    fn invitation_from_row(row: &DbRow) -> Result<Invitation> {
        Ok(Invitation {
            id: row.try_get("id")?,
            person_id: row.try_get("person_id")?,
            created: row.try_get("created")?,
            expires: row.try_get("expires")?,
            used: row.try_get("used")?,
        })
    }

    pub(crate) async fn invitation(
        &self,
        code_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<Invitation>> {
        let row = sqlx::query(&sql(
            "SELECT id, person_id, created, expires, used FROM invitations \
             WHERE code_hash = ? AND used IS NULL AND expires > ?",
        ))
        .bind(code_hash)
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(Self::invitation_from_row).transpose()
    }

    pub(crate) async fn pending_invitations(&self, now: DateTime<Utc>) -> Result<Vec<Invitation>> {
        let rows = sqlx::query(&sql(
            "SELECT id, person_id, created, expires, used FROM invitations \
             WHERE used IS NULL AND expires > ? ORDER BY id",
        ))
        .bind(now)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(Self::invitation_from_row).collect()
    }

    pub(crate) async fn use_invitation(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let r = sqlx::query(&sql(
            "UPDATE invitations SET used = ? WHERE id = ? AND used IS NULL AND expires > ?",
        ))
        .bind(now)
        .bind(id)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub(crate) async fn revoke_invitation(&self, id: i64) -> Result<()> {
        let r = sqlx::query(&sql("DELETE FROM invitations WHERE id = ?"))
            .bind(id)
            .execute(&self.write)
            .await?;
        if r.rows_affected() == 0 {
            return Err(Error::NotFound(format!("invitation {id}")));
        }
        Ok(())
    }
}
