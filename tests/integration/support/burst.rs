//! Requests that arrive at the same instant: each is written, all but its
//! last byte, on its own connection; then every last byte is sent at once
//! (after a barrier), so the server starts handling them together — a
//! barrier alone before whole requests leaves them spread over the time it
//! takes to write each one.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

/// A request as sent on the wire.
pub struct RawRequest(Vec<u8>);

impl RawRequest {
    /// A form POST to `path` on `address` (`127.0.0.1:port`) with this
    /// `Cookie` header value.
    pub fn form(address: &str, path: &str, cookies: &str, fields: &[(&str, &str)]) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nCookie: {cookies}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        Self([head.into_bytes(), body.into_bytes()].concat())
    }
}

/// A response: its status and body.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub text: String,
}

/// Sends every request so that they arrive together; the responses come
/// back in the order of `requests`.
pub async fn at_once(address: &str, requests: Vec<RawRequest>) -> Vec<RawResponse> {
    let barrier = Arc::new(Barrier::new(requests.len()));
    let mut primed = Vec::with_capacity(requests.len());
    for RawRequest(bytes) in requests {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (head, last) = bytes.split_at(bytes.len() - 1);
        stream
            .write_all(head)
            .await
            .expect("write all but the last byte");
        primed.push((stream, last[0]));
    }
    let tasks: Vec<_> = primed
        .into_iter()
        .map(|(mut stream, last)| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                stream.write_all(&[last]).await.expect("last byte");
                let mut raw = Vec::new();
                stream.read_to_end(&mut raw).await.expect("response");
                parse(&raw)
            })
        })
        .collect();
    let mut responses = Vec::with_capacity(tasks.len());
    for task in tasks {
        responses.push(task.await.expect("request task"));
    }
    responses
}

fn parse(raw: &[u8]) -> RawResponse {
    let text = String::from_utf8_lossy(raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP response, got {text:?}"));
    RawResponse { status, text }
}
