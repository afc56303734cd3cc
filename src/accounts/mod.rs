//! Accounts: the login page with its two forms, logout, and setting or
//! changing a password.

pub mod captcha;
mod delete;
pub mod django_hashes;
pub mod email_change;
pub mod erase;
pub mod export;
pub mod gate;
pub mod login;
pub mod members;
mod own;
pub mod password_change;
pub mod passwords;
pub mod reset;
mod routes;
mod staff;
pub mod throttle;
pub mod users;

pub use routes::routes;
pub use staff::staff_routes;

use crate::settings::Secret;
use crate::web::forms::FormErrors;

/// Rules for a new password; errors are keyed by form field.
pub fn check_new_password(
    new: &Secret,
    confirm: &Secret,
    min_length: usize,
    identifiers: &[&str],
) -> FormErrors {
    let mut errors = FormErrors::default();
    let password = new.expose();
    let length = password.chars().count();
    // Every rule the password breaks, not just the first.
    let mut problems: Vec<String> = Vec::new();
    if length == 0 {
        problems.push("Enter a new password.".into());
    } else if length < min_length {
        problems.push(format!(
            "Use at least {min_length} characters (longer is better)."
        ));
    } else if length > 1000 {
        problems.push("Use at most 1000 characters.".into());
    }
    if length > 0 && is_common(password) {
        problems.push(
            "That password is one of the most common ones, which are tried first. Choose another."
                .into(),
        );
    }
    if length > 0
        && identifiers
            .iter()
            .any(|id| !id.is_empty() && password.to_lowercase().contains(&id.to_lowercase()))
    {
        problems.push(
            "Choose a password that does not contain your username or e-mail address.".into(),
        );
    }
    if !problems.is_empty() {
        errors.add("new_password", problems.join(" "));
    }
    if length > 0 && password != confirm.expose() {
        errors.add("confirm_password", "The two passwords do not match.");
    }
    errors
}

/// A short list of very common passwords of 10 characters or more, shipped
/// with the app (compared ignoring case).
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

fn is_common(password: &str) -> bool {
    let lowered = password.trim().to_lowercase();
    let repeated = lowered.chars().all(|c| lowered.starts_with(c));
    repeated || COMMON_PASSWORDS.lines().any(|common| common == lowered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(new: &str, confirm: &str) -> FormErrors {
        check_new_password(
            &Secret::new(new),
            &Secret::new(confirm),
            10,
            &["fred", "fred@example.org"],
        )
    }

    #[test]
    fn password_rules() {
        assert!(check("long enough pass", "long enough pass").is_empty());
        assert!(check("", "").get("new_password").is_some());
        assert!(check("short", "short").get("new_password").is_some());
        assert!(
            check("myfredpassword", "myfredpassword")
                .get("new_password")
                .is_some()
        );
        assert!(
            check("long enough pass", "long enough pasS")
                .get("confirm_password")
                .is_some()
        );
    }

    #[test]
    fn every_broken_rule_is_listed() {
        let errors = check("fred1", "fred2");
        let message = errors.get("new_password").expect("refused");
        assert!(message.contains("at least 10 characters"), "{message}");
        assert!(
            message.contains("does not contain your username"),
            "{message}"
        );
        assert!(errors.get("confirm_password").is_some(), "and the mismatch");
    }
}
