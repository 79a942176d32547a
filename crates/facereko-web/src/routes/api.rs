//! `/api/v1`: JSON for integrations, authenticated by bearer tokens an admin creates on the accounts page.
//! Viewer tokens read; admin tokens may also arm and disarm.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use facereko_domain::{Attempt, Outcome, PersonId};
use facereko_door::DoorStatus;
use facereko_store::AttemptQuery;
use serde::{Deserialize, Serialize};

use crate::auth::ApiUser;
use crate::error::{ApiError, AppError};
use crate::extract::Query;
use crate::AppState;

/// `GET /api/v1/status`.
pub(crate) async fn status(State(state): State<AppState>, _user: ApiUser) -> Json<DoorStatus> {
    Json(state.door.status())
}

#[derive(Deserialize)]
pub(crate) struct ArmBody {
    armed: bool,
}

/// `POST /api/v1/arm` with `{"armed": true|false}`; answers with the new status.
pub(crate) async fn arm(
    State(state): State<AppState>,
    user: ApiUser,
    crate::extract::Peer(peer): crate::extract::Peer,
    headers: axum::http::HeaderMap,
    body: Result<Json<ArmBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<DoorStatus>, ApiError> {
    user.require_admin()?;
    let Json(body) = body.map_err(|_| {
        ApiError(AppError::BadRequest(
            "expected a JSON body like {\"armed\": true}".into(),
        ))
    })?;
    state.door.arm(body.armed).await?;
    let action = if body.armed {
        "system.activate"
    } else {
        "system.deactivate"
    };
    state
        .audit(
            crate::Actor::Other {
                name: &user.0.username,
                via: facereko_domain::AuditVia::Api,
                from: crate::auth::client_ip(
                    &headers,
                    peer.as_ref(),
                    state.config.trust_forwarded_for,
                ),
            },
            action,
            &state.door.status().door_id,
            "",
        )
        .await;
    // The controller updates its status right after persisting; wait briefly for it to show.
    let mut watch = state.door.watch_status();
    let _ = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        watch.wait_for(|s| s.armed == body.armed),
    )
    .await;
    Ok(Json(state.door.status()))
}

#[derive(Deserialize)]
pub(crate) struct AttemptsQuery {
    before: Option<i64>,
    limit: Option<u32>,
    person: Option<i64>,
    outcome: Option<String>,
    from: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    door: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct AttemptsPage {
    attempts: Vec<Attempt>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    next_before: Option<i64>,
}

/// `GET /api/v1/attempts?before=&limit=&person=&outcome=&from=&until=&door=`: newest first.
pub(crate) async fn attempts(
    State(state): State<AppState>,
    user: ApiUser,
    Query(q): Query<AttemptsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, facereko_store::MAX_PAGE);
    let outcome = q
        .outcome
        .as_deref()
        .map(|o| o.parse::<Outcome>())
        .transpose()
        .map_err(|e| ApiError(AppError::BadRequest(e.to_string())))?;
    let attempts = state
        .store
        .attempts(&AttemptQuery {
            before_id: q.before,
            limit,
            person: q.person.map(PersonId),
            outcome,
            from: q.from,
            until: q.until,
            door_id: q.door,
        })
        .await?;
    let next_before = (attempts.len() as u32 == limit)
        .then(|| attempts.last().map(|a| a.id))
        .flatten();
    Ok(Json(for_reader(
        &user,
        AttemptsPage {
            attempts,
            next_before,
        },
    )?))
}

/// `GET /api/v1/people`: people with their cards (no faces or embeddings).
pub(crate) async fn people(
    State(state): State<AppState>,
    user: ApiUser,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(for_reader(&user, state.store.list_people().await?)?))
}

/// `value` as JSON for `user`: whole for admin tokens; card UIDs masked (`04:A2:••:••`) for viewer
/// tokens, since in `card` mode a UID is the whole credential.
fn for_reader(user: &ApiUser, value: impl Serialize) -> Result<serde_json::Value, ApiError> {
    let mut v = serde_json::to_value(value)
        .map_err(|e| ApiError(AppError::Internal(format!("encoding JSON: {e}"))))?;
    if user.require_admin().is_err() {
        mask_uids(&mut v);
    }
    Ok(v)
}

fn mask_uids(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                let masked = match (k.as_str(), &*item) {
                    ("card_uid" | "uid", serde_json::Value::String(s)) => s
                        .parse::<facereko_domain::CardUid>()
                        .map(|u| u.masked())
                        .ok(),
                    _ => None,
                };
                match masked {
                    Some(m) => *item = serde_json::Value::String(m),
                    None => mask_uids(item),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_uids),
        _ => {}
    }
}
