//! Settings (administrators only): the door's main settings with where each value comes from, changed
//! here where neither the configuration file nor the environment sets it, and a test event for every
//! notification sink.
//!
//! A value set here is checked by the binary exactly as the configuration file is ([`crate::Settings`]),
//! kept in the store (`Store::set_config_override`) and recorded in the audit trail. The binary reads
//! these values at start as a layer between its defaults and the file: they take effect when the door
//! restarts, and a key set in the file or the environment always wins (shown read-only here).

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::auth::Admin;
use crate::error::AppError;
use crate::extract::{CsrfForm, NoFields, Path, Query};
use crate::views::{render, Page};
use crate::{Actor, AppState, SettingSource};

/// One setting as the page shows it.
pub(crate) struct Row {
    key: String,
    label: String,
    help: String,
    value: String,
    /// "default", "the file /etc/facereko/facereko.toml", "FACEREKO_DOOR__MODE", "this page".
    source: String,
    /// The file or the environment sets it: shown, not editable here.
    locked: bool,
    /// Set here but not in force yet (takes effect at the next start).
    pending: Option<String>,
    /// Set on this page (it can be reset to the default).
    stored: bool,
    choices: Vec<(String, bool)>,
    input: &'static str,
    /// What the input shows: the value set here, else the one in force.
    shown: String,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsTpl {
    page: Page,
    rows: Vec<Row>,
    sinks: Vec<String>,
}

#[derive(Default, Deserialize)]
pub(crate) struct SettingsQuery {
    done: Option<String>,
}

fn settings_of(state: &AppState) -> Result<&dyn crate::Settings, AppError> {
    state.settings.as_deref().ok_or(AppError::NotFound)
}

pub(crate) async fn page(
    State(state): State<AppState>,
    Admin(user): Admin,
    Query(q): Query<SettingsQuery>,
) -> Result<Response, AppError> {
    let settings = settings_of(&state)?;
    let rows = settings
        .list()
        .await
        .into_iter()
        .map(|s| {
            let (source, locked) = match &s.source {
                SettingSource::Default => ("default".to_string(), false),
                SettingSource::File(f) => (format!("set in {f}"), true),
                SettingSource::Environment(v) => (format!("set by {v}"), true),
                SettingSource::Web => ("set on this page".to_string(), false),
            };
            let shown = s.stored.clone().unwrap_or_else(|| s.value.clone());
            Row {
                pending: s.stored.clone().filter(|v| *v != s.value && !locked),
                stored: s.stored.is_some(),
                choices: s.choices.iter().map(|c| (c.clone(), *c == shown)).collect(),
                key: s.key,
                label: s.label,
                help: s.help,
                value: s.value,
                source,
                locked,
                input: s.input,
                shown,
            }
        })
        .collect();
    let notice = match q.done.as_deref() {
        Some("saved") => Some(
            "Saved. It takes effect when the door restarts (sudo systemctl restart facereko)."
                .to_string(),
        ),
        Some("reset") => Some(
            "Back to the default when the door restarts (sudo systemctl restart facereko)."
                .to_string(),
        ),
        Some("saved_now") => Some("Saved, and in force now.".to_string()),
        Some("reset_now") => Some("Back to the default, in force now.".to_string()),
        Some("test") => Some(
            "A test event is on its way to every notification sink: check the broker, the inbox \
             and the webhooks. The sinks' state below shows a failed delivery."
                .to_string(),
        ),
        _ => None,
    };
    Ok(render(&SettingsTpl {
        page: Page::new("Settings", "settings", Some(&user)).with_notice(notice),
        rows,
        sinks: settings.sinks().await,
    }))
}

#[derive(Deserialize)]
pub(crate) struct SetForm {
    #[serde(default)]
    value: Option<String>,
    /// `reset`: back to the default.
    #[serde(default)]
    action: Option<String>,
}

pub(crate) async fn set(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(key): Path<String>,
    CsrfForm(f): CsrfForm<SetForm>,
) -> Result<Response, AppError> {
    let settings = settings_of(&state)?;
    let list = settings.list().await;
    let Some(current) = list.iter().find(|s| s.key == key) else {
        return Err(AppError::NotFound);
    };
    if !matches!(current.source, SettingSource::Default | SettingSource::Web) {
        return Err(AppError::BadRequest(format!(
            "{} is set in the configuration file or the environment, which wins over this page: \
             change it there.",
            current.label
        )));
    }
    let reset = f.action.as_deref() == Some("reset");
    let typed = f.value.as_deref().map(str::trim).filter(|v| !v.is_empty());
    let wanted = if reset { None } else { typed };
    if !reset && wanted.is_none() {
        return Err(AppError::BadRequest(format!(
            "Give a value for {}, or reset it to the default.",
            current.label
        )));
    }
    let keep = settings
        .check(&key, wanted)
        .await
        .map_err(|e| AppError::BadRequest(format!("{}: {e}", current.label)))?;
    let door = state.door.status().door_id;
    state
        .store
        .set_config_override(&door, &key, keep.as_deref())
        .await?;
    let now = settings.apply_now(&key).await;
    let when = if now {
        "in force now"
    } else {
        "at the next start"
    };
    let detail = match (&current.stored, &keep) {
        (_, None) => format!("back to the default ({when}; was {})", current.value),
        (Some(old), Some(new)) => format!("{old} → {new} ({when})"),
        (None, Some(new)) => format!("{} → {new} ({when})", current.value),
    };
    state
        .audit(Actor::Web(&user), "setting.change", &key, detail)
        .await;
    let done = match (keep.is_some(), now) {
        (true, true) => "saved_now",
        (true, false) => "saved",
        (false, true) => "reset_now",
        (false, false) => "reset",
    };
    Ok(Redirect::to(&format!("/settings?done={done}")).into_response())
}

/// Queues a test event for every sink (MQTT, e-mail, webhooks), whatever events each is set to send.
pub(crate) async fn test_event(
    State(state): State<AppState>,
    Admin(user): Admin,
    _: CsrfForm<NoFields>,
) -> Result<Response, AppError> {
    settings_of(&state)?
        .send_test(&user.account.username)
        .await
        .map_err(|e| AppError::Unavailable(format!("The test event was not sent: {e}.")))?;
    state
        .audit(
            Actor::Web(&user),
            "setting.test",
            "notification sinks",
            "test event sent",
        )
        .await;
    Ok(Redirect::to("/settings?done=test").into_response())
}
