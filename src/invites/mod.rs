//! Invitation codes: creating them (staff, CLI, first start), issuing them
//! with their e-mail (`issue`), managing them (`manage`), the staff pages
//! (`routes`) and redeeming them at login. Only an HMAC of each code is stored.

pub mod codes;
pub mod import;
pub mod issue;
pub mod manage;
pub mod redeem;
mod routes;
pub mod shown;
mod staff;

pub use routes::{routes, send_routes};
pub use staff::staff_routes;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DbErr, SqlErr, TransactionSession,
    TransactionTrait,
};

use crate::email_address::{EmailAddress, EmailError};
use crate::entities::invites;
use crate::secrets::Keys;
use crate::web::forms::{FormErrors, check_length};
pub use codes::InviteCode;

/// What staff fill in to invite someone.
#[derive(Debug, Clone)]
pub struct NewInvite {
    pub email: EmailAddress,
    pub name: String,
    pub phone: String,
    pub created_by: Option<i64>,
    /// First use makes a staff member (the code printed at first start).
    pub grants_staff: bool,
}

/// Creates an invite with a fresh code and returns it with the code, which
/// exists only here: show it once, send it, and let it go. Each try runs in
/// its own (nested) transaction, so a code collision inside the caller's
/// transaction does not abort it on PostgreSQL.
pub async fn create(
    db: &(impl ConnectionTrait + TransactionTrait),
    keys: &Keys,
    site_id: i64,
    code_length: usize,
    new: NewInvite,
) -> Result<(invites::Model, InviteCode), DbErr> {
    // A collision in 22^6·8^3 is rare but possible; the unique index catches it.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let code = InviteCode::generate(code_length);
        let attempt = db.begin().await?;
        let result = invites::ActiveModel {
            site_id: Set(site_id),
            code_hmac: Set(keys.code_hmac(code.as_str())),
            email: Set(new.email.as_str().to_owned()),
            name: Set(new.name.trim().to_owned()),
            phone: Set(new.phone.trim().to_owned()),
            grants_staff: Set(new.grants_staff),
            created_by: Set(new.created_by),
            created_at: Set(Utc::now()),
            ..Default::default()
        }
        .insert(&attempt)
        .await;
        match result {
            Ok(invite) => {
                attempt.commit().await?;
                return Ok((invite, code));
            }
            Err(err)
                if attempts < 5
                    && matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) =>
            {
                attempt.rollback().await?;
                continue;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Who is invited, checked: the same rules for the staff page, the command
/// line and CSV imports.
#[derive(Debug, Clone)]
pub struct Invitee {
    pub email: EmailAddress,
    pub name: String,
    pub phone: String,
}

/// Checks an invitation's fields; errors are keyed `email`, `name`, `phone`.
pub fn check_invitee(email: &str, name: &str, phone: &str) -> Result<Invitee, FormErrors> {
    let mut errors = FormErrors::default();
    let email = match EmailAddress::parse(email) {
        Ok(email) if crate::mail::can_address(&email) => Some(email),
        Ok(_) => {
            errors.add("email", EmailError::Invalid.to_string());
            None
        }
        Err(err) => {
            errors.add("email", err.to_string());
            None
        }
    };
    let name = name.trim();
    check_length(&mut errors, "name", "The name", name, 150);
    if name.chars().any(char::is_control) {
        errors.add("name", "The name must be a single line of text.");
    }
    let phone = phone.trim();
    check_length(&mut errors, "phone", "The phone number", phone, 40);
    let phone_ok = phone
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    if !phone.is_empty() && (!phone_ok || phone.chars().filter(char::is_ascii_digit).count() < 3) {
        errors.add(
            "phone",
            "Enter a phone number with digits, spaces and + - ( ) . only, or leave it empty.",
        );
    }
    match email {
        Some(email) if errors.is_empty() => Ok(Invitee {
            email,
            name: name.to_owned(),
            phone: phone.to_owned(),
        }),
        _ => Err(errors),
    }
}

/// Splits "Colonel Charles Arthur Mustard" into ("Colonel", "Charles Arthur Mustard").
pub fn split_name(name: &str) -> (String, String) {
    let name = name.trim();
    match name.split_once(char::is_whitespace) {
        Some((first, rest)) => (first.to_owned(), rest.trim().to_owned()),
        None => (name.to_owned(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::{check_invitee, split_name};

    #[test]
    fn invitees_need_a_valid_email_and_plausible_name_and_phone() {
        let ok = check_invitee(
            " Fred@Example.org ",
            " Fred Astaire ",
            "+44 (0)20 7946-0000",
        )
        .expect("valid");
        assert_eq!(ok.email.as_str(), "fred@example.org");
        assert_eq!(ok.name, "Fred Astaire");
        assert!(check_invitee("fred@example.org", "", "").is_ok());
        let errors = check_invitee("fred", "x\ny", "call me").expect_err("refused");
        assert!(errors.get("email").is_some());
        assert!(errors.get("name").is_some());
        assert!(errors.get("phone").is_some());
        let errors = check_invitee("", &"n".repeat(151), &"1".repeat(41)).expect_err("refused");
        assert_eq!(errors.get("email"), Some("Enter an e-mail address."));
        assert!(errors.get("name").is_some_and(|m| m.contains("150")));
        assert!(errors.get("phone").is_some_and(|m| m.contains("40")));
    }

    #[test]
    fn names_split_on_the_first_space() {
        assert_eq!(
            split_name("Professor Plum"),
            ("Professor".into(), "Plum".into())
        );
        assert_eq!(
            split_name("  Colonel  Charles Arthur Mustard "),
            ("Colonel".into(), "Charles Arthur Mustard".into())
        );
        assert_eq!(split_name("Cher"), ("Cher".into(), String::new()));
        assert_eq!(split_name(""), (String::new(), String::new()));
    }
}
