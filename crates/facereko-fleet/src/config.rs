//! The `[fleet]` config section.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// `[fleet]`: how a door of a site keeps its local copy of the central directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetConfig {
    /// Keep a local replica of people, cards, schedules and face embeddings and decide from it: `auto`
    /// (on when `store.database_url` names a MySQL/MariaDB or PostgreSQL server), `on`, `off`.
    pub replica: ReplicaChoice,
    /// How often the door asks the central database whether anything changed, in seconds, besides the
    /// MQTT change signal (which makes it ask at once).
    pub poll_secs: u64,
    /// How old the replica may get (since the central database last confirmed it current) before
    /// `when_stale` applies: a number with `s`, `m`, `h` or `d` (`"90s"`, `"15m"`, `"1h"`, `"2d"`).
    pub max_staleness: Staleness,
    /// What a door with a replica older than `max_staleness` does: `alarm` (keep deciding, raise an
    /// alarm event), `card_only` (a known card opens on its own; faces alone open nothing), `deny`
    /// (refuse every tap).
    pub when_stale: WhenStale,
    /// Copy every enrolment photo into the central database too, so every door's web app can show it
    /// (the replicas never take photos, only embeddings). Off: a photo stays in the data directory of
    /// the door or web app that took it.
    pub share_photos: bool,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            replica: ReplicaChoice::Auto,
            poll_secs: 30,
            max_staleness: Staleness(Duration::from_secs(3600)),
            when_stale: WhenStale::Alarm,
            share_photos: false,
        }
    }
}

impl FleetConfig {
    /// Checks values serde cannot.
    pub fn validate(&self) -> Result<()> {
        if self.poll_secs == 0 || self.poll_secs > 86_400 {
            return Err(Error::Config {
                key: "fleet.poll_secs".into(),
                reason: "must be 1 to 86400 seconds".into(),
            });
        }
        if self.max_staleness.0 < Duration::from_secs(self.poll_secs) {
            return Err(Error::Config {
                key: "fleet.max_staleness".into(),
                reason: format!(
                    "{} is shorter than fleet.poll_secs ({} s): every replica would count as stale",
                    self.max_staleness, self.poll_secs
                ),
            });
        }
        Ok(())
    }

    /// Whether a door with this database keeps a replica.
    pub fn replica_for(&self, backend: facereko_store::Backend) -> bool {
        match self.replica {
            ReplicaChoice::Auto => backend != facereko_store::Backend::Sqlite,
            ReplicaChoice::On => true,
            ReplicaChoice::Off => false,
        }
    }

    pub fn poll(&self) -> Duration {
        Duration::from_secs(self.poll_secs)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaChoice {
    Auto,
    On,
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenStale {
    Alarm,
    CardOnly,
    Deny,
}

impl fmt::Display for WhenStale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WhenStale::Alarm => "alarm",
            WhenStale::CardOnly => "card_only",
            WhenStale::Deny => "deny",
        })
    }
}

/// A duration written with its unit (`"90s"`, `"15m"`, `"1h"`, `"2d"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Staleness(pub Duration);

impl fmt::Display for Staleness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&human(self.0))
    }
}

/// `3600 s` as `1h`, `90 s` as `90s`: the largest unit that divides it.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    for (unit, secs) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if s >= secs && s.is_multiple_of(secs) {
            return format!("{}{unit}", s / secs);
        }
    }
    format!("{s}s")
}

impl std::str::FromStr for Staleness {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| {
            format!("{s:?} has no unit: write it like \"90s\", \"15m\", \"1h\" or \"2d\"")
        })?;
        let (n, unit) = s.split_at(split);
        let n: u64 = n
            .parse()
            .map_err(|_| format!("{s:?} is not a number with a unit like \"15m\""))?;
        let secs = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(format!("{s:?}: the unit is one of s, m, h, d")),
        };
        let total = n
            .checked_mul(secs)
            .filter(|&t| t > 0 && t <= 366 * 86_400)
            .ok_or_else(|| format!("{s:?} must be more than 0 and at most 366d"))?;
        Ok(Staleness(Duration::from_secs(total)))
    }
}

impl Serialize for Staleness {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Staleness {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staleness_is_written_with_its_unit_and_bad_values_say_why() {
        assert_eq!(
            "90s".parse::<Staleness>().unwrap().0,
            Duration::from_secs(90)
        );
        assert_eq!(
            "15m".parse::<Staleness>().unwrap().0,
            Duration::from_secs(900)
        );
        assert_eq!(
            " 1h".parse::<Staleness>().unwrap().0,
            Duration::from_secs(3600)
        );
        assert_eq!(
            "2d".parse::<Staleness>().unwrap().0,
            Duration::from_secs(172_800)
        );
        assert_eq!("1h".parse::<Staleness>().unwrap().to_string(), "1h");
        assert_eq!(Staleness(Duration::from_secs(5400)).to_string(), "90m");
        assert!("3600".parse::<Staleness>().unwrap_err().contains("no unit"));
        assert!("1w"
            .parse::<Staleness>()
            .unwrap_err()
            .contains("one of s, m, h, d"));
        assert!("0s"
            .parse::<Staleness>()
            .unwrap_err()
            .contains("more than 0"));
        assert!("99999999999999999999s".parse::<Staleness>().is_err());
        assert!("400d".parse::<Staleness>().is_err());
    }

    #[test]
    fn the_replica_is_on_by_default_for_a_server_only_and_checks_its_numbers() {
        let c = FleetConfig::default();
        assert!(!c.replica_for(facereko_store::Backend::Sqlite));
        assert!(c.replica_for(facereko_store::Backend::Postgres));
        assert!(c.replica_for(facereko_store::Backend::MySql));
        c.validate().unwrap();
        let bad = FleetConfig {
            poll_secs: 0,
            ..FleetConfig::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("fleet.poll_secs"));
        let bad = FleetConfig {
            max_staleness: Staleness(Duration::from_secs(10)),
            ..FleetConfig::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("fleet.max_staleness"));
    }
}
