//! History: every attempt newest first, keyset-paged and filtered; CSV export of the same filter; one
//! attempt with its photo, "add this photo to ‹person›" and "this was not ‹person›".

use askama::Template;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, NaiveTime, Utc};
use facereko_domain::{Attempt, AuditEntry, Outcome, PersonId};
use facereko_store::{AttemptQuery, AuditQuery};
use serde::Deserialize;

use crate::auth::{Admin, CurrentUser};
use crate::error::AppError;
use crate::extract::{CsrfForm, Path, Query};
use crate::views::{
    card_view, face_view, outcome_label, render, AttemptRow, CardView, FaceView, Page,
};
use crate::AppState;

/// Rows per history page.
pub const PAGE_SIZE: u32 = 50;

/// The filter as it arrives in the address (every value optional, empty means "any").
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Filter {
    person: Option<String>,
    outcome: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<String>,
    door: Option<String>,
    /// `attempts` (the default) or `changes` (the audit trail, administrators only).
    what: Option<String>,
    /// Changes only: an action family (`card`) or one action (`card.remove`).
    action: Option<String>,
    /// Attempts only: a time of day window in the site's time zone, `HH:MM`; `after` later than
    /// `until` spans midnight (22:00–06:00).
    after: Option<String>,
    until: Option<String>,
}

/// The families of audit actions, as the filter offers them.
const ACTION_FAMILIES: &[(&str, &str)] = &[
    ("door", "Door unlocked"),
    ("system", "Activated / deactivated"),
    ("site", "Commands to other doors"),
    ("person", "People"),
    ("card", "Cards"),
    ("face", "Faces"),
    ("group", "Groups"),
    ("holiday", "Holidays"),
    ("account", "Accounts"),
    ("token", "API tokens"),
    ("invitation", "Invitations"),
    ("setting", "Settings"),
];

/// The filter, parsed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Parsed {
    person: Option<PersonId>,
    outcome: Option<Outcome>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    before: Option<i64>,
    door: Option<String>,
    changes: bool,
    action: Option<String>,
    hours: Option<(NaiveTime, NaiveTime)>,
}

/// Most attempts one History page looks through for a time-of-day window (the window is applied to
/// each attempt's local time, not in the database): 20 000, a few hundred milliseconds on a Pi.
pub const HOURS_SCAN_LIMIT: usize = 20_000;

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl Filter {
    pub(crate) fn parse(&self) -> Result<Parsed, AppError> {
        let bad = |what: &str| AppError::BadRequest(format!("The {what} filter is not valid."));
        let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad("date"));
        Ok(Parsed {
            person: non_empty(&self.person)
                .map(|s| s.parse::<i64>().map(PersonId).map_err(|_| bad("person")))
                .transpose()?,
            outcome: non_empty(&self.outcome)
                .map(|s| s.parse::<Outcome>().map_err(|_| bad("outcome")))
                .transpose()?,
            from: non_empty(&self.from).map(date).transpose()?,
            to: non_empty(&self.to).map(date).transpose()?,
            before: non_empty(&self.before)
                .map(|s| {
                    s.parse::<i64>()
                        .ok()
                        .filter(|v| *v > 0)
                        .ok_or_else(|| bad("page"))
                })
                .transpose()?,
            door: non_empty(&self.door)
                .map(|s| {
                    s.parse::<facereko_domain::DoorId>()
                        .map(|d| d.as_str().to_string())
                        .map_err(|_| bad("door"))
                })
                .transpose()?,
            hours: match (non_empty(&self.after), non_empty(&self.until)) {
                (None, None) => None,
                (a, u) => {
                    let t = |s: Option<&str>, default: NaiveTime| {
                        s.map_or(Ok(default), |s| {
                            NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| bad("time of day"))
                        })
                    };
                    Some((
                        t(a, NaiveTime::MIN)?,
                        t(
                            u,
                            NaiveTime::from_hms_opt(23, 59, 59).unwrap_or(NaiveTime::MIN),
                        )?,
                    ))
                }
            },
            changes: match non_empty(&self.what) {
                None | Some("attempts") => false,
                Some("changes") => true,
                Some(_) => return Err(bad("view")),
            },
            action: non_empty(&self.action)
                .map(|a| {
                    let family = a.split('.').next().unwrap_or_default();
                    ACTION_FAMILIES
                        .iter()
                        .any(|(f, _)| *f == family)
                        .then(|| a.to_string())
                        .filter(|a| a.len() <= 64)
                        .ok_or_else(|| bad("change"))
                })
                .transpose()?,
        })
    }
}

impl Parsed {
    fn query(&self, state: &AppState, limit: u32) -> AttemptQuery {
        AttemptQuery {
            before_id: self.before,
            limit,
            person: self.person,
            outcome: self.outcome,
            from: self.from.and_then(|d| state.tz.start_of_day(d)),
            until: self
                .to
                .and_then(|d| d.succ_opt())
                .and_then(|d| state.tz.start_of_day(d)),
            door_id: self.door.clone(),
        }
    }

    /// Whether the attempt's local time is in the time-of-day window (always, without one).
    fn fits(&self, a: &Attempt, tz: &crate::config::TimeZone) -> bool {
        let Some((after, until)) = self.hours else {
            return true;
        };
        let t = tz.local(a.time).time();
        if after <= until {
            after <= t && t <= until
        } else {
            t >= after || t <= until
        }
    }

    fn audit_query(&self, state: &AppState, limit: u32) -> AuditQuery {
        let q = self.query(state, limit);
        AuditQuery {
            before_id: q.before_id,
            limit,
            from: q.from,
            until: q.until,
            door_id: q.door_id,
            actor: None,
            action: self.action.clone(),
        }
    }

    /// The filter as query parameters (without the page), for links.
    fn params(&self) -> String {
        let mut p = Vec::new();
        if self.changes {
            p.push("what=changes".to_string());
        }
        if let Some(v) = &self.action {
            p.push(format!("action={}", crate::views::url_encode(v)));
        }
        if let Some(v) = self.person {
            p.push(format!("person={v}"));
        }
        if let Some(v) = self.outcome {
            p.push(format!("outcome={v}"));
        }
        if let Some(v) = self.from {
            p.push(format!("from={v}"));
        }
        if let Some(v) = self.to {
            p.push(format!("to={v}"));
        }
        if let Some(v) = &self.door {
            p.push(format!("door={}", crate::views::url_encode(v)));
        }
        if let Some((a, u)) = self.hours {
            p.push(format!(
                "after={}&until={}",
                a.format("%H:%M"),
                u.format("%H:%M")
            ));
        }
        p.join("&")
    }
}

pub(crate) struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// One entry of the audit trail as History shows it.
pub(crate) struct ChangeRow {
    pub time: String,
    pub actor: String,
    /// `web`, `api`, `mqtt` or `cli`, and the address or topic it came from.
    pub via: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub door: String,
}

impl ChangeRow {
    fn new(e: &AuditEntry, tz: &crate::config::TimeZone) -> Self {
        Self {
            time: tz.format(e.time, "%Y-%m-%d %H:%M:%S"),
            actor: e.actor.clone(),
            via: match &e.origin {
                Some(o) => format!("{} from {o}", e.via.as_str()),
                None => e.via.as_str().to_string(),
            },
            action: e.action.clone(),
            target: e.target.clone(),
            detail: e.detail.clone(),
            door: e.door_id.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "history.html")]
struct HistoryTpl {
    page: Page,
    /// Showing the audit trail instead of the attempts.
    changes: bool,
    /// The viewer may switch to the audit trail.
    can_see_changes: bool,
    rows: Vec<AttemptRow>,
    change_rows: Vec<ChangeRow>,
    people: Vec<Choice>,
    outcomes: Vec<Choice>,
    actions: Vec<Choice>,
    /// Shown only on a site (more than one door).
    doors: Vec<Choice>,
    from: String,
    to: String,
    /// The time-of-day window, `HH:MM`, empty when not set.
    after: String,
    until: String,
    next: Option<String>,
    first: Option<String>,
    /// "1 234 attempts match."
    count: String,
    csv: String,
    tz: String,
}

/// A page from the `PAGE_SIZE + 1` rows asked for, and whether there are more.
fn one_page<T>(mut rows: Vec<T>) -> (Vec<T>, bool) {
    let more = rows.len() > PAGE_SIZE as usize;
    rows.truncate(PAGE_SIZE as usize);
    (rows, more)
}

/// "1 234 attempts match the filter" (every page, so a manager knows how far the list goes).
fn count_line(what: &str, total: i64) -> String {
    match total {
        0 => format!("No {what}s match."),
        1 => format!("1 {what} matches."),
        n => format!("{} {what}s match.", crate::views::thousands(n)),
    }
}

pub(crate) async fn history(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(f): Query<Filter>,
) -> Result<Response, AppError> {
    let p = f.parse()?;
    if p.changes && !user.is_admin() {
        return Err(AppError::Forbidden(
            "Only an administrator can see the changes made to the door.".into(),
        ));
    }
    let params = p.params();
    let join = |extra: String| {
        let all: Vec<&str> = [params.as_str(), extra.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        if all.is_empty() {
            "/history".to_string()
        } else {
            format!("/history?{}", all.join("&"))
        }
    };
    let mut rows = Vec::new();
    let mut change_rows = Vec::new();
    let (next, count) = if p.changes {
        let (entries, more) = one_page(
            state
                .store
                .audit_entries(&p.audit_query(&state, PAGE_SIZE + 1))
                .await?,
        );
        let total = state
            .store
            .count_audit(&p.audit_query(&state, PAGE_SIZE))
            .await?;
        change_rows = entries
            .iter()
            .map(|e| ChangeRow::new(e, &state.tz))
            .collect();
        (
            more.then(|| entries.last().map(|e| join(format!("before={}", e.id))))
                .flatten(),
            count_line("change", total),
        )
    } else if p.hours.is_some() {
        // A time-of-day window: look through the attempts page by page, keeping those in the window.
        let (attempts, resume) = scan_hours(&state, &p).await?;
        rows = attempts
            .iter()
            .map(|a| AttemptRow::new(a, &state.tz, user.is_admin(), state.threshold))
            .collect();
        let count = match (&resume, attempts.len()) {
            (Resume::End, 0) => "No attempts match.".to_string(),
            (Resume::End, n) if p.before.is_none() => count_line("attempt", n as i64),
            (Resume::End, n) => format!("{n} more attempts in these hours: the oldest."),
            (Resume::Full(_), n) => format!("{n} attempts in these hours; older ones follow."),
            (Resume::Scanned(_), n) => format!(
                "{n} attempts in these hours among the {} looked through; older ones follow.",
                crate::views::thousands(HOURS_SCAN_LIMIT as i64)
            ),
        };
        let next = match resume {
            Resume::End => None,
            Resume::Full(id) | Resume::Scanned(id) => Some(join(format!("before={id}"))),
        };
        (next, count)
    } else {
        let (attempts, more) = one_page(
            state
                .store
                .attempts(&p.query(&state, PAGE_SIZE + 1))
                .await?,
        );
        let total = state
            .store
            .count_matching_attempts(&p.query(&state, PAGE_SIZE))
            .await?;
        rows = attempts
            .iter()
            .map(|a| AttemptRow::new(a, &state.tz, user.is_admin(), state.threshold))
            .collect();
        (
            more.then(|| attempts.last().map(|a| join(format!("before={}", a.id))))
                .flatten(),
            count_line("attempt", total),
        )
    };
    let first = p.before.is_some().then(|| join(String::new()));
    let people = state
        .store
        .list_people()
        .await?
        .into_iter()
        .map(|x| Choice {
            selected: p.person == Some(x.id),
            value: x.id.to_string(),
            label: x.name,
        })
        .collect();
    let outcomes = Outcome::ALL
        .into_iter()
        .filter(|o| *o != Outcome::SystemOff)
        .map(|o| Choice {
            selected: p.outcome == Some(o),
            value: o.as_str().into(),
            label: outcome_label(o).into(),
        })
        .collect();
    let actions = ACTION_FAMILIES
        .iter()
        .map(|(value, label)| Choice {
            selected: p.action.as_deref() == Some(value),
            value: value.to_string(),
            label: label.to_string(),
        })
        .collect();
    let known = state.store.door_ids().await?;
    let doors = if known.len() > 1 || p.door.is_some() {
        known
            .into_iter()
            .map(|d| Choice {
                selected: p.door.as_deref() == Some(d.as_str()),
                value: d.clone(),
                label: d,
            })
            .collect()
    } else {
        Vec::new()
    };
    let csv = if params.is_empty() {
        "/history.csv".to_string()
    } else {
        format!("/history.csv?{params}")
    };
    Ok(render(&HistoryTpl {
        page: Page::new("History", "history", Some(&user)),
        changes: p.changes,
        can_see_changes: user.is_admin(),
        rows,
        change_rows,
        people,
        outcomes,
        actions,
        doors,
        from: p.from.map(|d| d.to_string()).unwrap_or_default(),
        to: p.to.map(|d| d.to_string()).unwrap_or_default(),
        after: p
            .hours
            .map(|(a, _)| a.format("%H:%M").to_string())
            .unwrap_or_default(),
        until: p
            .hours
            .map(|(_, u)| u.format("%H:%M").to_string())
            .unwrap_or_default(),
        next,
        first,
        count,
        csv,
        tz: state.tz.name(),
    }))
}

/// Where a time-of-day page stopped.
enum Resume {
    /// No older attempt.
    End,
    /// The page is full; older ones start before this id.
    Full(i64),
    /// [`HOURS_SCAN_LIMIT`] attempts were looked through; go on before this id.
    Scanned(i64),
}

/// Up to [`PAGE_SIZE`] attempts of the filter whose local time is in its time-of-day window.
async fn scan_hours(state: &AppState, p: &Parsed) -> Result<(Vec<Attempt>, Resume), AppError> {
    let mut found = Vec::new();
    let mut q = p.query(state, 500);
    let mut scanned = 0;
    loop {
        let page = state.store.attempts(&q).await?;
        let Some(last) = page.last().map(|a| a.id) else {
            return Ok((found, Resume::End));
        };
        for a in &page {
            scanned += 1;
            if p.fits(a, &state.tz) {
                found.push(a.clone());
                if found.len() == PAGE_SIZE as usize {
                    return Ok((found, Resume::Full(a.id)));
                }
            }
        }
        if page.len() < q.limit as usize {
            return Ok((found, Resume::End));
        }
        if scanned >= HOURS_SCAN_LIMIT {
            return Ok((found, Resume::Scanned(last)));
        }
        q.before_id = Some(last);
    }
}

/// One CSV field: quoted when needed; a leading `= + - @` is defused so spreadsheets show text, not a
/// formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// One CSV line of these fields, each made safe by [`csv_field`], ending in CRLF.
fn csv_line(fields: &[String]) -> String {
    let mut line = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

fn csv_row(a: &Attempt, tz: &crate::config::TimeZone, admin: bool) -> String {
    let num = |v: Option<f32>| {
        v.filter(|v| v.is_finite())
            .map(|v| format!("{v:.2}"))
            .unwrap_or_default()
    };
    let fields = [
        a.id.to_string(),
        tz.format(a.time, "%Y-%m-%d %H:%M:%S"),
        a.time.to_rfc3339(),
        a.door_id.clone(),
        a.person.clone().unwrap_or_default(),
        a.card_uid
            .as_ref()
            .map(|c| crate::views::shown_uid(c, admin))
            .unwrap_or_default(),
        a.outcome.as_str().to_string(),
        num(a.similarity),
        num(a.confidence),
        a.timings
            .total_ms
            .map(|v| v.to_string())
            .unwrap_or_default(),
        if a.photo.is_some() {
            "yes".into()
        } else {
            "no".into()
        },
    ];
    csv_line(&fields)
}

fn audit_csv_row(e: &AuditEntry, tz: &crate::config::TimeZone) -> String {
    let fields = [
        e.id.to_string(),
        tz.format(e.time, "%Y-%m-%d %H:%M:%S"),
        e.time.to_rfc3339(),
        e.door_id.clone(),
        e.actor.clone(),
        e.via.as_str().to_string(),
        e.origin.clone().unwrap_or_default(),
        e.action.clone(),
        e.target.clone(),
        e.detail.clone(),
    ];
    csv_line(&fields)
}

/// The whole filtered history (attempts, or with `what=changes` the audit trail) as CSV, streamed page
/// by page (no size limit, constant memory).
pub(crate) async fn csv(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(f): Query<Filter>,
) -> Result<Response, AppError> {
    let p = f.parse()?;
    if p.changes {
        if !user.is_admin() {
            return Err(AppError::Forbidden(
                "Only an administrator can export the changes made to the door.".into(),
            ));
        }
        let header_line =
            "id,local_time,utc_time,door,actor,via,origin,action,target,detail\r\n".to_string();
        let first = p.audit_query(&state, facereko_store::MAX_PAGE);
        let stream = paged_csv(header_line, first, state, |state, q| async move {
            let rows = state.store.audit_entries(&q).await?;
            let body: String = rows.iter().map(|e| audit_csv_row(e, &state.tz)).collect();
            let next = (rows.len() as u32 == q.limit).then(|| AuditQuery {
                before_id: rows.last().map(|e| e.id),
                ..q
            });
            Ok((body, next))
        });
        return Ok(csv_response("facereko-changes", stream));
    }
    let header_line = "id,local_time,utc_time,door,person,card,outcome,similarity_percent,\
                       detector_confidence_percent,total_ms,photo\r\n"
        .to_string();
    let first = p.query(&state, facereko_store::MAX_PAGE);
    let admin = user.is_admin();
    let p = std::sync::Arc::new(p);
    let stream = paged_csv(header_line, first, state, move |state, q| {
        let p = p.clone();
        async move {
            let rows = state.store.attempts(&q).await?;
            let body: String = rows
                .iter()
                .filter(|a| p.fits(a, &state.tz))
                .map(|a| csv_row(a, &state.tz, admin))
                .collect();
            let next = (rows.len() as u32 == q.limit).then(|| AttemptQuery {
                before_id: rows.last().map(|a| a.id),
                ..q
            });
            Ok((body, next))
        }
    });
    Ok(csv_response("facereko-history", stream))
}

/// The header line, then one chunk per page: `page(state, query)` gives a page's lines and the query of
/// the next page (`None` after the last). A failure ends the download with an error (logged), so a
/// half file is never mistaken for a whole one.
fn paged_csv<Q, F, Fut>(
    header_line: String,
    first: Q,
    state: AppState,
    page: F,
) -> impl futures_util::Stream<Item = Result<String, std::io::Error>>
where
    Q: Send + 'static,
    F: Fn(AppState, Q) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(String, Option<Q>), facereko_store::Error>> + Send,
{
    let page = std::sync::Arc::new(page);
    futures_util::stream::unfold(
        (Some(first), Some(header_line), state, page),
        move |(query, header_line, state, page)| async move {
            if let Some(h) = header_line {
                return Some((Ok(h), (query, None, state, page)));
            }
            let q = query?;
            match page(state.clone(), q).await {
                // A page may have no line to give (a time-of-day window) and still be followed.
                Ok((body, None)) if body.is_empty() => None,
                Ok((body, next)) => Some((Ok(body), (next, None, state, page))),
                Err(e) => {
                    tracing::error!("CSV export stopped: {e}");
                    Some((
                        Err(std::io::Error::other("export failed")),
                        (None, None, state, page),
                    ))
                }
            }
        },
    )
}

fn csv_response(
    stem: &str,
    stream: impl futures_util::Stream<Item = Result<String, std::io::Error>> + Send + 'static,
) -> Response {
    let name = format!("{stem}-{}.csv", Utc::now().format("%Y%m%d-%H%M%S"));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "attempt.html")]
struct AttemptTpl {
    page: Page,
    row: AttemptRow,
    detail: String,
    timings: String,
    distance: String,
    people: Vec<Choice>,
    /// The attempt's person is offered first only when the face was theirs: a mismatched or spoofed
    /// face added to the card owner would let its real owner in.
    preselect: bool,
    person_id: Option<i64>,
    person_name: String,
}

async fn load_attempt(state: &AppState, id: i64) -> Result<Attempt, AppError> {
    state.store.attempt(id).await?.ok_or(AppError::NotFound)
}

pub(crate) async fn attempt(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Query(q): Query<crate::routes::home::Done>,
) -> Result<Response, AppError> {
    let a = load_attempt(&state, id).await?;
    let preselect = !matches!(a.outcome, Outcome::FaceMismatch | Outcome::SpoofSuspected);
    let people = state
        .store
        .list_people()
        .await?
        .into_iter()
        .map(|x| Choice {
            selected: preselect && a.person_id == Some(x.id),
            value: x.id.to_string(),
            label: x.name,
        })
        .collect();
    let t = a.timings;
    let ms = |label: &str, v: Option<u32>| v.map(|v| format!("{label} {v} ms"));
    let timings = [
        ms("lookup", t.lookup_ms),
        ms("capture", t.capture_ms),
        ms("face", t.detect_ms),
        ms("match", t.match_ms),
        ms("total", t.total_ms),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" · ");
    let notice = match q.done() {
        Some("not_enrolled") => Some("The photo was not added.".to_string()),
        _ => None,
    };
    Ok(render(&AttemptTpl {
        page: Page::new(format!("Attempt {id}"), "history", Some(&user)).with_notice(notice),
        row: AttemptRow::new(&a, &state.tz, user.is_admin(), state.threshold),
        detail: a.detail.clone().unwrap_or_default(),
        timings,
        distance: a
            .distance
            .map(|d| format!("{d:.3}"))
            .unwrap_or_else(|| "–".into()),
        people,
        preselect,
        person_id: a.person_id.map(|p| p.0),
        person_name: a.person.clone().unwrap_or_default(),
    }))
}

#[derive(Deserialize)]
pub(crate) struct EnrolForm {
    person: i64,
}

/// "Add this photo to <person>": the attempt's photo becomes an enrolled face.
pub(crate) async fn enrol_from_attempt(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<EnrolForm>,
) -> Result<Response, AppError> {
    let a = load_attempt(&state, id).await?;
    let person = state
        .store
        .person(PersonId(f.person))
        .await?
        .ok_or_else(|| AppError::BadRequest("That person does not exist.".into()))?;
    let rel = a.photo.ok_or_else(|| {
        AppError::BadRequest("This attempt has no photo (or it was purged).".into())
    })?;
    let path = state.store.photo_path(&rel)?;
    let bytes = tokio::fs::read(&path).await.map_err(|_| {
        AppError::BadRequest("The photo file is gone (purged by retention?).".into())
    })?;
    let photo = crate::routes::people::checked(&state, bytes).await?;
    let source = format!("from the photo of attempt #{id}");
    crate::routes::people::enrol_or_ask(&state, &user, &person, photo, source).await
}

#[derive(Template)]
#[template(path = "review.html")]
struct ReviewTpl {
    page: Page,
    row: AttemptRow,
    person_id: i64,
    person: String,
    faces: Vec<FaceView>,
    cards: Vec<CardView>,
}

/// "This was not <person>": the attempt's photo beside that person's enrolled faces and cards, to delete a
/// wrong face or disable a card that someone else used.
pub(crate) async fn review(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let a = load_attempt(&state, id).await?;
    let pid = a
        .person_id
        .ok_or_else(|| AppError::BadRequest("This attempt is not linked to a person.".into()))?;
    let person = state.store.person(pid).await?.ok_or(AppError::NotFound)?;
    let faces = state
        .store
        .faces(Some(pid))
        .await?
        .into_iter()
        .map(|f| face_view(&f, &state.tz))
        .collect();
    Ok(render(&ReviewTpl {
        page: Page::new(format!("Review attempt {id}"), "history", Some(&user)),
        row: AttemptRow::new(&a, &state.tz, true, state.threshold),
        person_id: pid.0,
        person: person.name.clone(),
        faces,
        cards: person.cards.iter().map(|c| card_view(c, true)).collect(),
    }))
}
