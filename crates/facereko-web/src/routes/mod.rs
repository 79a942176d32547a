//! The routes, one module per area.

use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

use crate::error::AppError;
use crate::AppState;

use askama::Template;
use axum::response::Response;
use serde::Deserialize;

use crate::views::{render, Page};

pub(crate) mod accounts;
pub(crate) mod api;
pub(crate) mod groups;
pub(crate) mod history;
pub(crate) mod home;
pub(crate) mod people;
pub(crate) mod photos;
pub(crate) mod session;
pub(crate) mod settings;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home::home))
        .route("/arm", post(home::arm))
        .route("/unlock", post(home::unlock))
        .route("/events", get(home::events))
        .route("/camera.jpg", get(home::camera))
        .route("/site/{door}/{command}", post(home::site_command))
        .route("/setup", get(session::setup_page).post(session::setup))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route(
            "/create-account",
            get(session::create_account_page).post(session::create_account),
        )
        .route("/history", get(history::history))
        .route("/history.csv", get(history::csv))
        .route("/history/{id}", get(history::attempt))
        .route("/history/{id}/enrol", post(history::enrol_from_attempt))
        .route("/history/{id}/review", get(history::review))
        .route("/photos/{*path}", get(photos::photo))
        .route("/people", get(people::list).post(people::add))
        .route("/people/{id}", get(people::show).post(people::update))
        .route("/people/{id}/remove", post(people::remove))
        .route("/people/{id}/cards", post(people::add_card))
        .route("/people/{id}/cards/tap", post(people::tap_card))
        .route("/people/{id}/cards/tap/cancel", post(people::cancel_tap))
        .route("/people/{id}/cards/{uid}/active", post(people::card_active))
        .route("/people/{id}/cards/{uid}/remove", post(people::remove_card))
        .route("/people/{id}/faces", post(people::upload_face))
        .route("/people/{id}/faces/capture", post(people::capture_face))
        .route("/people/{id}/faces/confirm", post(people::confirm_face))
        .route(
            "/people/{id}/faces/{face}/delete",
            post(people::delete_face),
        )
        .route("/groups", get(groups::list).post(groups::add))
        .route("/groups/{id}", get(groups::show).post(groups::rename))
        .route("/groups/{id}/schedule", post(groups::set_schedule))
        .route("/groups/{id}/members", post(groups::add_members))
        .route("/groups/{id}/members/remove", post(groups::remove_members))
        .route("/groups/{id}/remove", post(groups::remove))
        .route("/holidays", post(groups::add_holiday))
        .route("/holidays/{id}/remove", post(groups::remove_holiday))
        .route(
            "/account",
            get(accounts::me).post(accounts::change_own_password),
        )
        .route("/accounts", get(accounts::list).post(accounts::add))
        .route("/accounts/{id}/password", post(accounts::reset_password))
        .route("/accounts/{id}/role", post(accounts::set_role))
        .route("/accounts/{id}/disable", post(accounts::disable))
        .route("/accounts/invitations", post(accounts::invite))
        .route(
            "/accounts/invitations/{id}/revoke",
            post(accounts::revoke_invitation),
        )
        .route("/accounts/tokens", post(accounts::create_token))
        .route("/accounts/tokens/{id}/revoke", post(accounts::revoke_token))
        .route("/settings", get(settings::page))
        .route("/settings/test", post(settings::test_event))
        .route("/settings/{key}", post(settings::set))
        .route("/assets/style.css", get(style))
        .route("/assets/live.js", get(script))
        .route("/assets/page.js", get(page_script))
        .route("/assets/icon.svg", get(icon))
        .route("/api/v1/status", get(api::status))
        .route("/api/v1/arm", post(api::arm))
        .route("/api/v1/attempts", get(api::attempts))
        .route("/api/v1/people", get(api::people))
        .fallback(not_found)
}

/// A form whose action is only done once confirmed: the first post (from a button) shows
/// [`confirm_page`], whose own form posts again with `confirm=yes`. No script needed.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Confirm {
    #[serde(default)]
    confirm: Option<String>,
}

impl Confirm {
    pub(crate) fn confirmed(&self) -> bool {
        self.confirm.as_deref() == Some("yes")
    }
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmTpl<'a> {
    page: Page,
    question: &'a str,
    consequence: &'a str,
    action: &'a str,
    button: &'a str,
    cancel: &'a str,
    /// Other fields of the original form, posted again with the confirmation.
    keep: Vec<(&'a str, String)>,
}

/// What a confirmation asks.
pub(crate) struct Ask<'a> {
    pub title: &'a str,
    pub question: &'a str,
    /// What cannot be undone, or what happens at the door; may be empty.
    pub consequence: &'a str,
    pub button: &'a str,
    pub cancel: &'a str,
}

/// "Are you sure?" for an action posted to `action`.
pub(crate) fn confirm_page(
    user: &crate::CurrentUser,
    action: &str,
    ask: Ask<'_>,
    keep: Vec<(&str, String)>,
) -> Response {
    render(&ConfirmTpl {
        page: Page::new(ask.title, "", Some(user)),
        question: ask.question,
        consequence: ask.consequence,
        action,
        button: ask.button,
        cancel: ask.cancel,
        keep,
    })
}

async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    if uri.path().starts_with("/api/") {
        crate::error::ApiError(AppError::NotFound).into_response()
    } else {
        AppError::NotFound.into_response()
    }
}

fn asset(content_type: &'static str, body: &'static [u8]) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
}

async fn style() -> impl IntoResponse {
    asset(
        "text/css; charset=utf-8",
        include_bytes!("../../assets/style.css"),
    )
}

async fn script() -> impl IntoResponse {
    asset(
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/live.js"),
    )
}

async fn page_script() -> impl IntoResponse {
    asset(
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/page.js"),
    )
}

async fn icon() -> impl IntoResponse {
    asset("image/svg+xml", include_bytes!("../../assets/icon.svg"))
}
