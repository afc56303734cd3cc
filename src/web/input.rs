//! Refuses requests whose query string or form fields contain a NUL
//! character: nobody types one, and PostgreSQL cannot store one in text, so
//! it would otherwise surface as a database error deep in a handler.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use futures_util::StreamExt;

use crate::AppState;
use crate::error::AppError;
use crate::web::error_pages::respond_with;

fn has_nul(encoded: &[u8]) -> bool {
    // Decoding costs allocations: only text with a NUL, raw or as `%00`,
    // can decode to one.
    let may_have_nul = encoded.contains(&0) || encoded.windows(3).any(|w| w == b"%00");
    may_have_nul
        && url::form_urlencoded::parse(encoded)
            .any(|(name, value)| name.contains('\0') || value.contains('\0'))
}

fn refused() -> AppError {
    AppError::BadRequest(
        "What you sent contains characters that are not allowed. Go back, check it and try again."
            .into(),
    )
}

/// For a urlencoded form: reads the body (up to `server.max_body_kb`) and
/// puts it back for the handler, returning a copy. `None` for other bodies,
/// and for GET and HEAD, whose bodies nothing reads.
pub async fn buffer_form_body(req: &mut ServiceRequest) -> Result<Option<web::Bytes>, AppError> {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return Ok(None);
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok(None);
    }
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map_or(64 * 1024, |state| state.settings.server.max_body_kb * 1024);
    let mut body = web::BytesMut::new();
    let mut stream = req.take_payload();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|_| AppError::BadRequest("The form could not be read.".into()))?;
        if body.len() + chunk.len() > limit {
            return Err(AppError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    let body = body.freeze();
    req.set_payload(Payload::from(body.clone()));
    Ok(Some(body))
}

pub async fn refuse_nul_bytes(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let nul_in_body = match buffer_form_body(&mut req).await {
        Ok(body) => body.is_some_and(|body| has_nul(&body)),
        Err(err) => return Ok(respond_with(req, err)),
    };
    if nul_in_body || has_nul(req.query_string().as_bytes()) {
        return Ok(respond_with(req, refused()));
    }
    Ok(next.call(req).await?.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::has_nul;

    #[test]
    fn nul_is_found_however_it_is_encoded() {
        assert!(has_nul(b"a=%00"));
        assert!(has_nul(b"a=x\0y"));
        assert!(has_nul(b"%00=1"));
        assert!(!has_nul(b"a=1&b=%C3%A9&c="));
    }
}
