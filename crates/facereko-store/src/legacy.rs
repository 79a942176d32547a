//! Import from the original FaceReko's MySQL database (`facereko import-legacy mysql://…/FaceReko`).
//!
//! The original schema: `AccessLog(ID, Name, Time, Similarity, Confidence, Image)` — successes only — and
//! `Login(Username varchar(30), Password varchar(30), cardUID)` with plaintext passwords.
//!
//! What the import corrects on the way in:
//! - **Swapped scores**: the original wrote Rekognition's face-detection confidence into `Similarity` and
//!   the match similarity into `Confidence`. `AccessLog.Confidence` becomes our `similarity`,
//!   `AccessLog.Similarity` our `confidence`.
//! - **Plaintext passwords** are hashed with Argon2id; the accounts are flagged `must_change_password`
//!   and listed in the report as users to tell to rotate (the old table leaked them).
//! - **Card UIDs** were the bytes joined as decimal digits (`[4, 162, 43, 25]` → `"41624325"`), which is
//!   ambiguous in general. A UID is taken only when exactly one split into 4 bytes (or 4 bytes plus the
//!   MFRC522 check byte) exists; the others are reported, not guessed.
//! - `Time` was the Pi's local wall-clock time: it is read in this machine's time zone and stored in UTC.
//!
//! Re-running is safe: each `AccessLog` row gets a uuid derived from the source database and its `ID`,
//! so an imported row is recognised and skipped; existing usernames are skipped. Imported attempts do not
//! go to the notifier outbox (history must not page anyone).

// Without the MySQL backend only the decoding helpers remain (and `import_legacy` says why it cannot run).
#![cfg_attr(not(feature = "mysql"), allow(dead_code, unused_imports))]

use std::path::Path;

use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};
use facereko_domain::{CardUid, NewAttempt, Outcome, Photo, StageTimings};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{hash_password, redact_url, validate_username, Error, NewAccount, Result, Role, Store};

/// The door id imported attempts are filed under.
pub const LEGACY_DOOR_ID: &str = "legacy";

/// What [`import_legacy`] did, for the operator.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// Accounts created from `Login`.
    pub accounts_imported: Vec<String>,
    /// Tell these users their password was stored in plaintext and must be changed (they must change it
    /// at their next login).
    pub users_to_rotate: Vec<String>,
    /// `(username, reason)` for `Login` rows not imported.
    pub accounts_skipped: Vec<(String, String)>,
    /// `(username, raw cardUID)` whose card could not be decoded unambiguously; link those cards by hand.
    pub cards_unresolved: Vec<(String, String)>,
    pub attempts_imported: u64,
    /// Rows imported by an earlier run.
    pub attempts_already_present: u64,
    /// `(ID, reason)` for `AccessLog` rows not imported.
    pub attempts_skipped: Vec<(i64, String)>,
    pub photos_copied: u64,
    /// `AccessLog.Image` names not found (or not JPEG/PNG) in the photo folder.
    pub photos_missing: Vec<String>,
}

/// Imports the original's `Login` and `AccessLog` tables from `mysql_url` into `store`, copying photos
/// from `photos_from` (the original's `static/images` folder) when given.
pub async fn import_legacy(
    store: &Store,
    mysql_url: &str,
    photos_from: Option<&Path>,
) -> Result<ImportReport> {
    #[cfg(feature = "mysql")]
    {
        mysql_import::run(store, mysql_url, photos_from).await
    }
    #[cfg(not(feature = "mysql"))]
    {
        let _ = (store, photos_from);
        Err(Error::BackendNotCompiled {
            url: redact_url(mysql_url),
            backend: "MySQL",
            feature: "mysql",
        })
    }
}

/// Decodes the original's `cardUID` text: upper/lower hex with separators as today, or the original's
/// decimal-joined bytes when exactly one reading exists.
pub fn decode_legacy_card_uid(raw: &str) -> std::result::Result<CardUid, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("empty".into());
    }
    if raw.contains([':', '-', ' ']) {
        return raw.parse::<CardUid>().map_err(|e| e.to_string());
    }
    if !raw.chars().all(|c| c.is_ascii_digit()) {
        return raw.parse::<CardUid>().map_err(|e| e.to_string());
    }
    let mut readings: Vec<Vec<u8>> = Vec::new();
    // The original's reader code read four UID bytes (longer UIDs were cut), sometimes with the check byte.
    for n in [4usize, 5] {
        let mut found = Vec::new();
        splits(raw.as_bytes(), n, &mut Vec::new(), &mut found);
        for bytes in found {
            let uid = if n == 5 {
                // Four UID bytes and the anticollision check byte (their XOR).
                let bcc = bytes[..4].iter().fold(0u8, |a, b| a ^ b);
                if bytes[4] != bcc {
                    continue;
                }
                bytes[..4].to_vec()
            } else {
                bytes
            };
            if !readings.contains(&uid) {
                readings.push(uid);
            }
        }
    }
    match readings.as_slice() {
        [one] => CardUid::from_bytes(one).map_err(|e| e.to_string()),
        [] => Err("no reading as 4 decimal bytes".into()),
        many => Err(format!("ambiguous: {} possible UIDs", many.len())),
    }
}

/// Every way to cut `digits` into `n` decimal bytes (0–255, no leading zeros).
fn splits(digits: &[u8], n: usize, current: &mut Vec<u8>, out: &mut Vec<Vec<u8>>) {
    if out.len() > 64 {
        return;
    }
    if current.len() == n {
        if digits.is_empty() {
            out.push(current.clone());
        }
        return;
    }
    let left = n - current.len();
    if digits.len() < left || digits.len() > left * 3 {
        return;
    }
    for len in 1..=3.min(digits.len()) {
        let part = &digits[..len];
        if len > 1 && part[0] == b'0' {
            break;
        }
        let value: u32 = part.iter().fold(0, |a, d| a * 10 + u32::from(d - b'0'));
        if value > 255 {
            break;
        }
        current.push(value as u8);
        splits(&digits[len..], n, current, out);
        current.pop();
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let naive = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())?;
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .or_else(|| Some(naive.and_utc()))
}

fn parse_score(s: Option<String>) -> Option<f32> {
    s.and_then(|s| s.trim().parse::<f32>().ok())
        .filter(|v| v.is_finite())
}

/// A stable uuid per source row, so re-running the import finds what it already did.
fn legacy_uuid(source: &str, id: i64) -> [u8; 16] {
    let digest = Sha256::digest(format!("facereko-legacy\n{source}\n{id}").as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

fn load_photo(dir: &Path, image: &str) -> Option<Photo> {
    // Only the file name: `Image` may hold `static/images/x.jpg` and must not walk out of `dir`.
    let name = Path::new(image.trim()).file_name()?;
    let bytes = std::fs::read(dir.join(name)).ok()?;
    Photo::from_bytes(bytes)
}

#[cfg(feature = "mysql")]
mod mysql_import {
    use super::*;
    use sqlx::{Connection, Row};

    pub(super) async fn run(
        store: &Store,
        url: &str,
        photos_from: Option<&Path>,
    ) -> Result<ImportReport> {
        let mut conn = sqlx::MySqlConnection::connect(url)
            .await
            .map_err(|e| crate::connect_error(url, e))?;
        let source = redact_url(url);
        let mut report = ImportReport::default();

        let has_card = column_exists(&mut conn, "Login", "cardUID").await?;
        let login_sql = if has_card {
            "SELECT Username, Password, CAST(cardUID AS CHAR) AS cardUID FROM Login"
        } else {
            "SELECT Username, Password, NULL AS cardUID FROM Login"
        };
        let logins = sqlx::query(login_sql)
            .fetch_all(&mut conn)
            .await
            .map_err(|e| Error::Legacy(format!("reading Login: {e}")))?;
        for row in &logins {
            let username: String = text(row, "Username")?.unwrap_or_default();
            let password: String = text(row, "Password")?.unwrap_or_default();
            let card_raw: Option<String> = text(row, "cardUID")?;
            if let Err(e) = validate_username(&username) {
                report.accounts_skipped.push((username, e.to_string()));
                continue;
            }
            if password.is_empty() {
                report
                    .accounts_skipped
                    .push((username, "empty password".into()));
                continue;
            }
            if store.account_by_username(&username).await?.is_some() {
                report
                    .accounts_skipped
                    .push((username, "an account of that name exists".into()));
                continue;
            }
            let card_uid = match card_raw.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                None => None,
                Some(raw) => match decode_legacy_card_uid(raw) {
                    Ok(uid) => Some(uid),
                    Err(why) => {
                        report
                            .cards_unresolved
                            .push((username.clone(), format!("{raw} ({why})")));
                        None
                    }
                },
            };
            let account = NewAccount {
                username: username.clone(),
                password_hash: hash_password(&password),
                role: Role::Admin, // every account of the original could do everything
                person_id: None,
                card_uid,
                must_change_password: true,
            };
            match store.add_account(&account).await {
                Ok(_) => {
                    report.accounts_imported.push(username.clone());
                    report.users_to_rotate.push(username);
                }
                Err(Error::Conflict(_)) => report
                    .accounts_skipped
                    .push((username, "an account of that name exists".into())),
                Err(e) => return Err(e),
            }
        }

        let rows = sqlx::query(
            "SELECT CAST(ID AS SIGNED) AS ID, Name, CAST(Time AS CHAR) AS Time, \
             CAST(Similarity AS CHAR) AS Similarity, CAST(Confidence AS CHAR) AS Confidence, Image \
             FROM AccessLog ORDER BY ID",
        )
        .fetch_all(&mut conn)
        .await
        .map_err(|e| Error::Legacy(format!("reading AccessLog: {e}")))?;
        for row in &rows {
            let id: i64 = row
                .try_get("ID")
                .map_err(|e| Error::Legacy(format!("AccessLog.ID: {e}")))?;
            let Some(time) = text(row, "Time")?.as_deref().and_then(parse_time) else {
                report
                    .attempts_skipped
                    .push((id, "no readable Time".into()));
                continue;
            };
            let name = text(row, "Name")?
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty());
            let person = match &name {
                Some(n) => store.person_by_name(n).await?,
                None => None,
            };
            let uuid = legacy_uuid(&source, id);
            let attempt = NewAttempt {
                time,
                door_id: LEGACY_DOOR_ID.to_string(),
                card_uid: None,
                person_id: person.as_ref().map(|p| p.id),
                person_name: name,
                outcome: Outcome::Granted, // the original logged successes only
                // The original's columns were swapped: see the module note.
                similarity: parse_score(text(row, "Confidence")?),
                distance: None,
                confidence: parse_score(text(row, "Similarity")?),
                timings: StageTimings::default(),
                detail: Some(format!(
                    "imported from the original FaceReko (AccessLog.ID {id})"
                )),
            };
            let image = text(row, "Image")?.filter(|s| !s.trim().is_empty());
            let photo = match (photos_from, &image) {
                (Some(dir), Some(img)) => {
                    let p = load_photo(dir, img);
                    if p.is_none() {
                        report.photos_missing.push(img.clone());
                    }
                    p
                }
                (None, Some(img)) => {
                    report.photos_missing.push(img.clone());
                    None
                }
                _ => None,
            };
            let had_photo = photo.is_some();
            if store
                .import_attempt(&attempt, photo.as_ref(), &uuid)
                .await?
            {
                report.attempts_imported += 1;
                if had_photo {
                    report.photos_copied += 1;
                }
            } else {
                report.attempts_already_present += 1;
            }
        }
        let _ = conn.close().await;
        Ok(report)
    }

    /// A text column read whatever the original declared (VARCHAR, TEXT, or bytes).
    fn text(row: &sqlx::mysql::MySqlRow, col: &str) -> Result<Option<String>> {
        if let Ok(v) = row.try_get::<Option<String>, _>(col) {
            return Ok(v);
        }
        let bytes: Option<Vec<u8>> = row
            .try_get(col)
            .map_err(|e| Error::Legacy(format!("column {col}: {e}")))?;
        Ok(bytes.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    async fn column_exists(
        conn: &mut sqlx::MySqlConnection,
        table: &str,
        column: &str,
    ) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?",
        )
        .bind(table)
        .bind(column)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| Error::Legacy(format!("reading the schema: {e}")))?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_joined_uids_are_decoded_only_when_unambiguous() {
        // 04:A2:2B:19 joined as decimals is "41624325": several readings → refused.
        assert!(decode_legacy_card_uid("41624325")
            .unwrap_err()
            .contains("ambiguous"));
        // Three-digit bytes leave one reading.
        assert_eq!(
            decode_legacy_card_uid("200201202203").unwrap().to_string(),
            "C8:C9:CA:CB"
        );
        // With the MFRC522 check byte (XOR of the four).
        let bcc = 200u8 ^ 201 ^ 202 ^ 203;
        assert_eq!(bcc, 0);
        assert_eq!(
            decode_legacy_card_uid("2002012022030").unwrap().to_string(),
            "C8:C9:CA:CB"
        );
        assert_eq!(
            decode_legacy_card_uid("04:a2:2b:19").unwrap().to_string(),
            "04:A2:2B:19"
        );
        assert!(decode_legacy_card_uid("").is_err());
        assert!(decode_legacy_card_uid("999999999999").is_err());
    }

    #[test]
    fn legacy_times_and_scores_parse() {
        assert!(parse_time("2019-07-28 14:33:10").is_some());
        assert!(parse_time("2019-07-28 14:33:10.250000").is_some());
        assert!(parse_time("yesterday").is_none());
        assert_eq!(parse_score(Some("99.87".into())), Some(99.87));
        assert_eq!(parse_score(Some("n/a".into())), None);
        assert_ne!(legacy_uuid("a", 1), legacy_uuid("a", 2));
        assert_eq!(legacy_uuid("a", 1), legacy_uuid("a", 1));
    }
}
