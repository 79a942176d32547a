//! The web app's typed configuration section (`[web]` in `facereko.toml`).

use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How the web app listens, guards sign-ins and shows times. `Default` is the documented default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Address and port the binary serves the app on.
    pub bind: SocketAddr,
    /// Mark cookies `Secure` and send HSTS: set when the app is reached over HTTPS (a TLS reverse proxy).
    pub secure_cookies: bool,
    /// Behind a trusted reverse proxy: take the client address from the last `X-Forwarded-For` entry and
    /// the site's host name from `X-Forwarded-Host` (for the same-origin check of form posts).
    pub trust_forwarded_for: bool,
    /// A session unused for this long ends.
    pub session_idle_minutes: u32,
    /// A session ends this long after sign-in, used or not.
    pub session_absolute_hours: u32,
    /// Consecutive failed sign-ins that lock an account …
    pub login_max_failures: u32,
    /// … for this long.
    pub login_lockout_minutes: u32,
    /// Failed sign-ins from one address within `login_lockout_minutes` before that address is refused.
    pub address_max_failures: u32,
    /// Largest request body (photo uploads), in bytes.
    pub upload_limit_bytes: usize,
    /// Largest image accepted for enrolment, in pixels per side.
    pub max_image_side: u32,
    /// How long "tap now" and card-based account creation wait for a card on the reader.
    pub card_wait_seconds: u32,
    /// Time zone for showing times and reading date filters: `local` (the system's) or an IANA name such
    /// as `Europe/Berlin`.
    pub time_zone: String,
    /// How long a checked API token is trusted before it is looked up again (revocations made on another
    /// door's web app take at most this long to apply; revocations here apply at once).
    pub api_token_cache_seconds: u32,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([0, 0, 0, 0], 5000)),
            secure_cookies: false,
            trust_forwarded_for: false,
            session_idle_minutes: 60,
            session_absolute_hours: 24 * 7,
            login_max_failures: 5,
            login_lockout_minutes: 15,
            address_max_failures: 20,
            upload_limit_bytes: 10 * 1024 * 1024,
            max_image_side: 6000,
            card_wait_seconds: 15,
            time_zone: "local".into(),
            api_token_cache_seconds: 30,
        }
    }
}

impl WebConfig {
    /// Checks every value; the error names the bad key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: &str| Err(Error::Config(format!("web.{key}: {why}")));
        if self.session_idle_minutes == 0 || self.session_idle_minutes > 60 * 24 * 30 {
            return bad("session_idle_minutes", "must be between 1 and 43200");
        }
        if self.session_absolute_hours == 0 || self.session_absolute_hours > 24 * 365 {
            return bad("session_absolute_hours", "must be between 1 and 8760");
        }
        if u64::from(self.session_idle_minutes) > u64::from(self.session_absolute_hours) * 60 {
            return bad(
                "session_idle_minutes",
                "must not be longer than session_absolute_hours",
            );
        }
        if self.login_max_failures == 0 || self.login_max_failures > 100 {
            return bad("login_max_failures", "must be between 1 and 100");
        }
        if self.login_lockout_minutes == 0 || self.login_lockout_minutes > 24 * 60 {
            return bad("login_lockout_minutes", "must be between 1 and 1440");
        }
        if self.address_max_failures == 0 || self.address_max_failures > 10_000 {
            return bad("address_max_failures", "must be between 1 and 10000");
        }
        if self.upload_limit_bytes < 64 * 1024 || self.upload_limit_bytes > 100 * 1024 * 1024 {
            return bad(
                "upload_limit_bytes",
                "must be between 65536 (64 KiB) and 104857600 (100 MiB)",
            );
        }
        if self.max_image_side < 64 || self.max_image_side > 20_000 {
            return bad("max_image_side", "must be between 64 and 20000");
        }
        if self.card_wait_seconds == 0 || self.card_wait_seconds > 120 {
            return bad("card_wait_seconds", "must be between 1 and 120");
        }
        if self.api_token_cache_seconds > 3600 {
            return bad("api_token_cache_seconds", "must be at most 3600");
        }
        TimeZone::parse(&self.time_zone)
            .map_err(|why| Error::Config(format!("web.time_zone: {why}")))?;
        Ok(())
    }

    /// The parsed time zone (call [`WebConfig::validate`] first; an invalid name falls back to local).
    pub fn tz(&self) -> TimeZone {
        TimeZone::parse(&self.time_zone).unwrap_or(TimeZone::Local)
    }
}

/// Where times are shown: the system's zone or a named IANA zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeZone {
    Local,
    Named(chrono_tz::Tz),
}

impl TimeZone {
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("local") {
            return Ok(TimeZone::Local);
        }
        s.parse::<chrono_tz::Tz>()
            .map(TimeZone::Named)
            .map_err(|_| {
                format!("unknown time zone {s:?} (use `local` or a name like Europe/Berlin)")
            })
    }

    /// `2026-11-27 14:03:12` in this zone.
    pub fn format(&self, t: DateTime<Utc>, fmt: &str) -> String {
        match self {
            TimeZone::Local => t.with_timezone(&chrono::Local).format(fmt).to_string(),
            TimeZone::Named(tz) => t.with_timezone(tz).format(fmt).to_string(),
        }
    }

    /// The UTC instant of a local midnight (`date` at 00:00 in this zone); the earliest one on a DST gap.
    pub fn start_of_day(&self, date: chrono::NaiveDate) -> Option<DateTime<Utc>> {
        use chrono::TimeZone as _;
        let naive = date.and_hms_opt(0, 0, 0)?;
        match self {
            TimeZone::Local => chrono::Local
                .from_local_datetime(&naive)
                .earliest()
                .map(|t| t.with_timezone(&Utc)),
            TimeZone::Named(tz) => tz
                .from_local_datetime(&naive)
                .earliest()
                .map(|t| t.with_timezone(&Utc)),
        }
        // A zone whose midnight does not exist that day (rare DST rules) starts the day an hour later.
        .or_else(|| {
            let later = date.and_hms_opt(1, 0, 0)?;
            match self {
                TimeZone::Local => chrono::Local
                    .from_local_datetime(&later)
                    .earliest()
                    .map(|t| t.with_timezone(&Utc)),
                TimeZone::Named(tz) => tz
                    .from_local_datetime(&later)
                    .earliest()
                    .map(|t| t.with_timezone(&Utc)),
            }
        })
    }

    pub fn name(&self) -> String {
        match self {
            TimeZone::Local => "local time".into(),
            TimeZone::Named(tz) => tz.name().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_example() {
        WebConfig::default().validate().unwrap();
        let text = include_str!("../example.toml");
        let parsed: toml::Table = text.parse().unwrap();
        let web: WebConfig = parsed["web"].clone().try_into().unwrap();
        assert_eq!(web, WebConfig::default());
    }

    #[test]
    fn bad_values_name_their_key() {
        for (c, key) in [
            (
                WebConfig {
                    session_idle_minutes: 0,
                    ..WebConfig::default()
                },
                "web.session_idle_minutes",
            ),
            (
                WebConfig {
                    upload_limit_bytes: 10,
                    ..WebConfig::default()
                },
                "web.upload_limit_bytes",
            ),
            (
                WebConfig {
                    time_zone: "Mars/Olympus".into(),
                    ..WebConfig::default()
                },
                "web.time_zone",
            ),
        ] {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn named_zones_convert_dates() {
        let tz = TimeZone::parse("Europe/Berlin").unwrap();
        let d = chrono::NaiveDate::from_ymd_opt(2026, 7, 1).unwrap();
        assert_eq!(
            tz.start_of_day(d).unwrap().to_rfc3339(),
            "2026-06-30T22:00:00+00:00"
        );
        let t = "2026-01-15T12:00:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(tz.format(t, "%H:%M"), "13:00");
    }
}
