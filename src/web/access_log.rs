//! The access log: one line per request with the method and the path. The
//! query string never goes in (it carries `?vid=` visitor tokens and
//! `?code=` invitation codes), and path segments that may be secrets are
//! replaced by `[redacted]`.

use std::borrow::Cow;

use actix_web::middleware::Logger;

/// What a redacted path segment reads as.
pub const REDACTED: &str = "[redacted]";

/// Segments this long, made only of token characters, are taken for secrets.
const MIN_TOKEN_LENGTH: usize = 20;

/// The access-log middleware: client address, method, redacted path, status,
/// size and time. (actix's Logger has no `%m`, hence the custom method field.)
pub fn logger() -> Logger {
    Logger::new("%a \"%{method}xi %{path}xi\" %s %b %Dms")
        .custom_request_replace("method", |req| req.method().to_string())
        .custom_request_replace("path", |req| redact_path(req.path()).into_owned())
}

/// `path` with each segment that may be a secret replaced by `[redacted]`:
/// - a segment of 20 or more characters, all ASCII letters, digits, `-` or
///   `_`: the shape of every token the site makes (hex, base64url, UUIDs).
///   Public ids that are UUIDs are hidden too; the rule stays simple.
/// - any segment right after a `reset` segment that is not a plain
///   lower-case page name (`sent`, `done`, `set-password`): a reset token,
///   even one cut short or mistyped.
pub fn redact_path(path: &str) -> Cow<'_, str> {
    let mut previous = "";
    let mut redacted = false;
    let segments: Vec<&str> = path
        .split('/')
        .map(|segment| {
            let secret =
                looks_like_a_token(segment) || (previous == "reset" && !is_page_name(segment));
            previous = segment;
            if secret {
                redacted = true;
                REDACTED
            } else {
                segment
            }
        })
        .collect();
    if redacted {
        Cow::Owned(segments.join("/"))
    } else {
        Cow::Borrowed(path)
    }
}

fn looks_like_a_token(segment: &str) -> bool {
    segment.len() >= MIN_TOKEN_LENGTH
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Lower-case letters and hyphens, or nothing (a trailing slash).
fn is_page_name(segment: &str) -> bool {
    segment.len() < MIN_TOKEN_LENGTH && segment.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::redact_path;

    #[test]
    fn ordinary_paths_are_logged_as_they_are() {
        for path in [
            "/",
            "/accounts/login",
            "/accounts/password/reset",
            "/accounts/password/reset/",
            "/accounts/password/reset/sent",
            "/accounts/password/reset/done",
            "/accounts/password/reset/set-password",
            "/staff/invites/42/revoke",
            "/references/respond/relationship",
            "/static/css/gatehouse.css",
            "/visitors/demo",
        ] {
            assert_eq!(redact_path(path), path);
        }
    }

    #[test]
    fn a_reset_token_is_hidden_whatever_its_length() {
        let token = "0123456789abcdef".repeat(4);
        assert_eq!(
            redact_path(&format!("/accounts/password/reset/{token}")),
            "/accounts/password/reset/[redacted]"
        );
        for cut_short in ["0123abc", "%00", "ABC", "abc123", "Set-Password"] {
            assert_eq!(
                redact_path(&format!("/accounts/password/reset/{cut_short}")),
                "/accounts/password/reset/[redacted]",
                "{cut_short}"
            );
        }
        assert_eq!(
            redact_path("/accounts/password/reset/0123abc/more"),
            "/accounts/password/reset/[redacted]/more"
        );
    }

    #[test]
    fn long_token_shaped_segments_are_hidden_anywhere() {
        assert_eq!(
            redact_path("/staff/visitors/68201321-9dd2-4fb3-92b1-24367f38a7d6/deactivate"),
            "/staff/visitors/[redacted]/deactivate"
        );
        assert_eq!(
            redact_path("/x/aZ09_-aZ09_-aZ09_-aZ/y"),
            "/x/[redacted]/y",
            "20 characters of base64url"
        );
        assert_eq!(
            redact_path("/x/aZ09_-aZ09_-aZ09_-a/y"),
            "/x/aZ09_-aZ09_-aZ09_-a/y",
            "19 are not"
        );
        assert_eq!(
            redact_path("/static/a-rather-long-file-name.css"),
            "/static/a-rather-long-file-name.css",
            "a dot is not a token character"
        );
    }
}
