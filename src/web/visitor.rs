//! The visitor of a request, as the visitor middleware found them: what
//! pages and handlers see (`CurrentVisitor`, `MaybeVisitor`), and the notice
//! that a link was not valid. The rules about visitors live in `visitors`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::dates::{DateStyle, Zone};
use crate::entities::visitors::{EndedReason, Model as Visitor};

/// Set when a link in this request was not (or no longer) valid: pages say
/// which, in words for the person holding it (`sentence`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidLinkNotice {
    /// Not a link token at all: cut short or mangled on the way.
    Incomplete,
    /// No such link (on this site).
    Unknown,
    /// Switched off; why, when the link records it, and on which day.
    Ended {
        reason: Option<EndedReason>,
        /// `1 Dec` (the year added when it is not this year's).
        on: Option<String>,
    },
    /// Past its time: until when it worked (`23 November 2026, 17:05 CET`).
    Expired { until: String },
}

impl InvalidLinkNotice {
    /// Why `visitor` (found by its token, on this site) does not let its
    /// holder in at `now`; `None` when it does.
    pub fn of(visitor: Option<&Visitor>, now: DateTime<Utc>, zone: Zone) -> Option<Self> {
        let Some(visitor) = visitor else {
            return Some(Self::Unknown);
        };
        if !visitor.is_active {
            let on = visitor.ended_at.map(|at| {
                let style = if zone.year_of(at) == zone.year_of(now) {
                    DateStyle::DayShort
                } else {
                    DateStyle::Day
                };
                zone.format(at, style)
            });
            return Some(Self::Ended {
                reason: visitor.ended_reason,
                on,
            });
        }
        (now > visitor.expires_at).then(|| Self::Expired {
            until: zone.format(visitor.expires_at, DateStyle::DayAndTime),
        })
    }

    /// What templates and tests tell the notices apart by.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Incomplete => "incomplete",
            Self::Unknown => "unknown",
            Self::Ended { reason, .. } => match reason {
                Some(EndedReason::ReferenceSent) => "reference-sent",
                Some(EndedReason::Replaced) => "replaced",
                Some(EndedReason::Withdrawn) => "withdrawn",
                Some(EndedReason::Deactivated) | None => "deactivated",
            },
            Self::Expired { .. } => "expired",
        }
    }

    /// A heading, where the notice is the whole page.
    pub fn title(&self) -> &'static str {
        match self {
            Self::Incomplete => "This link looks incomplete",
            Self::Ended {
                reason: Some(EndedReason::ReferenceSent),
                ..
            } => "Reference sent",
            Self::Expired { .. } => "This link has expired",
            _ => "This link no longer works",
        }
    }

    /// The sentence the person holding the link reads.
    pub fn sentence(&self) -> String {
        match self {
            Self::Incomplete => {
                "This link looks incomplete — copy the whole link from the e-mail into your browser."
                    .to_owned()
            }
            Self::Unknown => "This link does not work. If you copied it from an e-mail, it may be \
                 incomplete — copy the whole link. Otherwise ask the person who sent it for a new one."
                .to_owned(),
            Self::Ended { reason, on } => ended_sentence(*reason, on.as_deref()),
            Self::Expired { until } => format!(
                "This link has expired: it worked until {until}. Ask the person who sent it for a \
                 new one."
            ),
        }
    }

    /// `success` for a thank-you, `warning` otherwise (the notice's class).
    pub fn level(&self) -> &'static str {
        match self {
            Self::Ended {
                reason: Some(EndedReason::ReferenceSent),
                ..
            } => "success",
            _ => "warning",
        }
    }
}

fn ended_sentence(reason: Option<EndedReason>, on: Option<&str>) -> String {
    let on = |words: &str| on.map_or(String::new(), |day| format!(" {words} {day}"));
    match reason {
        Some(EndedReason::ReferenceSent) => {
            format!("You already sent this reference{} — thank you.", on("on"))
        }
        Some(EndedReason::Replaced) => {
            "A newer link was sent to you — use the latest e-mail.".to_owned()
        }
        Some(EndedReason::Withdrawn) => format!(
            "The reference request was withdrawn{}, so this link no longer works. There is \
             nothing more for you to do.",
            on("on")
        ),
        Some(EndedReason::Deactivated) => format!(
            "This link was switched off by the staff of this site{}. Ask them for a new one if \
             you still need it.",
            on("on")
        ),
        None => {
            "This link was switched off. If you were sent a newer link, use that one.".to_owned()
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
    /// `expires_at` for people: "7 December 2026, 17:20 CET".
    pub valid_until: String,
    pub context: Option<serde_json::Value>,
}

impl CurrentVisitor {
    /// `visitor`, with its dates shown in `zone`.
    pub fn of(visitor: &Visitor, zone: Zone) -> Self {
        Self {
            id: visitor.id.clone(),
            scope: visitor.scope.clone(),
            first_name: visitor.first_name.clone(),
            last_name: visitor.last_name.clone(),
            full_name: full_name(visitor),
            email: visitor.email.clone(),
            expires_at: visitor.expires_at,
            valid_until: zone.format(visitor.expires_at, DateStyle::DayAndTime),
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
