//! Templates (compiled into the binary by askama, escaped by default) and the small view models they show.

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use facereko_domain::{Attempt, Outcome};

use facereko_domain::SiteTimeZone as TimeZone;

/// What the layout needs on every page.
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub title: String,
    /// Signed-in user's name; empty when signed out.
    pub user: String,
    pub admin: bool,
    pub csrf: String,
    /// Which menu entry is current.
    pub nav: &'static str,
    pub notice: Option<String>,
    pub error: Option<String>,
}

/// Who is signed in, as the layout shows it (implemented by `auth::CurrentUser`; views know no more of
/// sessions than this).
pub trait SignedIn {
    fn username(&self) -> &str;
    fn is_admin(&self) -> bool;
    /// The token the page's forms carry.
    fn csrf(&self) -> &str;
}

impl Page {
    pub fn new(title: impl Into<String>, nav: &'static str, user: Option<&dyn SignedIn>) -> Self {
        Self {
            title: title.into(),
            user: user.map(|u| u.username().to_string()).unwrap_or_default(),
            admin: user.is_some_and(|u| u.is_admin()),
            csrf: user.map(|u| u.csrf().to_string()).unwrap_or_default(),
            nav,
            notice: None,
            error: None,
        }
    }

    pub fn with_notice(mut self, notice: Option<String>) -> Self {
        self.notice = notice;
        self
    }

    pub fn with_error(mut self, error: Option<String>) -> Self {
        self.error = error;
        self
    }
}

/// Renders a template as an HTML page (a template error is logged and becomes a plain 500).
pub fn render<T: Template>(t: &T) -> Response {
    render_with_status(StatusCode::OK, t)
}

pub fn render_with_status<T: Template>(status: StatusCode, t: &T) -> Response {
    match t.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => {
            tracing::error!("template failed: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                )],
                "Something went wrong on the server. The problem was logged.",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorTpl<'a> {
    page: Page,
    status: u16,
    reason: &'a str,
    message: &'a str,
    reference: Option<&'a str>,
    /// The page the failed form was on: the browser's Back keeps what was typed there.
    back: Option<&'a str>,
}

/// A friendly error page. Rendered without knowing who asked; the response carries an [`ErrorPage`] so
/// that the app's middleware can render it again with the navigation of a signed-in user and a way
/// back to the page the request came from.
pub fn error_page(status: StatusCode, message: &str, reference: Option<&str>) -> Response {
    let e = ErrorPage {
        status,
        message: message.to_string(),
        reference: reference.map(str::to_string),
    };
    let mut resp = e.render(None, None);
    resp.extensions_mut().insert(e);
    resp
}

/// What an error page says, kept on its response.
#[derive(Clone, Debug)]
pub struct ErrorPage {
    pub status: StatusCode,
    pub message: String,
    pub reference: Option<String>,
}

impl ErrorPage {
    /// The page for `user` (the menu) with a link `back` to the form it came from (a local path).
    pub fn render(&self, user: Option<&dyn SignedIn>, back: Option<&str>) -> Response {
        let reason = self.status.canonical_reason().unwrap_or("Error");
        render_with_status(
            self.status,
            &ErrorTpl {
                page: Page::new(reason, "", user),
                status: self.status.as_u16(),
                reason,
                message: &self.message,
                reference: self.reference.as_deref(),
                back,
            },
        )
    }
}

/// Human words for an outcome.
pub fn outcome_label(o: Outcome) -> &'static str {
    match o {
        Outcome::Granted => "Granted",
        Outcome::UnknownCard => "Unknown card",
        Outcome::CardDisabled => "Card disabled",
        Outcome::OutsideSchedule => "Outside schedule",
        Outcome::NoFace => "No face seen",
        Outcome::FaceMismatch => "Face mismatch",
        Outcome::SpoofSuspected => "Spoof suspected",
        Outcome::CameraError => "Camera error",
        Outcome::EngineError => "Face engine error",
        Outcome::SystemOff => "System off",
        Outcome::StoreUnavailable => "Database unavailable",
    }
}

/// An attempt in one line: "‹time› · ‹person› · ‹outcome›", the time in `tz` with `time_format`.
pub fn attempt_line(a: &Attempt, tz: &TimeZone, time_format: &str) -> String {
    format!(
        "{} · {} · {}",
        tz.format(a.time, time_format),
        a.person.as_deref().unwrap_or("Unknown"),
        outcome_label(a.outcome)
    )
}

/// Human words for a door state as the MQTT state names it (`locked`, `unlocked`, `opened`, …).
pub fn door_state_label(s: &str) -> &'static str {
    match s {
        "locked" => "Locked",
        "unlocked" => "Unlocked",
        "opened" => "Open",
        "closed" => "Closed",
        "exit_requested" => "Exit requested",
        _ => "?",
    }
}

/// One row of the attempts table.
#[derive(Clone, Debug)]
pub struct AttemptRow {
    pub id: i64,
    pub time: String,
    pub person: String,
    pub card: String,
    pub door: String,
    pub outcome: &'static str,
    pub outcome_label: &'static str,
    pub granted: bool,
    /// "86.5 % — needs 92.8 %", or "–" without a face.
    pub similarity: String,
    /// The detector's confidence ("face 99 %"), empty when the engine reports none.
    pub confidence: String,
    /// `/photos/...` when the attempt has a photo.
    pub photo_url: Option<String>,
    pub thumb_url: Option<String>,
}

/// A card UID as this user may see it: whole for admins, masked for viewers.
pub fn shown_uid(uid: &facereko_domain::CardUid, admin: bool) -> String {
    if admin {
        uid.to_string()
    } else {
        uid.masked()
    }
}

pub fn percent(v: Option<f32>) -> String {
    v.filter(|v| v.is_finite())
        .map(|v| format!("{v:.1} %"))
        .unwrap_or_else(|| "–".into())
}

impl AttemptRow {
    /// The row as `admin` (full card UID) or a viewer (masked UID) sees it; the similarity beside the
    /// `threshold` in force ("86.5 % — needs 92.8 %").
    pub fn new(a: &Attempt, tz: &TimeZone, admin: bool, threshold: Option<f32>) -> Self {
        let photo_url = a.photo.as_deref().and_then(photo_url);
        Self {
            id: a.id,
            time: tz.format(a.time, "%Y-%m-%d %H:%M:%S"),
            person: a.person.clone().unwrap_or_else(|| "Unknown".into()),
            card: a
                .card_uid
                .as_ref()
                .map(|c| shown_uid(c, admin))
                .unwrap_or_default(),
            door: a.door_id.clone(),
            outcome: a.outcome.as_str(),
            outcome_label: outcome_label(a.outcome),
            granted: a.outcome.is_granted(),
            similarity: match (a.similarity.filter(|s| s.is_finite()), threshold) {
                (Some(s), Some(t)) => format!("{s:.1} % — needs {t:.1} %"),
                (s, _) => percent(s),
            },
            confidence: a
                .confidence
                .filter(|c| c.is_finite())
                .map(|c| format!("face {c:.0} %"))
                .unwrap_or_default(),
            thumb_url: photo_url.as_ref().map(|u| format!("{u}?thumb=1")),
            photo_url,
        }
    }
}

/// `/photos/<rest>` for a stored relative path `photos/<rest>`; `None` for anything else.
pub fn photo_url(relative: &str) -> Option<String> {
    let rest = relative.strip_prefix(&format!("{}/", facereko_store::PHOTOS_DIR))?;
    valid_photo_path(rest).then(|| format!("/photos/{rest}"))
}

#[derive(Debug, Template)]
#[template(path = "attempt_row.html")]
pub struct RowTpl<'a> {
    pub row: &'a AttemptRow,
}

/// Percent-encodes a query value.
pub fn url_encode(s: &str) -> String {
    /// Everything but the unreserved characters and `/` is percent-encoded.
    const ENCODED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(s, ENCODED).to_string()
}

/// A local redirect target from a `next` parameter: only paths on this site. One `/` followed by anything
/// but `/` or `\`, no control character or white space anywhere (browsers drop a tab or a newline, so
/// `/\t/evil.example` would become `//evil.example`), and it must parse as a URI with neither scheme nor
/// host. Anything else is `/`.
pub fn safe_next(next: Option<&str>) -> String {
    let local = |n: &str| {
        n.len() < 512
            && n.starts_with('/')
            && !n[1..].starts_with(['/', '\\'])
            && !n
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
            && n.parse::<axum::http::Uri>()
                .is_ok_and(|u| u.scheme().is_none() && u.authority().is_none())
    };
    match next {
        Some(n) if local(n) => n.to_string(),
        _ => "/".into(),
    }
}

pub fn valid_photo_path(rest: &str) -> bool {
    rest.len() <= 200
        && rest.split('/').count() <= 4
        && rest.split('/').all(|seg| {
            !seg.is_empty()
                && !seg.starts_with('.')
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        && [".jpg", ".jpeg", ".png"]
            .iter()
            .any(|ext| rest.to_ascii_lowercase().ends_with(ext))
}

/// An enrolled face as the person and review pages show it.
#[derive(Debug)]
pub struct FaceView {
    pub id: i64,
    pub thumb: Option<String>,
    pub photo: Option<String>,
    pub created: String,
}

/// A card as the person and review pages show it (UID masked for viewers; `key` is the form field).
#[derive(Debug)]
pub struct CardView {
    pub uid: String,
    pub key: String,
    pub label: String,
    pub active: bool,
}

pub fn face_view(f: &facereko_store::FaceRecord, tz: &TimeZone) -> FaceView {
    let photo = f.photo.as_deref().and_then(photo_url);
    FaceView {
        id: f.id,
        thumb: photo.as_ref().map(|u| format!("{u}?thumb=1")),
        photo,
        created: tz.format(f.created, "%Y-%m-%d %H:%M"),
    }
}

pub fn card_view(c: &facereko_domain::Card, admin: bool) -> CardView {
    CardView {
        uid: shown_uid(&c.uid, admin),
        key: hex::encode_upper(c.uid.as_bytes()),
        label: c.label.clone().unwrap_or_default(),
        active: c.active,
    }
}

/// `1234567` as `1 234 567` (a thin space would be lost in some fonts; a plain one reads everywhere).
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_stay_on_this_site() {
        assert_eq!(safe_next(Some("/history?x=1")), "/history?x=1");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(None), "/");
        assert_eq!(safe_next(Some("/")), "/");
        // Browsers drop tabs and newlines from a Location, which turns these into //evil.example.
        for bad in [
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "/ /evil.example",
            "/\u{0}/x",
            "/\\/evil.example",
            "/history\tx",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
    }

    #[test]
    fn photo_urls_only_for_photo_paths() {
        assert_eq!(
            photo_url("photos/attempts/2026-11/0123abcd.jpg").as_deref(),
            Some("/photos/attempts/2026-11/0123abcd.jpg")
        );
        assert_eq!(photo_url("etc/passwd"), None);
        assert_eq!(photo_url("photos/../facereko.db"), None);
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1 000");
        assert_eq!(thousands(1234567), "1 234 567");
        assert_eq!(thousands(-12345), "-12 345");
    }
}
