//! Facts about the client of a request that several capabilities need.
//! Forwarded headers (`X-Forwarded-*`, `Forwarded`) are anyone's to send, so
//! they are believed only when the peer is one of `server.trusted_proxies`;
//! actix's `connection_info()` believes them from everybody and is not used.

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderMap};

/// True when the request comes straight from one of the trusted proxies,
/// the only peers whose forwarded headers are believed.
pub fn from_trusted_proxy(req: &HttpRequest, trusted: &[IpAddr]) -> bool {
    req.peer_addr()
        .is_some_and(|addr| is_trusted(addr.ip(), trusted))
}

/// An IPv4 peer may show up as `::ffff:a.b.c.d` on a dual-stack socket.
fn is_trusted(ip: IpAddr, trusted: &[IpAddr]) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|proxy| proxy.to_canonical() == ip)
}

/// The client's address: the peer, or — only when the peer is a trusted
/// proxy — the nearest untrusted address in X-Forwarded-For.
pub fn client_ip(req: &HttpRequest, trusted: &[IpAddr]) -> String {
    let peer = req.peer_addr().map(|addr| addr.ip());
    let Some(peer) = peer else {
        return String::new();
    };
    if !from_trusted_proxy(req, trusted) {
        return peer.to_string();
    }
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    forwarded
        .iter()
        .rev()
        .find(|ip| !is_trusted(**ip, trusted))
        .or(forwarded.first())
        .unwrap_or(&peer)
        .to_string()
}

/// The host the client asked for (port included when sent): the Host
/// header (the URI's authority on HTTP/2), or — only from a trusted proxy —
/// the host it forwarded, which then picks the site.
pub fn requested_host(req: &HttpRequest, trusted: &[IpAddr]) -> String {
    if from_trusted_proxy(req, trusted)
        && let Some(host) = forwarded_host(req.headers())
    {
        return host;
    }
    req.headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| req.uri().authority().map(|authority| authority.as_str()))
        .unwrap_or_default()
        .to_owned()
}

/// The host a proxy forwarded: `Forwarded: host=` (RFC 7239), else
/// `X-Forwarded-Host`. Of several values the last one counts: it was added
/// by the proxy nearest to us, while earlier ones may be the client's own
/// header that a proxy appended to. Values that are not a host are ignored.
pub fn forwarded_host(headers: &HeaderMap) -> Option<String> {
    let from_forwarded = headers
        .get_all(header::FORWARDED)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("host")
                    .then(|| value.trim().trim_matches('"'))
            })
        })
        .last();
    let host = from_forwarded.or_else(|| {
        headers
            .get_all("x-forwarded-host")
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .rfind(|value| !value.is_empty())
    })?;
    looks_like_host(host).then(|| host.to_owned())
}

/// A host name or address with an optional port: nothing that could make a
/// path, a user name or a second header out of it.
fn looks_like_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 260
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// A browser and system, as people name them ("Firefox on Linux"), read
/// from a User-Agent header; "Unknown browser" when it says nothing we know.
pub fn browser_family(user_agent: &str) -> String {
    let ua = user_agent;
    let browser = if ua.contains("Edg/") {
        "Edge"
    } else if ua.contains("OPR/") || ua.contains("Opera") {
        "Opera"
    } else if ua.contains("Firefox/") {
        "Firefox"
    } else if ua.contains("Chrome/") || ua.contains("Chromium/") || ua.contains("CriOS/") {
        "Chrome"
    } else if ua.contains("Safari/") {
        "Safari"
    } else if ua.contains("curl/") {
        "curl"
    } else {
        ""
    };
    let system = if ua.contains("Android") {
        "Android"
    } else if ua.contains("iPhone") || ua.contains("iPad") {
        "iOS"
    } else if ua.contains("Windows") {
        "Windows"
    } else if ua.contains("Mac OS X") || ua.contains("Macintosh") {
        "macOS"
    } else if ua.contains("CrOS") {
        "ChromeOS"
    } else if ua.contains("Linux") {
        "Linux"
    } else {
        ""
    };
    match (browser, system) {
        ("", "") => "Unknown browser".to_owned(),
        ("", system) => format!("A browser on {system}"),
        (browser, "") => browser.to_owned(),
        (browser, system) => format!("{browser} on {system}"),
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use actix_web::http::header::HeaderMap;
    use actix_web::test::TestRequest;

    use super::{browser_family, client_ip, forwarded_host, requested_host};

    #[test]
    fn browsers_are_named_as_people_know_them() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        assert_eq!(browser_family(firefox), "Firefox on Linux");
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                      (KHTML, like Gecko) Chrome/131.0 Safari/537.36";
        assert_eq!(browser_family(chrome), "Chrome on Windows");
        let edge = "Mozilla/5.0 (Windows NT 10.0) Chrome/131.0 Safari/537.36 Edg/131.0";
        assert_eq!(browser_family(edge), "Edge on Windows");
        let safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) \
                      Version/17.0 Mobile/15E148 Safari/604.1";
        assert_eq!(browser_family(safari), "Safari on iOS");
        assert_eq!(browser_family(""), "Unknown browser");
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy = "10.0.0.1".parse().expect("ip");
        let req = TestRequest::default()
            .peer_addr("10.0.0.1:5000".parse().expect("addr"))
            .insert_header(("X-Forwarded-For", "6.6.6.6, 203.0.113.7"))
            .to_http_request();
        assert_eq!(client_ip(&req, &[proxy]), "203.0.113.7");
        assert_eq!(client_ip(&req, &[]), "10.0.0.1");
        let direct = TestRequest::default()
            .peer_addr("198.51.100.2:5000".parse().expect("addr"))
            .insert_header(("X-Forwarded-For", "1.2.3.4"))
            .to_http_request();
        assert_eq!(client_ip(&direct, &[proxy]), "198.51.100.2");
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut request = TestRequest::default();
        for pair in pairs {
            request = request.append_header(*pair);
        }
        request.to_http_request().headers().clone()
    }

    #[test]
    fn forwarded_host_is_parsed_from_either_header() {
        let host = |pairs: &[(&str, &str)]| forwarded_host(&headers(pairs));
        assert_eq!(
            host(&[("X-Forwarded-Host", "club.example.org")]).as_deref(),
            Some("club.example.org")
        );
        assert_eq!(
            host(&[("X-Forwarded-Host", "client.example, club.example.org:8443 ")]).as_deref(),
            Some("club.example.org:8443"),
            "the value the nearest proxy appended"
        );
        assert_eq!(
            host(&[
                ("X-Forwarded-Host", "client.example"),
                ("X-Forwarded-Host", "club.example.org")
            ])
            .as_deref(),
            Some("club.example.org")
        );
        assert_eq!(
            host(&[(
                "Forwarded",
                "for=192.0.2.60;proto=https;HOST=\"club.example.org:8443\""
            )])
            .as_deref(),
            Some("club.example.org:8443")
        );
        assert_eq!(
            host(&[
                (
                    "Forwarded",
                    "host=client.example, for=10.0.0.2;host=club.example.org"
                ),
                ("X-Forwarded-Host", "other.example"),
            ])
            .as_deref(),
            Some("club.example.org"),
            "Forwarded wins over X-Forwarded-Host"
        );
        assert_eq!(host(&[("Forwarded", "for=192.0.2.60;proto=https")]), None);
        assert_eq!(host(&[]), None);
        for bad in ["evil.example/path", "user@evil.example", "a b", "", "\"\""] {
            assert_eq!(host(&[("X-Forwarded-Host", bad)]), None, "{bad:?}");
        }
        assert_eq!(
            host(&[("X-Forwarded-Host", "[::1]:8080")]).as_deref(),
            Some("[::1]:8080")
        );
    }

    #[test]
    fn forwarded_host_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let request = |peer: &str| {
            TestRequest::default()
                .peer_addr(peer.parse().expect("addr"))
                .insert_header(("Host", "main.example.org"))
                .insert_header(("X-Forwarded-Host", "club.example.org"))
                .to_http_request()
        };
        assert_eq!(
            requested_host(&request("10.0.0.1:5000"), &[proxy]),
            "club.example.org"
        );
        assert_eq!(
            requested_host(&request("[::ffff:10.0.0.1]:5000"), &[proxy]),
            "club.example.org",
            "an IPv4 proxy seen through a dual-stack socket"
        );
        assert_eq!(
            requested_host(&request("198.51.100.2:5000"), &[proxy]),
            "main.example.org"
        );
        assert_eq!(
            requested_host(&request("10.0.0.1:5000"), &[]),
            "main.example.org"
        );
        let untrusted_forwarded = TestRequest::default()
            .peer_addr("198.51.100.2:5000".parse().expect("addr"))
            .insert_header(("Host", "main.example.org"))
            .insert_header(("Forwarded", "host=club.example.org"))
            .to_http_request();
        assert_eq!(
            requested_host(&untrusted_forwarded, &[proxy]),
            "main.example.org"
        );
    }
}
