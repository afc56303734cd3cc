//! Invitation codes: creating them (staff, CLI, first start) and redeeming
//! them at login. Only an HMAC of each code is stored.

pub mod codes;
pub mod redeem;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DbErr, SqlErr};

use crate::email_address::EmailAddress;
use crate::entities::invites;
use crate::secrets::Keys;
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
/// exists only here: show it once, send it, and let it go.
pub async fn create(
    db: &impl ConnectionTrait,
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
        .insert(db)
        .await;
        match result {
            Ok(invite) => return Ok((invite, code)),
            Err(err)
                if attempts < 5
                    && matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) =>
            {
                continue;
            }
            Err(err) => return Err(err),
        }
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
    use super::split_name;

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
