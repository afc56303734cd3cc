//! Visitor link tokens and the URLs that carry them. A token is a random
//! UUIDv4, separate from the visitor's public id; only its SHA-256 is stored.
//! Any common spelling is accepted: hyphenated or not, any case, braces.

use std::fmt;

use uuid::Uuid;

use crate::secrets::sha256_hex;

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LinkToken(Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Malformed visitor token.")]
pub struct MalformedToken;

impl LinkToken {
    pub fn generate() -> Self {
        Self(Uuid::new_v4())
    }

    pub fn parse(input: &str) -> Result<Self, MalformedToken> {
        Uuid::parse_str(input.trim())
            .map(Self)
            .map_err(|_| MalformedToken)
    }

    /// The canonical form put into links: lower-case, hyphenated.
    pub fn as_string(&self) -> String {
        self.0.hyphenated().to_string()
    }

    /// What the `visitors.token_hash` column holds.
    pub fn hash(&self) -> String {
        sha256_hex(self.as_string().as_bytes())
    }
}

/// Tokens are credentials: never in a log line through `Debug`.
impl fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkToken([redacted])")
    }
}

/// Query-string keys that carry a token: the configured one and the older
/// names used by django-visitors (`vid`, `vuid`).
pub fn token_keys(configured: &str) -> [&str; 3] {
    [configured, "vid", "vuid"]
}

/// Adds the token to `url` (or replaces one already there), keeping every
/// other parameter, their order and encoding, and the fragment.
pub fn tokenise(url: &str, key: &str, token: &LinkToken) -> String {
    let (without_fragment, fragment) = match url.split_once('#') {
        Some((head, fragment)) => (head, Some(fragment)),
        None => (url, None),
    };
    let (path, query) = match without_fragment.split_once('?') {
        Some((path, query)) => (path, query),
        None => (without_fragment, ""),
    };
    let mut query = strip_params(query, &[key]);
    if !query.is_empty() {
        query.push('&');
    }
    query.push_str(key);
    query.push('=');
    query.push_str(&token.as_string());
    let mut result = format!("{path}?{query}");
    if let Some(fragment) = fragment {
        result.push('#');
        result.push_str(fragment);
    }
    result
}

/// A raw query string without the parameters named in `keys`; the others
/// keep their order and exact encoding.
pub fn strip_params(query: &str, keys: &[&str]) -> String {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or_default();
            let name = url::form_urlencoded::parse(name.as_bytes())
                .next()
                .map(|(name, _)| name.into_owned())
                .unwrap_or_default();
            !keys.contains(&name.as_str())
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `path?query` with the token parameters removed (and no `?` when nothing is left).
pub fn without_token(path: &str, query: &str, keys: &[&str]) -> String {
    match strip_params(query, keys).as_str() {
        "" => path.to_owned(),
        rest => format!("{path}?{rest}"),
    }
}

/// A URL (absolute or not) with token parameters removed: for referers.
pub fn url_without_token(url: &str, keys: &[&str]) -> String {
    let (head, fragment) = match url.split_once('#') {
        Some((head, fragment)) => (head, Some(fragment)),
        None => (url, None),
    };
    let mut result = match head.split_once('?') {
        Some((path, query)) => without_token(path, query, keys),
        None => head.to_owned(),
    };
    if let Some(fragment) = fragment {
        result.push('#');
        result.push_str(fragment);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "68201321-9dd2-4fb3-92b1-24367f38a7d6";

    fn token() -> LinkToken {
        LinkToken::parse(TOKEN).expect("valid")
    }

    #[test]
    fn common_spellings_of_a_token_are_the_same_token() {
        for spelling in [
            TOKEN,
            "68201321-9DD2-4FB3-92B1-24367F38A7D6",
            "682013219dd24fb392b124367f38a7d6",
            "{68201321-9dd2-4fb3-92b1-24367f38a7d6}",
            " 68201321-9dd2-4fb3-92b1-24367f38a7d6 ",
        ] {
            assert_eq!(LinkToken::parse(spelling), Ok(token()), "{spelling}");
        }
        assert_eq!(token().as_string(), TOKEN);
        assert_eq!(token().hash().len(), 64);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "123",
            "",
            "not-a-uuid",
            "68201321-9dd2-4fb3-92b1-24367f38a7dz",
        ] {
            assert_eq!(LinkToken::parse(bad), Err(MalformedToken), "{bad}");
        }
    }

    #[test]
    fn tokenise_adds_or_replaces_and_keeps_everything_else() {
        assert_eq!(
            tokenise("google.com", "vid", &token()),
            format!("google.com?vid={TOKEN}")
        );
        assert_eq!(
            tokenise("google.com?vid=123", "vid", &token()),
            format!("google.com?vid={TOKEN}")
        );
        assert_eq!(
            tokenise("/foo?a=1&b=2&blank=&vid=old#part", "vid", &token()),
            format!("/foo?a=1&b=2&blank=&vid={TOKEN}#part")
        );
        assert_eq!(
            tokenise("/foo?q=caf%C3%A9+au+lait", "vid", &token()),
            format!("/foo?q=caf%C3%A9+au+lait&vid={TOKEN}")
        );
    }

    #[test]
    fn only_token_parameters_are_stripped() {
        let keys = token_keys("vid");
        assert_eq!(
            without_token("/p", "a=1&vid=x&b=2&vuid=y", &keys),
            "/p?a=1&b=2"
        );
        assert_eq!(without_token("/p", "vid=x", &keys), "/p");
        assert_eq!(without_token("/p", "", &keys), "/p");
        assert_eq!(without_token("/p", "v%69d=x&video=1", &keys), "/p?video=1");
        assert_eq!(
            url_without_token("https://x.example/p?vid=abc&z=1#f", &keys),
            "https://x.example/p?z=1#f"
        );
    }

    #[test]
    fn debug_never_shows_the_token() {
        assert!(!format!("{:?}", token()).contains("6820"));
    }
}
