//! `GET /staff`: the staff index. Headline counts of the site, each read
//! through its capability's public query functions and linking to the list
//! it counts, and four charts of the last 30 days (`figures`, `charts`). It owns no data: it reads everyone and no one reads it.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Duration, Utc};

use figures::charts;
use serde::Serialize;
use tera::Context;

use crate::AppState;
use crate::accounts::users;
use crate::entities::mail_outbox::Status as MailStatus;
use crate::error::AppResult;
use crate::invites::manage::{self, InviteState};
use crate::invites::redeem::Rules;
use crate::mail::outbox;
use crate::references;
use crate::visitors;
use crate::web::page::{self, Page};
use crate::web::sites::CurrentSite;

mod charts;
mod figures;

/// Days the charts cover, today included.
const CHART_DAYS: i64 = 30;
/// "Expiring soon": pending invitations that stop working within this many days.
const EXPIRING_DAYS: i64 = 3;

/// Inside the `/staff` scope (and its guard): this is `/staff` itself.
pub fn staff_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("", page::get().to(index));
}

/// One count on the page; `link` is the list it counts, if there is one.
#[derive(Debug, Serialize)]
struct Count {
    id: &'static str,
    label: &'static str,
    value: u64,
    link: Option<&'static str>,
    /// What the page says when the count is zero.
    empty: &'static str,
}

async fn index(
    page: Page,
    state: web::Data<AppState>,
    site: CurrentSite,
) -> AppResult<HttpResponse> {
    let now = Utc::now();
    let (counts, charts) = tokio::try_join!(
        glance(&state, site.0.id, now),
        charts(&state, site.0.id, now)
    )?;
    let mut context = Context::new();
    context.insert("counts", &counts);
    context.insert("charts", &charts);
    context.insert("chart_days", &CHART_DAYS);
    context.insert("zone_name", state.zone().name());
    context.insert("zone_abbreviation", &state.zone().abbreviation_at(now));
    page.render("dashboard/index.html", context)
}

/// The at-a-glance numbers.
async fn glance(state: &AppState, site_id: i64, now: DateTime<Utc>) -> AppResult<Vec<Count>> {
    let db = &state.db;
    let rules = Rules::from(&state.settings.invites);
    let week_ago = now - Duration::days(7);
    let soon = Duration::days(EXPIRING_DAYS);
    Ok(vec![
        Count {
            id: "invites-pending",
            label: "Invitations waiting to be used",
            value: manage::count_in_state(db, site_id, InviteState::Pending, rules, now).await?,
            link: Some("/staff/invites?state=pending"),
            empty: "No invitation is waiting to be used.",
        },
        Count {
            id: "invites-used-this-week",
            label: "Invitations used in the last 7 days",
            value: manage::count_first_used_since(db, site_id, week_ago).await?,
            link: Some("/staff/invites?state=used"),
            empty: "No invitation was used in the last 7 days.",
        },
        Count {
            id: "invites-expiring",
            label: "Invitations that expire within 3 days unused",
            value: manage::count_expiring(db, site_id, rules, now, soon).await?,
            link: Some("/staff/invites?state=pending"),
            empty: "No invitation is about to expire.",
        },
        Count {
            id: "mail-waiting",
            label: "Mail waiting to be sent",
            value: outbox::count_with_status(db, site_id, MailStatus::Pending).await?,
            link: Some("/staff/mail"),
            empty: "No mail is waiting.",
        },
        Count {
            id: "mail-failed",
            label: "Mail that failed",
            value: outbox::count_with_status(db, site_id, MailStatus::Failed).await?,
            link: Some("/staff/mail"),
            empty: "No mail has failed.",
        },
        Count {
            id: "visitors-active",
            label: "Active visitor links",
            value: visitors::count_active(db, site_id, now).await?,
            link: Some("/staff/visitors?state=active"),
            empty: "No visitor link is active.",
        },
        Count {
            id: "visitors-shared",
            label: "Active visitor links used from several sessions or addresses",
            value: visitors::stats::count_shared(db, site_id, now).await?,
            link: Some("/staff/visitors?state=active"),
            empty: "No active link looks shared.",
        },
        Count {
            id: "references-open",
            label: "Reference requests waiting for an answer",
            value: references::count_open(db, site_id, now).await?,
            // Staff have no list of reference requests.
            link: None,
            empty: "No reference request is waiting for an answer.",
        },
        Count {
            id: "references-completed-this-month",
            label: "References completed this month",
            value: references::count_completed_since(db, site_id, state.zone().start_of_month(now))
                .await?,
            link: None,
            empty: "No reference was completed this month.",
        },
        Count {
            id: "members",
            label: "Members",
            value: users::count_active(db, site_id).await?,
            link: None,
            empty: "This site has no members yet.",
        },
    ])
}
