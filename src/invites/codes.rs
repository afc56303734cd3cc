//! Invitation codes: `length − 3` letters from an unambiguous alphabet, then
//! 3 digits, drawn from the OS CSPRNG. Input is normalised (trimmed, spaces and
//! hyphens dropped, upper-cased) before it is checked or hashed.

use std::fmt;

use rand::RngExt;

use crate::secrets::os_rng;
use crate::settings::CODE_LENGTH_RANGE;

/// Letters used in codes: no I, L, N or O, which are easily misread.
pub const LETTERS: &[u8] = b"ABCDEFGHJKMPQRSTUVWXYZ";
/// Digits used in codes: no 0 or 1.
pub const DIGITS: &[u8] = b"23456789";
/// Every code ends with this many digits.
pub const DIGIT_COUNT: usize = 3;

/// A well-formed, normalised invitation code. Whether it exists is a
/// separate question (see `redeem`).
#[derive(Clone, PartialEq, Eq)]
pub struct InviteCode(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeFormatError {
    #[error("Enter your invitation code.")]
    Empty,
    #[error("That code is not valid. Check it against your invitation.")]
    Malformed,
}

impl InviteCode {
    /// A new random code of `length` characters (6..=30).
    pub fn generate(length: usize) -> Self {
        assert!(
            CODE_LENGTH_RANGE.contains(&length),
            "code length is validated at start"
        );
        let mut rng = os_rng();
        let mut code = String::with_capacity(length);
        for _ in 0..length - DIGIT_COUNT {
            code.push(char::from(LETTERS[rng.random_range(0..LETTERS.len())]));
        }
        for _ in 0..DIGIT_COUNT {
            code.push(char::from(DIGITS[rng.random_range(0..DIGITS.len())]));
        }
        Self(code)
    }

    /// Normalises what a person typed and checks its shape. Codes of any
    /// allowed length are accepted, so changing `code_length` does not
    /// invalidate codes already sent.
    pub fn parse(input: &str) -> Result<Self, CodeFormatError> {
        let code = normalise(input);
        if code.is_empty() {
            return Err(CodeFormatError::Empty);
        }
        // ASCII first: the split below is by bytes.
        if !code.is_ascii() || !CODE_LENGTH_RANGE.contains(&code.len()) {
            return Err(CodeFormatError::Malformed);
        }
        let (letters, digits) = code.split_at(code.len() - DIGIT_COUNT);
        let letters_ok = letters.bytes().all(|b| LETTERS.contains(&b));
        let digits_ok = digits.bytes().all(|b| DIGITS.contains(&b));
        if letters_ok && digits_ok {
            Ok(Self(code))
        } else {
            Err(CodeFormatError::Malformed)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for InviteCode {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Codes are credentials: they never reach a log line through `Debug`.
impl fmt::Debug for InviteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InviteCode([redacted])")
    }
}

/// Trim, drop spaces and hyphens, upper-case. Non-ASCII input is kept (and
/// then fails the format check) rather than silently mapped.
pub fn normalise(input: &str) -> String {
    input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_default_length_code_has_six_letters_then_three_digits() {
        let code = InviteCode::generate(9);
        let (letters, digits) = code.as_str().split_at(6);
        assert!(letters.bytes().all(|b| LETTERS.contains(&b)));
        assert!(digits.bytes().all(|b| DIGITS.contains(&b)));
    }

    #[test]
    fn typed_variants_normalise_to_the_same_code() {
        let code = InviteCode::parse("ABCDEF234").expect("valid");
        for typed in [
            "abcdef234",
            "  ABC DEF 234 ",
            "abc-def-234",
            "\tAbC-dEf 2-3-4\n",
        ] {
            assert_eq!(InviteCode::parse(typed), Ok(code.clone()), "{typed:?}");
        }
    }

    #[test]
    fn malformed_input_is_refused() {
        assert_eq!(InviteCode::parse("   "), Err(CodeFormatError::Empty));
        for bad in [
            "ABCDEFG23",                        // only 2 digits
            "ABCDEF230",                        // 0 is not a code digit
            "ABCDEF123",                        // 1 neither
            "ABCDIF234",                        // I is not a code letter
            "ABCDOF234",                        // nor O
            "AB234",                            // 5 characters: too short
            "ÄBCDEF234",                        // non-ASCII
            "ABCDEFGHJKMPQRSTUVWXYZABCDEFG234", // 32: too long
            "'; DROP TABLE invites; --",
        ] {
            assert_eq!(
                InviteCode::parse(bad),
                Err(CodeFormatError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn codes_of_any_allowed_length_parse_whatever_the_setting() {
        assert!(InviteCode::parse("ABC234").is_ok());
        assert!(InviteCode::parse("ABCDE234").is_ok());
    }

    #[test]
    fn debug_never_shows_the_code() {
        let code = InviteCode::generate(9);
        assert!(!format!("{code:?}").contains(code.as_str()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn generated_codes_have_the_configured_shape(length in 6usize..=30) {
            let code = InviteCode::generate(length);
            let text = code.as_str();
            prop_assert_eq!(text.len(), length);
            let (letters, digits) = text.split_at(length - 3);
            prop_assert!(letters.bytes().all(|b| LETTERS.contains(&b)), "{}", text);
            prop_assert!(digits.bytes().all(|b| DIGITS.contains(&b)), "{}", text);
            // What we generate, we accept back, however it is typed.
            prop_assert_eq!(InviteCode::parse(&text.to_lowercase()), Ok(code.clone()));
        }

        #[test]
        fn parse_never_panics_and_only_accepts_the_alphabet(input in ".{0,40}") {
            if let Ok(code) = InviteCode::parse(&input) {
                let text = code.as_str();
                prop_assert!(CODE_LENGTH_RANGE.contains(&text.len()));
                prop_assert!(text.bytes().all(|b| LETTERS.contains(&b) || DIGITS.contains(&b)));
            }
        }
    }

    #[test]
    fn every_letter_and_digit_of_the_alphabet_turns_up() {
        // 2 000 codes × 6 letters: a missing letter would be a biased generator.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            seen.extend(InviteCode::generate(9).as_str().bytes());
        }
        let expected: std::collections::HashSet<u8> =
            LETTERS.iter().chain(DIGITS).copied().collect();
        assert_eq!(seen, expected);
    }
}
