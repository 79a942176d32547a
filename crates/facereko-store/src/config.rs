//! The `[store]` config section.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use facereko_domain::Outcome;
use serde::{Deserialize, Serialize};

use crate::{redact_url, Error, Result, Store};

/// `[store]`: where the data lives and how long photos are kept.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH`, `mysql://USER:PASS@HOST/DB` or `postgres://USER:PASS@HOST/DB`; empty: SQLite in
    /// the data directory (`<data_dir>/facereko.db`).
    pub database_url: String,
    /// Connections per door for MySQL/PostgreSQL.
    pub max_connections: u32,
    /// With MySQL/PostgreSQL: keep attempts in a local SQLite spool while the server is unreachable and
    /// replay them when it is back.
    pub spool: bool,
    pub retention: RetentionPolicy,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            database_url: String::new(),
            max_connections: 5,
            spool: true,
            retention: RetentionPolicy::default(),
        }
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("database_url", &redact_url(&self.database_url))
            .field("max_connections", &self.max_connections)
            .field("spool", &self.spool)
            .field("retention", &self.retention)
            .finish()
    }
}

impl StoreConfig {
    pub fn validate(&self) -> Result<()> {
        let url = self.database_url.trim();
        if !url.is_empty() && crate::backend_of(url).is_none() {
            return Err(Error::Invalid(format!(
                "store.database_url: {:?} is not sqlite://…, mysql://… or postgres://…",
                redact_url(url)
            )));
        }
        if self.max_connections == 0 {
            return Err(Error::Invalid(
                "store.max_connections: must be at least 1".into(),
            ));
        }
        self.retention.validate()
    }

    /// The URL to open: the configured one, or SQLite in `data_dir`.
    pub fn url(&self, data_dir: &Path) -> String {
        let url = self.database_url.trim();
        if url.is_empty() {
            Store::default_url(data_dir)
        } else {
            url.to_string()
        }
    }
}

/// How long attempt photos are kept. The rows stay; only the photo goes (its column becomes `NULL`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Days to keep an attempt's photo; 0 keeps photos forever.
    pub photo_days: u32,
    /// Per-outcome overrides, e.g. `granted = 30`, `face_mismatch = 365` (0 = forever).
    pub outcomes: HashMap<Outcome, u32>,
    /// Hours between automatic purges (the daemon's daily task); 0 disables it.
    pub every_hours: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            photo_days: 90,
            outcomes: HashMap::new(),
            every_hours: 24,
        }
    }
}

impl RetentionPolicy {
    pub fn validate(&self) -> Result<()> {
        let max = 36_500;
        if self.photo_days > max {
            return Err(Error::Invalid(format!(
                "store.retention.photo_days: {} is more than {max}",
                self.photo_days
            )));
        }
        if let Some((o, d)) = self.outcomes.iter().find(|(_, d)| **d > max) {
            return Err(Error::Invalid(format!(
                "store.retention.outcomes.{o}: {d} is more than {max}"
            )));
        }
        Ok(())
    }

    /// Days to keep photos of `outcome`; `None` = forever.
    pub fn days_for(&self, outcome: Outcome) -> Option<u32> {
        let d = self
            .outcomes
            .get(&outcome)
            .copied()
            .unwrap_or(self.photo_days);
        (d > 0).then_some(d)
    }

    /// Photos of `outcome` taken before this instant are due for deletion.
    pub fn cutoff(&self, outcome: Outcome, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.days_for(outcome)
            .map(|d| now - Duration::days(i64::from(d)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_overrides_win() {
        let c = StoreConfig::default();
        c.validate().unwrap();
        assert_eq!(c.retention.days_for(Outcome::Granted), Some(90));
        let c: StoreConfig = toml::from_str(
            r#"
            database_url = "mysql://door:hunter2@db/FaceReko"
            [retention]
            photo_days = 0
            outcomes = { granted = 30, face_mismatch = 365 }
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.retention.days_for(Outcome::Granted), Some(30));
        assert_eq!(c.retention.days_for(Outcome::NoFace), None, "0 = forever");
        assert!(!format!("{c:?}").contains("hunter2"), "password in Debug");
        let bad = StoreConfig {
            database_url: "oracle://x".into(),
            ..StoreConfig::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("store.database_url"));
        assert!(
            toml::from_str::<StoreConfig>("colour = 1").is_err(),
            "unknown key"
        );
        assert!(
            toml::from_str::<StoreConfig>("[retention.outcomes]\nopened = 3").is_err(),
            "unknown outcome"
        );
    }
}
