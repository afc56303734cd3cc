//! `/staff/members`: the site's members, searchable and filtered, a
//! member's page (their invitation, sessions and reference requests), and
//! the staff actions on them (see `members`).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tera::Context;

use super::members::{self, MemberChangeError};
use super::users::{self, MemberFilter, RoleChange, RoleChangeError};
use crate::AppState;
use crate::audit::Actor;
use crate::dates::{DateStyle, Zone};
use crate::entities::users::Model as User;
use crate::error::{AppError, AppResult};
use crate::web::auth::Staff;
use crate::web::client::browser_family;
use crate::web::confirm::{self, ConfirmForm, FormField, Question};
use crate::web::page::{self, FlashLevel, Page, flash, see_other};
use crate::web::pager;
use crate::web::sessions;
use crate::web::sites::CurrentSite;

const PATH: &str = "/staff/members";

pub fn staff_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/members", page::get().to(list))
        .route("/members/{id}", page::get().to(detail))
        .route("/members/{id}/deactivate", web::post().to(deactivate))
        .route("/members/{id}/reactivate", web::post().to(reactivate))
        .route("/members/{id}/staff", web::post().to(set_staff));
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ListQuery {
    q: String,
    role: String,
    status: String,
    login: String,
    page: String,
}

impl ListQuery {
    fn filter(&self, search: &str) -> MemberFilter {
        MemberFilter {
            search: search.to_owned(),
            staff: match self.role.as_str() {
                "staff" => Some(true),
                "members" => Some(false),
                _ => None,
            },
            active: match self.status.as_str() {
                "active" => Some(true),
                "deactivated" | "inactive" => Some(false),
                _ => None,
            },
            has_password: match self.login.as_str() {
                "password" => Some(true),
                "code" => Some(false),
                _ => None,
            },
        }
    }
}

/// A member as the list and their page show them.
#[derive(Serialize)]
struct MemberRow {
    id: i64,
    username: String,
    email: String,
    name: String,
    phone: String,
    is_staff: bool,
    is_active: bool,
    has_password: bool,
    joined: String,
    last_login: Option<String>,
}

impl MemberRow {
    fn of(user: &User, zone: Zone) -> Self {
        Self {
            id: user.id,
            username: user.username.clone(),
            email: user.email.clone(),
            name: format!("{} {}", user.first_name, user.last_name)
                .trim()
                .to_owned(),
            phone: user.phone.clone(),
            is_staff: user.is_staff,
            is_active: user.is_active,
            has_password: user.password_hash.is_some(),
            joined: zone.format(user.created_at, DateStyle::Stamp),
            last_login: user
                .last_login_at
                .map(|at| zone.format(at, DateStyle::Stamp)),
        }
    }
}

async fn list(
    page: Page,
    state: web::Data<AppState>,
    site: CurrentSite,
    query: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let search: String = query.q.trim().chars().take(100).collect();
    let filter = query.filter(&search);
    // Only values the filters know are kept in the links.
    let known = |value: &str, allowed: &[&str]| -> String {
        if allowed.contains(&value) {
            value.to_owned()
        } else {
            String::new()
        }
    };
    let role = known(&query.role, &["staff", "members"]);
    let status = known(&query.status, &["active", "deactivated", "inactive"]);
    let login = known(&query.login, &["password", "code"]);
    let (found, pager) = pager::fetch(
        &state.db,
        users::list(site.0.id, &filter),
        &query.page,
        PATH,
        &[
            ("q", search.as_str()),
            ("role", &role),
            ("status", &status),
            ("login", &login),
        ],
    )
    .await?;
    let rows: Vec<MemberRow> = found
        .iter()
        .map(|user| MemberRow::of(user, state.zone()))
        .collect();
    let mut context = Context::new();
    context.insert("rows", &rows);
    context.insert("pager", &pager);
    context.insert("q", &search);
    context.insert("role", &role);
    context.insert("status", &status);
    context.insert("login", &login);
    context.insert(
        "filtered",
        &(!search.is_empty() || !role.is_empty() || !status.is_empty() || !login.is_empty()),
    );
    page.render("accounts/staff_members.html", context)
}

#[derive(Serialize)]
struct SessionRow {
    started: String,
    last_seen: String,
    browser: String,
    address: String,
}

#[derive(Serialize)]
struct InvitationRow {
    id: i64,
    created: String,
    first_used: Option<String>,
    revoked: bool,
}

#[derive(Serialize)]
struct ReferenceRow {
    id: i64,
    referee_name: String,
    referee_email: String,
    state: crate::references::RequestState,
    created: String,
}

async fn find_member(state: &AppState, site_id: i64, id: i64) -> AppResult<User> {
    users::find(&state.db, site_id, id)
        .await?
        .ok_or(AppError::NotFound)
}

async fn detail(
    page: Page,
    state: web::Data<AppState>,
    staff: Staff,
    site: CurrentSite,
    id: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let user = find_member(&state, site.0.id, *id).await?;
    let now = Utc::now();
    let invitation = crate::invites::manage::of_member(&state.db, user.id)
        .await?
        .map(|invite| InvitationRow {
            id: invite.id,
            created: state.zone().format(invite.created_at, DateStyle::Stamp),
            first_used: invite
                .first_used_at
                .map(|at| state.zone().format(at, DateStyle::Stamp)),
            revoked: invite.revoked_at.is_some(),
        });
    let sessions: Vec<SessionRow> = sessions::of_user(&state.db, user.id, now)
        .await?
        .iter()
        .map(|row| SessionRow {
            started: row
                .started_at
                .map_or_else(String::new, |at| state.zone().format(at, DateStyle::Stamp)),
            last_seen: row
                .last_seen_at
                .map_or_else(String::new, |at| state.zone().format(at, DateStyle::Stamp)),
            browser: browser_family(&row.user_agent),
            address: row.client_ip.clone(),
        })
        .collect();
    let references: Vec<ReferenceRow> = crate::references::of_requester(&state.db, user.id)
        .await?
        .iter()
        .map(|request| ReferenceRow {
            id: request.id,
            referee_name: request.referee_name.clone(),
            referee_email: request.referee_email.clone(),
            state: crate::references::state_of(request, now),
            created: state.zone().format(request.created_at, DateStyle::Stamp),
        })
        .collect();
    let mut context = Context::new();
    context.insert("member", &MemberRow::of(&user, state.zone()));
    context.insert("is_me", &(user.id == staff.0.id));
    context.insert("invitation", &invitation);
    context.insert("sessions", &sessions);
    context.insert("references", &references);
    page.render("accounts/staff_member.html", context)
}

async fn apply(
    req: &HttpRequest,
    state: &AppState,
    staff: &Staff,
    site: &CurrentSite,
    id: i64,
    change: RoleChange,
) -> AppResult<HttpResponse> {
    let back = format!("{PATH}/{id}");
    // 404 for a member of another site or a deleted account.
    find_member(state, site.0.id, id).await?;
    match members::change(
        &state.db,
        site.0.id,
        &Actor::staff(&staff.0),
        id,
        change,
        "on the members page",
    )
    .await
    {
        Ok(done) => {
            flash(
                req,
                FlashLevel::Success,
                // Not by name: the message waits in the staff member's
                // session, which must hold nothing of the member's.
                change.done("This member", done.changed),
            );
        }
        Err(MemberChangeError::Role(RoleChangeError::Db(err))) => return Err(err.into()),
        Err(MemberChangeError::Role(RoleChangeError::NotFound)) => return Err(AppError::NotFound),
        Err(refused) => flash(req, FlashLevel::Error, refused.to_string()),
    }
    Ok(see_other(&back))
}

/// Asks first (`web::confirm`): it logs the member out everywhere.
async fn deactivate(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    staff: Staff,
    site: CurrentSite,
    id: web::Path<i64>,
    form: web::Form<ConfirmForm>,
) -> AppResult<HttpResponse> {
    if !form.confirmed() && *id != staff.0.id {
        let user = find_member(&state, site.0.id, *id).await?;
        let name = MemberRow::of(&user, state.zone()).name;
        let who = if name.is_empty() {
            user.username.clone()
        } else {
            format!("{name} ({})", user.username)
        };
        return confirm::ask(
            &page,
            &Question {
                title: format!("Deactivate {who}?"),
                effect: format!(
                    "{who} is logged out at once on every device and cannot log in until \
                     reactivated. Their account and data are kept."
                ),
                action: format!("{PATH}/{id}/deactivate"),
                yes: format!("Deactivate {}", user.username),
                no: "Keep them active".into(),
                back: format!("{PATH}/{id}"),
                resend: Vec::new(),
            },
        );
    }
    apply(&req, &state, &staff, &site, *id, RoleChange::Deactivate).await
}

async fn reactivate(
    req: HttpRequest,
    state: web::Data<AppState>,
    staff: Staff,
    site: CurrentSite,
    id: web::Path<i64>,
) -> AppResult<HttpResponse> {
    apply(&req, &state, &staff, &site, *id, RoleChange::Reactivate).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StaffForm {
    /// "yes" to make staff, "no" to remove.
    staff: String,
    #[serde(flatten)]
    confirm: ConfirmForm,
}

/// Asks first (`web::confirm`): staff see and change every account.
async fn set_staff(
    req: HttpRequest,
    page: Page,
    state: web::Data<AppState>,
    staff: Staff,
    site: CurrentSite,
    id: web::Path<i64>,
    form: web::Form<StaffForm>,
) -> AppResult<HttpResponse> {
    let change = match form.staff.as_str() {
        "yes" => RoleChange::MakeStaff,
        "no" => RoleChange::RemoveStaff,
        _ => {
            return Err(AppError::BadRequest(
                "Choose whether the member should be staff.".into(),
            ));
        }
    };
    if !form.confirm.confirmed() {
        let user = find_member(&state, site.0.id, *id).await?;
        return confirm::ask(
            &page,
            &staff_question(&user, *id == staff.0.id, &form.staff),
        );
    }
    apply(&req, &state, &staff, &site, *id, change).await
}

/// "Make fred staff?" / "Remove your own staff role?", with what it means.
fn staff_question(user: &User, is_me: bool, choice: &str) -> Question {
    let who = &user.username;
    let (title, effect, yes) = match (choice, is_me) {
        ("yes", _) => (
            format!("Make {who} staff?"),
            format!(
                "{who} will see every member, invitation, visitor link and reference, \
                 and can send invitations and change other accounts."
            ),
            format!("Make {who} staff"),
        ),
        (_, true) => (
            "Remove your own staff role?".to_owned(),
            "You lose the staff pages at once; another staff member has to give them back."
                .to_owned(),
            "Remove my staff role".to_owned(),
        ),
        _ => (
            format!("Remove {who} from staff?"),
            format!("{who} loses the staff pages at once and keeps a member's account."),
            format!("Remove {who} from staff"),
        ),
    };
    Question {
        title,
        effect,
        action: format!("{PATH}/{}/staff", user.id),
        yes,
        no: "Leave it as it is".into(),
        back: format!("{PATH}/{}", user.id),
        resend: vec![FormField {
            name: "staff",
            value: choice.to_owned(),
        }],
    }
}
