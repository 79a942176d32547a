//! Groups and holidays: a building manager's way to give many people the same hours. A group has a
//! weekly schedule template (edited with the day/time range editor of `crate::schedule`) that every
//! member without a schedule of their own follows; holidays are site-wide dates on which everyone with a
//! schedule is refused. Administrators edit, viewers read. Each change goes to the audit trail and,
//! being a directory change, to every door's replica.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::NaiveDate;
use facereko_domain::{Group, GroupId, PersonId};
use serde::Deserialize;

use crate::auth::{Admin, CurrentUser};
use crate::error::AppError;
use crate::extract::{CsrfForm, Path, Query};
use crate::routes::{confirm_page, Ask, Confirm};
use crate::schedule::EditorRow;
use crate::views::{render, render_with_status, Page};
use crate::{Actor, AppState};

/// A group in the list.
struct GroupRow {
    id: i64,
    name: String,
    members: i64,
    /// The template in words; empty when the group sets no hours.
    schedule: String,
}

struct HolidayRow {
    id: i64,
    date: String,
    /// "Friday".
    weekday: String,
    name: String,
}

#[derive(Template)]
#[template(path = "groups.html")]
struct GroupsTpl {
    page: Page,
    groups: Vec<GroupRow>,
    holidays: Vec<HolidayRow>,
}

/// The address's `done`: what just succeeded.
#[derive(Default, Deserialize)]
pub(crate) struct DoneQuery {
    done: Option<String>,
}

fn notice(done: Option<&str>) -> Option<String> {
    Some(
        match done? {
            "group_added" => "Group added. Now give it a schedule and add people.",
            "group_removed" => "Group removed; its members are in no group now.",
            "renamed" => "Renamed.",
            "schedule_saved" => "Schedule saved. Every door follows it after its next sync.",
            "members_added" => "Added to the group.",
            "members_removed" => "Removed from the group.",
            "holiday_added" => "Holiday added.",
            "holiday_removed" => "Holiday removed.",
            _ => return None,
        }
        .to_string(),
    )
}

fn holiday_rows(holidays: Vec<facereko_domain::Holiday>) -> Vec<HolidayRow> {
    holidays
        .into_iter()
        .map(|h| HolidayRow {
            id: h.id,
            date: h.date.format("%Y-%m-%d").to_string(),
            weekday: h.date.format("%A").to_string(),
            name: h.name,
        })
        .collect()
}

pub(crate) async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<DoneQuery>,
) -> Result<Response, AppError> {
    let groups = state
        .store
        .groups()
        .await?
        .into_iter()
        .map(|g| GroupRow {
            id: g.group.id.0,
            schedule: crate::schedule::one_line(g.group.schedule.as_ref()),
            name: g.group.name,
            members: g.members,
        })
        .collect();
    let holidays = holiday_rows(state.store.holidays().await?);
    Ok(render(&GroupsTpl {
        page: Page::new("Groups", "groups", Some(&user)).with_notice(notice(q.done.as_deref())),
        groups,
        holidays,
    }))
}

#[derive(Deserialize)]
pub(crate) struct NameForm {
    name: String,
}

pub(crate) async fn add(
    State(state): State<AppState>,
    Admin(user): Admin,
    CsrfForm(f): CsrfForm<NameForm>,
) -> Result<Response, AppError> {
    let id = state.store.add_group(&f.name).await?;
    state
        .audit(Actor::Web(&user), "group.add", f.name.trim(), "")
        .await;
    Ok(Redirect::to(&format!("/groups/{id}?done=group_added")).into_response())
}

/// A person in the group page's lists.
struct MemberRow {
    id: i64,
    name: String,
    /// Their own schedule wins over the group's.
    own_schedule: bool,
    /// For people outside the group: the group they are in now, if any.
    other_group: Option<String>,
}

#[derive(Template)]
#[template(path = "group.html")]
struct GroupTpl {
    page: Page,
    id: i64,
    name: String,
    /// The template in words; empty when the group sets no hours.
    schedule: String,
    schedule_rows: Vec<EditorRow>,
    schedule_legend: &'static str,
    schedule_hint: String,
    members: Vec<MemberRow>,
    /// Everyone else, for "Add to group" (administrators only).
    others: Vec<MemberRow>,
}

async fn group_or_404(state: &AppState, id: i64) -> Result<Group, AppError> {
    state
        .store
        .group(GroupId(id))
        .await?
        .ok_or(AppError::NotFound)
}

async fn group_page(
    state: &AppState,
    user: &CurrentUser,
    g: &Group,
    typed_rows: Option<Vec<EditorRow>>,
    done: Option<&str>,
    error: Option<String>,
) -> Result<GroupTpl, AppError> {
    let people = state.store.list_people().await?;
    let (members, others): (Vec<_>, Vec<_>) = people
        .into_iter()
        .partition(|p| p.group.as_ref().is_some_and(|pg| pg.id == g.id));
    let row = |p: facereko_domain::Person| MemberRow {
        id: p.id.0,
        own_schedule: p.schedule.is_some(),
        other_group: p.group.map(|g| g.name),
        name: p.name,
    };
    Ok(GroupTpl {
        page: Page::new(g.name.clone(), "groups", Some(user))
            .with_notice(notice(done))
            .with_error(error),
        id: g.id.0,
        name: g.name.clone(),
        schedule: crate::schedule::format(g.schedule.as_ref()),
        schedule_rows: typed_rows
            .unwrap_or_else(|| crate::schedule::editor_rows(g.schedule.as_ref())),
        schedule_legend: "Weekly schedule template",
        schedule_hint: "Members without a schedule of their own follow it. Leave every row empty \
                        and the group sets no hours (its members may enter at any time)."
            .into(),
        members: members.into_iter().map(row).collect(),
        others: if user.is_admin() {
            others.into_iter().map(row).collect()
        } else {
            Vec::new()
        },
    })
}

pub(crate) async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, AppError> {
    let g = group_or_404(&state, id).await?;
    Ok(render(
        &group_page(&state, &user, &g, None, q.done.as_deref(), None).await?,
    ))
}

pub(crate) async fn rename(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<NameForm>,
) -> Result<Response, AppError> {
    let g = group_or_404(&state, id).await?;
    state.store.rename_group(g.id, &f.name).await?;
    let new = f.name.trim();
    if new != g.name {
        state
            .audit(
                Actor::Web(&user),
                "group.rename",
                new,
                format!("name {:?} → {new:?}", g.name),
            )
            .await;
    }
    Ok(Redirect::to(&format!("/groups/{id}?done=renamed")).into_response())
}

/// The schedule editor's fields, as posted.
pub(crate) async fn set_schedule(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<i64>,
    CsrfForm(fields): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let g = group_or_404(&state, id).await?;
    let schedule = match crate::schedule::from_form(&fields) {
        Ok(s) => s,
        Err(why) => {
            let rows = crate::schedule::rows_as_posted(&fields);
            let page = group_page(&state, &user, &g, Some(rows), None, Some(why)).await?;
            return Ok(render_with_status(
                axum::http::StatusCode::BAD_REQUEST,
                &page,
            ));
        }
    };
    state
        .store
        .set_group_schedule(g.id, schedule.as_ref())
        .await?;
    let words = |s: Option<&facereko_domain::WeeklySchedule>| match s {
        None => "no hours".to_string(),
        Some(s) => crate::schedule::one_line(Some(s)),
    };
    let (was, now) = (words(g.schedule.as_ref()), words(schedule.as_ref()));
    if was != now {
        state
            .audit(
                Actor::Web(&user),
                "group.schedule",
                &g.name,
                format!("schedule {was} → {now}"),
            )
            .await;
    }
    Ok(Redirect::to(&format!("/groups/{id}?done=schedule_saved")).into_response())
}

/// The people a form ticked (`person=1&person=2…`), each an id; a 400 for anything else.
fn ticked_people(fields: &[(String, String)]) -> Result<Vec<PersonId>, AppError> {
    let people = fields
        .iter()
        .filter(|(k, _)| k == "person")
        .map(|(_, v)| {
            v.trim()
                .parse::<i64>()
                .map(PersonId)
                .map_err(|_| AppError::BadRequest("That is not a person.".into()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if people.is_empty() {
        return Err(AppError::BadRequest("Tick at least one person.".into()));
    }
    Ok(people)
}

/// "Add to group": every ticked person joins this group (leaving any other), in one change.
pub(crate) async fn add_members(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<i64>,
    CsrfForm(fields): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let g = group_or_404(&state, id).await?;
    let people = ticked_people(&fields)?;
    move_people(&state, &user, Some(&g), &people).await?;
    Ok(Redirect::to(&format!("/groups/{id}?done=members_added")).into_response())
}

/// "Remove from group": the ticked members leave it (and are in no group).
pub(crate) async fn remove_members(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<i64>,
    CsrfForm(fields): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let g = group_or_404(&state, id).await?;
    let people = ticked_people(&fields)?;
    // Only this group's members: a forged list cannot take people out of another group.
    let all = state.store.list_people().await?;
    if !people.iter().all(|id| {
        all.iter()
            .any(|p| p.id == *id && p.group.as_ref().is_some_and(|pg| pg.id == g.id))
    }) {
        return Err(AppError::BadRequest(
            "Someone ticked is not in this group (any more).".into(),
        ));
    }
    move_people(&state, &user, None, &people).await?;
    let names = names_of(&all, &people);
    state
        .audit(
            Actor::Web(&user),
            "group.members",
            &g.name,
            format!("removed {names}"),
        )
        .await;
    Ok(Redirect::to(&format!("/groups/{id}?done=members_removed")).into_response())
}

/// "Ada, Bob and 3 more".
fn names_of(all: &[facereko_domain::Person], ids: &[PersonId]) -> String {
    let names: Vec<&str> = ids
        .iter()
        .filter_map(|id| all.iter().find(|p| p.id == *id).map(|p| p.name.as_str()))
        .collect();
    match names.len() {
        0..=5 => names.join(", "),
        n => format!("{} and {} more", names[..5].join(", "), n - 5),
    }
}

/// Puts `people` in `group` (or in none); for joining, records who joined.
async fn move_people(
    state: &AppState,
    user: &CurrentUser,
    group: Option<&Group>,
    people: &[PersonId],
) -> Result<(), AppError> {
    let n = state
        .store
        .assign_group(group.map(|g| g.id), people)
        .await
        .map_err(|e| match e {
            facereko_store::Error::NotFound(_) => {
                AppError::BadRequest("Someone ticked does not exist (any more).".into())
            }
            other => other.into(),
        })?;
    if let Some(g) = group {
        let all = state.store.list_people().await?;
        state
            .audit(
                Actor::Web(user),
                "group.members",
                &g.name,
                format!("added {} ({n})", names_of(&all, people)),
            )
            .await;
    }
    Ok(())
}

pub(crate) async fn remove(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<i64>,
    CsrfForm(c): CsrfForm<Confirm>,
) -> Result<Response, AppError> {
    let g = group_or_404(&state, id).await?;
    if !c.confirmed() {
        let members = state
            .store
            .groups()
            .await?
            .into_iter()
            .find(|s| s.group.id == g.id)
            .map_or(0, |s| s.members);
        let question = format!("Remove the group {} ({members} members)?", g.name);
        return Ok(confirm_page(
            &user,
            &format!("/groups/{id}/remove"),
            Ask {
                title: "Remove group",
                question: &question,
                consequence:
                    "Its members stay, in no group: those without a schedule of their own \
                              may then enter at any time.",
                button: "Remove group",
                cancel: &format!("/groups/{id}"),
            },
            Vec::new(),
        ));
    }
    state.store.delete_group(g.id).await?;
    state
        .audit(Actor::Web(&user), "group.remove", &g.name, "")
        .await;
    Ok(Redirect::to("/groups?done=group_removed").into_response())
}

#[derive(Deserialize)]
pub(crate) struct HolidayForm {
    date: String,
    name: String,
}

pub(crate) async fn add_holiday(
    State(state): State<AppState>,
    Admin(user): Admin,
    CsrfForm(f): CsrfForm<HolidayForm>,
) -> Result<Response, AppError> {
    let date = NaiveDate::parse_from_str(f.date.trim(), "%Y-%m-%d")
        .map_err(|_| AppError::BadRequest("The date must look like 2026-12-25.".into()))?;
    state.store.add_holiday(date, &f.name).await?;
    state
        .audit(
            Actor::Web(&user),
            "holiday.add",
            f.name.trim(),
            date.format("%Y-%m-%d (%A)").to_string(),
        )
        .await;
    Ok(Redirect::to("/groups?done=holiday_added#holidays").into_response())
}

pub(crate) async fn remove_holiday(
    State(state): State<AppState>,
    Admin(user): Admin,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<crate::extract::NoFields>,
) -> Result<Response, AppError> {
    let h = state.store.remove_holiday(id).await?;
    state
        .audit(
            Actor::Web(&user),
            "holiday.remove",
            &h.name,
            h.date.format("%Y-%m-%d").to_string(),
        )
        .await;
    Ok(Redirect::to("/groups?done=holiday_removed#holidays").into_response())
}
