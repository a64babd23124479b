//! Websocket listeners (plain and TLS) and one task per connection.
//!
//! A connection task owns its websocket. It hands received frames to the
//! driver over a bounded channel, and it takes from its own bounded queue
//! the frames to write *and the datagrams for its client*, in the order the
//! driver queued them: so a datagram never overtakes a frame queued before it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use voice_proto::wire::{GatewayVersion, WsFrame};

use super::{ConnInput, Counters, Out};

/// What every connection task needs.
#[derive(Clone)]
pub(crate) struct ConnCtx {
    pub(crate) input: mpsc::Sender<ConnInput>,
    pub(crate) udp: Arc<UdpSocket>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) queue: usize,
    pub(crate) max_frame: usize,
    pub(crate) write_timeout: Duration,
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const LINGER: Duration = Duration::from_secs(2);

/// Accepts TCP connections until shutdown; with `tls`, wraps them in TLS.
pub(crate) async fn listen(listener: TcpListener, tls: Option<TlsAcceptor>, ctx: ConnCtx) {
    let mut tasks = JoinSet::new();
    let mut shutdown = ctx.shutdown.clone();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            r = listener.accept() => {
                let Ok((tcp, peer)) = r else { continue };
                let _ = tcp.set_nodelay(true);
                let ctx = ctx.clone();
                match tls.clone() {
                    None => { tasks.spawn(serve(tcp, ctx)); }
                    Some(acceptor) => {
                        tasks.spawn(async move {
                            match timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                                Ok(Ok(stream)) => serve(stream, ctx).await,
                                _ => tracing::debug!(%peer, "TLS handshake failed"),
                            }
                        });
                    }
                }
            }
        }
    }
    tasks.shutdown().await;
}

/// The gateway version from a query string: `v=4`..`v=7` speak v4,
/// `v=8` v8; anything else (or no `v`) is refused.
pub(crate) fn version_from_query(query: Option<&str>) -> Option<u8> {
    let v = query?.split('&').find_map(|kv| kv.strip_prefix("v="))?;
    v.parse::<u8>().ok().filter(|v| (4..=8).contains(v))
}

fn to_message(frame: WsFrame) -> Message {
    match frame {
        WsFrame::Binary(b) => Message::binary(b),
        other => Message::text(other.as_text().unwrap_or_default().to_owned()),
    }
}

/// Serves one websocket from handshake to close.
#[allow(clippy::result_large_err)] // the handshake callback's error type is tungstenite's
async fn serve<S>(stream: S, ctx: ConnCtx)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let version = Arc::new(AtomicU8::new(0));
    let seen = version.clone();
    let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        match version_from_query(req.uri().query()) {
            Some(v) => {
                seen.store(v, Ordering::Relaxed);
                Ok(resp)
            }
            None => {
                let mut err = ErrorResponse::new(Some("voice gateway version (?v=4..8) required".to_owned()));
                *err.status_mut() = StatusCode::BAD_REQUEST;
                Err(err)
            }
        }
    };
    let config = WebSocketConfig::default().max_message_size(Some(ctx.max_frame)).max_frame_size(Some(ctx.max_frame));
    let accept = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config));
    let mut ws = match timeout(HANDSHAKE_TIMEOUT, accept).await {
        Ok(Ok(ws)) => ws,
        _ => return,
    };
    let version = if version.load(Ordering::Relaxed) == 8 { GatewayVersion::V8 } else { GatewayVersion::V4 };
    let (tx, mut rx) = mpsc::channel::<Out>(ctx.queue.max(1));
    let kill = Arc::new(Notify::new());
    let (reply, conn) = oneshot::channel();
    if ctx.input.send(ConnInput::Open { version, tx, kill: kill.clone(), reply }).await.is_err() {
        return;
    }
    let Ok(conn) = conn.await else { return };
    let mut shutdown = ctx.shutdown.clone();
    let mut server_closed = false;
    let mut client_code = None;
    loop {
        tokio::select! {
            biased;
            _ = kill.notified() => { server_closed = true; break }
            _ = shutdown.changed() => { server_closed = true; break }
            out = rx.recv() => match out {
                Some(Out::Ws(frame)) => {
                    match timeout(ctx.write_timeout, ws.send(to_message(frame))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break,
                        Err(_) => {
                            ctx.counters.slow_clients_closed.fetch_add(1, Ordering::Relaxed);
                            client_code = Some(1006);
                            break;
                        }
                    }
                }
                Some(Out::Udp(to, bytes)) => {
                    if ctx.udp.send_to(&bytes, to).await.is_err() {
                        ctx.counters.udp_send_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Out::Close(code)) => {
                    let frame = CloseFrame { code: CloseCode::from(code), reason: "".into() };
                    let _ = timeout(ctx.write_timeout, ws.send(Message::Close(Some(frame)))).await;
                    server_closed = true;
                    break;
                }
                None => { server_closed = true; break }
            },
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let input = ConnInput::Frame { conn, frame: WsFrame::Text(t.as_str().to_owned()) };
                    if ctx.input.send(input).await.is_err() { break }
                }
                Some(Ok(Message::Binary(b))) => {
                    let input = ConnInput::Frame { conn, frame: WsFrame::Binary(b.to_vec()) };
                    if ctx.input.send(input).await.is_err() { break }
                }
                Some(Ok(Message::Close(f))) => { client_code = Some(f.map_or(1005, |f| u16::from(f.code))); break }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => { client_code = Some(1006); break }
            },
        }
    }
    if server_closed {
        // Let the client read the close frame and answer it before the
        // socket goes, so that it sees the code rather than a reset.
        let _ = timeout(LINGER, async {
            while let Some(Ok(m)) = ws.next().await {
                if m.is_close() {
                    break;
                }
            }
        })
        .await;
    } else {
        let _ = timeout(Duration::from_secs(1), ctx.input.send(ConnInput::Closed { conn, code: client_code })).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(version_from_query(Some("v=8")), Some(8));
        assert_eq!(version_from_query(Some("encoding=json&v=4")), Some(4));
        assert_eq!(version_from_query(Some("v=3")), None);
        assert_eq!(version_from_query(Some("v=9")), None);
        assert_eq!(version_from_query(None), None);
    }
}
