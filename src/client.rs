//! Facts about the client of a request that several capabilities need.

use std::net::IpAddr;

use actix_web::HttpRequest;

/// The client's address: the peer, or — only when the peer is a trusted
/// proxy — the nearest untrusted address in X-Forwarded-For.
pub fn client_ip(req: &HttpRequest, trusted: &[IpAddr]) -> String {
    let peer = req.peer_addr().map(|addr| addr.ip());
    let Some(peer) = peer else {
        return String::new();
    };
    if !trusted.contains(&peer) {
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
        .find(|ip| !trusted.contains(ip))
        .or(forwarded.first())
        .unwrap_or(&peer)
        .to_string()
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::client_ip;

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
}
