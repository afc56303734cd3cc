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

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use actix_web::http::header::HeaderMap;
    use actix_web::test::TestRequest;

    use super::{client_ip, forwarded_host, requested_host};

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
