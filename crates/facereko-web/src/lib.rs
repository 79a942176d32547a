//! FaceReko's web app: first-run set-up, sign-in, Active/Offline, the door's live state, the history of
//! attempts with their photos, people with their cards, faces and schedules, accounts, and a small JSON
//! API under `/api/v1` — one axum [`Router`] built by [`router`].
//!
//! The one design decision a newcomer must know: every page is server-rendered HTML that works without
//! JavaScript, and every state change is a `POST` carrying a CSRF token (see [`auth`]), checked before its
//! handler runs by the crate's form extractors (`extract`: a handler cannot take a form unchecked); the
//! only script (`/assets/live.js`) adds live updates over server-sent events. A strict
//! Content-Security-Policy (`default-src 'none'`, scripts and styles from this site only, no inline code)
//! is set on every response, and every failure becomes a friendly page with the details in the log only.
//!
//! The app talks to the door in-process through [`facereko_door::DoorHandle`], to the database through
//! [`facereko_store::Store`], and enrols faces through the [`FaceEnroller`] trait the binary implements
//! with its face engine, so this crate never links a face engine itself.
//!
//! Wiring (the binary):
//!
//! ```text
//! let state = AppState::new(store, door_handle, Arc::new(MyEnroller { .. }), config.web.clone())?;
//! let listener = tokio::net::TcpListener::bind(config.web.bind).await?;
//! axum::serve(listener, facereko_web::router(state).into_make_service_with_connect_info::<SocketAddr>())
//!     .with_graceful_shutdown(shutdown)
//!     .await?;
//! ```
//!
//! Routes: `/setup`, `/login`, `/logout`, `/create-account`, `/` (door), `/arm`, `/unlock`, `/events` (SSE),
//! `/history` (+ `.csv`, `/history/{id}`, `/enrol`, `/review`), `/photos/...`, `/people/...`, `/account`,
//! `/accounts/...`, `/assets/...`, `/api/v1/{status,arm,attempts,people}`.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::DefaultBodyLimit;
use axum::Router;
use facereko_domain::{AuditVia, NewAudit, PersonId, Photo};

pub mod auth;
pub mod config;
pub mod error;
mod extract;
pub mod images;
mod passwords;
mod routes;
pub mod schedule;
mod security;
pub mod views;

pub use auth::{Admin, ApiUser, CurrentUser};
pub use config::{TimeZone, WebConfig};
pub use error::{ApiError, AppError, Error, Result};

/// Why a face could not be enrolled from a photo.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EnrolError {
    #[error("no usable face in the photo: use a sharp, frontal photo with the face well lit")]
    NoFace,
    #[error("{0} faces in the photo: enrolment needs a photo of exactly one person")]
    ManyFaces(usize),
    #[error("the image could not be used: {0}")]
    BadImage(String),
    /// The face matches another enrolled person at or above the threshold (only when asked to check).
    #[error("the face looks like {name} ({similarity:.1} % — the door needs {threshold:.1} %)")]
    LooksLike {
        name: String,
        similarity: f32,
        threshold: f32,
    },
    #[error("{0}")]
    Other(String),
}

/// Enrols and forgets faces. The binary implements it with its face engine and the store (embedding the
/// photo, `Store::add_face`, `Store::delete_face`); tests use a small fake.
#[async_trait]
pub trait FaceEnroller: Send + Sync {
    /// Finds exactly one face in `photo`, stores its embedding (and the photo) for `person`, and returns
    /// the new face id. With `check_others`, a face that matches another enrolled person at or above the
    /// threshold is not stored: [`EnrolError::LooksLike`] (an administrator then confirms or not).
    async fn enrol(
        &self,
        person: PersonId,
        photo: Photo,
        check_others: bool,
    ) -> std::result::Result<i64, EnrolError>;
    /// Deletes an enrolled face.
    async fn delete(&self, face_id: i64) -> std::result::Result<(), EnrolError>;
}

/// Who made a change, for the audit trail.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Actor<'a> {
    /// A signed-in account in the browser.
    Web(&'a CurrentUser),
    /// Anyone else: an API token's account, a first administrator at set-up, a person creating their
    /// account with their card.
    Other {
        name: &'a str,
        via: AuditVia,
        from: Option<std::net::IpAddr>,
    },
}

/// What the web app shows about the site beyond its own door; a door of a site fills it in (its replica
/// and the doors the MQTT broker knows), a door on its own has none.
pub trait SiteView: Send + Sync + std::fmt::Debug {
    /// This door's copy of the cards and faces in one line ("revision 42, confirmed 3 s ago"), and
    /// whether it is older than the site allows.
    fn replica(&self) -> Option<(String, bool)>;
    /// Every door of the site whose retained state the broker passed on, by door id.
    fn doors(&self) -> Vec<SiteDoor>;
    /// Whether this door can send signed commands to the others (a site key is configured).
    fn can_command(&self) -> bool;
    /// Sends a signed command to another door of the site (never through the database).
    fn command(&self, door_id: &str, command: SiteCommand) -> std::result::Result<(), String>;
}

/// The door's settings as the settings page shows and changes them. The binary implements it with its
/// configuration (defaults, file, `FACEREKO_*` environment, and the values set here, kept in the store);
/// a door without it has no settings page.
#[async_trait]
pub trait Settings: Send + Sync {
    /// The settings offered, each with the value in force and where it comes from.
    async fn list(&self) -> Vec<SettingView>;
    /// Checks `value` for `key` (`None`: back to the default) as the configuration file would be
    /// checked, with every other value as it stands; the text to keep, or why not.
    async fn check(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> std::result::Result<Option<String>, String>;
    /// The notification sinks in a line each ("MQTT mqtts://broker:8883, connected").
    async fn sinks(&self) -> Vec<String>;
    /// Puts the value just kept for `key` in force without a restart where the door can (the unlock
    /// time); `true` when it did, `false` when it waits for the next start.
    async fn apply_now(&self, key: &str) -> bool;
    /// Queues a test event (`Event::Test`) for every sink and wakes them.
    async fn send_test(&self, by: &str) -> std::result::Result<(), String>;
}

/// Where a setting's value in force comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettingSource {
    Default,
    /// The configuration file (path).
    File(String),
    /// A `FACEREKO_*` variable (its name).
    Environment(String),
    /// Set on the settings page.
    Web,
}

/// One setting on the settings page.
#[derive(Clone, Debug, PartialEq)]
pub struct SettingView {
    /// Dotted configuration key, `door.unlock_seconds`.
    pub key: String,
    pub label: String,
    /// What it does, and its figures (the threshold's error rates).
    pub help: String,
    /// The value in force now.
    pub value: String,
    pub source: SettingSource,
    /// The value set on this page, when there is one: it takes effect at the next start, and when the
    /// file or the environment also sets the key, theirs wins.
    pub stored: Option<String>,
    /// The values to choose from; empty for free input.
    pub choices: Vec<String>,
    /// `text` or `number`, for the input.
    pub input: &'static str,
}

/// What the web app can ask another door of the site to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteCommand {
    Arm,
    Disarm,
    Unlock,
}

/// One door of the site as its retained MQTT state last said.
#[derive(Clone, Debug, PartialEq)]
pub struct SiteDoor {
    pub door_id: String,
    pub online: bool,
    pub armed: Option<bool>,
    /// `locked`, `unlocked`, `opened`, … when known.
    pub door: Option<String>,
    pub seen: chrono::DateTime<chrono::Utc>,
}

/// Everything a request handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: facereko_store::Store,
    /// The door: its state, arm/disarm/unlock, and its camera ("take a photo now" asks the door,
    /// which owns the camera and may be watching with it).
    pub door: facereko_door::DoorHandle,
    pub faces: Arc<dyn FaceEnroller>,
    pub config: Arc<WebConfig>,
    pub(crate) tz: TimeZone,
    pub(crate) runtime: Arc<auth::Runtime>,
    /// The site around this door, when it is one of many.
    pub site: Option<Arc<dyn SiteView>>,
    /// The similarity a face needs to match (0–100), shown beside every similarity.
    pub threshold: Option<f32>,
    /// The settings page, when the binary offers one.
    pub settings: Option<Arc<dyn Settings>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store)
            .field("door", &self.door)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Checks the config and bundles the handles.
    pub fn new(
        store: facereko_store::Store,
        door: facereko_door::DoorHandle,
        faces: Arc<dyn FaceEnroller>,
        config: WebConfig,
    ) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            store,
            door,
            faces,
            tz: config.tz(),
            config: Arc::new(config),
            runtime: Arc::new(auth::Runtime::default()),
            site: None,
            threshold: None,
            settings: None,
        })
    }

    /// Shows the site around this door (its replica, every door's state) on the home page.
    pub fn with_site(mut self, site: Arc<dyn SiteView>) -> Self {
        self.site = Some(site);
        self
    }

    /// Records an administrative change or a remote command in the audit trail (which also sends it as
    /// an `audit` event). The change itself has already happened: a failure to record it is logged as an
    /// error, never turned into a failed request that would invite a second, duplicate change.
    pub(crate) async fn audit(
        &self,
        who: Actor<'_>,
        action: &str,
        target: impl Into<String>,
        detail: impl Into<String>,
    ) {
        let (actor, via, from) = match who {
            Actor::Web(u) => (u.account.username.clone(), AuditVia::Web, u.from),
            Actor::Other { name, via, from } => (name.to_string(), via, from),
        };
        let entry = NewAudit {
            time: chrono::Utc::now(),
            door_id: self.door.status().door_id,
            actor,
            via,
            origin: from.map(|ip| ip.to_string()),
            action: action.to_string(),
            target: target.into(),
            detail: detail.into(),
        };
        match self.store.record_audit(&entry).await {
            Ok(e) => tracing::info!(
                actor = %e.actor, via = e.via.as_str(), action = %e.action, target = %e.target,
                detail = %e.detail, "audit"
            ),
            Err(err) => tracing::error!(
                actor = %entry.actor, action = %entry.action, target = %entry.target,
                "the audit trail did not record a change: {err}"
            ),
        }
    }

    /// Offers the settings page (administrators only).
    pub fn with_settings(mut self, settings: Arc<dyn Settings>) -> Self {
        self.settings = Some(settings);
        self
    }

    /// Shows the similarity threshold in force beside every similarity ("86.5 % — needs 92.8 %").
    pub fn with_threshold(mut self, threshold: f32) -> Self {
        self.threshold = Some(threshold).filter(|t| t.is_finite());
        self
    }

    /// This process's one-time set-up code: `/setup` (open only while no account exists) asks for it, so
    /// that nobody else on the network can claim the first administrator before the installer does.
    pub fn setup_code(&self) -> &str {
        &self.runtime.setup_code
    }

    /// When no account exists yet, logs (at WARN, so it reaches the console and the journal) where to
    /// create the first administrator and the set-up code to enter there. Call once the app is served.
    pub async fn announce_setup(&self, url: &str) -> Result<()> {
        if !self.store.list_accounts().await?.is_empty() {
            return Ok(());
        }
        tracing::warn!(
            "no account exists yet: open {url}/setup to create the first administrator, with the \
             set-up code {} (valid until then; a new one is made at every start)",
            self.setup_code()
        );
        Ok(())
    }
}

/// The whole app. Serve it with `into_make_service_with_connect_info::<SocketAddr>()` so sign-in limits
/// see the client's address.
pub fn router(state: AppState) -> Router {
    let limit = state.config.upload_limit_bytes;
    routes::routes()
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::headers,
        ))
        .with_state(state)
}
