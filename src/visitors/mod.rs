//! Visitors: people who are neither anonymous nor members, known by a link,
//! allowed into the views of one scope for a limited time, every visit logged
//! (the django-visitors half of Gatehouse).
//!
//! - `tokens`: link tokens and tokenised URLs.
//! - `middleware`: the link on a GET (landing page, or stash) and the
//!   restoring of the session's visitor on every request.
//! - `guard`: the scope check on routes, with bypass policy and logging.
//! - `logs`: visit log rows, written off the request path.
//! - `self_service`: "request access" — a pass mailed to whoever asks, on
//!   the pages that offer it.
//! - `routes` and `staff`: `/visitors/...` and `/staff/visitors/...`.

pub mod guard;
pub mod logs;
pub mod middleware;
mod new;
mod routes;
pub mod self_service;
mod staff;
pub mod stats;
pub mod tokens;

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter, QuerySelect,
};

use crate::email_address::EmailAddress;
use crate::entities::visitors;
pub use crate::entities::visitors::{EndedReason, Model as Visitor};
pub use crate::web::visitor::{CurrentVisitor, MaybeVisitor, full_name};
pub use guard::{Bypass, VisitorGuard};
pub use routes::routes;
pub use staff::staff_routes;
use tokens::LinkToken;

/// A visitor's scope: what part of the site their link opens. Any name the
/// old apps stored is accepted (e.g. `REFERENCE_REQUEST`): 1 to 100
/// characters, none of them whitespace or control characters. Scopes are
/// compared exactly (case included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("A scope is 1 to 100 characters without spaces or control characters.")]
pub struct ScopeError;

/// The longest scope, in characters (django-visitors' `max_length`).
pub const SCOPE_MAX_CHARS: usize = 100;

impl Scope {
    /// Surrounding whitespace (a typing slip) is trimmed; whitespace inside
    /// is refused.
    pub fn parse(input: &str) -> Result<Self, ScopeError> {
        let scope = input.trim();
        let valid = !scope.is_empty()
            && scope.chars().count() <= SCOPE_MAX_CHARS
            && !scope.chars().any(|c| c.is_whitespace() || c.is_control());
        if valid {
            Ok(Self(scope.to_owned()))
        } else {
            Err(ScopeError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Usable now: active and not past its expiry (the expiry instant itself
/// still counts, as in django-visitors).
pub fn is_valid(visitor: &Visitor, now: DateTime<Utc>) -> bool {
    visitor.is_active && now <= visitor.expires_at
}

/// A visitor pass as staff see it; serialises as its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VisitorState {
    /// Usable now (`is_valid`).
    Active,
    /// Deactivated: by staff, or because its use ended.
    #[serde(rename = "deactivated")]
    Inactive,
    /// Still active, but past its expiry.
    Expired,
}

impl VisitorState {
    /// A state by its name (the staff list's filter); `None` for anything else.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "active" => Some(Self::Active),
            // "inactive": the name before there was one name per state.
            "deactivated" | "inactive" => Some(Self::Inactive),
            "expired" => Some(Self::Expired),
            _ => None,
        }
    }
}

pub fn state_of(visitor: &Visitor, now: DateTime<Utc>) -> VisitorState {
    if !visitor.is_active {
        VisitorState::Inactive
    } else if is_valid(visitor, now) {
        VisitorState::Active
    } else {
        VisitorState::Expired
    }
}

/// How many of a site's visitor links are usable now (`is_valid`).
pub async fn count_active(
    db: &impl ConnectionTrait,
    site_id: i64,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    visitors::Entity::find()
        .filter(visitors::Column::SiteId.eq(site_id))
        .filter(visitors::Column::IsActive.eq(true))
        .filter(visitors::Column::ExpiresAt.gte(now))
        .count(db)
        .await
}

pub struct NewVisitor {
    pub site_id: i64,
    pub scope: Scope,
    pub first_name: String,
    pub last_name: String,
    pub email: EmailAddress,
    pub context: Option<serde_json::Value>,
    pub valid_for: Duration,
    /// For anonymous sessions: seconds the visitor session lasts after the
    /// link is used; 0 = until the browser closes.
    pub session_expiry_secs: i64,
    pub created_by: Option<i64>,
}

/// Creates a visitor and returns it with its link token, which exists only
/// here: put it in a link and let it go.
pub async fn create(
    db: &impl ConnectionTrait,
    new: NewVisitor,
) -> Result<(Visitor, LinkToken), DbErr> {
    let token = LinkToken::generate();
    let now = Utc::now();
    let visitor = visitors::ActiveModel {
        id: Set(uuid::Uuid::new_v4().hyphenated().to_string()),
        site_id: Set(new.site_id),
        token_hash: Set(token.hash()),
        scope: Set(new.scope.0),
        first_name: Set(new.first_name.trim().to_owned()),
        last_name: Set(new.last_name.trim().to_owned()),
        email: Set(new.email.into_string()),
        context: Set(new.context),
        created_at: Set(now),
        expires_at: Set(now + new.valid_for),
        is_active: Set(true),
        session_expiry_secs: Set(new.session_expiry_secs.max(0)),
        created_by: Set(new.created_by),
        ended_reason: Set(None),
        ended_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok((visitor, token))
}

pub async fn find_by_token(
    db: &impl ConnectionTrait,
    token: &LinkToken,
) -> Result<Option<Visitor>, DbErr> {
    visitors::Entity::find()
        .filter(visitors::Column::TokenHash.eq(token.hash()))
        .one(db)
        .await
}

pub async fn find(db: &impl ConnectionTrait, id: &str) -> Result<Option<Visitor>, DbErr> {
    visitors::Entity::find_by_id(id.to_owned()).one(db).await
}

/// Ends the link and any session using it, from the next request on, and
/// records why, so whoever opens it later is told (`InvalidLinkNotice`).
/// A link already switched off keeps its first reason.
pub async fn deactivate(
    db: &impl ConnectionTrait,
    id: &str,
    reason: EndedReason,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = visitors::Entity::update_many()
        .col_expr(visitors::Column::IsActive, Expr::value(false))
        .col_expr(visitors::Column::EndedReason, Expr::value(Some(reason)))
        .col_expr(visitors::Column::EndedAt, Expr::value(Some(now)))
        .filter(visitors::Column::Id.eq(id))
        .filter(visitors::Column::IsActive.eq(true))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Deletes the visitors of `scope` a member created, with their visit logs
/// (for an account being deleted: the referees they asked).
pub async fn delete_created_by(
    db: &impl ConnectionTrait,
    user_id: i64,
    scope: &str,
) -> Result<u64, DbErr> {
    let ids: Vec<String> = visitors::Entity::find()
        .select_only()
        .column(visitors::Column::Id)
        .filter(visitors::Column::CreatedBy.eq(user_id))
        .filter(visitors::Column::Scope.eq(scope))
        .into_tuple()
        .all(db)
        .await?;
    for chunk in ids.chunks(500) {
        crate::entities::visitor_logs::Entity::delete_many()
            .filter(crate::entities::visitor_logs::Column::VisitorId.is_in(chunk.iter().cloned()))
            .exec(db)
            .await?;
        visitors::Entity::delete_many()
            .filter(visitors::Column::Id.is_in(chunk.iter().cloned()))
            .exec(db)
            .await?;
    }
    Ok(ids.len() as u64)
}

/// Opens the link again for `valid_for` from now.
pub async fn reactivate(
    db: &impl ConnectionTrait,
    id: &str,
    valid_for: Duration,
) -> Result<bool, DbErr> {
    let result = visitors::Entity::update_many()
        .col_expr(visitors::Column::IsActive, Expr::value(true))
        .col_expr(
            visitors::Column::EndedReason,
            Expr::value(None::<EndedReason>),
        )
        .col_expr(
            visitors::Column::EndedAt,
            Expr::value(None::<DateTime<Utc>>),
        )
        .col_expr(
            visitors::Column::ExpiresAt,
            Expr::value(Utc::now() + valid_for),
        )
        .filter(visitors::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// The last step of a visitor flow, for a handler: the link stops working
/// (for `reason`) and this session forgets the visitor.
pub async fn end_access(
    req: &actix_web::HttpRequest,
    state: &crate::AppState,
    visitor_id: &str,
    reason: EndedReason,
) -> Result<(), DbErr> {
    deactivate(&state.db, visitor_id, reason, Utc::now()).await?;
    crate::web::session::TypedSession::of(req).end_visit(&state.settings.visitors.session_key);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_what_the_old_apps_stored() {
        for good in [
            "reference-request",
            "demo_2",
            "REFERENCE_REQUEST",
            "Demo",
            "a.b:c/d",
            "caf\u{e9}",
            &"\u{e9}".repeat(100),
        ] {
            assert_eq!(Scope::parse(good).map(|s| s.0), Ok(good.to_owned()));
        }
        assert_eq!(Scope::parse(" demo ").map(|s| s.0), Ok("demo".to_owned()));
        for bad in [
            "",
            "   ",
            "a b",
            "a\tb",
            "a\u{a0}b",
            "a\u{7}b",
            "a\nb",
            &"x".repeat(101),
        ] {
            assert_eq!(Scope::parse(bad), Err(ScopeError), "{bad:?}");
        }
        assert_ne!(
            Scope::parse("Demo"),
            Scope::parse("demo"),
            "exact, case included"
        );
    }

    fn visitor(is_active: bool, expires_at: DateTime<Utc>) -> Visitor {
        Visitor {
            id: "id".into(),
            site_id: 1,
            token_hash: String::new(),
            scope: "demo".into(),
            first_name: String::new(),
            last_name: String::new(),
            email: "ginger@example.org".into(),
            context: None,
            created_at: Utc::now(),
            expires_at,
            is_active,
            session_expiry_secs: 0,
            created_by: None,
            ended_reason: None,
            ended_at: None,
        }
    }

    #[test]
    fn validity_needs_active_and_unexpired_with_the_boundary_still_valid() {
        let now = Utc::now();
        assert!(is_valid(&visitor(true, now + Duration::days(1)), now));
        assert!(
            is_valid(&visitor(true, now), now),
            "the expiry instant is still valid"
        );
        assert!(!is_valid(&visitor(true, now - Duration::seconds(1)), now));
        assert!(!is_valid(&visitor(false, now + Duration::days(1)), now));
        assert!(!is_valid(&visitor(false, now - Duration::days(1)), now));
    }

    #[test]
    fn a_visitor_without_a_name_is_called_by_their_email() {
        let now = Utc::now();
        let mut v = visitor(true, now);
        assert_eq!(full_name(&v), "ginger@example.org");
        v.first_name = "Ginger".into();
        assert_eq!(full_name(&v), "Ginger");
        v.last_name = "Rogers".into();
        assert_eq!(full_name(&v), "Ginger Rogers");
    }
}
