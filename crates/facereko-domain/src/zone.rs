//! The site's time zone: one zone for the door's schedules and for every time the web app shows or reads.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone as _, Utc};
use serde::{Deserialize, Serialize};

/// The zone a site lives in: the system's (`local`) or a named IANA zone such as `Europe/Berlin`.
///
/// Schedules are weekly windows in this zone, so a door whose system clock runs in UTC still opens at
/// 08:00 site time. Serialised as its name (`"local"` or `"Europe/Berlin"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SiteTimeZone {
    /// The system's zone (`/etc/localtime`, or `TZ`).
    #[default]
    Local,
    Named(chrono_tz::Tz),
}

impl SiteTimeZone {
    /// `local` (or empty) for the system's zone, else an IANA name.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("local") {
            return Ok(Self::Local);
        }
        s.parse::<chrono_tz::Tz>().map(Self::Named).map_err(|_| {
            format!("unknown time zone {s:?} (use `local` or a name like Europe/Berlin)")
        })
    }

    /// The wall-clock time at the site at instant `t`.
    pub fn local(&self, t: DateTime<Utc>) -> NaiveDateTime {
        match self {
            Self::Local => t.with_timezone(&chrono::Local).naive_local(),
            Self::Named(tz) => t.with_timezone(tz).naive_local(),
        }
    }

    /// `t` formatted with a `strftime` pattern in this zone.
    pub fn format(&self, t: DateTime<Utc>, fmt: &str) -> String {
        match self {
            Self::Local => t.with_timezone(&chrono::Local).format(fmt).to_string(),
            Self::Named(tz) => t.with_timezone(tz).format(fmt).to_string(),
        }
    }

    /// The UTC instant of a local midnight (`date` at 00:00 in this zone); the earliest one on a DST gap,
    /// and 01:00 where midnight does not exist that day (rare DST rules).
    pub fn start_of_day(&self, date: NaiveDate) -> Option<DateTime<Utc>> {
        let at = |naive: NaiveDateTime| match self {
            Self::Local => chrono::Local
                .from_local_datetime(&naive)
                .earliest()
                .map(|t| t.with_timezone(&Utc)),
            Self::Named(tz) => tz
                .from_local_datetime(&naive)
                .earliest()
                .map(|t| t.with_timezone(&Utc)),
        };
        at(date.and_hms_opt(0, 0, 0)?).or_else(|| at(date.and_hms_opt(1, 0, 0)?))
    }

    /// For people: "local time" or the zone's name.
    pub fn name(&self) -> String {
        match self {
            Self::Local => "local time".into(),
            Self::Named(tz) => tz.name().to_string(),
        }
    }
}

impl TryFrom<String> for SiteTimeZone {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<SiteTimeZone> for String {
    fn from(z: SiteTimeZone) -> String {
        match z {
            SiteTimeZone::Local => "local".into(),
            SiteTimeZone::Named(tz) => tz.name().to_string(),
        }
    }
}

impl std::fmt::Display for SiteTimeZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from(*self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn names_parse_and_round_trip() {
        assert_eq!(SiteTimeZone::parse("local").unwrap(), SiteTimeZone::Local);
        assert_eq!(SiteTimeZone::parse(" ").unwrap(), SiteTimeZone::Local);
        let tokyo = SiteTimeZone::parse("Asia/Tokyo").unwrap();
        assert_eq!(tokyo.to_string(), "Asia/Tokyo");
        let json = serde_json::to_string(&tokyo).unwrap();
        assert_eq!(json, "\"Asia/Tokyo\"");
        assert_eq!(serde_json::from_str::<SiteTimeZone>(&json).unwrap(), tokyo);
        let err = serde_json::from_str::<SiteTimeZone>("\"Mars/Olympus\"").unwrap_err();
        assert!(err.to_string().contains("unknown time zone"), "{err}");
    }

    #[test]
    fn the_site_clock_is_the_zones_not_the_systems() {
        let tokyo = SiteTimeZone::parse("Asia/Tokyo").unwrap();
        // 23:30 UTC on Thursday is 08:30 on Friday in Tokyo.
        let t = utc("2026-12-03T23:30:00Z");
        assert_eq!(
            tokyo.local(t),
            "2026-12-04T08:30:00".parse::<NaiveDateTime>().unwrap()
        );
        assert_eq!(tokyo.format(t, "%a %H:%M"), "Fri 08:30");
        assert_eq!(
            tokyo.start_of_day("2026-12-04".parse().unwrap()),
            Some(utc("2026-12-03T15:00:00Z"))
        );
    }
}
