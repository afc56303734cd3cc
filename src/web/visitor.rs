//! The visitor of a request, as the visitor middleware found them: what
//! pages and handlers see (`CurrentVisitor`, `MaybeVisitor`), and the notice
//! that a link was not valid. The rules about visitors live in `visitors`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::entities::visitors::Model as Visitor;

/// Set when a link in this request was not (or no longer) valid: pages show
/// a notice saying which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidLinkNotice {
    /// No such link (on this site).
    Unknown,
    /// Switched off: used up, replaced by a newer link, or withdrawn.
    Deactivated,
    Expired,
}

impl InvalidLinkNotice {
    /// What templates test (`visitor_link_invalid`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Deactivated => "deactivated",
            Self::Expired => "expired",
        }
    }
}

/// The visitor of this request, as handlers and templates see them.
#[derive(Debug, Clone, Serialize)]
pub struct CurrentVisitor {
    pub id: String,
    pub scope: String,
    pub first_name: String,
    pub last_name: String,
    pub full_name: String,
    pub email: String,
    pub expires_at: DateTime<Utc>,
    /// `expires_at` for people: "7 December 2026, 16:20 UTC".
    pub valid_until: String,
    pub context: Option<serde_json::Value>,
}

impl From<&Visitor> for CurrentVisitor {
    fn from(visitor: &Visitor) -> Self {
        Self {
            id: visitor.id.clone(),
            scope: visitor.scope.clone(),
            first_name: visitor.first_name.clone(),
            last_name: visitor.last_name.clone(),
            full_name: full_name(visitor),
            email: visitor.email.clone(),
            expires_at: visitor.expires_at,
            valid_until: crate::dates::format(
                visitor.expires_at,
                crate::dates::DateStyle::DayAndTime,
            ),
            context: visitor.context.clone(),
        }
    }
}

/// Extractor: the request's visitor; refused with a 403 page otherwise.
/// (Guard routes with `VisitorGuard` to check the scope as well.)
impl actix_web::FromRequest for CurrentVisitor {
    type Error = crate::error::AppError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        use actix_web::HttpMessage;
        std::future::ready(
            req.extensions()
                .get::<CurrentVisitor>()
                .cloned()
                .ok_or_else(|| {
                    crate::error::AppError::Forbidden(
                        "This page is only for visitors with a valid link.".into(),
                    )
                }),
        )
    }
}

/// Extractor: the request's visitor, if any.
pub struct MaybeVisitor(pub Option<CurrentVisitor>);

impl actix_web::FromRequest for MaybeVisitor {
    type Error = crate::error::AppError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        use actix_web::HttpMessage;
        std::future::ready(Ok(MaybeVisitor(
            req.extensions().get::<CurrentVisitor>().cloned(),
        )))
    }
}

/// "Ginger Rogers", or the e-mail address when no name is known.
pub fn full_name(visitor: &Visitor) -> String {
    let name = format!("{} {}", visitor.first_name, visitor.last_name);
    match name.trim() {
        "" => visitor.email.clone(),
        name => name.to_owned(),
    }
}
