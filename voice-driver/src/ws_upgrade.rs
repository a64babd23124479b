//! The websocket opening handshake (RFC 6455 §4.1), done here rather than
//! by tungstenite so that the websocket starts with a read buffer of the
//! size we ask for: tungstenite's own handshake hands its 4 KiB response
//! buffer on as the websocket's, kept for the call's whole life.
//!
//! The client side only, as the voice gateway needs it: one `GET` with the
//! upgrade headers and a fresh key, then the response's head checked the
//! way the RFC tells a client to (status 101, `Upgrade: websocket`,
//! `Connection: upgrade`, the accept key, no extension or subprotocol we
//! did not ask for). Bytes after the head are the first frames: they are
//! handed to the websocket.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;

use async_tungstenite::tungstenite::handshake::client::generate_key;
use async_tungstenite::tungstenite::handshake::derive_accept_key;
use voice_proto::WsTarget;

use crate::error::ConnectError;
use crate::runtime::ByteStream;

/// Longest response head accepted (the voice gateway's is a few hundred
/// bytes).
const MAX_HEAD: usize = 8 * 1024;
/// Headers parsed at most.
const MAX_HEADERS: usize = 32;

/// Sends the upgrade request for `target` and reads the answer; returns
/// the bytes that followed the response head (the start of the first
/// frames).
pub(crate) async fn upgrade(io: &mut Box<dyn ByteStream>, target: &WsTarget) -> Result<Vec<u8>, ConnectError> {
    let key = generate_key();
    write_all(io, request(target, &key).as_bytes()).await?;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let n = poll_fn(|cx| Pin::new(&mut **io).poll_read(cx, &mut chunk)).await?;
        if n == 0 {
            return Err(ConnectError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(len) = check_response(&head, &key)? {
            head.drain(..len);
            head.shrink_to_fit();
            return Ok(head);
        }
    }
}

/// The request: the path, query and host of the target's URL.
fn request(target: &WsTarget, key: &str) -> String {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n",
        target.path(),
        target.authority()
    )
}

/// Checks the response in `buf` against the request's `key`: `Ok(None)`
/// while the head is incomplete, `Ok(Some(len))` with the head's length
/// once it is complete and good.
fn check_response(buf: &[u8], key: &str) -> Result<Option<usize>, ConnectError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
        Ok(httparse::Status::Partial) => return Err(ConnectError::Handshake("response head too long")),
        Err(_) => return Err(ConnectError::Handshake("malformed response head")),
    };
    let status = response.code.unwrap_or(0);
    if status != 101 {
        return Err(ConnectError::Rejected(status));
    }
    let headers = &*response.headers;
    let header =
        |name: &'static str| headers.iter().filter(move |h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value);
    let has_token = |name: &'static str, token: &str| {
        header(name).any(|v| v.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes())))
    };
    if !has_token("upgrade", "websocket") {
        return Err(ConnectError::Handshake("no Upgrade: websocket"));
    }
    if !has_token("connection", "upgrade") {
        return Err(ConnectError::Handshake("no Connection: upgrade"));
    }
    let accept = derive_accept_key(key.as_bytes());
    if !header("sec-websocket-accept").any(|v| v.trim_ascii() == accept.as_bytes()) {
        return Err(ConnectError::Handshake("wrong Sec-WebSocket-Accept"));
    }
    // Neither was asked for: the RFC has the client fail the connection.
    if header("sec-websocket-extensions").next().is_some() || header("sec-websocket-protocol").next().is_some() {
        return Err(ConnectError::Handshake("an extension or subprotocol that was not asked for"));
    }
    Ok(Some(len))
}

async fn write_all(io: &mut Box<dyn ByteStream>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = poll_fn(|cx| Pin::new(&mut **io).poll_write(cx, bytes)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
    }
    poll_fn(|cx| Pin::new(&mut **io).poll_flush(cx)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    /// RFC 6455 §1.3's example key and its accept value.
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn answer(status: &str, extra: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status}\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\
             Sec-WebSocket-Accept: {ACCEPT}\r\n{extra}\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn a_good_answer_ends_where_its_head_ends() {
        let mut buf = answer("101 Switching Protocols", "");
        let head = buf.len();
        buf.extend_from_slice(&[0x81, 0x02, b'h', b'i']);
        assert_eq!(check_response(&buf, KEY).ok().flatten(), Some(head));
    }

    #[test]
    fn an_incomplete_head_asks_for_more_until_the_limit() {
        let buf = answer("101 Switching Protocols", "");
        for cut in [1, 20, buf.len() - 1] {
            assert!(matches!(check_response(&buf[..cut], KEY), Ok(None)), "cut at {cut}");
        }
        let mut long = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
        while long.len() < MAX_HEAD {
            long.extend_from_slice(b"X-Padding: 0123456789\r\n");
        }
        assert!(matches!(check_response(&long, KEY), Err(ConnectError::Handshake(_))));
    }

    #[test]
    fn another_status_is_a_rejection_with_that_status() {
        let buf = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(check_response(buf, KEY), Err(ConnectError::Rejected(403))));
    }

    #[test]
    fn a_wrong_accept_key_or_missing_upgrade_fails() {
        let wrong = answer("101 Switching Protocols", "");
        assert!(matches!(check_response(&wrong, "b3RoZXIga2V5IGhlcmUhIQ=="), Err(ConnectError::Handshake(_))));
        let no_upgrade = format!("HTTP/1.1 101 OK\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n");
        assert!(matches!(check_response(no_upgrade.as_bytes(), KEY), Err(ConnectError::Handshake(_))));
        let no_connection = format!("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n");
        assert!(matches!(check_response(no_connection.as_bytes(), KEY), Err(ConnectError::Handshake(_))));
    }

    #[test]
    fn an_extension_not_asked_for_fails() {
        let buf = answer("101 Switching Protocols", "Sec-WebSocket-Extensions: permessage-deflate\r\n");
        assert!(matches!(check_response(&buf, KEY), Err(ConnectError::Handshake(_))));
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(matches!(check_response(b"\x00\x01\x02 nonsense\r\n\r\n", KEY), Err(ConnectError::Handshake(_))));
    }

    #[test]
    fn the_request_names_the_gateway_version_and_brackets_v6_hosts() {
        let target = WsTarget::from_endpoint("[::1]:4443", voice_proto::wire::GatewayVersion::V8, false);
        let r = request(&target, KEY);
        assert!(r.starts_with(&format!("GET /?v={} HTTP/1.1\r\n", target.version.as_u8())), "{r}");
        assert!(r.contains("\r\nHost: [::1]:4443\r\n"), "{r}");
        assert!(r.contains(&format!("\r\nSec-WebSocket-Key: {KEY}\r\n")), "{r}");
        assert!(r.ends_with("\r\n\r\n"));
    }
}
