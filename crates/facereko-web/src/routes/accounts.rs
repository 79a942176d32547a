//! Accounts (admin only): list, add, reset password, change role, disable; API tokens for integrations.
//!
//! Disabling locks the account for a century and ends its sessions; resetting the password re-enables
//! it. The last enabled admin cannot be disabled or demoted, so the app can never lock everyone out.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use facereko_store::{validate_username, Account, AccountUpdate, NewAccount, Role};
use serde::Deserialize;

use crate::auth::{Admin, CurrentUser, Reveal};
use crate::error::AppError;
use crate::extract::{CsrfForm, NoFields, Path, Peer, Query};
use crate::routes::home::Done;
use crate::routes::session::{check_password, client, hash_blocking};
use crate::views::{render, render_with_status, Page};
use crate::{Actor, AppState};

/// How long "disabled" lasts.
const DISABLED_FOR: chrono::Duration = chrono::Duration::days(365 * 100);

pub(crate) struct AccountRow {
    pub id: i64,
    pub username: String,
    pub admin: bool,
    pub person: String,
    pub last_login: String,
    pub status: String,
    pub is_self: bool,
}

pub(crate) struct TokenRow {
    pub id: i64,
    pub name: String,
    pub account: String,
    pub created: String,
    pub last_used: String,
    pub expires: String,
}

pub(crate) struct InviteRow {
    pub id: i64,
    pub person: String,
    pub created: String,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "accounts.html")]
struct AccountsTpl {
    page: Page,
    accounts: Vec<AccountRow>,
    tokens: Vec<TokenRow>,
    new_token: Option<String>,
    username: String,
    invitations: Vec<InviteRow>,
    /// Enrolled, active people without an account: who can be invited.
    invitable: Vec<(i64, String)>,
    /// A just-issued invitation code, shown once.
    new_invite: Option<String>,
}

fn status_of(a: &Account, state: &AppState) -> String {
    let now = Utc::now();
    match a.locked_until {
        Some(t) if t > now + chrono::Duration::days(365) => "disabled".into(),
        Some(t) if t > now => format!("locked until {}", state.tz.format(t, "%Y-%m-%d %H:%M")),
        _ => "active".into(),
    }
}

fn is_disabled(a: &Account) -> bool {
    a.locked_until
        .is_some_and(|t| t > Utc::now() + chrono::Duration::days(365))
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    notice: Option<String>,
    error: Option<String>,
    new_token: Option<String>,
    username: String,
) -> Result<AccountsTpl, AppError> {
    page_with_invite(state, user, notice, error, new_token, username, None).await
}

async fn page_with_invite(
    state: &AppState,
    user: &CurrentUser,
    notice: Option<String>,
    error: Option<String>,
    new_token: Option<String>,
    username: String,
    new_invite: Option<String>,
) -> Result<AccountsTpl, AppError> {
    let accounts = state.store.list_accounts().await?;
    let people = state.store.list_people().await?;
    let name_of = |id: i64| {
        accounts
            .iter()
            .find(|a| a.id == id)
            .map(|a| a.username.clone())
            .unwrap_or_else(|| format!("#{id}"))
    };
    let tokens = state
        .store
        .api_tokens(None)
        .await?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            name: t.name,
            account: name_of(t.account_id),
            created: state.tz.format(t.created, "%Y-%m-%d"),
            last_used: t
                .last_used
                .map(|x| state.tz.format(x, "%Y-%m-%d %H:%M"))
                .unwrap_or_else(|| "never".into()),
            expires: t
                .expires
                .map(|x| state.tz.format(x, "%Y-%m-%d"))
                .unwrap_or_else(|| "never".into()),
        })
        .collect();
    let rows = accounts
        .iter()
        .map(|a| AccountRow {
            id: a.id,
            username: a.username.clone(),
            admin: a.role == Role::Admin,
            person: a
                .person_id
                .and_then(|p| people.iter().find(|x| x.id == p))
                .map(|p| p.name.clone())
                .unwrap_or_default(),
            last_login: a
                .last_login
                .map(|t| state.tz.format(t, "%Y-%m-%d %H:%M"))
                .unwrap_or_else(|| "never".into()),
            status: status_of(a, state),
            is_self: a.id == user.account.id,
        })
        .collect();
    let invitations = state
        .store
        .pending_invitations()
        .await?
        .into_iter()
        .map(|i| InviteRow {
            id: i.id,
            person: people
                .iter()
                .find(|p| p.id.0 == i.person_id)
                .map(|p| p.name.clone())
                .unwrap_or_else(|| format!("#{}", i.person_id)),
            created: state.tz.format(i.created, "%Y-%m-%d %H:%M"),
            expires: state.tz.format(i.expires, "%Y-%m-%d %H:%M"),
        })
        .collect();
    let invitable = people
        .iter()
        .filter(|p| p.active && !accounts.iter().any(|a| a.person_id == Some(p.id)))
        .map(|p| (p.id.0, p.name.clone()))
        .collect();
    Ok(AccountsTpl {
        page: Page::new("Accounts", "accounts", Some(user))
            .with_notice(notice)
            .with_error(error),
        accounts: rows,
        tokens,
        new_token,
        username,
        invitations,
        invitable,
        new_invite,
    })
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Admin(user): Admin,
    Query(q): Query<Done>,
) -> Result<Response, AppError> {
    let notice = q
        .done()
        .and_then(|d| {
            Some(match d {
                "added" => "Account added.",
                "password" => "Password set; the account's sessions were ended and it is enabled.",
                "role" => "Role changed.",
                "disabled" => "Account disabled and signed out everywhere.",
                "revoked" => "Token revoked.",
                "invitation_revoked" => "Invitation withdrawn.",
                "token" => "Token created. Copy it now: it is shown only once.",
                "invitation" => "Invitation created. Copy the link now: it is shown only once.",
                _ => return None,
            })
        })
        .map(str::to_string);
    let (token, invite) = match state.runtime.take_reveal(&user.token) {
        Some(Reveal::Token(t)) => (Some(t), None),
        Some(Reveal::Invitation(c)) => (None, Some(c)),
        None => (None, None),
    };
    let notice = match (q.done(), &token, &invite) {
        // Reloaded, or opened in another tab: the secret was shown once already.
        (Some("token"), None, _) | (Some("invitation"), _, None) => {
            Some("It was shown once already; create a new one if it was not copied.".to_string())
        }
        _ => notice,
    };
    Ok(render(
        &page_with_invite(&state, &user, notice, None, token, String::new(), invite).await?,
    ))
}

#[derive(Deserialize)]
pub(crate) struct AddForm {
    username: String,
    password: String,
    password2: String,
    role: String,
}

pub(crate) async fn add(
    State(state): State<AppState>,
    Admin(user): Admin,
    CsrfForm(f): CsrfForm<AddForm>,
) -> Result<Response, AppError> {
    let username = f.username.trim().to_string();
    let role: Role = f
        .role
        .parse()
        .map_err(|_| AppError::BadRequest("Choose admin or viewer.".into()))?;
    let problem = if validate_username(&username).is_err() {
        Some("The username must be 1–30 letters or digits (also . _ -).".to_string())
    } else if let Err(p) = check_password(&f.password, &f.password2) {
        Some(p)
    } else if state.store.account_by_username(&username).await?.is_some() {
        Some("That username is taken.".to_string())
    } else {
        None
    };
    if let Some(problem) = problem {
        let t = page(&state, &user, None, Some(problem), None, username).await?;
        return Ok(render_with_status(StatusCode::BAD_REQUEST, &t));
    }
    let hash = hash_blocking(f.password).await?;
    state
        .store
        .add_account(&NewAccount {
            username: username.clone(),
            password_hash: hash,
            role,
            person_id: None,
            card_uid: None,
            must_change_password: false,
        })
        .await?;
    state
        .audit(
            Actor::Web(&user),
            "account.add",
            &username,
            format!("role {role}"),
        )
        .await;
    Ok(Redirect::to("/accounts?done=added").into_response())
}

async fn target(state: &AppState, id: i64) -> Result<Account, AppError> {
    state.store.account(id).await?.ok_or(AppError::NotFound)
}

/// Refuses a change that would leave no enabled admin.
async fn keep_an_admin(state: &AppState, losing: &Account) -> Result<(), AppError> {
    if losing.role != Role::Admin {
        return Ok(());
    }
    let others = state
        .store
        .list_accounts()
        .await?
        .into_iter()
        .filter(|a| a.id != losing.id && a.role == Role::Admin && !is_disabled(a))
        .count();
    if others == 0 {
        return Err(AppError::BadRequest(
            "This is the last enabled administrator; add another admin first.".into(),
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    password: String,
    password2: String,
}

pub(crate) async fn reset_password(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<PasswordForm>,
) -> Result<Response, AppError> {
    let a = target(&state, id).await?;
    check_password(&f.password, &f.password2).map_err(AppError::BadRequest)?;
    let hash = hash_blocking(f.password).await?;
    state
        .store
        .update_account(
            a.id,
            &AccountUpdate {
                password_hash: Some(hash),
                must_change_password: Some(false),
                ..AccountUpdate::default()
            },
        )
        .await?;
    // Clears a lock-out or a disablement; not a sign-in, so "Last sign-in" stays as it was.
    state.store.clear_lockout(a.id).await?;
    if a.id != user.account.id {
        state.store.delete_sessions_of(a.id).await?;
    }
    state.runtime.clear_token_cache();
    state
        .audit(
            Actor::Web(&user),
            "account.password",
            &a.username,
            "password reset by an administrator (re-enables a disabled account)",
        )
        .await;
    Ok(Redirect::to("/accounts?done=password").into_response())
}

#[derive(Deserialize)]
pub(crate) struct RoleForm {
    role: String,
}

pub(crate) async fn set_role(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<RoleForm>,
) -> Result<Response, AppError> {
    let a = target(&state, id).await?;
    let role: Role = f
        .role
        .parse()
        .map_err(|_| AppError::BadRequest("Choose admin or viewer.".into()))?;
    if role != Role::Admin {
        keep_an_admin(&state, &a).await?;
    }
    state
        .store
        .update_account(
            a.id,
            &AccountUpdate {
                role: Some(role),
                ..AccountUpdate::default()
            },
        )
        .await?;
    state.runtime.clear_token_cache();
    state
        .audit(
            Actor::Web(&user),
            "account.role",
            &a.username,
            format!("{} → {role}", a.role),
        )
        .await;
    Ok(Redirect::to("/accounts?done=role").into_response())
}

pub(crate) async fn disable(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<i64>,
    _: CsrfForm<NoFields>,
) -> Result<Response, AppError> {
    let a = target(&state, id).await?;
    if a.id == user.account.id {
        return Err(AppError::BadRequest(
            "You cannot disable your own account.".into(),
        ));
    }
    keep_an_admin(&state, &a).await?;
    state
        .store
        .record_login_failure(a.id, 1, Utc::now() + DISABLED_FOR)
        .await?;
    state.store.delete_sessions_of(a.id).await?;
    state.runtime.clear_token_cache();
    state
        .audit(Actor::Web(&user), "account.disable", &a.username, "")
        .await;
    Ok(Redirect::to("/accounts?done=disabled").into_response())
}

#[derive(Deserialize)]
pub(crate) struct TokenForm {
    name: String,
    account: i64,
    /// Days until it expires; empty for never.
    expires_days: Option<String>,
}

pub(crate) async fn create_token(
    State(state): State<AppState>,
    Admin(user): Admin,
    CsrfForm(f): CsrfForm<TokenForm>,
) -> Result<Response, AppError> {
    let a = target(&state, f.account).await?;
    let expires = match f
        .expires_days
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(d) => {
            let days: i64 = d
                .parse()
                .ok()
                .filter(|d| (1..=3650).contains(d))
                .ok_or_else(|| {
                    AppError::BadRequest("Expiry: 1–3650 days, or empty for never.".into())
                })?;
            Some(Utc::now() + chrono::Duration::days(days))
        }
    };
    let (_id, token) = state
        .store
        .create_api_token(a.id, f.name.trim(), expires)
        .await?;
    state
        .audit(
            Actor::Web(&user),
            "token.create",
            &a.username,
            format!(
                "token {:?}, {}",
                f.name.trim(),
                expires.map_or("never expires".to_string(), |t| format!(
                    "expires {}",
                    state.tz.format(t, "%Y-%m-%d")
                ))
            ),
        )
        .await;
    // Shown by the page this redirects to, so reloading it cannot create a second token.
    state.runtime.keep_reveal(&user.token, Reveal::Token(token));
    Ok(Redirect::to("/accounts?done=token").into_response())
}

pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<i64>,
    _: CsrfForm<NoFields>,
) -> Result<Response, AppError> {
    let token = state
        .store
        .api_tokens(None)
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or(AppError::NotFound)?;
    let owner = target(&state, token.account_id).await?;
    state.store.revoke_api_token(id).await?;
    state.runtime.clear_token_cache();
    state
        .audit(
            Actor::Web(&user),
            "token.revoke",
            &owner.username,
            format!("token {:?}", token.name),
        )
        .await;
    Ok(Redirect::to("/accounts?done=revoked").into_response())
}

#[derive(Deserialize)]
pub(crate) struct InviteForm {
    person: i64,
}

/// Issues a single-use invitation for an enrolled, active person without an account; the code is shown
/// once, as a link to `/create-account`.
pub(crate) async fn invite(
    State(state): State<AppState>,
    Admin(user): Admin,
    CsrfForm(f): CsrfForm<InviteForm>,
) -> Result<Response, AppError> {
    let person = state
        .store
        .person(facereko_domain::PersonId(f.person))
        .await?
        .filter(|p| p.active)
        .ok_or_else(|| AppError::BadRequest("Choose an enrolled, active person.".into()))?;
    if state
        .store
        .list_accounts()
        .await?
        .iter()
        .any(|a| a.person_id == Some(person.id))
    {
        return Err(AppError::BadRequest(format!(
            "{} already has an account.",
            person.name
        )));
    }
    let (inv, code) = state
        .store
        .create_invitation(
            person.id,
            chrono::Duration::hours(crate::routes::session::INVITATION_HOURS),
        )
        .await?;
    state
        .audit(
            Actor::Web(&user),
            "invitation.create",
            &person.name,
            format!("invitation #{}", inv.id),
        )
        .await;
    state
        .runtime
        .keep_reveal(&user.token, Reveal::Invitation(code));
    Ok(Redirect::to("/accounts?done=invitation#invitations").into_response())
}

pub(crate) async fn revoke_invitation(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<i64>,
    _: CsrfForm<NoFields>,
) -> Result<Response, AppError> {
    state.store.revoke_invitation(id).await?;
    state
        .audit(
            Actor::Web(&user),
            "invitation.revoke",
            format!("invitation #{id}"),
            "",
        )
        .await;
    Ok(Redirect::to("/accounts?done=invitation_revoked").into_response())
}

#[derive(Template)]
#[template(path = "account.html")]
struct MeTpl {
    page: Page,
    role: &'static str,
    must_change: bool,
}

/// The signed-in user's own account: role, and a form to change the password.
pub(crate) async fn me(user: CurrentUser, Query(q): Query<Done>) -> Response {
    let notice = (q.done() == Some("password")).then(|| "Your password was changed.".to_string());
    render(&MeTpl {
        page: Page::new("Your account", "account", Some(&user)).with_notice(notice),
        role: user.account.role.as_str(),
        must_change: user.account.must_change_password,
    })
}

#[derive(Deserialize)]
pub(crate) struct OwnPasswordForm {
    current: String,
    password: String,
    password2: String,
}

pub(crate) async fn change_own_password(
    State(state): State<AppState>,
    user: CurrentUser,
    Peer(ci): Peer,
    headers: HeaderMap,
    CsrfForm(f): CsrfForm<OwnPasswordForm>,
) -> Result<Response, AppError> {
    let again_with = |status: StatusCode, error: String| {
        render_with_status(
            status,
            &MeTpl {
                page: Page::new("Your account", "account", Some(&user)).with_error(Some(error)),
                role: user.account.role.as_str(),
                must_change: user.account.must_change_password,
            },
        )
    };
    let again = |error: String| again_with(StatusCode::BAD_REQUEST, error);
    // Checking the current password is a password guess like a sign-in: counted per address first, and
    // hashed only under the same limit.
    let ip = client(&state, &headers, ci.as_ref());
    let window = std::time::Duration::from_secs(u64::from(state.config.login_lockout_minutes) * 60);
    let cap = state.config.address_max_failures as usize;
    if !state.runtime.begin_attempt(ip, window, cap) {
        return Ok(again_with(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong passwords from your network address. Try again later.".into(),
        ));
    }
    let hash = user.account.password_hash.clone();
    let current = f.current;
    let ok = crate::passwords::verify(current, hash).await?;
    if !ok {
        return Ok(again("The current password is wrong.".into()));
    }
    state.runtime.attempt_succeeded(ip);
    if let Err(p) = check_password(&f.password, &f.password2) {
        return Ok(again(p));
    }
    let hash = hash_blocking(f.password).await?;
    state
        .store
        .update_account(
            user.account.id,
            &AccountUpdate {
                password_hash: Some(hash),
                must_change_password: Some(false),
                ..AccountUpdate::default()
            },
        )
        .await?;
    // Whoever else was signed in with the old password is signed out; this browser stays signed in.
    state
        .store
        .delete_other_sessions_of(user.account.id, &user.token)
        .await?;
    state
        .audit(
            Actor::Web(&user),
            "account.password",
            &user.account.username,
            "changed by its owner; other sessions signed out",
        )
        .await;
    Ok(Redirect::to("/account?done=password").into_response())
}
