//! First-run set-up, sign-in with lock-out, sign-out, and account creation with a physical card.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use askama::Template;
use axum::extract::{ConnectInfo, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use facereko_store::{hash_password, validate_username, NewAccount, Role};
use serde::Deserialize;

use crate::auth::{self, cookie, csrf_cookie_name, read_cookie, session_cookie_name};
use crate::error::AppError;
use crate::extract::{CsrfForm, NoFields, Peer, PreCsrfForm, Query};
use crate::views::{render, render_with_status, safe_next, Page};
use crate::AppState;

pub(crate) const MIN_PASSWORD: usize = 8;
pub(crate) const MAX_PASSWORD: usize = 200;

/// The double-submit token of a signed-out form, and the cookie to set when the browser has none yet
/// (`PreCsrfForm` checks it when the form comes back).
fn pre_csrf(state: &AppState, headers: &HeaderMap) -> (String, Option<header::HeaderValue>) {
    let name = csrf_cookie_name(state.config.secure_cookies);
    match read_cookie(headers, name) {
        Some(t) if t.len() == 64 => (t, None),
        _ => {
            let t = facereko_store::new_token();
            let c = cookie(name, &t, state.config.secure_cookies, None);
            (t, Some(c))
        }
    }
}

fn with_cookie(mut resp: Response, c: Option<header::HeaderValue>) -> Response {
    if let Some(c) = c {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

pub(crate) fn check_password(password: &str, again: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(format!(
            "The password needs at least {MIN_PASSWORD} characters."
        ));
    }
    if n > MAX_PASSWORD {
        return Err(format!(
            "The password can have at most {MAX_PASSWORD} characters."
        ));
    }
    if password != again {
        return Err("The two passwords differ.".into());
    }
    Ok(())
}

/// Starts a session for `account_id` and sends the browser to `to` with the cookie.
async fn sign_in(state: &AppState, account_id: i64, to: &str) -> Result<Response, AppError> {
    let ttl = chrono::Duration::hours(i64::from(state.config.session_absolute_hours));
    let token = state.store.create_session(account_id, ttl).await?;
    let c = cookie(
        session_cookie_name(state.config.secure_cookies),
        &token,
        state.config.secure_cookies,
        Some(ttl.num_seconds()),
    );
    let mut resp = Redirect::to(to).into_response();
    resp.headers_mut().append(header::SET_COOKIE, c);
    Ok(resp)
}

pub(crate) fn client(
    state: &AppState,
    headers: &HeaderMap,
    ci: Option<&ConnectInfo<SocketAddr>>,
) -> std::net::IpAddr {
    auth::client_ip(headers, ci, state.config.trust_forwarded_for)
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]))
}

// ---------------------------------------------------------------- set-up

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupTpl {
    page: Page,
    csrf: String,
    username: String,
}

pub(crate) async fn setup_page(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if auth::has_accounts(&state).await? {
        return Err(AppError::NotFound);
    }
    let (csrf, c) = pre_csrf(&state, &headers);
    Ok(with_cookie(
        render(&SetupTpl {
            page: Page::new("Set up FaceReko", "", None),
            csrf,
            username: String::new(),
        }),
        c,
    ))
}

#[derive(Deserialize)]
pub(crate) struct SetupForm {
    #[serde(default)]
    setup_code: String,
    username: String,
    password: String,
    password2: String,
}

pub(crate) async fn setup(
    State(state): State<AppState>,
    Peer(ci): Peer,
    headers: HeaderMap,
    PreCsrfForm(f): PreCsrfForm<SetupForm>,
) -> Result<Response, AppError> {
    let _one_at_a_time = state.runtime.setup.lock().await;
    if auth::has_accounts(&state).await? {
        return Err(AppError::NotFound);
    }
    let ip = client(&state, &headers, ci.as_ref());
    let window = Duration::from_secs(u64::from(state.config.login_lockout_minutes) * 60);
    let cap = state.config.address_max_failures as usize;
    let username = f.username.trim().to_string();
    let page = |status: StatusCode, problem: String| {
        let (csrf, _) = pre_csrf(&state, &headers);
        render_with_status(
            status,
            &SetupTpl {
                page: Page::new("Set up FaceReko", "", None).with_error(Some(problem)),
                csrf,
                username: username.clone(),
            },
        )
    };
    if state.runtime.failures_from(ip, window) >= cap {
        return Ok(page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong set-up codes from your network address. Try again later.".into(),
        ));
    }
    if !auth::setup_code_matches(state.setup_code(), &f.setup_code) {
        state.runtime.record_failure(ip, cap);
        tracing::warn!(%ip, "set-up refused: wrong set-up code");
        return Ok(page(
            StatusCode::FORBIDDEN,
            "That is not the set-up code. It is printed in the log of `facereko serve` when it starts \
             (`journalctl -u facereko` on an installed door)."
                .into(),
        ));
    }
    let problem = validate_username(&username)
        .err()
        .map(|_| "The username must be 1–30 letters or digits (also . _ -).".to_string())
        .or_else(|| check_password(&f.password, &f.password2).err());
    if let Some(problem) = problem {
        return Ok(page(StatusCode::BAD_REQUEST, problem));
    }
    let hash = hash_blocking(f.password).await?;
    let id = state
        .store
        .add_account(&NewAccount {
            username: username.clone(),
            password_hash: hash,
            role: Role::Admin,
            person_id: None,
            card_uid: None,
            must_change_password: false,
        })
        .await?;
    state
        .audit(
            crate::Actor::Other {
                name: &username,
                via: facereko_domain::AuditVia::Web,
                from: Some(ip),
            },
            "account.add",
            &username,
            "the first administrator, at set-up",
        )
        .await;
    sign_in(&state, id, "/").await
}

pub(crate) async fn hash_blocking(password: String) -> Result<String, AppError> {
    crate::passwords::hash(password).await
}

// ---------------------------------------------------------------- sign-in

#[derive(Template)]
#[template(path = "login.html")]
struct LoginTpl {
    page: Page,
    csrf: String,
    username: String,
    next: String,
}

#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
    expired: Option<String>,
    done: Option<String>,
}

pub(crate) async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Result<Response, AppError> {
    if !auth::has_accounts(&state).await? {
        return Ok(Redirect::to("/setup").into_response());
    }
    let parts = parts_of(&headers);
    if let Ok(Some(_)) = auth::session_user(&parts, &state).await {
        return Ok(Redirect::to(&safe_next(q.next.as_deref())).into_response());
    }
    let (csrf, c) = pre_csrf(&state, &headers);
    let notice = if q.expired.is_some() {
        Some("Your session ended after a period of inactivity. Please sign in again.".to_string())
    } else if q.done.as_deref() == Some("signed_out") {
        Some("You are signed out.".to_string())
    } else {
        None
    };
    Ok(with_cookie(
        render(&LoginTpl {
            page: Page::new("Sign in", "login", None).with_notice(notice),
            csrf,
            username: String::new(),
            next: safe_next(q.next.as_deref()),
        }),
        c,
    ))
}

/// Request parts carrying only these headers (for session lookups outside an extractor).
fn parts_of(headers: &HeaderMap) -> Parts {
    let (mut parts, ()) = axum::http::Request::new(()).into_parts();
    parts.headers = headers.clone();
    parts
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

fn dummy_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| hash_password("not a real password, only for equal timing"))
}

pub(crate) async fn login(
    State(state): State<AppState>,
    Peer(ci): Peer,
    headers: HeaderMap,
    PreCsrfForm(f): PreCsrfForm<LoginForm>,
) -> Result<Response, AppError> {
    let ip = client(&state, &headers, ci.as_ref());
    let window = Duration::from_secs(u64::from(state.config.login_lockout_minutes) * 60);
    let cap = state.config.address_max_failures as usize;
    let next = safe_next(f.next.as_deref());
    let username = f.username.trim().to_string();
    let page = |status: StatusCode, error: String| {
        let (csrf, _) = pre_csrf(&state, &headers);
        render_with_status(
            status,
            &LoginTpl {
                page: Page::new("Sign in", "login", None).with_error(Some(error)),
                csrf,
                username: username.clone(),
                next: next.clone(),
            },
        )
    };
    // The attempt counts from here, before any hashing: a burst of parallel guesses cannot all slip under
    // the limit while the first ones are still being checked. A success takes it back.
    if !state.runtime.begin_attempt(ip, window, cap) {
        let minutes = state
            .runtime
            .address_free_in(ip, window)
            .as_secs()
            .div_ceil(60)
            .max(1);
        tracing::warn!(%ip, "sign-in refused: too many failures from this address");
        return Ok(page(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many failed sign-ins from your network address. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            ),
        ));
    }
    let account = if validate_username(&username).is_ok() {
        state.store.account_by_username(&username).await?
    } else {
        None
    };
    let now = Utc::now();
    if let Some(a) = &account {
        if a.is_locked(now) {
            let until = a.locked_until.unwrap_or(now);
            let msg = if until - now > chrono::Duration::days(365) {
                "This account is disabled. Ask an administrator to enable it.".to_string()
            } else {
                format!(
                    "This account is locked after too many failed sign-ins, until {} ({}). \
                     Wait, or ask an administrator to reset the password.",
                    state.tz.format(until, "%H:%M"),
                    state.tz.name()
                )
            };
            return Ok(page(StatusCode::TOO_MANY_REQUESTS, msg));
        }
    }
    let hash = account
        .as_ref()
        .map(|a| a.password_hash.clone())
        .unwrap_or_else(|| dummy_hash().to_string());
    let password = f.password;
    let ok = crate::passwords::verify(password, hash).await?;
    match account {
        Some(a) if ok => {
            state.runtime.attempt_succeeded(ip);
            state.store.record_login_success(a.id).await?;
            tracing::info!(username = %a.username, %ip, "signed in");
            sign_in(&state, a.id, &next).await
        }
        other => {
            if let Some(a) = other {
                let lock_until =
                    now + chrono::Duration::minutes(i64::from(state.config.login_lockout_minutes));
                let failures = state
                    .store
                    .record_login_failure(a.id, state.config.login_max_failures, lock_until)
                    .await?;
                tracing::warn!(username = %a.username, %ip, failures, "failed sign-in");
                if failures >= i64::from(state.config.login_max_failures) {
                    return Ok(page(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!(
                            "Wrong password. After {} failed sign-ins this account is locked until {} ({}).",
                            state.config.login_max_failures,
                            state.tz.format(lock_until, "%H:%M"),
                            state.tz.name()
                        ),
                    ));
                }
            } else {
                tracing::warn!(%ip, "failed sign-in for an unknown username");
            }
            Ok(page(
                StatusCode::UNAUTHORIZED,
                "Wrong username or password.".into(),
            ))
        }
    }
}

pub(crate) async fn logout(
    State(state): State<AppState>,
    user: crate::auth::CurrentUser,
    _: CsrfForm<NoFields>,
) -> Result<Response, AppError> {
    state.store.delete_session(&user.token).await?;
    state.runtime.forget_session(&user.token);
    let mut resp = Redirect::to("/login?done=signed_out").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        cookie(
            session_cookie_name(state.config.secure_cookies),
            "",
            state.config.secure_cookies,
            Some(0),
        ),
    );
    Ok(resp)
}

// ---------------------------------------------------------------- account creation with a card
//
// By default a card creates an account only with an administrator's invitation, bound to one enrolled
// person and good once: without it a stranger at the reader could bind an account to whoever taps next.
// `web.self_signup` opens it to anyone, for a card of an enrolled, active person that has no account yet.
// The wait only observes the next tap (`DoorHandle::next_card`); the door still decides that tap. Refusals
// after the tap are one generic sentence: an anonymous caller learns neither usernames nor card owners.

/// How long an invitation stays good.
pub(crate) const INVITATION_HOURS: i64 = 48;

/// The one answer to any refused tap.
const CARD_REFUSED: &str =
    "This card cannot be used to create an account. Ask an administrator for \
                            an invitation, or check that you used your own card.";

#[derive(Template)]
#[template(path = "create_account.html")]
struct CreateTpl {
    page: Page,
    csrf: String,
    username: String,
    wait_seconds: u32,
    /// The invitation code carried by the form, if any.
    invite: String,
    /// Whether the form is offered (an invitation is valid, or self-service is on).
    open: bool,
}

#[derive(Deserialize)]
pub(crate) struct CreateQuery {
    invite: Option<String>,
}

/// A pending invitation for a code as given (anything malformed is simply not one).
async fn invitation_for(
    state: &AppState,
    code: Option<&str>,
) -> Result<Option<facereko_store::Invitation>, AppError> {
    match code.map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) if c.len() <= 128 && c.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            Ok(state.store.invitation(c).await?)
        }
        _ => Ok(None),
    }
}

pub(crate) async fn create_account_page(
    State(state): State<AppState>,
    Peer(ci): Peer,
    headers: HeaderMap,
    Query(q): Query<CreateQuery>,
) -> Result<Response, AppError> {
    if !auth::has_accounts(&state).await? {
        return Ok(Redirect::to("/setup").into_response());
    }
    let parts = parts_of(&headers);
    if let Ok(Some(u)) = auth::session_user(&parts, &state).await {
        if u.is_admin() {
            return Ok(Redirect::to("/accounts#new").into_response());
        }
    }
    let (csrf, c) = pre_csrf(&state, &headers);
    let given = q.invite.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let invitation = invitation_for(&state, given).await?;
    let mut page = Page::new("Create account", "login", None);
    let (status, open) = if invitation.is_some() {
        (StatusCode::OK, true)
    } else if given.is_some() {
        let ip = client(&state, &headers, ci.as_ref());
        state
            .runtime
            .record_failure(ip, state.config.address_max_failures as usize);
        page = page.with_error(Some(
            "This invitation is not valid: it was used, withdrawn or has expired. Ask an \
             administrator for a new one."
                .into(),
        ));
        (StatusCode::FORBIDDEN, false)
    } else {
        (StatusCode::OK, state.config.self_signup)
    };
    Ok(with_cookie(
        render_with_status(
            status,
            &CreateTpl {
                page,
                csrf,
                username: String::new(),
                wait_seconds: state.config.signup_tap_seconds,
                invite: if invitation.is_some() {
                    given.unwrap_or_default().to_string()
                } else {
                    String::new()
                },
                open,
            },
        ),
        c,
    ))
}

#[derive(Deserialize)]
pub(crate) struct CreateForm {
    username: String,
    password: String,
    password2: String,
    #[serde(default)]
    invite: String,
}

pub(crate) async fn create_account(
    State(state): State<AppState>,
    Peer(ci): Peer,
    headers: HeaderMap,
    PreCsrfForm(f): PreCsrfForm<CreateForm>,
) -> Result<Response, AppError> {
    let ip = client(&state, &headers, ci.as_ref());
    let window = Duration::from_secs(u64::from(state.config.login_lockout_minutes) * 60);
    let cap = state.config.address_max_failures as usize;
    let username = f.username.trim().to_string();
    let invite = f.invite.trim().to_string();
    let page = |status: StatusCode, error: String, open: bool| {
        let (csrf, _) = pre_csrf(&state, &headers);
        render_with_status(
            status,
            &CreateTpl {
                page: Page::new("Create account", "login", None).with_error(Some(error)),
                csrf,
                username: username.clone(),
                wait_seconds: state.config.signup_tap_seconds,
                invite: invite.clone(),
                open,
            },
        )
    };
    if state.runtime.failures_from(ip, window) >= cap {
        return Ok(page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed attempts from your network address. Try again later.".into(),
            false,
        ));
    }
    let invitation = invitation_for(&state, Some(&invite)).await?;
    if invitation.is_none() {
        if !invite.is_empty() {
            state.runtime.record_failure(ip, cap);
            return Ok(page(
                StatusCode::FORBIDDEN,
                "This invitation is not valid: it was used, withdrawn or has expired. Ask an \
                 administrator for a new one."
                    .into(),
                false,
            ));
        }
        if !state.config.self_signup {
            return Ok(page(
                StatusCode::FORBIDDEN,
                "Creating an account needs an invitation: ask an administrator for an invitation \
                 link and open it."
                    .into(),
                false,
            ));
        }
    }
    if validate_username(&username).is_err() {
        return Ok(page(
            StatusCode::BAD_REQUEST,
            "The username must be 1–30 letters or digits (also . _ -).".into(),
            true,
        ));
    }
    if let Err(p) = check_password(&f.password, &f.password2) {
        return Ok(page(StatusCode::BAD_REQUEST, p, true));
    }
    if state.store.account_by_username(&username).await?.is_some() {
        if invitation.is_none() {
            // Open sign-up must not become a way to list usernames.
            state.runtime.record_failure(ip, cap);
        }
        return Ok(page(
            StatusCode::CONFLICT,
            "That username is taken; choose another.".into(),
            true,
        ));
    }
    let Ok(_reader) = state.runtime.card_wait.try_lock() else {
        return Ok(page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The card reader is in use by someone else right now; try again in a moment.".into(),
            true,
        ));
    };
    let wait = Duration::from_secs(u64::from(state.config.signup_tap_seconds));
    let tap = match state.door.next_card(wait).await {
        Ok(tap) => tap,
        Err(facereko_door::Error::NoCard(_)) => {
            return Ok(page(
                StatusCode::BAD_REQUEST,
                format!(
                "No card was presented within {} seconds. Hold your card on the reader and press \
                     Create account again.",
                state.config.signup_tap_seconds
            ),
                true,
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let refuse = |why: &str| -> Result<Response, AppError> {
        state.runtime.record_failure(ip, cap);
        tracing::warn!(uid = %tap.uid, %ip, why, "account creation by card refused");
        Ok(page(StatusCode::FORBIDDEN, CARD_REFUSED.into(), true))
    };
    let found = state.store.lookup_card(&tap.uid).await?;
    let Some((card, person)) = found.filter(|(c, p)| c.active && p.active) else {
        return refuse("card not enrolled or inactive");
    };
    if let Some(inv) = &invitation {
        if inv.person_id != person.id.0 {
            return refuse("card of another person than the invited one");
        }
    }
    let taken = state
        .store
        .list_accounts()
        .await?
        .into_iter()
        .any(|a| a.card_uid.as_ref() == Some(&card.uid) || a.person_id == Some(person.id));
    if taken {
        return refuse("the card's person already has an account");
    }
    if let Some(inv) = &invitation {
        if !state.store.use_invitation(inv.id).await? {
            return refuse("invitation used meanwhile");
        }
    }
    let hash = hash_blocking(f.password).await?;
    let id = state
        .store
        .add_account(&NewAccount {
            username: username.clone(),
            password_hash: hash,
            role: Role::Viewer,
            person_id: Some(person.id),
            card_uid: Some(card.uid.clone()),
            must_change_password: false,
        })
        .await?;
    state
        .audit(
            crate::Actor::Other {
                name: &username,
                via: facereko_domain::AuditVia::Web,
                from: Some(ip),
            },
            "account.add",
            &username,
            format!(
                "viewer account of {} with card {}{}",
                person.name,
                card.uid.masked(),
                if invitation.is_some() {
                    ", invited"
                } else {
                    ""
                }
            ),
        )
        .await;
    sign_in(&state, id, "/").await
}
