//! The door's typed configuration section (`[door]` in `facereko.toml`).

use std::time::Duration;

use facereko_domain::{Mode, SiteTimeZone};
use facereko_vision::WatchSettings;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How the door decides and how long its cues last. Every duration is a config value; the defaults are
/// the original system's timings except the countdown, which the original fixed at 2 s.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DoorConfig {
    /// `card`, `card+face` or `face`.
    pub mode: Mode,
    /// The same card seen again within this window is the same tap (a card resting on the reader).
    pub debounce_ms: u64,
    /// How long the lock stays released (and green lit) after a grant.
    pub unlock_seconds: f64,
    /// The beep that acknowledges a known card.
    pub known_beep_ms: u64,
    /// The long beep of a grant.
    pub grant_beep_ms: u64,
    /// Denial: this many beeps, each `deny_beep_on_ms` on and `deny_beep_off_ms` off.
    pub deny_beeps: u32,
    pub deny_beep_on_ms: u64,
    pub deny_beep_off_ms: u64,
    /// Pause between the known-card beep and the first photo, so the person can face the camera. Only
    /// without continuous capture (`vision.fps = 0`, or an engine such as Rekognition that judges one
    /// photo per call): a door that watches decides from frames it already has.
    pub countdown_ms: u64,
    /// Without continuous capture: how long to keep taking photos until one has a usable face (with it,
    /// `vision.face_timeout_ms`).
    pub capture_window_ms: u64,
    /// A door left open longer than this raises a held-open alarm.
    pub held_open_seconds: u64,
    /// `face` mode without continuous capture: how often the idle door looks for a face.
    pub face_poll_ms: u64,
    /// Armed state when the store has never recorded one (first start).
    pub armed_at_first_start: bool,
    /// The site's time zone, in which schedules are read. Not a `[door]` key: the binary sets it from
    /// the top-level `time_zone`, which the web app shares.
    #[serde(skip)]
    pub time_zone: SiteTimeZone,
    /// Continuous capture. Not `[door]` keys: the binary sets it from `vision.fps`, `vision.lookback_ms`,
    /// … ([`facereko_vision::VisionConfig::watch`]).
    #[serde(skip)]
    pub watch: WatchSettings,
}

impl Default for DoorConfig {
    fn default() -> Self {
        Self {
            mode: Mode::CardFace,
            debounce_ms: 3000,
            unlock_seconds: 10.0,
            known_beep_ms: 500,
            grant_beep_ms: 2000,
            deny_beeps: 3,
            deny_beep_on_ms: 500,
            deny_beep_off_ms: 500,
            countdown_ms: 500,
            capture_window_ms: 3000,
            held_open_seconds: 30,
            face_poll_ms: 1000,
            armed_at_first_start: true,
            time_zone: SiteTimeZone::Local,
            watch: WatchSettings::default(),
        }
    }
}

impl DoorConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: &str| Err(Error::Config(format!("door.{key}: {why}")));
        if !(self.unlock_seconds.is_finite()
            && self.unlock_seconds > 0.0
            && self.unlock_seconds <= 3600.0)
        {
            return bad("unlock_seconds", "must be more than 0 and at most 3600");
        }
        for (key, v) in [
            ("known_beep_ms", self.known_beep_ms),
            ("grant_beep_ms", self.grant_beep_ms),
            ("deny_beep_on_ms", self.deny_beep_on_ms),
        ] {
            if v == 0 || v > 10_000 {
                return bad(key, "must be between 1 and 10000");
            }
        }
        if self.deny_beeps == 0 || self.deny_beeps > 10 {
            return bad("deny_beeps", "must be between 1 and 10");
        }
        if self.deny_beep_off_ms > 10_000 {
            return bad("deny_beep_off_ms", "must be at most 10000");
        }
        if self.countdown_ms > 10_000 {
            return bad("countdown_ms", "must be at most 10000");
        }
        if self.capture_window_ms == 0 || self.capture_window_ms > 30_000 {
            return bad("capture_window_ms", "must be between 1 and 30000");
        }
        if self.debounce_ms > 600_000 {
            return bad("debounce_ms", "must be at most 600000");
        }
        if self.held_open_seconds == 0 {
            return bad("held_open_seconds", "must be at least 1");
        }
        if self.face_poll_ms < 100 {
            return bad("face_poll_ms", "must be at least 100");
        }
        Ok(())
    }

    pub fn unlock(&self) -> Duration {
        Duration::from_secs_f64(self.unlock_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_original() {
        let c = DoorConfig::default();
        c.validate().unwrap();
        assert_eq!(c.unlock(), Duration::from_secs(10));
        assert_eq!(
            (c.known_beep_ms, c.grant_beep_ms, c.deny_beeps),
            (500, 2000, 3)
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let c = DoorConfig {
            unlock_seconds: 0.0,
            ..DoorConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("door.unlock_seconds"));
        let c = DoorConfig {
            deny_beeps: 0,
            ..DoorConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("door.deny_beeps"));
    }
}
