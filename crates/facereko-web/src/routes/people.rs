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
    let notice = match q.done() {
        Some("person_saved") => Some("Saved.".to_string()),
        Some("person_removed") => Some("Person removed.".to_string()),
        _ => None,
    };
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
    let before = person_or_404(&state, id).await?;
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
    p.schedule = crate::schedule::parse(f.schedule.as_deref().unwrap_or(""))
        .map_err(AppError::BadRequest)?;
    state.store.update_person(&p).await?;
    let changes = person_changes(&state, &before, &p);
    state
        .audit(Actor::Web(&user), "person.update", &p.name, changes)
        .await;
    Ok(Redirect::to(&format!("/people/{id}?done=saved")).into_response())
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
    let uid: CardUid = f
        .uid
        .parse()
        .map_err(|e: facereko_domain::Error| AppError::BadRequest(e.to_string()))?;
    let label = label_of(f.label.as_deref())?;
    state.store.add_card(p.id, &uid, label).await?;
    state
        .audit(
            Actor::Web(&user),
            "card.add",
            &p.name,
            card_words(&uid, label),
        )
        .await;
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
        crate::schedule::format(a.schedule.as_ref()),
        crate::schedule::format(b.schedule.as_ref()),
    );
    if sa != sb {
        let words = |s: &str| {
            if s.is_empty() {
                "any time".to_string()
            } else {
                s.replace('\n', "; ")
            }
        };
        out.push(format!("schedule {} → {}", words(&sa), words(&sb)));
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
    state
        .audit(
            Actor::Web(&user),
            "face.add",
            &p.name,
            format!("face #{face} from an uploaded photo"),
        )
        .await;
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
    state
        .audit(
            Actor::Web(&user),
            "face.add",
            &p.name,
            format!("face #{face} taken with the door camera"),
        )
        .await;
    Ok(Redirect::to(&format!("/people/{id}?done=face_added")).into_response())
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
