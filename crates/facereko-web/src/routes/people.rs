//! People: list, add, edit (name, enabled, validity dates, group, weekly schedule in the day/time range
//! editor of `crate::schedule`), cards (typed or tapped on the reader), faces (uploaded, taken with the
//! door camera, deleted).

use std::time::Duration;

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::NaiveDate;
use facereko_domain::{CardUid, GroupId, PersonId, Photo};
use serde::Deserialize;

use crate::auth::{Admin, CurrentUser};
use crate::error::AppError;
use crate::extract::{CsrfForm, CsrfMultipart, NoFields, Path, Query};
use crate::routes::{confirm_page, Ask, Confirm};
use crate::views::{card_view, face_view, render, CardView, FaceView, Page};
use crate::{Actor, AppState, EnrolError};

/// What the door would say to `p` at `now`, the reason first: disabled, then the validity dates, then
/// the weekly schedule.
fn person_state(
    p: &facereko_domain::Person,
    now: chrono::DateTime<chrono::Utc>,
    tz: &crate::config::TimeZone,
) -> &'static str {
    if !p.active {
        "disabled"
    } else if p.valid_until.is_some_and(|t| now >= t) {
        "expired"
    } else if p.valid_from.is_some_and(|t| now < t) {
        "not valid yet"
    } else if !p.admits(now, tz) {
        "outside schedule now"
    } else {
        "enabled"
    }
}

pub(crate) struct PersonRow {
    pub id: i64,
    pub name: String,
    /// Whether the door would let them in now, in words: `enabled`, `disabled`, `expired`,
    /// `not valid yet` or `outside schedule now`.
    pub state: &'static str,
    /// They would be let in now.
    pub admitted: bool,
    pub cards: usize,
    pub faces: usize,
    pub validity: String,
    /// Their group (id, name), if any.
    pub group: Option<(i64, String)>,
    /// A small picture of their first enrolled face (administrators only: viewers see no enrolment
    /// photos).
    pub thumb: Option<String>,
}

/// People per page of the list.
pub const PEOPLE_PAGE: usize = 50;

#[derive(Template)]
#[template(path = "people.html")]
struct PeopleTpl {
    page: Page,
    people: Vec<PersonRow>,
    /// The search as typed.
    q: String,
    /// "People 51–100 of 240" / "3 of 240 people match".
    count: String,
    prev: Option<String>,
    next: Option<String>,
    /// Page links when there is more than one page: (number, address, current).
    pages: Vec<(usize, String, bool)>,
}

fn validity(state: &AppState, p: &facereko_domain::Person) -> String {
    let from = p.valid_from.map(|t| state.tz.format(t, "%Y-%m-%d"));
    let until = p.valid_until.map(|t| {
        state
            .tz
            .format(t - chrono::Duration::seconds(1), "%Y-%m-%d")
    });
    match (from, until) {
        (None, None) => "always".into(),
        (Some(f), None) => format!("from {f}"),
        (None, Some(u)) => format!("until {u}"),
        (Some(f), Some(u)) => format!("{f} – {u}"),
    }
}

/// The people list's address: a search (a name, or for administrators a card UID or part of one) and a
/// page number.
#[derive(Default, Deserialize)]
pub(crate) struct ListQuery {
    done: Option<String>,
    q: Option<String>,
    page: Option<String>,
}

/// Whether `p` is what `q` looks for: a part of the name (any case), or — when cards may be searched —
/// a part of a card UID written with or without colons.
fn matches(p: &facereko_domain::Person, q: &str, cards: bool) -> bool {
    let q = q.trim().to_lowercase();
    if q.is_empty() || p.name.to_lowercase().contains(&q) {
        return true;
    }
    let hex: String = q
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '-'))
        .collect();
    cards
        && hex.len() >= 2
        && hex.chars().all(|c| c.is_ascii_hexdigit())
        && p.cards
            .iter()
            .any(|c| hex::encode(c.uid.as_bytes()).contains(&hex))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<ListQuery>,
) -> Result<Response, AppError> {
    let search = q.q.as_deref().unwrap_or_default().trim();
    if search.chars().count() > 100 {
        return Err(AppError::BadRequest(
            "Search for at most 100 characters.".into(),
        ));
    }
    let page: usize = match q.page.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => 1,
        Some(n) => n
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| AppError::BadRequest("That is not a page number.".into()))?,
    };
    let admin = user.is_admin();
    let people = state.store.list_people().await?;
    let total = people.len();
    let found: Vec<_> = people
        .iter()
        .filter(|p| matches(p, search, admin))
        .collect();
    let pages = found.len().div_ceil(PEOPLE_PAGE).max(1);
    let page = page.min(pages);
    let shown =
        &found[((page - 1) * PEOPLE_PAGE).min(found.len())..(page * PEOPLE_PAGE).min(found.len())];
    let faces = state.store.faces(None).await?;
    let now = chrono::Utc::now();
    let rows = shown
        .iter()
        .map(|p| {
            let mine: Vec<_> = faces.iter().filter(|f| f.person_id == p.id).collect();
            PersonRow {
                id: p.id.0,
                name: p.name.clone(),
                state: person_state(p, now, &state.tz),
                admitted: p.active && p.admits(now, &state.tz),
                cards: p.cards.len(),
                faces: mine.len(),
                validity: validity(&state, p),
                group: p.group.as_ref().map(|g| (g.id.0, g.name.clone())),
                thumb: admin
                    .then(|| mine.iter().find_map(|f| face_view(f, &state.tz).thumb))
                    .flatten(),
            }
        })
        .collect();
    let link = |n: usize| {
        let mut to = String::from("/people?");
        if !search.is_empty() {
            to.push_str(&format!("q={}&", crate::views::url_encode(search)));
        }
        to.push_str(&format!("page={n}"));
        to
    };
    let count = match (search.is_empty(), found.len()) {
        (true, 0) => "Nobody is enrolled yet.".to_string(),
        (false, 0) => format!("Nobody matches “{search}”."),
        (true, n) if pages == 1 => format!("{} people.", crate::views::thousands(n as i64)),
        (s, n) => format!(
            "{}–{} of {}{}.",
            (page - 1) * PEOPLE_PAGE + 1,
            (page - 1) * PEOPLE_PAGE + shown.len(),
            crate::views::thousands(n as i64),
            if s {
                " people".to_string()
            } else {
                format!(
                    " matching “{search}” (of {} people)",
                    crate::views::thousands(total as i64)
                )
            }
        ),
    };
    let notice = match q.done.as_deref() {
        Some("person_saved") => Some("Saved.".to_string()),
        Some("person_removed") => Some("Person removed.".to_string()),
        _ => None,
    };
    Ok(render(&PeopleTpl {
        page: Page::new("People", "people", Some(&user)).with_notice(notice),
        people: rows,
        q: search.to_string(),
        count,
        prev: (page > 1).then(|| link(page - 1)),
        next: (page < pages).then(|| link(page + 1)),
        pages: if pages > 1 {
            (1..=pages).map(|n| (n, link(n), n == page)).collect()
        } else {
            Vec::new()
        },
    }))
}

#[derive(Deserialize)]
pub(crate) struct AddForm {
    name: String,
}

pub(crate) async fn add(
    State(state): State<AppState>,
    Admin(user): Admin,
    CsrfForm(f): CsrfForm<AddForm>,
) -> Result<Response, AppError> {
    let id = state.store.add_person(&f.name).await?;
    state
        .audit(Actor::Web(&user), "person.add", f.name.trim(), "")
        .await;
    Ok(Redirect::to(&format!("/people/{id}?done=person_added")).into_response())
}

#[derive(Template)]
#[template(path = "person.html")]
struct PersonTpl {
    page: Page,
    id: i64,
    name: String,
    active: bool,
    valid_from: String,
    valid_until: String,
    validity: String,
    /// The schedule the door applies, in words (`Mon-Fri 08:00-18:00`, or empty for any time).
    schedule: String,
    /// Where [`PersonTpl::schedule`] comes from: "own", "group" or "" (any time).
    schedule_from: &'static str,
    /// The editor's rows: the person's own schedule.
    schedule_rows: Vec<crate::schedule::EditorRow>,
    schedule_legend: &'static str,
    schedule_hint: String,
    /// The group select: (id, name, selected).
    groups: Vec<(i64, String, bool)>,
    group_name: Option<String>,
    group_id: Option<i64>,
    cards: Vec<CardView>,
    faces: Vec<FaceView>,
    wait_seconds: u32,
    /// What was typed into the card forms, kept when they come back with an error.
    card_uid: String,
    card_label: String,
    tap_label: String,
}

/// What a form sent, shown again with its error instead of a bare error page.
#[derive(Default)]
struct Kept {
    error: Option<String>,
    /// The person form as typed (name, first day, last day, schedule, enabled).
    person: Option<UpdateForm>,
    card_uid: String,
    card_label: String,
    tap_label: String,
}

async fn person_or_404(state: &AppState, id: i64) -> Result<facereko_domain::Person, AppError> {
    state
        .store
        .person(PersonId(id))
        .await?
        .ok_or(AppError::NotFound)
}

/// The person page's address: `done` names what just succeeded; after "Tap now" came back without a
/// card, `tap` says why (`timeout`, `cancelled`, `busy`) and `label` keeps what was typed.
#[derive(Default, Deserialize)]
pub(crate) struct ShowQuery {
    done: Option<String>,
    tap: Option<String>,
    label: Option<String>,
}

pub(crate) async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Query(q): Query<ShowQuery>,
) -> Result<Response, AppError> {
    let p = person_or_404(&state, id).await?;
    let wait = state.config.card_wait_seconds;
    let error = match q.tap.as_deref() {
        Some("timeout") => Some(format!(
            "No card was presented on the reader within {wait} s. Press \"Tap now\" again and hold \
             the card on the reader."
        )),
        Some("busy") => Some(
            "The card reader is already waiting for a card for someone else; try again in a moment."
                .to_string(),
        ),
        _ => None,
    };
    let tap_label = q
        .label
        .as_deref()
        .filter(|l| l.chars().count() <= 100)
        .unwrap_or_default()
        .to_string();
    let kept = Kept {
        error,
        tap_label,
        ..Kept::default()
    };
    let page = person_page(&state, &user, &p, q.done.as_deref(), kept).await?;
    Ok(render(&page))
}

async fn person_page(
    state: &AppState,
    user: &CurrentUser,
    p: &facereko_domain::Person,
    done: Option<&str>,
    kept: Kept,
) -> Result<PersonTpl, AppError> {
    let faces = state.store.faces(Some(p.id)).await?;
    let notice = done
        .and_then(|d| {
            Some(match d {
                "person_added" => "Person added. Now add a card and a face.",
                "saved" => "Saved.",
                "card_added" => "Card added.",
                "card_changed" => "Card updated.",
                "card_removed" => "Card removed.",
                "face_added" => "Face enrolled.",
                "face_deleted" => "Face deleted.",
                "tap_cancelled" => "Stopped waiting for a card.",
                _ => return None,
            })
        })
        .map(str::to_string);
    let typed = kept.person.as_ref();
    let groups = if user.is_admin() {
        state.store.groups().await?
    } else {
        Vec::new()
    };
    let chosen = match typed {
        Some(f) => f
            .group
            .as_deref()
            .and_then(|g| g.trim().parse::<i64>().ok()),
        None => p.group.as_ref().map(|g| g.id.0),
    };
    let (schedule, schedule_from) = match (&p.schedule, &p.group) {
        (Some(s), _) => (crate::schedule::format(Some(s)), "own"),
        (None, Some(g)) if g.schedule.is_some() => {
            (crate::schedule::format(g.schedule.as_ref()), "group")
        }
        _ => (String::new(), ""),
    };
    let schedule_hint = match p.group.as_ref() {
        Some(g) => match &g.schedule {
            Some(s) => format!(
                "Leave every row empty to follow the group {}: {}.",
                g.name,
                crate::schedule::one_line(Some(s))
            ),
            None => format!(
                "Leave every row empty for any time (the group {} sets no hours).",
                g.name
            ),
        },
        None => "Leave every row empty for any time (or for the group's hours, once in a group)."
            .to_string(),
    };
    Ok(PersonTpl {
        page: Page::new(p.name.clone(), "people", Some(user))
            .with_notice(notice)
            .with_error(kept.error),
        id: p.id.0,
        name: typed.map_or_else(|| p.name.clone(), |f| f.name.clone()),
        active: typed.map_or(p.active, |f| f.active.is_some()),
        valid_from: match typed {
            Some(f) => f.valid_from.clone().unwrap_or_default(),
            None => p
                .valid_from
                .map(|t| state.tz.format(t, "%Y-%m-%d"))
                .unwrap_or_default(),
        },
        valid_until: match typed {
            Some(f) => f.valid_until.clone().unwrap_or_default(),
            None => p
                .valid_until
                .map(|t| {
                    state
                        .tz
                        .format(t - chrono::Duration::seconds(1), "%Y-%m-%d")
                })
                .unwrap_or_default(),
        },
        validity: validity(state, p),
        schedule,
        schedule_from,
        schedule_rows: match typed {
            Some(f) => crate::schedule::rows_as_posted(&f.fields()),
            None => crate::schedule::editor_rows(p.schedule.as_ref()),
        },
        schedule_legend: "Own weekly schedule",
        schedule_hint,
        groups: groups
            .into_iter()
            .map(|g| (g.group.id.0, g.group.name, Some(g.group.id.0) == chosen))
            .collect(),
        group_name: p.group.as_ref().map(|g| g.name.clone()),
        group_id: p.group.as_ref().map(|g| g.id.0),
        cards: p
            .cards
            .iter()
            .map(|c| card_view(c, user.is_admin()))
            .collect(),
        faces: faces.iter().map(|f| face_view(f, &state.tz)).collect(),
        wait_seconds: state.config.card_wait_seconds,
        card_uid: kept.card_uid,
        card_label: kept.card_label,
        tap_label: kept.tap_label,
    })
}

/// The person page again with the form's error and what was typed (400), instead of an error page.
async fn form_error(
    state: &AppState,
    user: &CurrentUser,
    p: &facereko_domain::Person,
    error: AppError,
    kept: Kept,
) -> Result<Response, AppError> {
    let status = error.status();
    if !matches!(
        error,
        AppError::BadRequest(_) | AppError::Conflict(_) | AppError::Unavailable(_)
    ) {
        return Err(error);
    }
    let kept = Kept {
        error: Some(error.public_message().0),
        ..kept
    };
    let page = person_page(state, user, p, None, kept).await?;
    Ok(crate::views::render_with_status(status, &page))
}

#[derive(Deserialize)]
pub(crate) struct UpdateForm {
    name: String,
    active: Option<String>,
    valid_from: Option<String>,
    valid_until: Option<String>,
    /// A group id, or empty for none.
    group: Option<String>,
    /// The schedule editor's rows (`w0_mon`, `w0_from`, …) and whatever else came.
    #[serde(flatten)]
    rest: std::collections::HashMap<String, String>,
}

impl UpdateForm {
    fn fields(&self) -> Vec<(String, String)> {
        self.rest
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The group a form chose: `None` for none; a 400 for anything but the id of a group that exists.
pub(crate) async fn chosen_group(
    state: &AppState,
    value: Option<&str>,
) -> Result<Option<facereko_domain::Group>, AppError> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let unknown = || AppError::BadRequest("That group does not exist (any more).".into());
    let id: i64 = v.parse().map_err(|_| unknown())?;
    state
        .store
        .group(GroupId(id))
        .await?
        .map(Some)
        .ok_or_else(unknown)
}

fn date(s: Option<&str>, what: &str) -> Result<Option<NaiveDate>, AppError> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| {
                AppError::BadRequest(format!("The {what} date must look like 2026-12-31."))
            }),
    }
}

pub(crate) async fn update(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<UpdateForm>,
) -> Result<Response, AppError> {
    let before = person_or_404(&state, id).await?;
    let p = match save_person(&state, &before, &f).await {
        Ok(p) => p,
        Err(e) => {
            let kept = Kept {
                person: Some(f),
                ..Kept::default()
            };
            return form_error(&state, &user, &before, e, kept).await;
        }
    };
    let changes = person_changes(&state, &before, &p);
    state
        .audit(Actor::Web(&user), "person.update", &p.name, changes)
        .await;
    Ok(Redirect::to(&format!("/people/{id}?done=saved")).into_response())
}

/// Checks the person form and saves it; the person as saved.
async fn save_person(
    state: &AppState,
    before: &facereko_domain::Person,
    f: &UpdateForm,
) -> Result<facereko_domain::Person, AppError> {
    let mut p = before.clone();
    let from = date(f.valid_from.as_deref(), "first day")?;
    let until = date(f.valid_until.as_deref(), "last day")?;
    if let (Some(a), Some(b)) = (from, until) {
        if b < a {
            return Err(AppError::BadRequest(
                "The last day is before the first day.".into(),
            ));
        }
    }
    p.name = f.name.trim().to_string();
    p.active = f.active.is_some();
    p.valid_from = from.and_then(|d| state.tz.start_of_day(d));
    p.valid_until = until
        .and_then(|d| d.succ_opt())
        .and_then(|d| state.tz.start_of_day(d));
    p.schedule = crate::schedule::from_form(&f.fields()).map_err(AppError::BadRequest)?;
    let group = chosen_group(state, f.group.as_deref()).await?;
    state.store.update_person(&p).await?;
    if group.as_ref().map(|g| g.id) != before.group.as_ref().map(|g| g.id) {
        state
            .store
            .assign_group(group.as_ref().map(|g| g.id), &[p.id])
            .await?;
    }
    p.group = group;
    Ok(p)
}

/// Removes a person with their cards and faces, once confirmed; their attempts stay in History under the
/// name they had.
pub(crate) async fn remove(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<i64>,
    CsrfForm(c): CsrfForm<Confirm>,
) -> Result<Response, AppError> {
    let p = person_or_404(&state, id).await?;
    let faces = state.store.faces(Some(p.id)).await?.len();
    if !c.confirmed() {
        let question = format!(
            "Remove {} with {} and {}?",
            p.name,
            plural(p.cards.len(), "card"),
            plural(faces, "enrolled face")
        );
        return Ok(confirm_page(
            &user,
            &format!("/people/{id}/remove"),
            Ask {
                title: "Remove person",
                question: &question,
                consequence: "Their cards stop opening the door at once and their face photos are \
                              deleted; their past attempts stay in History. To stop them only for a \
                              while, disable them instead.",
                button: "Remove person",
                cancel: &format!("/people/{id}"),
            },
            Vec::new(),
        ));
    }
    state.store.delete_person(p.id).await?;
    state
        .audit(
            Actor::Web(&user),
            "person.remove",
            &p.name,
            format!(
                "with {} and {}",
                plural(p.cards.len(), "card"),
                plural(faces, "face")
            ),
        )
        .await;
    Ok(Redirect::to("/people?done=person_removed").into_response())
}

/// "1 card", "3 cards".
fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[derive(Deserialize)]
pub(crate) struct CardForm {
    uid: String,
    label: Option<String>,
}

fn label_of(label: Option<&str>) -> Result<Option<&str>, AppError> {
    let l = label.map(str::trim).filter(|l| !l.is_empty());
    if l.is_some_and(|l| l.chars().count() > 100 || l.chars().any(char::is_control)) {
        return Err(AppError::BadRequest(
            "The card label has at most 100 characters.".into(),
        ));
    }
    Ok(l)
}

pub(crate) async fn add_card(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<CardForm>,
) -> Result<Response, AppError> {
    let p = person_or_404(&state, id).await?;
    let added = async {
        let uid: CardUid = f
            .uid
            .parse()
            .map_err(|e: facereko_domain::Error| AppError::BadRequest(e.to_string()))?;
        let label = label_of(f.label.as_deref())?;
        state.store.add_card(p.id, &uid, label).await?;
        Ok::<_, AppError>(card_words(&uid, label))
    }
    .await;
    match added {
        Ok(words) => {
            state
                .audit(Actor::Web(&user), "card.add", &p.name, words)
                .await;
            Ok(Redirect::to(&format!("/people/{id}?done=card_added")).into_response())
        }
        Err(e) => {
            let kept = Kept {
                card_uid: f.uid.chars().take(64).collect(),
                card_label: f.label.unwrap_or_default().chars().take(100).collect(),
                ..Kept::default()
            };
            form_error(&state, &user, &p, e, kept).await
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct TapForm {
    label: Option<String>,
}

/// "Tap now": the next card presented on the door's reader becomes this person's card. Waits up to
/// `card_wait_seconds`; "Cancel" (`tap/cancel`) ends the wait. Without a card it goes back to the person
/// page saying why, with the label kept.
pub(crate) async fn tap_card(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<TapForm>,
) -> Result<Response, AppError> {
    let p = person_or_404(&state, id).await?;
    let label = match label_of(f.label.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            let kept = Kept {
                tap_label: f
                    .label
                    .clone()
                    .unwrap_or_default()
                    .chars()
                    .take(100)
                    .collect(),
                ..Kept::default()
            };
            return form_error(&state, &user, &p, e, kept).await;
        }
    };
    let back = |why: &str| {
        let mut to = format!("/people/{id}?tap={why}");
        if let Some(l) = label {
            to.push_str(&format!("&label={}", crate::views::url_encode(l)));
        }
        Redirect::to(&format!("{to}#tap-now")).into_response()
    };
    let Ok(_reader) = state.runtime.card_wait.try_lock() else {
        return Ok(back("busy"));
    };
    let wait = Duration::from_secs(u64::from(state.config.card_wait_seconds));
    let cancelled = state.runtime.card_cancel.notified();
    let tap = tokio::select! {
        tap = state.door.next_card(wait) => tap,
        () = cancelled => return Ok(Redirect::to(&format!("/people/{id}?done=tap_cancelled")).into_response()),
    };
    let tap = match tap {
        Ok(tap) => tap,
        Err(facereko_door::Error::NoCard(_)) => return Ok(back("timeout")),
        Err(e) => return Err(e.into()),
    };
    state.store.add_card(p.id, &tap.uid, label).await?;
    state
        .audit(
            Actor::Web(&user),
            "card.add",
            &p.name,
            format!("{}, tapped on the reader", card_words(&tap.uid, label)),
        )
        .await;
    Ok(Redirect::to(&format!("/people/{id}?done=card_added")).into_response())
}

/// Stops a "Tap now" that is waiting for a card (anyone's: one wait at a time).
pub(crate) async fn cancel_tap(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(id): Path<i64>,
    _: CsrfForm<NoFields>,
) -> Result<Response, AppError> {
    state.runtime.card_cancel.notify_waiters();
    Ok(Redirect::to(&format!("/people/{id}?done=tap_cancelled")).into_response())
}

fn uid_of(key: &str) -> Result<CardUid, AppError> {
    key.parse()
        .map_err(|_| AppError::BadRequest("That is not a card UID.".into()))
}

/// The card must belong to this person (so a form for one person cannot change another's card); the
/// card and its owner's name.
async fn own_card(
    state: &AppState,
    id: i64,
    key: &str,
) -> Result<(facereko_domain::Card, String), AppError> {
    let uid = uid_of(key)?;
    match state.store.lookup_card(&uid).await? {
        Some((card, owner)) if card.person_id == PersonId(id) => Ok((card, owner.name)),
        _ => Err(AppError::NotFound),
    }
}

/// A card in the audit trail's words: `card 04:A2:••:•• ("blue fob")`. Masked like a viewer sees it:
/// the trail also goes out as events, and in `card` mode a whole UID is a credential.
fn card_words(uid: &CardUid, label: Option<&str>) -> String {
    match label {
        Some(l) => format!("card {} ({l:?})", uid.masked()),
        None => format!("card {}", uid.masked()),
    }
}

/// What an edit of a person changed, in words, for the audit trail.
fn person_changes(
    state: &AppState,
    a: &facereko_domain::Person,
    b: &facereko_domain::Person,
) -> String {
    let mut out = Vec::new();
    if a.name != b.name {
        out.push(format!("name {:?} → {:?}", a.name, b.name));
    }
    if a.active != b.active {
        out.push(if b.active { "enabled" } else { "disabled" }.to_string());
    }
    let (va, vb) = (validity(state, a), validity(state, b));
    if va != vb {
        out.push(format!("valid {va} → {vb}"));
    }
    let (sa, sb) = (
        crate::schedule::one_line(a.schedule.as_ref()),
        crate::schedule::one_line(b.schedule.as_ref()),
    );
    if sa != sb {
        let words = |s: &str, p: &facereko_domain::Person| {
            if !s.is_empty() {
                s.to_string()
            } else if p.group.is_some() {
                "the group's".to_string()
            } else {
                "any time".to_string()
            }
        };
        out.push(format!("schedule {} → {}", words(&sa, a), words(&sb, b)));
    }
    let (ga, gb) = (
        a.group.as_ref().map(|g| g.id),
        b.group.as_ref().map(|g| g.id),
    );
    if ga != gb {
        let name = |g: &Option<facereko_domain::Group>| {
            g.as_ref()
                .map_or_else(|| "none".to_string(), |g| format!("{:?}", g.name))
        };
        out.push(format!("group {} → {}", name(&a.group), name(&b.group)));
    }
    if out.is_empty() {
        "nothing changed".into()
    } else {
        out.join("; ")
    }
}

#[derive(Deserialize)]
pub(crate) struct ActiveForm {
    /// `on` or `off`.
    active: String,
}

pub(crate) async fn card_active(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path((id, key)): Path<(i64, String)>,
    CsrfForm(f): CsrfForm<ActiveForm>,
) -> Result<Response, AppError> {
    let (card, owner) = own_card(&state, id, &key).await?;
    let active = f.active == "on";
    state.store.set_card_active(&card.uid, active).await?;
    let action = if active {
        "card.enable"
    } else {
        "card.disable"
    };
    state
        .audit(
            Actor::Web(&user),
            action,
            owner,
            card_words(&card.uid, card.label.as_deref()),
        )
        .await;
    Ok(Redirect::to(&format!("/people/{id}?done=card_changed")).into_response())
}

pub(crate) async fn remove_card(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path((id, key)): Path<(i64, String)>,
    CsrfForm(c): CsrfForm<Confirm>,
) -> Result<Response, AppError> {
    let (card, owner) = own_card(&state, id, &key).await?;
    if !c.confirmed() {
        let question = format!(
            "Remove card {} {}of {owner}?",
            card.uid,
            card.label
                .as_deref()
                .map(|l| format!("({l}) "))
                .unwrap_or_default()
        );
        return Ok(confirm_page(
            &user,
            &format!("/people/{id}/cards/{key}/remove"),
            Ask {
                title: "Remove card",
                question: &question,
                consequence:
                    "The card stops opening the door at once. To stop it only for a while, \
                              disable it instead.",
                button: "Remove card",
                cancel: &format!("/people/{id}"),
            },
            Vec::new(),
        ));
    }
    state.store.remove_card(&card.uid).await?;
    state
        .audit(
            Actor::Web(&user),
            "card.remove",
            owner,
            card_words(&card.uid, card.label.as_deref()),
        )
        .await;
    Ok(Redirect::to(&format!("/people/{id}?done=card_removed")).into_response())
}

/// Checks an image's bytes off the async threads.
pub(crate) async fn checked(state: &AppState, bytes: Vec<u8>) -> Result<Photo, AppError> {
    let max = state.config.max_image_side;
    tokio::task::spawn_blocking(move || crate::images::check_photo(bytes, max))
        .await
        .map_err(|e| AppError::Internal(format!("image check task: {e}")))?
        .map_err(|e| AppError::BadRequest(format!("The photo was refused: {e}.")))
}

fn enrol_error(e: EnrolError) -> AppError {
    match e {
        EnrolError::Other(m) => AppError::Internal(format!("enrolment: {m}")),
        other => AppError::BadRequest(format!("The face was not enrolled: {other}.")),
    }
}

/// Enrols `photo` for `person`, unless its face looks like another enrolled person: then the photo is
/// held and the administrator asked to confirm (`/people/{id}/faces/confirm`). `source` says where the
/// photo came from, for the audit trail.
pub(crate) async fn enrol_or_ask(
    state: &AppState,
    user: &CurrentUser,
    person: &facereko_domain::Person,
    photo: Photo,
    source: String,
) -> Result<Response, AppError> {
    match state.faces.enrol(person.id, photo.clone(), true).await {
        Ok(face) => {
            state
                .audit(
                    Actor::Web(user),
                    "face.add",
                    &person.name,
                    format!("face #{face} {source}"),
                )
                .await;
            Ok(Redirect::to(&format!("/people/{}?done=face_added", person.id)).into_response())
        }
        Err(EnrolError::LooksLike {
            name,
            similarity,
            threshold,
        }) => {
            let looks_like = format!("{name} ({similarity:.1} %, needs {threshold:.1} %)");
            let key = state
                .runtime
                .hold_face(&user.token, person.id, photo, source, looks_like);
            let question = format!(
                "This face looks like {name}: {similarity:.1} % alike, and the door opens from \
                 {threshold:.1} %. Enrol it for {} anyway?",
                person.name
            );
            Ok(confirm_page(
                user,
                &format!("/people/{}/faces/confirm", person.id),
                Ask {
                    title: "Check the photo",
                    question: &question,
                    consequence: "If this is really someone else, they could open the door with \
                                  this person's card. Enrol it only if you are sure who it is (twins \
                                  and close relatives can look this alike).",
                    button: "Enrol anyway",
                    cancel: &format!("/people/{}", person.id),
                },
                vec![("pending", key)],
            ))
        }
        Err(e) => Err(enrol_error(e)),
    }
}

#[derive(Deserialize)]
pub(crate) struct PendingForm {
    pending: String,
    #[serde(default)]
    confirm: Option<String>,
}

/// "Enrol anyway": the photo held by [`enrol_or_ask`] is enrolled without the check.
pub(crate) async fn confirm_face(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<PendingForm>,
) -> Result<Response, AppError> {
    let p = person_or_404(&state, id).await?;
    let held = state
        .runtime
        .take_face(&user.token, &f.pending)
        .filter(|h| h.person == p.id)
        .ok_or_else(|| {
            AppError::BadRequest(
                "That photo is no longer waiting (it waits 10 minutes); add it again.".into(),
            )
        })?;
    if f.confirm.as_deref() != Some("yes") {
        return Ok(Redirect::to(&format!("/people/{id}")).into_response());
    }
    let face = state
        .faces
        .enrol(p.id, held.photo, false)
        .await
        .map_err(enrol_error)?;
    state
        .audit(
            Actor::Web(&user),
            "face.add",
            &p.name,
            format!(
                "face #{face} {}, confirmed although it looks like {}",
                held.source, held.looks_like
            ),
        )
        .await;
    Ok(Redirect::to(&format!("/people/{id}?done=face_added")).into_response())
}

pub(crate) async fn upload_face(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<i64>,
    mut upload: CsrfMultipart,
) -> Result<Response, AppError> {
    let mut bytes = None;
    while let Some(field) = upload.next_field().await? {
        if field.name.as_deref() == Some("photo") {
            bytes = Some(field.bytes.to_vec());
        }
    }
    let p = person_or_404(&state, id).await?;
    let bytes = bytes
        .filter(|b| !b.is_empty())
        .ok_or_else(|| AppError::BadRequest("Choose a photo to upload.".into()))?;
    let photo = checked(&state, bytes).await?;
    enrol_or_ask(&state, &user, &p, photo, "from an uploaded photo".into()).await
}

pub(crate) async fn capture_face(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<i64>,
    _: CsrfForm<NoFields>,
) -> Result<Response, AppError> {
    let p = person_or_404(&state, id).await?;
    let photo = state.door.snapshot().await.map_err(|e| {
        tracing::warn!("camera capture for enrolment failed: {e}");
        AppError::Unavailable("The door camera could not take a photo right now.".into())
    })?;
    let photo = checked(&state, photo.bytes).await?;
    enrol_or_ask(
        &state,
        &user,
        &p,
        photo,
        "taken with the door camera".into(),
    )
    .await
}

pub(crate) async fn delete_face(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path((id, face)): Path<(i64, i64)>,
    CsrfForm(c): CsrfForm<Confirm>,
) -> Result<Response, AppError> {
    let p = person_or_404(&state, id).await?;
    let faces = state.store.faces(Some(p.id)).await?;
    if !faces.iter().any(|x| x.id == face) {
        return Err(AppError::NotFound);
    }
    if !c.confirmed() {
        let question = format!("Delete this enrolled face (#{face}) of {}?", p.name);
        let consequence = if faces.len() == 1 {
            "It is their only face: until another is enrolled, the door cannot recognise them."
        } else {
            "The photo and its face data are deleted; this cannot be undone."
        };
        return Ok(confirm_page(
            &user,
            &format!("/people/{id}/faces/{face}/delete"),
            Ask {
                title: "Delete face",
                question: &question,
                consequence,
                button: "Delete face",
                cancel: &format!("/people/{id}"),
            },
            Vec::new(),
        ));
    }
    state.faces.delete(face).await.map_err(|e| match e {
        EnrolError::Other(m) => AppError::Internal(format!("face delete: {m}")),
        other => AppError::BadRequest(other.to_string()),
    })?;
    state
        .audit(
            Actor::Web(&user),
            "face.delete",
            &p.name,
            format!("face #{face}"),
        )
        .await;
    Ok(Redirect::to(&format!("/people/{id}?done=face_deleted")).into_response())
}
