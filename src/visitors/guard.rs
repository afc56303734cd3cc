//! The scope guard: wrap a route or scope in `VisitorGuard::scope("demo")`
//! (or `"*"` for any scope) and only visitors of that scope get through,
//! plus whoever the bypass policy lets by (default, as django-visitors'
//! `allow_visitor`: any logged-in member). Others get a 403 page saying why.
//! Each visitor hit is logged with the response status unless switched off.

use std::future::{Ready, ready};
use std::rc::Rc;

use actix_web::HttpMessage;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use futures_util::future::LocalBoxFuture;
use sea_orm::ActiveValue::Set;

use super::{CurrentVisitor, Scope, logs};
use crate::error::AppError;
use crate::web::auth::CurrentUser;
use crate::web::error_pages::respond_with;
use crate::web::session::TypedSession;
use crate::web::sites::CurrentSite;
use crate::web::visitor::InvalidLinkNotice;

/// Who gets through without being a visitor of the scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bypass {
    /// Nobody: even staff need the visitor link.
    Nobody,
    /// Logged-in staff members.
    Staff,
    /// Any logged-in member (the default).
    AnyMember,
}

#[derive(Debug, Clone)]
pub struct VisitorGuard {
    /// `None` means any scope (`"*"`).
    scope: Option<Scope>,
    bypass: Bypass,
    log: bool,
    /// Offer "request access" to whoever is turned away (`self_service`).
    self_service: bool,
}

impl VisitorGuard {
    /// A guard for one scope, or `"*"` for any. An invalid scope is a
    /// programming error and stops the program at start, as an empty scope
    /// did in django-visitors.
    pub fn scope(scope: &str) -> Self {
        let scope = match scope {
            "*" => None,
            name => Some(Scope::parse(name).expect("a guard's scope is a valid scope name")),
        };
        Self {
            scope,
            bypass: Bypass::AnyMember,
            log: true,
            self_service: false,
        }
    }

    /// Sends whoever is turned away on a GET to the "request access" form,
    /// which mails a link for this scope to the address they give (see
    /// `self_service`); nothing is written until they send it. Only for a
    /// named scope: a programming error (at start) with `"*"`.
    pub fn self_service(mut self) -> Self {
        assert!(self.scope.is_some(), "self-service needs a named scope");
        self.self_service = true;
        self
    }

    /// The "request access" redirect for a turned-away GET or HEAD, when
    /// this guard offers it.
    fn offer(&self, req: &ServiceRequest) -> Option<actix_web::HttpResponse> {
        let method = req.method();
        let reads =
            method == actix_web::http::Method::GET || method == actix_web::http::Method::HEAD;
        let scope = self.scope.as_ref().filter(|_| self.self_service && reads)?;
        let state = crate::web::app_state(req);
        let url = super::self_service::request_url(&state, scope, req.request());
        Some(crate::web::page::see_other(&url))
    }

    pub fn bypass(mut self, bypass: Bypass) -> Self {
        self.bypass = bypass;
        self
    }

    /// Don't write a visit log row for hits on this route.
    pub fn without_logging(mut self) -> Self {
        self.log = false;
        self
    }

    fn allows(&self, scope: &str) -> bool {
        self.scope
            .as_ref()
            .is_none_or(|wanted| wanted.as_str() == scope)
    }

    fn bypassed_by(&self, user: Option<&CurrentUser>) -> bool {
        match (self.bypass, user) {
            (Bypass::AnyMember, Some(_)) => true,
            (Bypass::Staff, Some(user)) => user.is_staff,
            _ => false,
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for VisitorGuard
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = GuardService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(GuardService {
            service: Rc::new(service),
            guard: self.clone(),
        }))
    }
}

pub struct GuardService<S> {
    service: Rc<S>,
    guard: VisitorGuard,
}

const NOT_A_VISITOR: &str = "This page is only for visitors with a valid link. If you followed \
    a link from an e-mail, it may have expired or been used already: ask the person who sent \
    it for a new one.";
const WRONG_SCOPE: &str = "Your visitor link does not give access to this page.";

/// A page of a flow this browser finished (the referee's Back after
/// sending, say): the refusal says why the link stopped working.
async fn explain_ended_visit(req: &ServiceRequest) {
    if req.extensions().get::<InvalidLinkNotice>().is_some() {
        return;
    }
    let Some(visitor_id) = TypedSession::of(req).ended_visitor_id() else {
        return;
    };
    let state = crate::web::app_state(req);
    let site_id = req.extensions().get::<CurrentSite>().map(|site| site.0.id);
    let visitor = match super::find(&state.db, &visitor_id).await {
        Ok(visitor) => visitor.filter(|visitor| Some(visitor.site_id) == site_id),
        Err(err) => {
            log::warn!("Could not read an ended visitor: {err}");
            return;
        }
    };
    if let Some(visitor) = visitor
        && let Some(notice) =
            InvalidLinkNotice::of(Some(&visitor), chrono::Utc::now(), state.zone())
    {
        req.extensions_mut().insert(notice);
    }
}

impl<S, B> Service<ServiceRequest> for GuardService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let guard = self.guard.clone();
        Box::pin(async move {
            let user = req.extensions().get::<CurrentUser>().cloned();
            if guard.bypassed_by(user.as_ref()) {
                return Ok(service.call(req).await?.map_into_left_body());
            }
            let Some(visitor) = req.extensions().get::<CurrentVisitor>().cloned() else {
                if let Some(offer) = guard.offer(&req) {
                    return Ok(req.into_response(offer).map_into_right_body());
                }
                explain_ended_visit(&req).await;
                return Ok(respond_with(req, AppError::Forbidden(NOT_A_VISITOR.into())));
            };
            let state = crate::web::app_state(&req);
            // Built before the call: the request cannot be kept (routing
            // inside needs it to itself), only what the log row needs.
            // A HEAD writes nothing, not even a log row.
            let log = guard.log && req.method() != actix_web::http::Method::HEAD;
            let row = log.then(|| {
                let visit_id = TypedSession::of(&req).visit_id();
                logs::row_for(
                    req.request(),
                    &state.settings,
                    &visitor.id,
                    visit_id.as_deref(),
                    0,
                )
            });
            let record = async |status: u16| {
                if let Some(mut row) = row.clone() {
                    row.status_code = Set(i32::from(status));
                    state.visit_log.record(row).await;
                }
            };
            if !guard.allows(&visitor.scope) {
                if let Some(offer) = guard.offer(&req) {
                    record(303).await;
                    return Ok(req.into_response(offer).map_into_right_body());
                }
                record(403).await;
                return Ok(respond_with(req, AppError::Forbidden(WRONG_SCOPE.into())));
            }
            let result = service.call(req).await;
            match &result {
                Ok(response) => record(response.status().as_u16()).await,
                Err(err) => {
                    record(err.as_response_error().status_code().as_u16()).await;
                }
            }
            Ok(result?.map_into_left_body())
        })
    }
}
