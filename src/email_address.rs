//! E-mail addresses, parsed once: trimmed, checked for a plausible shape and
//! normalised to lower case (ASCII letters only, so SQLite and PostgreSQL
//! compare them the same way). Stored and compared in this form.

use std::fmt;

#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("Enter an e-mail address.")]
    Empty,
    #[error("Enter a valid e-mail address, like name@example.org.")]
    Invalid,
    #[error("That e-mail address is too long (254 characters at most).")]
    TooLong,
}

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let value = input.trim();
        if value.is_empty() {
            return Err(EmailError::Empty);
        }
        if value.chars().count() > 254 {
            return Err(EmailError::TooLong);
        }
        let Some((local, domain)) = value.rsplit_once('@') else {
            return Err(EmailError::Invalid);
        };
        let bad_char =
            |c: char| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"@".contains(c);
        let labels_ok = domain
            .split('.')
            .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
        let valid = !local.is_empty()
            && local.chars().count() <= 64
            && !local.chars().any(bad_char)
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && domain.contains('.')
            && labels_ok
            && !domain.chars().any(bad_char);
        if !valid {
            return Err(EmailError::Invalid);
        }
        Ok(Self(value.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        let email = EmailAddress::parse("  Ginger.Rogers@Example.ORG ").expect("valid");
        assert_eq!(email.as_str(), "ginger.rogers@example.org");
    }

    #[test]
    fn implausible_addresses_are_refused() {
        assert_eq!(EmailAddress::parse(""), Err(EmailError::Empty));
        for bad in [
            "fred",
            "fred@",
            "@example.org",
            "fred@example",
            "fred@@example.org",
            "fr ed@example.org",
            "fred@exa mple.org",
            "fred@example..org",
            ".fred@example.org",
            "fred.@example.org",
            "<script>@example.org",
            "fred@-example.org",
        ] {
            assert_eq!(EmailAddress::parse(bad), Err(EmailError::Invalid), "{bad}");
        }
        let long = format!("{}@example.org", "a".repeat(250));
        assert_eq!(EmailAddress::parse(&long), Err(EmailError::TooLong));
    }

    proptest! {
        #[test]
        fn parsing_is_idempotent(input in "\\PC{0,80}") {
            if let Ok(email) = EmailAddress::parse(&input) {
                prop_assert_eq!(EmailAddress::parse(email.as_str()), Ok(email.clone()));
            }
        }
    }
}
