//! Home: the door's state with Activate/Deactivate, the latest attempts, and the live event stream.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use facereko_domain::Event;
use facereko_door::DoorStatus;
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use crate::auth::{Admin, CurrentUser};
use crate::config::TimeZone;
use crate::error::AppError;
use crate::extract::{CsrfForm, Path, Query};
use crate::views::{render, AttemptRow, Page, RowTpl};
use crate::AppState;

/// The door's state as the page and the stream show it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct StatusView {
    pub door_id: String,
    pub mode: String,
    pub armed: bool,
    pub system: &'static str,
    pub lock: &'static str,
    pub door: &'static str,
    pub busy: bool,
    pub reader: String,
    pub reader_ok: bool,
    pub last: String,
    /// The controller still runs: otherwise the rest is its last word, not the door now.
    pub running: bool,
}

impl StatusView {
    pub(crate) fn new(s: &DoorStatus, tz: &TimeZone) -> Self {
        Self {
            door_id: s.door_id.clone(),
            mode: s.mode.to_string(),
            armed: s.armed,
            system: if s.armed { "Active" } else { "Offline" },
            lock: if s.unlocked { "Unlocked" } else { "Locked" },
            door: match s.door_open {
                Some(true) => "Open",
                Some(false) => "Closed",
                None => "No door contact",
            },
            busy: s.busy,
            reader_ok: s.reader == "ok",
            reader: if s.reader == "ok" {
                "OK".into()
            } else {
                s.reader.clone()
            },
            last: s
                .last_attempt
                .as_ref()
                .map(|a| crate::views::attempt_line(a, tz, "%H:%M:%S"))
                .unwrap_or_else(|| "none yet".into()),
            running: true,
        }
    }

    /// What the page shows when the controller has stopped: nothing it last said passes for now.
    fn stopped(mut self) -> Self {
        self.running = false;
        self.system = "Unknown";
        self.lock = "Unknown";
        self.door = "Unknown";
        self.reader = "Unknown".into();
        self.reader_ok = false;
        self
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomeTpl {
    page: Page,
    status: StatusView,
    rows: Vec<AttemptRow>,
    site: Option<SiteCard>,
    /// The camera's live picture is shown (administrators, and viewers where allowed).
    camera: bool,
}

/// The site around this door: its replica's age and every door the broker knows.
struct SiteCard {
    replica: Option<String>,
    replica_stale: bool,
    doors: Vec<SiteDoorRow>,
    /// Signed commands to the other doors can be sent from here.
    commands: bool,
}

struct SiteDoorRow {
    door_id: String,
    this: bool,
    online: bool,
    system: &'static str,
    lock: String,
    seen: String,
    history: String,
    /// Its newest attempt in the central database.
    last: String,
    /// The door's name as a path segment (`/site/<door>/…`).
    key: String,
}

impl SiteCard {
    fn new(site: &dyn crate::SiteView, this_door: &str, tz: &TimeZone) -> Self {
        let (replica, replica_stale) = match site.replica() {
            Some((text, stale)) => (Some(text), stale),
            None => (None, false),
        };
        let doors = site
            .doors()
            .into_iter()
            .map(|d| SiteDoorRow {
                this: d.door_id == this_door,
                online: d.online,
                system: match (d.online, d.armed) {
                    (false, _) => "–",
                    (true, Some(true)) => "Active",
                    (true, Some(false)) => "Offline",
                    (true, None) => "?",
                },
                lock: match (d.online, d.door.as_deref()) {
                    (false, _) | (true, None) => "–".into(),
                    (true, Some(s)) => crate::views::door_state_label(s).to_string(),
                },
                seen: tz.format(d.seen, "%Y-%m-%d %H:%M:%S"),
                history: format!("/history?door={}", crate::views::url_encode(&d.door_id)),
                key: crate::views::url_encode(&d.door_id),
                last: String::new(),
                door_id: d.door_id,
            })
            .collect();
        Self {
            replica,
            replica_stale,
            doors,
            commands: site.can_command(),
        }
    }
}

/// `?done=<code>`: which fixed notice to show after a redirect (never free text from the address).
#[derive(Deserialize)]
pub(crate) struct Done {
    done: Option<String>,
}

impl Done {
    pub(crate) fn done(&self) -> Option<&str> {
        self.done.as_deref()
    }
}

fn notice(done: Option<&str>) -> Option<String> {
    Some(
        match done? {
            "armed" => "The system is Active: cards and faces are checked.",
            "disarmed" => "The system is Offline: taps are ignored and the door stays locked.",
            "unlocked" => "The door is unlocked for a few seconds.",
            "command_sent" => {
                "The command was sent to the other door; its state below changes when it acts."
            }
            _ => return None,
        }
        .to_string(),
    )
}

pub(crate) async fn home(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<Done>,
) -> Result<Response, AppError> {
    let mut status = StatusView::new(&state.door.status(), &state.tz);
    if !state.door.is_running() {
        status = status.stopped();
    }
    let attempts = state
        .store
        .attempts(&facereko_store::AttemptQuery {
            limit: 10,
            ..Default::default()
        })
        .await?;
    let rows = attempts
        .iter()
        .map(|a| AttemptRow::new(a, &state.tz, user.is_admin(), state.threshold))
        .collect();
    let mut site = state
        .site
        .as_deref()
        .map(|s| SiteCard::new(s, &status.door_id, &state.tz));
    for d in site.iter_mut().flat_map(|s| s.doors.iter_mut()) {
        let newest = state
            .store
            .attempts(&facereko_store::AttemptQuery {
                limit: 1,
                door_id: Some(d.door_id.clone()),
                ..Default::default()
            })
            .await;
        d.last = match newest {
            Ok(a) => a.first().map_or_else(
                || "none yet".to_string(),
                |a| crate::views::attempt_line(a, &state.tz, "%Y-%m-%d %H:%M:%S"),
            ),
            Err(_) => "–".into(),
        };
    }
    Ok(render(&HomeTpl {
        page: Page::new("Door", "home", Some(&user)).with_notice(notice(q.done.as_deref())),
        status,
        rows,
        site,
        camera: user.is_admin() || state.config.viewers_see_camera,
    }))
}

/// Activate, Deactivate or Unlock another door of the site: a signed MQTT command, never a database
/// write. The door that receives it checks the signature and logs it as any command.
pub(crate) async fn site_command(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path((door, command)): Path<(String, String)>,
    CsrfForm(c): CsrfForm<crate::routes::Confirm>,
) -> Result<Response, AppError> {
    let door: facereko_domain::DoorId = door
        .parse()
        .map_err(|_| AppError::BadRequest("That is not a door of this site.".into()))?;
    let command = match command.as_str() {
        "arm" => crate::SiteCommand::Arm,
        "disarm" => crate::SiteCommand::Disarm,
        "unlock" => crate::SiteCommand::Unlock,
        _ => return Err(AppError::NotFound),
    };
    let Some(site) = &state.site else {
        return Err(AppError::NotFound);
    };
    if door.as_str() == state.door.status().door_id {
        return Err(AppError::BadRequest(
            "Use the buttons above for this door.".into(),
        ));
    }
    if command == crate::SiteCommand::Unlock && !c.confirmed() {
        let question = format!("Unlock {} now?", door.as_str());
        return Ok(crate::routes::confirm_page(
            &user,
            &format!("/site/{}/unlock", crate::views::url_encode(door.as_str())),
            crate::routes::Ask {
                title: "Unlock another door",
                question: &question,
                consequence:
                    "A signed command goes to that door, which opens its lock for whoever \
                              is there; it is recorded with your name at both doors.",
                button: "Unlock now",
                cancel: "/",
            },
            Vec::new(),
        ));
    }
    site.command(door.as_str(), command)
        .map_err(|e| AppError::BadRequest(format!("The command was not sent: {e}.")))?;
    let action = match command {
        crate::SiteCommand::Arm => "site.activate",
        crate::SiteCommand::Disarm => "site.deactivate",
        crate::SiteCommand::Unlock => "site.unlock",
    };
    state
        .audit(
            crate::Actor::Web(&user),
            action,
            door.as_str(),
            "signed command sent over MQTT",
        )
        .await;
    Ok(Redirect::to("/?done=command_sent").into_response())
}

#[derive(Deserialize)]
pub(crate) struct ArmForm {
    /// `on` (Activate) or `off` (Deactivate).
    armed: String,
}

pub(crate) async fn arm(
    State(state): State<AppState>,
    Admin(user): Admin,
    CsrfForm(f): CsrfForm<ArmForm>,
) -> Result<Response, AppError> {
    let armed = match f.armed.as_str() {
        "on" => true,
        "off" => false,
        _ => {
            return Err(AppError::BadRequest(
                "Choose Activate or Deactivate.".into(),
            ))
        }
    };
    state.door.arm(armed).await?;
    let action = if armed {
        "system.activate"
    } else {
        "system.deactivate"
    };
    state
        .audit(
            crate::Actor::Web(&user),
            action,
            &state.door.status().door_id,
            "",
        )
        .await;
    Ok(Redirect::to(if armed {
        "/?done=armed"
    } else {
        "/?done=disarmed"
    })
    .into_response())
}

pub(crate) async fn unlock(
    State(state): State<AppState>,
    Admin(user): Admin,
    CsrfForm(c): CsrfForm<crate::routes::Confirm>,
) -> Result<Response, AppError> {
    if !c.confirmed() {
        let door = state.door.status().door_id;
        let question = format!("Unlock {door} now?");
        let consequence = "The lock opens for its unlock time for whoever is at the door; the \
                           unlock is recorded with your name.";
        return Ok(crate::routes::confirm_page(
            &user,
            "/unlock",
            crate::routes::Ask {
                title: "Unlock door",
                question: &question,
                consequence,
                button: "Unlock now",
                cancel: "/",
            },
            Vec::new(),
        ));
    }
    state
        .door
        .unlock(&format!("web: {}", user.account.username))
        .await?;
    state
        .audit(
            crate::Actor::Web(&user),
            "door.unlock",
            &state.door.status().door_id,
            "",
        )
        .await;
    Ok(Redirect::to("/?done=unlocked").into_response())
}

/// What the door camera sees now, for admins on the home page: the door's newest frame (or a capture),
/// never stored and never cached.
pub(crate) async fn camera(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Response, AppError> {
    if !user.is_admin() && !state.config.viewers_see_camera {
        return Err(AppError::Forbidden(
            "Only an administrator sees the door camera (web.viewers_see_camera allows viewers)."
                .into(),
        ));
    }
    let photo = state.door.snapshot().await.map_err(|e| {
        tracing::warn!("camera snapshot failed: {e}");
        AppError::Unavailable("The door camera gives no picture right now.".into())
    })?;
    let content_type = match photo.format {
        facereko_domain::ImageFormat::Png => "image/png",
        facereko_domain::ImageFormat::Jpeg => "image/jpeg",
    };
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, content_type),
            (axum::http::header::CACHE_CONTROL, "no-store, private"),
        ],
        photo.bytes,
    )
        .into_response())
}

fn status_event(s: &DoorStatus, tz: &TimeZone) -> SseEvent {
    let json = serde_json::to_string(&StatusView::new(s, tz)).unwrap_or_else(|_| "{}".into());
    SseEvent::default().event("status").data(json)
}

pub(crate) fn attempt_event(
    a: &facereko_domain::Attempt,
    tz: &TimeZone,
    admin: bool,
    threshold: Option<f32>,
) -> Option<SseEvent> {
    let row = AttemptRow::new(a, tz, admin, threshold);
    let html = RowTpl { row: &row }.render().ok()?;
    Some(
        SseEvent::default()
            .event("attempt")
            .id(a.id.to_string())
            .data(html.replace(['\n', '\r'], " ")),
    )
}

/// Server-sent events: `status` (JSON, on connect and on every change) and `attempt` (a rendered table
/// row, newest attempt).
/// How often a live stream checks that its session still exists: signing out, a disabled account or a
/// password change elsewhere ends the stream within this time.
pub(crate) const SESSION_RECHECK: Duration = Duration::from_secs(5);

/// What the live stream carries from one event to the next.
struct Live {
    status: tokio::sync::watch::Receiver<DoorStatus>,
    events: tokio::sync::broadcast::Receiver<Event>,
    first: bool,
    recheck: tokio::time::Interval,
    state: AppState,
    token: String,
    admin: bool,
}

pub(crate) async fn events(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let live = Live {
        status: state.door.watch_status(),
        events: state.door.subscribe(),
        first: true,
        recheck: tokio::time::interval_at(
            tokio::time::Instant::now() + SESSION_RECHECK,
            SESSION_RECHECK,
        ),
        admin: user.is_admin(),
        token: user.token,
        state,
    };
    let stream = futures_util::stream::unfold(live, |mut live| async move {
        let tz = live.state.tz;
        if live.first {
            live.first = false;
            let ev = status_event(&live.status.borrow_and_update(), &tz);
            return Some((Ok(ev), live));
        }
        loop {
            tokio::select! {
                _ = live.recheck.tick() => {
                    if !crate::auth::session_is_live(&live.state, &live.token).await {
                        return None;
                    }
                }
                changed = live.status.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    let ev = status_event(&live.status.borrow_and_update(), &tz);
                    return Some((Ok(ev), live));
                }
                got = live.events.recv() => match got {
                    Ok(Event::Attempt { attempt, .. }) => {
                        if let Some(ev) = attempt_event(&attempt, &tz, live.admin, live.state.threshold) {
                            return Some((Ok(ev), live));
                        }
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
