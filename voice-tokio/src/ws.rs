//! Opening the voice websocket: TCP, then TLS (rustls) for `wss://`, then
//! the websocket upgrade.

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::error::ConnectError;

/// Any byte stream a websocket can run on.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The voice websocket.
pub(crate) type WsStream = WebSocketStream<Box<dyn Io>>;

/// Largest message accepted from the server.
const MAX_MESSAGE: usize = 1 << 20;

/// Splits `ws[s]://host:port/path` into (tls, host, port).
fn parse(url: &str) -> Result<(bool, &str, u16), ConnectError> {
    let bad = || ConnectError::BadUrl(url.to_owned());
    let (tls, rest) = if let Some(r) = url.strip_prefix("wss://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("ws://") {
        (false, r)
    } else {
        return Err(bad());
    };
    let authority = rest.split(['/', '?']).next().ok_or_else(bad)?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
        None => (authority, if tls { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok((tls, host, port))
}

/// Opens the websocket at `url` within `timeout`.
pub(crate) async fn connect(url: &str, tls: &Arc<ClientConfig>, timeout: Duration) -> Result<WsStream, ConnectError> {
    tokio::time::timeout(timeout, connect_inner(url, tls)).await.map_err(|_| ConnectError::Timeout)?
}

async fn connect_inner(url: &str, tls: &Arc<ClientConfig>) -> Result<WsStream, ConnectError> {
    let (secure, host, port) = parse(url)?;
    let tcp = TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    let io: Box<dyn Io> = if secure {
        let name = ServerName::try_from(host.to_owned()).map_err(|_| ConnectError::BadUrl(url.to_owned()))?;
        Box::new(tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp).await?)
    } else {
        Box::new(tcp)
    };
    let config = WebSocketConfig::default().max_message_size(Some(MAX_MESSAGE)).max_frame_size(Some(MAX_MESSAGE));
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, io, Some(config)).await?;
    Ok(ws)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn urls() {
        assert_eq!(parse("wss://a.discord.media:2048/?v=8").unwrap(), (true, "a.discord.media", 2048));
        assert_eq!(parse("ws://127.0.0.1:9/?v=4").unwrap(), (false, "127.0.0.1", 9));
        assert_eq!(parse("wss://host/?v=8").unwrap(), (true, "host", 443));
        assert!(parse("http://x").is_err());
        assert!(parse("wss://:1/").is_err());
        assert!(parse("wss://h:port/").is_err());
    }
}
