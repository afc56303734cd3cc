//! How an `AppError` becomes an HTTP response, in one place: the status and
//! wording of each error, and the `error_pages` middleware that renders every
//! 4xx/5xx that is not already a page (including actix's own, e.g. unknown
//! routes) with `templates/error.html`, falling back to plain text if
//! rendering fails.

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError, web};

use crate::AppState;
use crate::error::AppError;
use crate::web::visitor::InvalidLinkNotice;

/// What the error page says; attached to error responses as an extension.
#[derive(Debug, Clone)]
pub struct ErrorMessage {
    pub title: &'static str,
    pub message: String,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Forbidden(_) | Self::Csrf => StatusCode::FORBIDDEN,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::LoginRequired { .. } => StatusCode::FOUND,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::LoginRequired { next } = self {
            let location = format!("/accounts/login?next={}", urlencode(next));
            return HttpResponse::Found()
                .insert_header((header::LOCATION, location))
                .finish();
        }
        let message = match self {
            Self::TooManyAttempts { retry_after, zone } => {
                let minutes = (retry_after.num_seconds() + 59) / 60;
                let at = chrono::Utc::now() + *retry_after;
                format!(
                    "Too many failed attempts. For your protection, try again in {} (after {}).",
                    if minutes <= 1 {
                        "a minute".to_owned()
                    } else {
                        format!("{minutes} minutes")
                    },
                    zone.format(at, crate::dates::DateStyle::Clock)
                )
            }
            Self::Forbidden(reason) => reason.clone(),
            Self::BadRequest(reason) => reason.clone(),
            Self::Csrf => "This form has expired or was not sent from this site. \
                 Go back, reload the page and try again (cookies must be enabled)."
                .to_owned(),
            _ => default_message(self.status_code()).to_owned(),
        };
        let mut builder = HttpResponse::build(self.status_code());
        if let Self::TooManyAttempts { retry_after, .. } = self {
            builder.insert_header((
                header::RETRY_AFTER,
                retry_after.num_seconds().max(1).to_string(),
            ));
        }
        let mut response = builder
            .content_type("text/plain; charset=utf-8")
            .body(message.clone());
        response.extensions_mut().insert(ErrorMessage {
            title: default_title(self.status_code()),
            message,
        });
        response
    }
}

pub fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn default_title(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "Bad request",
        403 => "Access denied",
        404 => "Page not found",
        405 => "Method not allowed",
        413 => "Too much data",
        415 => "Unsupported form",
        429 => "Too many attempts",
        _ if status.is_server_error() => "Something went wrong",
        _ => "Request not accepted",
    }
}

fn default_message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "We could not understand that request. Go back and try again.",
        403 => "You do not have access to this page.",
        404 => {
            "There is nothing at this address. Check the link, or start again from the home page."
        }
        405 => "This page does not accept that kind of request.",
        413 => "What you sent is larger than this site accepts. Shorten it and try again.",
        415 => "This form must be sent by your browser as a normal web form.",
        429 => "Too many attempts. Wait a little and try again.",
        _ if status.is_server_error() => {
            "Something went wrong on our side. It has been logged; please try again in a moment."
        }
        _ => "The request could not be completed.",
    }
}

/// For middleware: answer this request with an error response instead of
/// returning `Err` (which would skip the error page).
pub fn respond_with<B>(req: ServiceRequest, err: AppError) -> ServiceResponse<EitherBody<B>> {
    req.error_response(err).map_into_right_body()
}

/// Middleware: renders an error page for every 4xx/5xx response that is not
/// already HTML, and logs server errors once, with their cause.
pub async fn error_pages(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // Our own middleware answers errors with responses (see `respond_with`),
    // so they get the same page as handlers' errors.
    let res = next.call(req).await?.map_into_boxed_body();
    let status = res.status();
    let is_html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_html {
        return Ok(res);
    }
    if status.is_server_error() {
        // The path as the access log shows it: it may hold a token.
        let path = crate::web::access_log::redact_path(res.request().path());
        match res.response().error() {
            Some(err) => log::error!("Request to {path} failed: {err:?}"),
            None => log::error!("Request to {path} failed with {status}"),
        }
    }
    let explained = res.response().extensions().get::<ErrorMessage>().cloned();
    let explained = explained.unwrap_or_else(|| ErrorMessage {
        title: default_title(status),
        // Errors from actix's own extractors carry a useful text: keep the
        // generic wording, as theirs can be technical.
        message: default_message(status).to_owned(),
    });
    let (req, res) = res.into_parts();
    let retry_after = res.headers().get(header::RETRY_AFTER).cloned();
    let body = render_error_page(&req, status, &explained);
    let mut builder = HttpResponse::build(status);
    if let Some(value) = retry_after {
        builder.insert_header((header::RETRY_AFTER, value));
    }
    for (name, value) in res.headers() {
        if name == header::SET_COOKIE {
            builder.append_header((name.clone(), value.clone()));
        }
    }
    let response = match body {
        Ok(html) => builder
            .insert_header((
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ))
            .body(html),
        Err(err) => {
            log::error!("Could not render the error page: {err}");
            builder
                .insert_header((
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                ))
                .body(format!("{}\n\n{}\n", explained.title, explained.message))
        }
    };
    Ok(ServiceResponse::new(req, response))
}

fn render_error_page(
    req: &actix_web::HttpRequest,
    status: StatusCode,
    explained: &ErrorMessage,
) -> Result<String, anyhow::Error> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| anyhow::anyhow!("application state missing"))?;
    let mut context = crate::web::page::base_context_for(req, state);
    crate::web::page::with_csrf_token(req, &mut context);
    context.insert("status", &status.as_u16());
    context.insert("title", explained.title);
    context.insert("message", &explained.message);
    // Turned away because of a dead link: the page says why, as a sentence.
    let notice = req.extensions().get::<InvalidLinkNotice>().cloned();
    if let Some(notice) = notice.filter(|_| status.is_client_error()) {
        context.insert("title", notice.title());
        context.insert("message", &notice.sentence());
        context.insert("link_notice_is_page", &true);
    }
    Ok(state.templates.render("error.html", &context)?)
}
