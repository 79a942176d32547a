//! FaceReko's domain: the values every other crate talks in, with no I/O.
//!
//! The one decision a newcomer must know: raw input becomes a typed value *once*, at the edge. A card UID
//! typed on the command line, read from an MFRC522 or found in a database row is parsed into [`CardUid`]
//! (its real bytes, shown as upper-case hex `04:A2:2B:19`) and never handled as a string again. The original
//! joined the UID bytes as decimal digits, so `[1, 23]` and `[12, 3]` were the same card; bytes cannot collide
//! that way.
//!
//! Schedules: a [`Person`] carries what the door needs to decide on them — their own schedule, their
//! [`Group`] with its schedule template, and the site's holiday dates — so [`Person::admits`] answers
//! alone and the decision does no I/O of its own. The store fills the group and the holidays in when it
//! reads a person (from the central database or a door's replica, which holds both); the effective
//! schedule is the person's own, else the group's, and a holiday refuses the whole local day to anyone
//! who has one.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

mod zone;
pub use zone::SiteTimeZone;

/// Errors of the domain crate: values that could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("card UID {input:?} is not valid: {reason}")]
    InvalidCardUid { input: String, reason: String },
    #[error("unknown outcome {0:?}")]
    UnknownOutcome(String),
    #[error("unknown mode {0:?} (expected card, card+face or face)")]
    UnknownMode(String),
    #[error(
        "door id {0:?}: use 1 to 64 letters, digits, '-' or '_' (it becomes part of MQTT topics)"
    )]
    InvalidDoorId(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The UID of an ISO 14443-A card: 4, 7 or 10 bytes (single, double or triple size).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CardUid(Vec<u8>);

impl CardUid {
    /// The UID lengths that ISO 14443-3 anticollision can produce.
    pub const VALID_LENGTHS: [usize; 3] = [4, 7, 10];

    /// A UID from its raw bytes; refuses lengths that no card has.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if !Self::VALID_LENGTHS.contains(&bytes.len()) {
            return Err(Error::InvalidCardUid {
                input: hex(bytes),
                reason: format!("{} bytes; a card UID has 4, 7 or 10", bytes.len()),
            });
        }
        Ok(Self(bytes.to_vec()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The UID with all but its first two bytes hidden (`04:A2:••:••`): enough to tell cards apart in a
    /// list, not enough to clone one (in `card` mode the UID is the whole credential).
    pub fn masked(&self) -> String {
        self.0
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if i < 2 {
                    format!("{b:02X}")
                } else {
                    "••".into()
                }
            })
            .collect::<Vec<_>>()
            .join(":")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl fmt::Display for CardUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for CardUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardUid({self})")
    }
}

/// Accepts `04:A2:2B:19`, `04-a2-2b-19`, `04 A2 2B 19` and `04A22B19`: hex bytes, upper or lower case,
/// with one kind of separator or none.
impl FromStr for CardUid {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidCardUid {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(invalid("it is empty"));
        }
        let separators: Vec<char> = s.chars().filter(|c| matches!(c, ':' | '-' | ' ')).collect();
        if let Some(c) = s
            .chars()
            .find(|c| !c.is_ascii_hexdigit() && !matches!(c, ':' | '-' | ' '))
        {
            return Err(invalid(&format!(
                "unexpected character {c:?}: write hex bytes like 04:A2:2B:19"
            )));
        }
        let groups: Vec<&str> = if separators.is_empty() {
            if !s.len().is_multiple_of(2) {
                return Err(invalid("an odd number of hex digits"));
            }
            (0..s.len())
                .step_by(2)
                .map(|i| s.get(i..i + 2).unwrap_or(""))
                .collect()
        } else {
            let sep = separators[0];
            if separators.iter().any(|&c| c != sep) {
                return Err(invalid("mixed separators"));
            }
            s.split(sep).collect()
        };
        let mut bytes = Vec::with_capacity(groups.len());
        for g in &groups {
            if g.len() != 2 || !g.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(invalid("each byte must be two hex digits (0-9, A-F)"));
            }
            bytes.push(u8::from_str_radix(g, 16).map_err(|_| invalid("not hex"))?);
        }
        Self::from_bytes(&bytes)
            .map_err(|_| invalid(&format!("{} bytes; a card UID has 4, 7 or 10", bytes.len())))
    }
}

impl Serialize for CardUid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CardUid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A door's name: 1 to 64 ASCII letters, digits, `-` or `_`. It names the door in attempts, the outbox,
/// the control socket and MQTT topics (`facereko/<door>/…`), so the one rule here keeps out MQTT's `/`,
/// `+` and `#` and anything a topic, a log line or a file name would trip on. Checked once, where a name
/// comes in (the configuration, a database row, a function argument).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DoorId(String);

impl DoorId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DoorId {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        if s.is_empty()
            || s.len() > 64
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::InvalidDoorId(s));
        }
        Ok(DoorId(s))
    }
}

impl FromStr for DoorId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        DoorId::try_from(s.to_string())
    }
}

impl From<DoorId> for String {
    fn from(d: DoorId) -> String {
        d.0
    }
}

impl std::ops::Deref for DoorId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for DoorId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DoorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for DoorId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for DoorId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// The encoding of a photo's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Jpeg,
    Png,
}

impl ImageFormat {
    /// Recognises JPEG and PNG by their magic bytes; anything else is `None`.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(ImageFormat::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageFormat::Png)
        } else {
            None
        }
    }

    /// The format a file name promises by its extension (`.jpg`, `.jpeg`, `.png`, any case). Used to pick
    /// photos out of a folder; the bytes are still checked with [`ImageFormat::sniff`] when read.
    pub fn from_path(path: &std::path::Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "jpg" | "jpeg" => Some(ImageFormat::Jpeg),
            "png" => Some(ImageFormat::Png),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpg",
            ImageFormat::Png => "png",
        }
    }
}

/// An encoded photo as a camera produced it or a user uploaded it. Decoding (and refusing hostile images)
/// is the vision crate's job; this only carries the bytes and what they claim to be.
#[derive(Clone, PartialEq, Eq)]
pub struct Photo {
    pub bytes: Vec<u8>,
    pub format: ImageFormat,
}

impl Photo {
    /// Wraps encoded bytes, refusing anything that is neither JPEG nor PNG.
    pub fn from_bytes(bytes: Vec<u8>) -> Option<Self> {
        let format = ImageFormat::sniff(&bytes)?;
        Some(Self { bytes, format })
    }
}

impl fmt::Debug for Photo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Photo({:?}, {} bytes)", self.format, self.bytes.len())
    }
}

/// A person's stable id in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersonId(pub i64);

impl fmt::Display for PersonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A person who may have cards and enrolled faces.
///
/// A person carries everything the door needs to decide whether they may enter now, so
/// [`Person::admits_at`] answers alone, with no I/O on the decision path: the store reads the person's
/// group (with its schedule template) and the site's holidays along with the person, from whichever
/// database the door decides on (on a site, the door's replica, which holds groups and holidays too).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub id: PersonId,
    pub name: String,
    /// A disabled person's cards are refused (`CardDisabled`).
    pub active: bool,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    /// The person's own schedule, which wins over their group's; `None` means their group's, or at any
    /// time without a group (or with a group that has none). See [`Person::effective_schedule`].
    pub schedule: Option<WeeklySchedule>,
    /// The group the person belongs to, as it was when the person was read (its schedule is the
    /// template the person follows without one of their own). Membership is changed with the store's
    /// group methods, not by saving the person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Group>,
    /// The site's holidays (local dates in the site's time zone), read along with the person: on these
    /// days a person with a schedule is refused all day. Not part of the person: not saved with them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holidays: Vec<NaiveDate>,
    pub cards: Vec<Card>,
}

impl Person {
    /// The schedule the door applies: the person's own, else their group's; `None` means at any time.
    pub fn effective_schedule(&self) -> Option<&WeeklySchedule> {
        self.schedule
            .as_ref()
            .or_else(|| self.group.as_ref()?.schedule.as_ref())
    }

    /// Whether the person may enter at `now` (validity dates, schedule and holidays; not the `active`
    /// flag). A holiday refuses the whole local day, overnight windows included, but only people with a
    /// schedule: "any time" stays any time.
    pub fn admits_at(&self, now: DateTime<Utc>, local: chrono::NaiveDateTime) -> bool {
        if self.valid_from.is_some_and(|from| now < from) {
            return false;
        }
        if self.valid_until.is_some_and(|until| now >= until) {
            return false;
        }
        match self.effective_schedule() {
            None => true,
            Some(s) => !self.holidays.contains(&local.date()) && s.allows(local),
        }
    }

    /// Whether `local` falls on one of the site's holidays and the person has a schedule (so the
    /// holiday, not the weekly windows, is why they are refused).
    pub fn on_holiday(&self, local: chrono::NaiveDateTime) -> bool {
        self.effective_schedule().is_some() && self.holidays.contains(&local.date())
    }

    /// Whether the person may enter at `now`, reading the schedule in the site's time zone.
    pub fn admits(&self, now: DateTime<Utc>, zone: &SiteTimeZone) -> bool {
        self.admits_at(now, zone.local(now))
    }
}

/// A group's stable id in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GroupId(pub i64);

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// People who share a weekly schedule template ("Cleaners", "Day staff"). A member without a schedule
/// of their own follows the group's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: GroupId,
    /// Unique among groups.
    pub name: String,
    /// `None`: the group sets no hours (members without their own schedule may enter at any time).
    pub schedule: Option<WeeklySchedule>,
}

/// A day the whole site is closed to scheduled people (a public holiday): a local date in the site's
/// time zone, one holiday per date.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holiday {
    pub id: i64,
    pub date: NaiveDate,
    pub name: String,
}

/// A card and its owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    pub uid: CardUid,
    pub person_id: PersonId,
    pub label: Option<String>,
    pub active: bool,
}

/// When a person may enter: a set of weekly windows in the door's local time. Empty means never.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WeeklySchedule {
    pub windows: Vec<Window>,
}

/// One weekly window: on these weekdays, from `start` up to (not including) `end`, local time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Weekdays as numbers from Monday = 1 to Sunday = 7.
    pub days: Vec<u8>,
    /// Minutes after midnight, 0–1439.
    pub start_minute: u16,
    /// Minutes after midnight, 1–1440; a window with `end <= start` runs past midnight into the next day.
    pub end_minute: u16,
}

impl WeeklySchedule {
    pub fn allows(&self, local: chrono::NaiveDateTime) -> bool {
        use chrono::{Datelike, Timelike};
        let day = local.weekday().number_from_monday() as u8;
        let prev_day = if day == 1 { 7 } else { day - 1 };
        let minute = (local.hour() * 60 + local.minute()) as u16;
        self.windows.iter().any(|w| {
            if w.start_minute < w.end_minute {
                w.days.contains(&day) && minute >= w.start_minute && minute < w.end_minute
            } else {
                // Overnight: the evening part on the listed day, the morning part on the next.
                (w.days.contains(&day) && minute >= w.start_minute)
                    || (w.days.contains(&prev_day) && minute < w.end_minute)
            }
        })
    }
}

/// How a door decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Mode {
    /// A known, enabled card opens; no camera.
    #[serde(rename = "card")]
    Card,
    /// The card's owner must also show their face (1:1 against the owner's enrolled faces).
    #[default]
    #[serde(rename = "card+face")]
    CardFace,
    /// No card: the face is identified among everyone enrolled (1:N). For trusted indoor doors.
    #[serde(rename = "face")]
    Face,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Card => "card",
            Mode::CardFace => "card+face",
            Mode::Face => "face",
        }
    }

    pub fn uses_camera(self) -> bool {
        !matches!(self, Mode::Card)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "card" => Ok(Mode::Card),
            "card+face" | "card_face" | "cardface" => Ok(Mode::CardFace),
            "face" => Ok(Mode::Face),
            other => Err(Error::UnknownMode(other.to_string())),
        }
    }
}

/// What came of one attempt at the door. `SystemOff` taps are neither logged nor cued; every other outcome
/// is stored with the attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Granted,
    UnknownCard,
    CardDisabled,
    OutsideSchedule,
    NoFace,
    FaceMismatch,
    SpoofSuspected,
    CameraError,
    EngineError,
    SystemOff,
    /// The store could not be asked about the card or person (a database server that is down): the door
    /// denied without knowing who it was. Kept apart from `unknown_card` so the history tells the truth.
    StoreUnavailable,
}

impl Outcome {
    pub const ALL: [Outcome; 11] = [
        Outcome::Granted,
        Outcome::UnknownCard,
        Outcome::CardDisabled,
        Outcome::OutsideSchedule,
        Outcome::NoFace,
        Outcome::FaceMismatch,
        Outcome::SpoofSuspected,
        Outcome::CameraError,
        Outcome::EngineError,
        Outcome::SystemOff,
        Outcome::StoreUnavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Granted => "granted",
            Outcome::UnknownCard => "unknown_card",
            Outcome::CardDisabled => "card_disabled",
            Outcome::OutsideSchedule => "outside_schedule",
            Outcome::NoFace => "no_face",
            Outcome::FaceMismatch => "face_mismatch",
            Outcome::SpoofSuspected => "spoof_suspected",
            Outcome::CameraError => "camera_error",
            Outcome::EngineError => "engine_error",
            Outcome::SystemOff => "system_off",
            Outcome::StoreUnavailable => "store_unavailable",
        }
    }

    pub fn is_granted(self) -> bool {
        self == Outcome::Granted
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| Error::UnknownOutcome(s.to_string()))
    }
}

/// How long each stage of an attempt took, in milliseconds. A stage that did not run is `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimings {
    /// Card lookup and checks (store round trip).
    pub lookup_ms: Option<u32>,
    /// From the end of the lookup to a usable frame (includes the countdown).
    pub capture_ms: Option<u32>,
    /// Face detection, alignment and embedding.
    pub detect_ms: Option<u32>,
    /// Comparison with the gallery.
    pub match_ms: Option<u32>,
    /// From the tap to the decision.
    pub total_ms: Option<u32>,
}

/// Milliseconds of a duration, saturated to `u32`.
pub fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// An attempt as the door decided it, before the store gives it an id and a photo path.
#[derive(Clone, Debug, PartialEq)]
pub struct NewAttempt {
    pub time: DateTime<Utc>,
    pub door_id: String,
    pub card_uid: Option<CardUid>,
    pub person_id: Option<PersonId>,
    /// The person's name as it was at the time of the attempt.
    pub person_name: Option<String>,
    pub outcome: Outcome,
    /// Match score, 0–100 (higher is more alike).
    pub similarity: Option<f32>,
    /// The raw distance between probe and best enrolled face, where the engine has one.
    pub distance: Option<f32>,
    /// Detector confidence that the box is a face, 0–100.
    pub confidence: Option<f32>,
    pub timings: StageTimings,
    /// Free text for the log: which engine decided, which error the camera gave, …
    pub detail: Option<String>,
}

impl NewAttempt {
    /// The attempt as stored under `id`, with its photo's relative path.
    pub fn stored(&self, id: i64, photo: Option<&str>) -> Attempt {
        Attempt {
            id,
            time: self.time,
            door_id: self.door_id.clone(),
            card_uid: self.card_uid.clone(),
            person_id: self.person_id,
            person: self.person_name.clone(),
            outcome: self.outcome,
            similarity: self.similarity,
            distance: self.distance,
            confidence: self.confidence,
            photo: photo.map(str::to_string),
            timings: self.timings,
            detail: self.detail.clone(),
        }
    }
}

/// A stored attempt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub id: i64,
    pub time: DateTime<Utc>,
    pub door_id: String,
    pub card_uid: Option<CardUid>,
    pub person_id: Option<PersonId>,
    pub person: Option<String>,
    pub outcome: Outcome,
    pub similarity: Option<f32>,
    pub distance: Option<f32>,
    pub confidence: Option<f32>,
    /// Path of the photo, relative to the data directory; `None` when there was none or it was purged.
    pub photo: Option<String>,
    pub timings: StageTimings,
    pub detail: Option<String>,
}

/// How an administrative change or a remote command reached the door.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditVia {
    /// A signed-in account in the web app.
    Web,
    /// An API bearer token.
    Api,
    /// A signed command on the MQTT broker.
    Mqtt,
    /// The `facereko` command line on the door.
    Cli,
}

impl AuditVia {
    pub const ALL: [AuditVia; 4] = [AuditVia::Web, AuditVia::Api, AuditVia::Mqtt, AuditVia::Cli];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditVia::Web => "web",
            AuditVia::Api => "api",
            AuditVia::Mqtt => "mqtt",
            AuditVia::Cli => "cli",
        }
    }
}

impl FromStr for AuditVia {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown origin {s:?}"))
    }
}

/// One administrative change (people, cards, faces, accounts, tokens, settings, arm/disarm) or remote
/// unlock, before the store gives it an id: who did it, how and from where, and what changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewAudit {
    pub time: DateTime<Utc>,
    pub door_id: String,
    /// The account's user name, or what stands for it (`mqtt`, the system user of the command line).
    pub actor: String,
    pub via: AuditVia,
    /// The client's address, the MQTT topic or the terminal: where the change came from, when known.
    pub origin: Option<String>,
    /// What was done, as a dotted name: `person.add`, `card.remove`, `door.unlock`, …
    pub action: String,
    /// What it was done to, in words: a person's name, a card UID, an account's user name.
    pub target: String,
    /// What changed, in words ("enabled → disabled"); empty when the action says it all.
    pub detail: String,
}

impl NewAudit {
    pub fn stored(&self, id: i64) -> AuditEntry {
        AuditEntry {
            id,
            time: self.time,
            door_id: self.door_id.clone(),
            actor: self.actor.clone(),
            via: self.via,
            origin: self.origin.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            detail: self.detail.clone(),
        }
    }
}

/// A stored entry of the audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub time: DateTime<Utc>,
    pub door_id: String,
    pub actor: String,
    pub via: AuditVia,
    pub origin: Option<String>,
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// Something that happened at a door, for the notifier outbox and live status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // a few events a minute: boxing would only add noise at every use
pub enum Event {
    Attempt {
        door_id: String,
        attempt: Attempt,
    },
    Armed {
        door_id: String,
        armed: bool,
        time: DateTime<Utc>,
    },
    Door {
        door_id: String,
        state: DoorState,
        time: DateTime<Utc>,
    },
    Alarm {
        door_id: String,
        alarm: Alarm,
        time: DateTime<Utc>,
    },
    /// An administrative change or a remote command, as the audit trail recorded it.
    Audit {
        door_id: String,
        entry: AuditEntry,
    },
    /// "Send a test event" from the settings page: every sink delivers it, whatever it is set to
    /// receive, so an administrator sees that the sink works end to end.
    Test {
        door_id: String,
        /// Who asked for it.
        by: String,
        time: DateTime<Utc>,
    },
}

/// The lock and the door leaf as the controller sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoorState {
    Locked,
    Unlocked,
    Opened,
    Closed,
    ExitRequested,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Alarm {
    /// The door was opened while the lock was locked.
    ForcedOpen,
    /// The door stayed open longer than allowed.
    HeldOpen,
    /// An attempt's face failed the liveness check: a photo or a screen may have been held up.
    SpoofSuspected,
    /// The door's copy of cards and faces is older than `fleet.max_staleness`: the central database has
    /// not been reachable for that long, so a card or face revoked since still opens (unless
    /// `fleet.when_stale` says otherwise).
    ReplicaStale,
}

/// A password, key or shared secret from the configuration: kept as given, shown as `***` in `Debug` so
/// it never reaches a log.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send or compare it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("\"***\"")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_uid_shows_only_its_first_two_bytes() {
        let uid: CardUid = "04:A2:2B:19".parse().unwrap();
        assert_eq!(uid.masked(), "04:A2:••:••");
        let long: CardUid = "04:11:22:33:44:55:66".parse().unwrap();
        assert_eq!(long.masked(), "04:11:••:••:••:••:••");
    }

    #[test]
    fn door_ids_follow_one_rule() {
        for good in ["door", "front-door_1", &"a".repeat(64)] {
            let id: DoorId = good.parse().unwrap();
            assert_eq!(id, good);
        }
        for bad in [
            "",
            "a/b",
            "a+",
            "#",
            "front door",
            "tür",
            &"a".repeat(65),
            "a\0b",
        ] {
            let e = bad.parse::<DoorId>().unwrap_err();
            assert!(e.to_string().contains("1 to 64 letters"), "{bad}: {e}");
        }
        let id: DoorId = serde_json::from_str("\"back\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"back\"");
        assert!(serde_json::from_str::<DoorId>("\"a/b\"").is_err());
    }

    #[test]
    fn card_uid_parses_common_spellings() {
        let want = CardUid::from_bytes(&[0x04, 0xA2, 0x2B, 0x19]).unwrap();
        for s in [
            "04:A2:2B:19",
            "04:a2:2b:19",
            "04-A2-2B-19",
            "04 A2 2B 19",
            "04A22B19",
            " 04:A2:2B:19\n",
        ] {
            assert_eq!(s.parse::<CardUid>().unwrap(), want, "{s}");
        }
        assert_eq!(want.to_string(), "04:A2:2B:19");
    }

    #[test]
    fn card_uid_keeps_seven_and_ten_bytes() {
        let seven: CardUid = "04:11:22:33:44:55:66".parse().unwrap();
        assert_eq!(seven.as_bytes().len(), 7);
        assert_eq!(seven.to_string(), "04:11:22:33:44:55:66");
        let ten: CardUid = "00112233445566778899".parse().unwrap();
        assert_eq!(ten.as_bytes().len(), 10);
    }

    #[test]
    fn uids_that_joined_as_decimals_collide_in_the_original_stay_distinct() {
        // The original turned [1, 23] and [12, 3] into "123". Bytes keep them apart.
        let a = CardUid::from_bytes(&[1, 23, 0, 0]).unwrap();
        let b = CardUid::from_bytes(&[12, 3, 0, 0]).unwrap();
        assert_ne!(a, b);
        assert_ne!(a.to_string(), b.to_string());
    }

    #[test]
    fn malformed_uids_are_refused_with_a_reason() {
        for (s, why) in [
            ("", "empty"),
            ("04:A2:2B", "3 bytes"),
            ("04:A2:2B:1", "two hex digits"),
            ("04:A2:2B:ZZ", "unexpected character 'Z'"),
            ("04A22B1", "odd"),
            ("04:A2-2B:19", "mixed"),
            ("04:A2:2B:19:00", "5 bytes"),
            ("04;A2;2B;19", "unexpected character ';'"),
        ] {
            let err = s.parse::<CardUid>().unwrap_err().to_string();
            assert!(err.contains(why), "{s:?} gave {err:?}, expected {why:?}");
        }
        assert!(CardUid::from_bytes(&[1, 2]).is_err());
    }

    #[test]
    fn card_uid_serialises_as_hex_text() {
        let uid: CardUid = "04:A2:2B:19".parse().unwrap();
        assert_eq!(serde_json::to_string(&uid).unwrap(), "\"04:A2:2B:19\"");
        let back: CardUid = serde_json::from_str("\"04a22b19\"").unwrap();
        assert_eq!(back, uid);
        assert!(serde_json::from_str::<CardUid>("\"nope\"").is_err());
    }

    #[test]
    fn schedules_and_validity_decide_admission() {
        use chrono::{NaiveDate, TimeZone};
        let local = |d: u32, h: u32, m: u32| {
            NaiveDate::from_ymd_opt(2026, 11, d)
                .unwrap()
                .and_hms_opt(h, m, 0)
                .unwrap()
        };
        // 2026-11-23 is a Monday.
        let office = WeeklySchedule {
            windows: vec![Window {
                days: vec![1, 2, 3, 4, 5],
                start_minute: 8 * 60,
                end_minute: 18 * 60,
            }],
        };
        assert!(office.allows(local(23, 8, 0)));
        assert!(office.allows(local(27, 17, 59)));
        assert!(!office.allows(local(27, 18, 0)));
        assert!(!office.allows(local(28, 10, 0)), "Saturday");
        let night = WeeklySchedule {
            windows: vec![Window {
                days: vec![5],
                start_minute: 22 * 60,
                end_minute: 6 * 60,
            }],
        };
        assert!(night.allows(local(27, 23, 0)), "Friday night");
        assert!(night.allows(local(28, 5, 59)), "early Saturday");
        assert!(
            !night.allows(local(27, 5, 0)),
            "early Friday belongs to Thursday"
        );
        assert!(!WeeklySchedule::default().allows(local(23, 12, 0)));

        let now = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
        let mut p = Person {
            id: PersonId(1),
            name: "Ada".into(),
            active: true,
            valid_from: None,
            valid_until: None,
            schedule: None,
            group: None,
            holidays: vec![],
            cards: vec![],
        };
        assert!(p.admits_at(now, local(27, 12, 0)));
        p.valid_until = Some(now);
        assert!(
            !p.admits_at(now, local(27, 12, 0)),
            "validity ends exclusive"
        );
        p.valid_until = None;
        p.valid_from = Some(now + chrono::Duration::seconds(1));
        assert!(!p.admits_at(now, local(27, 12, 0)));
        p.valid_from = None;
        p.schedule = Some(office);
        assert!(!p.admits_at(now, local(28, 12, 0)));
    }

    #[test]
    fn an_overnight_schedule_is_read_in_the_site_zone() {
        // Thursdays 22:00 to 02:00 (into Friday), site time in New York (UTC−5 in December).
        let night = WeeklySchedule {
            windows: vec![Window {
                days: vec![4],
                start_minute: 22 * 60,
                end_minute: 2 * 60,
            }],
        };
        let p = Person {
            id: PersonId(1),
            name: "Night guard".into(),
            active: true,
            valid_from: None,
            valid_until: None,
            schedule: Some(night),
            group: None,
            holidays: vec![],
            cards: vec![],
        };
        let ny = SiteTimeZone::parse("America/New_York").unwrap();
        let utc = SiteTimeZone::parse("UTC").unwrap();
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        // Fri 2026-12-04 04:30 UTC = Thu 23:30 in New York: inside the window there, outside in UTC.
        assert!(p.admits(at("2026-12-04T04:30:00Z"), &ny));
        assert!(!p.admits(at("2026-12-04T04:30:00Z"), &utc));
        // Fri 06:30 UTC = Fri 01:30 in New York: the morning part after midnight.
        assert!(p.admits(at("2026-12-04T06:30:00Z"), &ny));
        // Fri 07:30 UTC = Fri 02:30 in New York: over.
        assert!(!p.admits(at("2026-12-04T07:30:00Z"), &ny));
        // Thu 23:30 UTC = Thu 18:30 in New York: not yet, although 23:30 UTC is inside it in UTC.
        assert!(!p.admits(at("2026-12-03T23:30:00Z"), &ny));
        assert!(p.admits(at("2026-12-03T23:30:00Z"), &utc));
    }

    #[test]
    fn a_group_schedule_applies_without_an_own_one_and_holidays_close_the_day() {
        use chrono::{NaiveDate, TimeZone};
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
        let at = |d: u32, h: u32| day(d).and_hms_opt(h, 0, 0).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        let window = |days: Vec<u8>, from: u16, to: u16| WeeklySchedule {
            windows: vec![Window {
                days,
                start_minute: from * 60,
                end_minute: to * 60,
            }],
        };
        let mut p = Person {
            id: PersonId(1),
            name: "Cleaner".into(),
            active: true,
            valid_from: None,
            valid_until: None,
            schedule: None,
            group: Some(Group {
                id: GroupId(3),
                name: "Cleaners".into(),
                // Evenings, Monday to Friday, past midnight.
                schedule: Some(window(vec![1, 2, 3, 4, 5], 20, 2)),
            }),
            holidays: vec![day(25)],
            cards: vec![],
        };
        // 2026-12-01 is a Tuesday, 2026-12-25 a Friday.
        assert!(p.admits_at(now, at(1, 21)), "the group's hours");
        assert!(!p.admits_at(now, at(1, 12)), "outside the group's hours");
        assert!(!p.admits_at(now, at(25, 21)), "a holiday, inside the hours");
        assert!(p.on_holiday(at(25, 21)));
        assert!(
            !p.admits_at(now, at(25, 1)),
            "Thursday night's window runs into the holiday: refused too"
        );
        assert!(
            p.admits_at(now, at(26, 1)),
            "the holiday's own night ends on a working date"
        );
        // An own schedule wins over the group's, holidays still apply.
        p.schedule = Some(window(vec![2], 9, 17));
        assert!(p.admits_at(now, at(1, 12)));
        assert!(!p.admits_at(now, at(1, 21)));
        // A group without hours and no own schedule: any time, holidays included.
        p.schedule = None;
        p.group.as_mut().unwrap().schedule = None;
        assert_eq!(p.effective_schedule(), None);
        assert!(p.admits_at(now, at(25, 12)));
        assert!(!p.on_holiday(at(25, 12)));
        p.group = None;
        assert!(p.admits_at(now, at(25, 3)));
    }

    #[test]
    fn photos_are_recognised_by_magic_bytes() {
        assert_eq!(
            ImageFormat::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(ImageFormat::Jpeg)
        );
        assert_eq!(
            ImageFormat::sniff(b"\x89PNG\r\n\x1a\n...."),
            Some(ImageFormat::Png)
        );
        assert_eq!(ImageFormat::sniff(b"GIF89a"), None);
        use std::path::Path;
        assert_eq!(
            ImageFormat::from_path(Path::new("a/01.JPG")),
            Some(ImageFormat::Jpeg)
        );
        assert_eq!(
            ImageFormat::from_path(Path::new("b.jpeg")),
            Some(ImageFormat::Jpeg)
        );
        assert_eq!(
            ImageFormat::from_path(Path::new("c.png")),
            Some(ImageFormat::Png)
        );
        assert_eq!(ImageFormat::from_path(Path::new("notes.txt")), None);
        assert_eq!(ImageFormat::from_path(Path::new("jpg")), None);
        assert!(Photo::from_bytes(b"hello".to_vec()).is_none());
    }

    #[test]
    fn outcome_and_mode_round_trip_as_text() {
        for o in Outcome::ALL {
            assert_eq!(o.as_str().parse::<Outcome>().unwrap(), o);
            assert_eq!(
                serde_json::to_string(&o).unwrap(),
                format!("\"{}\"", o.as_str())
            );
        }
        for m in [Mode::Card, Mode::CardFace, Mode::Face] {
            assert_eq!(m.as_str().parse::<Mode>().unwrap(), m);
            assert_eq!(
                serde_json::to_string(&m).unwrap(),
                format!("\"{}\"", m.as_str())
            );
        }
        assert!("door".parse::<Mode>().is_err());
    }

    /// Regression: with the database down, known cards were logged as `unknown_card`.
    #[test]
    fn store_unavailable_is_an_outcome_of_its_own() {
        let o: Outcome = "store_unavailable".parse().unwrap();
        assert_eq!(o, Outcome::StoreUnavailable);
        assert!(!o.is_granted());
        assert!(Outcome::ALL.contains(&o));
        assert_ne!(o, Outcome::UnknownCard);
        let json: Outcome = serde_json::from_str("\"store_unavailable\"").unwrap();
        assert_eq!(json, o);
    }
}
