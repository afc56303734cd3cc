//! First start: while the default site has no staff member, `serve` prints a
//! one-time staff invitation code. Only the newest such code works: earlier
//! unused ones are revoked, since their codes cannot be shown again.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::AppState;
use crate::accounts::users;
use crate::email_address::EmailAddress;
use crate::entities::invites;
use crate::invites::{self as invite_codes, InviteCode, NewInvite};

/// A staff code for the default site when it has no staff yet.
pub struct StaffCode {
    pub code: InviteCode,
    pub login_url: String,
    pub site_domain: String,
}

pub async fn staff_code_if_needed(state: &AppState) -> anyhow::Result<Option<StaffCode>> {
    let site = state
        .sites
        .by_domain(state.sites.default_domain())
        .await
        .ok_or_else(|| anyhow::anyhow!("the default site is missing"))?;
    if users::count_staff(&state.db, site.id).await? > 0 {
        return Ok(None);
    }
    invites::Entity::update_many()
        .col_expr(invites::Column::RevokedAt, Expr::value(Some(Utc::now())))
        .filter(invites::Column::SiteId.eq(site.id))
        .filter(invites::Column::GrantsStaff.eq(true))
        .filter(invites::Column::FirstUsedAt.is_null())
        .filter(invites::Column::RevokedAt.is_null())
        .exec(&state.db)
        .await?;
    let email = EmailAddress::parse(&format!("admin@{}", site.domain))
        .or_else(|_| EmailAddress::parse("admin@gatehouse.invalid"))
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    let (_, code) = invite_codes::create(
        &state.db,
        &state.keys,
        site.id,
        state.settings.invites.code_length,
        NewInvite {
            email,
            name: "Admin".into(),
            phone: String::new(),
            created_by: None,
            grants_staff: true,
        },
    )
    .await?;
    let login_url = format!(
        "{}/accounts/login?code={}",
        state.base_url_of(&site),
        code.as_str()
    );
    Ok(Some(StaffCode {
        code,
        login_url,
        site_domain: site.domain.clone(),
    }))
}
