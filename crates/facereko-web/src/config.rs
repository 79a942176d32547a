//! The web app's typed configuration section (`[web]` in `facereko.toml`).

use std::net::SocketAddr;

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
    /// Viewers may see the door camera's live picture too (administrators always do). Off by default:
    /// a camera at a door films whoever passes.
    pub viewers_see_camera: bool,
    /// How long `/create-account` waits for the new user's card after the form is sent.
    pub signup_tap_seconds: u32,
    /// Open self-service sign-up: anyone at the reader may create a viewer account with a card of an
    /// enrolled, active person that has no account yet, without an administrator's invitation (rate-limited
    /// per client address). Off by default: account creation by card needs an invitation.
    pub self_signup: bool,
    /// The site's time zone, for showing times and reading date filters. Not a `[web]` key: the binary
    /// sets it from the top-level `time_zone`, which the door's schedules use too.
    #[serde(skip)]
    pub time_zone: TimeZone,
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
            viewers_see_camera: false,
            signup_tap_seconds: 60,
            self_signup: false,
            time_zone: TimeZone::Local,
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
        if self.signup_tap_seconds == 0 || self.signup_tap_seconds > 300 {
            return bad("signup_tap_seconds", "must be between 1 and 300");
        }
        if self.api_token_cache_seconds > 3600 {
            return bad("api_token_cache_seconds", "must be at most 3600");
        }
        Ok(())
    }

    /// The site's time zone.
    pub fn tz(&self) -> TimeZone {
        self.time_zone
    }
}

/// Where times are shown and date filters are read: the site's zone, shared with the door's schedules.
pub use facereko_domain::SiteTimeZone as TimeZone;

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
        let t = "2026-01-15T12:00:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap();
        assert_eq!(tz.format(t, "%H:%M"), "13:00");
    }
}
