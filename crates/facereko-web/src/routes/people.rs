//! People: list, add, edit (name, enabled, validity dates, weekly schedule), cards (typed or tapped on the
//! reader), faces (uploaded, taken with the door camera, deleted).

use std::time::Duration;

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::NaiveDate;
use facereko_domain::{CardUid, PersonId, Photo};
use serde::Deserialize;

use crate::auth::{Admin, CurrentUser};
use crate::error::AppError;
use crate::extract::{CsrfForm, CsrfMultipart, NoFields, Path, Query};
use crate::routes::home::Done;
use crate::views::{card_view, face_view, render, CardView, FaceView, Page};
use crate::{AppState, EnrolError};

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
}

#[derive(Template)]
#[template(path = "people.html")]
struct PeopleTpl {
    page: Page,
    people: Vec<PersonRow>,
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

pub(crate) async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<Done>,
) -> Result<Response, AppError> {
    let people = state.store.list_people().await?;
    let faces = state.store.faces(None).await?;
    let now = chrono::Utc::now();
    let rows = people
        .iter()
        .map(|p| PersonRow {
            id: p.id.0,
            name: p.name.clone(),
            state: person_state(p, now, &state.tz),
            admitted: p.active && p.admits(now, &state.tz),
            cards: p.cards.len(),
            faces: faces.iter().filter(|f| f.person_id == p.id).count(),
            validity: validity(&state, p),
        })
        .collect();
    let notice = (q.done() == Some("person_saved")).then(|| "Saved.".to_string());
    Ok(render(&PeopleTpl {
        page: Page::new("People", "people", Some(&user)).with_notice(notice),
        people: rows,
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
    tracing::info!(user = %user.account.username, person = %f.name.trim(), "person added");
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
    schedule: String,
    cards: Vec<CardView>,
    faces: Vec<FaceView>,
    wait_seconds: u32,
}

async fn person_or_404(state: &AppState, id: i64) -> Result<facereko_domain::Person, AppError> {
    state
        .store
        .person(PersonId(id))
        .await?
        .ok_or(AppError::NotFound)
}

pub(crate) async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Query(q): Query<Done>,
) -> Result<Response, AppError> {
    let p = person_or_404(&state, id).await?;
    let faces = state.store.faces(Some(p.id)).await?;
    let notice = q
        .done()
        .and_then(|d| {
            Some(match d {
                "person_added" => "Person added. Now add a card and a face.",
                "saved" => "Saved.",
                "card_added" => "Card added.",
                "card_changed" => "Card updated.",
                "card_removed" => "Card removed.",
                "face_added" => "Face enrolled.",
                "face_deleted" => "Face deleted.",
                _ => return None,
            })
        })
        .map(str::to_string);
    Ok(render(&PersonTpl {
        page: Page::new(p.name.clone(), "people", Some(&user)).with_notice(notice),
        id: p.id.0,
        name: p.name.clone(),
        active: p.active,
        valid_from: p
            .valid_from
            .map(|t| state.tz.format(t, "%Y-%m-%d"))
            .unwrap_or_default(),
        valid_until: p
            .valid_until
            .map(|t| {
                state
                    .tz
                    .format(t - chrono::Duration::seconds(1), "%Y-%m-%d")
            })
            .unwrap_or_default(),
        validity: validity(&state, &p),
        schedule: crate::schedule::format(p.schedule.as_ref()),
        cards: p
            .cards
            .iter()
            .map(|c| card_view(c, user.is_admin()))
            .collect(),
        faces: faces.iter().map(|f| face_view(f, &state.tz)).collect(),
        wait_seconds: state.config.card_wait_seconds,
    }))
}

#[derive(Deserialize)]
pub(crate) struct UpdateForm {
    name: String,
    active: Option<String>,
    valid_from: Option<String>,
    valid_until: Option<String>,
    schedule: Option<String>,
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
    let mut p = person_or_404(&state, id).await?;
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
    p.schedule = crate::schedule::parse(f.schedule.as_deref().unwrap_or(""))
        .map_err(AppError::BadRequest)?;
    state.store.update_person(&p).await?;
    tracing::info!(user = %user.account.username, person = %p.name, "person updated");
    Ok(Redirect::to(&format!("/people/{id}?done=saved")).into_response())
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
    let uid: CardUid = f
        .uid
        .parse()
        .map_err(|e: facereko_domain::Error| AppError::BadRequest(e.to_string()))?;
    state
        .store
        .add_card(p.id, &uid, label_of(f.label.as_deref())?)
        .await?;
    tracing::info!(user = %user.account.username, person = %p.name, %uid, "card added");
    Ok(Redirect::to(&format!("/people/{id}?done=card_added")).into_response())
}

#[derive(Deserialize)]
pub(crate) struct TapForm {
    label: Option<String>,
}

/// "Tap now": the next card presented on the door's reader becomes this person's card.
pub(crate) async fn tap_card(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<TapForm>,
) -> Result<Response, AppError> {
    let p = person_or_404(&state, id).await?;
    let label = label_of(f.label.as_deref())?;
    let Ok(_reader) = state.runtime.card_wait.try_lock() else {
        return Err(AppError::Unavailable(
            "The card reader is already waiting for a card for someone else; try again in a moment.".into(),
        ));
    };
    let wait = Duration::from_secs(u64::from(state.config.card_wait_seconds));
    let tap = state.door.next_card(wait).await?;
    state.store.add_card(p.id, &tap.uid, label).await?;
    tracing::info!(user = %user.account.username, person = %p.name, uid = %tap.uid, "card added by tapping");
    Ok(Redirect::to(&format!("/people/{id}?done=card_added")).into_response())
}

fn uid_of(key: &str) -> Result<CardUid, AppError> {
    key.parse()
        .map_err(|_| AppError::BadRequest("That is not a card UID.".into()))
}

/// The card must belong to this person (so a form for one person cannot change another's card).
async fn own_card(state: &AppState, id: i64, key: &str) -> Result<CardUid, AppError> {
    let uid = uid_of(key)?;
    match state.store.lookup_card(&uid).await? {
        Some((card, _)) if card.person_id == PersonId(id) => Ok(uid),
        _ => Err(AppError::NotFound),
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
    let uid = own_card(&state, id, &key).await?;
    let active = f.active == "on";
    state.store.set_card_active(&uid, active).await?;
    tracing::info!(user = %user.account.username, %uid, active, "card changed");
    Ok(Redirect::to(&format!("/people/{id}?done=card_changed")).into_response())
}

pub(crate) async fn remove_card(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path((id, key)): Path<(i64, String)>,
    _: CsrfForm<NoFields>,
) -> Result<Response, AppError> {
    let uid = own_card(&state, id, &key).await?;
    state.store.remove_card(&uid).await?;
    tracing::info!(user = %user.account.username, %uid, "card removed");
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

pub(crate) async fn enrol(
    state: &AppState,
    person: PersonId,
    photo: Photo,
) -> Result<i64, AppError> {
    state.faces.enrol(person, photo).await.map_err(|e| match e {
        EnrolError::Other(m) => AppError::Internal(format!("enrolment: {m}")),
        other => AppError::BadRequest(format!("The face was not enrolled: {other}.")),
    })
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
    let face = enrol(&state, p.id, photo).await?;
    tracing::info!(user = %user.account.username, person = %p.name, face, "face enrolled from an upload");
    Ok(Redirect::to(&format!("/people/{id}?done=face_added")).into_response())
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
    let face = enrol(&state, p.id, photo).await?;
    tracing::info!(user = %user.account.username, person = %p.name, face, "face enrolled with the door camera");
    Ok(Redirect::to(&format!("/people/{id}?done=face_added")).into_response())
}

pub(crate) async fn delete_face(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path((id, face)): Path<(i64, i64)>,
    _: CsrfForm<NoFields>,
) -> Result<Response, AppError> {
    let faces = state.store.faces(Some(PersonId(id))).await?;
    if !faces.iter().any(|x| x.id == face) {
        return Err(AppError::NotFound);
    }
    state.faces.delete(face).await.map_err(|e| match e {
        EnrolError::Other(m) => AppError::Internal(format!("face delete: {m}")),
        other => AppError::BadRequest(other.to_string()),
    })?;
    tracing::info!(user = %user.account.username, person = id, face, "face deleted");
    Ok(Redirect::to(&format!("/people/{id}?done=face_deleted")).into_response())
}
