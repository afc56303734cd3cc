//! Invites after they are made: their state (pending, used, expired,
//! revoked), the staff list with search and filters, and revoking (which
//! ends the sessions the code started).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Select,
};
use serde::Serialize;

use super::redeem::Rules;
use crate::entities::invites::{self, Model as Invite};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InviteState {
    /// Not used yet, still inside the usage window.
    Pending,
    /// Used at least once (the code may have stopped working since).
    Used,
    /// Never used, and the usage window has passed.
    Expired,
    Revoked,
}

impl InviteState {
    pub const ALL: [Self; 4] = [Self::Pending, Self::Used, Self::Expired, Self::Revoked];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Used => "used",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == value)
    }
}

pub fn state_of(invite: &Invite, rules: Rules, now: DateTime<Utc>) -> InviteState {
    if invite.revoked_at.is_some() {
        InviteState::Revoked
    } else if invite.first_used_at.is_some() {
        InviteState::Used
    } else if now - invite.created_at > rules.usage_window {
        InviteState::Expired
    } else {
        InviteState::Pending
    }
}

/// True when the invite's code would still log someone in.
pub fn code_works(invite: &Invite, rules: Rules, now: DateTime<Utc>) -> bool {
    match state_of(invite, rules, now) {
        InviteState::Pending => true,
        InviteState::Used => invite.first_used_at.is_some_and(|first| {
            rules
                .valid_after_first_use
                .is_some_and(|validity| now - first <= validity)
        }),
        InviteState::Expired | InviteState::Revoked => false,
    }
}

/// The invites of an e-mail address whose codes still work: sending another
/// would leave two live codes, so staff are asked first.
pub async fn find_open(
    db: &impl ConnectionTrait,
    site_id: i64,
    email: &str,
    rules: Rules,
    now: DateTime<Utc>,
) -> Result<Vec<Invite>, DbErr> {
    let candidates = invites::Entity::find()
        .filter(invites::Column::SiteId.eq(site_id))
        .filter(invites::Column::Email.eq(email))
        .filter(invites::Column::RevokedAt.is_null())
        .order_by_desc(invites::Column::CreatedAt)
        .all(db)
        .await?;
    Ok(candidates
        .into_iter()
        .filter(|invite| code_works(invite, rules, now))
        .collect())
}

/// An invite of this site, for staff actions.
pub async fn find(
    db: &impl ConnectionTrait,
    site_id: i64,
    invite_id: i64,
) -> Result<Option<Invite>, DbErr> {
    invites::Entity::find_by_id(invite_id)
        .filter(invites::Column::SiteId.eq(site_id))
        .one(db)
        .await
}

/// Revokes an invite: its code stops working, sessions it started end on
/// their next request, and its mail not yet delivered is cancelled (it
/// would only carry a dead code). False when it was already revoked.
pub async fn revoke(
    db: &impl ConnectionTrait,
    invite_id: i64,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let updated = invites::Entity::update_many()
        .col_expr(invites::Column::RevokedAt, Expr::value(Some(now)))
        .filter(invites::Column::Id.eq(invite_id))
        .filter(invites::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    if updated.rows_affected == 0 {
        return Ok(false);
    }
    crate::web::sessions::end_code_sessions(db, invite_id).await?;
    crate::mail::outbox::cancel_for_invite(db, invite_id).await?;
    Ok(true)
}

/// The invitation that made a member (their first, when several led to
/// the account).
pub async fn of_member(db: &impl ConnectionTrait, user_id: i64) -> Result<Option<Invite>, DbErr> {
    invites::Entity::find()
        .filter(invites::Column::UserId.eq(user_id))
        .order_by_asc(invites::Column::FirstUsedAt)
        .order_by_asc(invites::Column::Id)
        .one(db)
        .await
}

/// The invitations a member sent, newest first.
pub async fn sent_by(db: &impl ConnectionTrait, user_id: i64) -> Result<Vec<Invite>, DbErr> {
    invites::Entity::find()
        .filter(invites::Column::CreatedBy.eq(user_id))
        .order_by_desc(invites::Column::CreatedAt)
        .order_by_desc(invites::Column::Id)
        .all(db)
        .await
}

/// For an account being deleted: the invitations addressed to the member
/// (by link or by their address) are revoked (their codes must not make the
/// account again) and keep no address, name or phone. Returns how many.
pub async fn erase_invitee(
    db: &impl ConnectionTrait,
    site_id: i64,
    user_id: i64,
    email: &str,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let theirs = Condition::any()
        .add(invites::Column::UserId.eq(user_id))
        .add(invites::Column::Email.eq(email));
    let ids: Vec<i64> = invites::Entity::find()
        .select_only()
        .column(invites::Column::Id)
        .filter(invites::Column::SiteId.eq(site_id))
        .filter(theirs)
        .into_tuple()
        .all(db)
        .await?;
    for id in &ids {
        revoke(db, *id, now).await?;
    }
    invites::Entity::update_many()
        .col_expr(invites::Column::Email, Expr::value(""))
        .col_expr(invites::Column::Name, Expr::value(""))
        .col_expr(invites::Column::Phone, Expr::value(""))
        .filter(invites::Column::Id.is_in(ids.clone()))
        .exec(db)
        .await?;
    Ok(ids.len() as u64)
}

/// The staff list's filters.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Part of the e-mail address or name, any case.
    pub search: String,
    pub state: Option<InviteState>,
}

/// A site's invites that match `filter`, newest first (a query, to be paged).
pub fn list(
    site_id: i64,
    filter: &Filter,
    rules: Rules,
    now: DateTime<Utc>,
) -> Select<invites::Entity> {
    use invites::Column;
    let mut query = invites::Entity::find().filter(Column::SiteId.eq(site_id));
    let search = filter.search.trim().to_lowercase();
    if !search.is_empty() {
        let pattern = format!("%{}%", escape_like(&search));
        query = query.filter(
            Condition::any()
                .add(Expr::col(Column::Email).like(LikeExpr::new(pattern.clone()).escape('\\')))
                .add(
                    Expr::expr(Func::lower(Expr::col(Column::Name)))
                        .like(LikeExpr::new(pattern).escape('\\')),
                ),
        );
    }
    let window_start = now - rules.usage_window;
    query = match filter.state {
        None => query,
        Some(InviteState::Revoked) => query.filter(Column::RevokedAt.is_not_null()),
        Some(InviteState::Used) => query
            .filter(Column::RevokedAt.is_null())
            .filter(Column::FirstUsedAt.is_not_null()),
        Some(InviteState::Pending) => query
            .filter(Column::RevokedAt.is_null())
            .filter(Column::FirstUsedAt.is_null())
            .filter(Column::CreatedAt.gte(window_start)),
        Some(InviteState::Expired) => query
            .filter(Column::RevokedAt.is_null())
            .filter(Column::FirstUsedAt.is_null())
            .filter(Column::CreatedAt.lt(window_start)),
    };
    query
        .order_by_desc(Column::CreatedAt)
        .order_by_desc(Column::Id)
}

/// How many of a site's invites are in `state` (the staff index's counts).
pub async fn count_in_state(
    db: &impl ConnectionTrait,
    site_id: i64,
    state: InviteState,
    rules: Rules,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    let filter = Filter {
        search: String::new(),
        state: Some(state),
    };
    list(site_id, &filter, rules, now).count(db).await
}

/// How many of a site's invites were first used at or after `since`.
pub async fn count_first_used_since(
    db: &impl ConnectionTrait,
    site_id: i64,
    since: DateTime<Utc>,
) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    invites::Entity::find()
        .filter(invites::Column::SiteId.eq(site_id))
        .filter(invites::Column::FirstUsedAt.gte(since))
        .count(db)
        .await
}

/// How many of a site's pending invites stop working within `within` of
/// `now` (the staff index's "expiring soon").
pub async fn count_expiring(
    db: &impl ConnectionTrait,
    site_id: i64,
    rules: Rules,
    now: DateTime<Utc>,
    within: chrono::Duration,
) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    let window_start = now - rules.usage_window;
    invites::Entity::find()
        .filter(invites::Column::SiteId.eq(site_id))
        .filter(invites::Column::RevokedAt.is_null())
        .filter(invites::Column::FirstUsedAt.is_null())
        .filter(invites::Column::CreatedAt.gte(window_start))
        .filter(invites::Column::CreatedAt.lt(window_start + within))
        .count(db)
        .await
}

/// Per day since `since` (day numbers of `db::day_sql`, ascending, days
/// without any left out): invites made, and invites first used.
pub async fn per_day(
    db: &impl ConnectionTrait,
    site_id: i64,
    since: DateTime<Utc>,
    offset_secs: i32,
) -> Result<(Vec<(i64, i64)>, Vec<(i64, i64)>), DbErr> {
    let made = count_per_day(db, site_id, invites::Column::CreatedAt, since, offset_secs).await?;
    let used = count_per_day(
        db,
        site_id,
        invites::Column::FirstUsedAt,
        since,
        offset_secs,
    )
    .await?;
    Ok((made, used))
}

async fn count_per_day(
    db: &impl ConnectionTrait,
    site_id: i64,
    column: invites::Column,
    since: DateTime<Utc>,
    offset_secs: i32,
) -> Result<Vec<(i64, i64)>, DbErr> {
    use sea_orm::{IdenStatic, QuerySelect};
    let day = crate::db::day_sql(db.get_database_backend(), column.as_str(), offset_secs);
    invites::Entity::find()
        .select_only()
        .column_as(Expr::cust(day.clone()), "day")
        .column_as(Expr::col(invites::Column::Id).count(), "n")
        .filter(invites::Column::SiteId.eq(site_id))
        .filter(column.gte(since))
        .group_by(Expr::cust(day.clone()))
        .order_by_asc(Expr::cust(day))
        .into_tuple()
        .all(db)
        .await
}

fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn invite(now: DateTime<Utc>) -> Invite {
        Invite {
            id: 1,
            site_id: 1,
            code_hmac: String::new(),
            email: "a@example.org".into(),
            name: String::new(),
            phone: String::new(),
            grants_staff: false,
            created_by: None,
            created_at: now,
            sent_at: None,
            first_used_at: None,
            user_id: None,
            revoked_at: None,
        }
    }

    fn rules(expiry_days: i64) -> Rules {
        Rules {
            usage_window: Duration::days(14),
            valid_after_first_use: (expiry_days > 0).then(|| Duration::days(expiry_days)),
        }
    }

    #[test]
    fn states_follow_the_timestamps() {
        let now = Utc::now();
        let mut item = invite(now - Duration::days(13));
        assert_eq!(state_of(&item, rules(30), now), InviteState::Pending);
        assert!(code_works(&item, rules(30), now));
        item.created_at = now - Duration::days(15);
        assert_eq!(state_of(&item, rules(30), now), InviteState::Expired);
        assert!(!code_works(&item, rules(30), now));
        item.first_used_at = Some(now - Duration::days(29));
        assert_eq!(state_of(&item, rules(30), now), InviteState::Used);
        assert!(code_works(&item, rules(30), now));
        assert!(!code_works(&item, rules(0), now), "one-shot: used up");
        item.first_used_at = Some(now - Duration::days(31));
        assert!(!code_works(&item, rules(30), now));
        item.revoked_at = Some(now);
        assert_eq!(state_of(&item, rules(30), now), InviteState::Revoked);
    }

    #[test]
    fn like_wildcards_in_a_search_are_literal() {
        assert_eq!(escape_like("50%_off\\"), "50\\%\\_off\\\\");
    }
}
