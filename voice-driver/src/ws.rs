//! Opening the voice websocket over the runtime's TCP stream: TLS
//! ([`tls`](crate::tls): rustls, unbuffered) for `wss`, then the upgrade
//! ([`ws_upgrade`](crate::ws_upgrade)), then frames (async-tungstenite). The
//! same code on every runtime.

use std::sync::Arc;
use std::time::Duration;

use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use voice_proto::WsTarget;

use crate::error::ConnectError;
use crate::runtime::{ByteStream, Runtime, timeout};

/// The voice websocket.
pub(crate) type WsStream = WebSocketStream<Box<dyn ByteStream>>;

/// Largest message accepted from the server.
const MAX_MESSAGE: usize = 1 << 20;

/// The websocket's read buffer (larger frames are read in several reads
/// and the buffer grows for them). Voice gateway frames are small (a few
/// hundred bytes; DAVE commits and welcomes a few KiB), every call keeps
/// this buffer for its life (reads come from plaintext TLS already
/// decrypted, so small reads cost a copy, not a system call), and tungstenite zero-fills its free part on
/// every read attempt: its default (128 KiB) made `memset` the largest
/// cost of an idle call.
const READ_BUFFER: usize = 256;

/// Opens the websocket to `target` within `limit`.
pub(crate) async fn connect(
    runtime: Arc<dyn Runtime>,
    target: WsTarget,
    tls: Arc<ClientConfig>,
    limit: Duration,
) -> Result<WsStream, ConnectError> {
    timeout(&*runtime, limit, connect_inner(&*runtime, &target, tls)).await.map_err(|_| ConnectError::Timeout)?
}

async fn connect_inner(
    runtime: &dyn Runtime,
    target: &WsTarget,
    tls: Arc<ClientConfig>,
) -> Result<WsStream, ConnectError> {
    let tcp = runtime.connect_tcp(target.host.clone(), target.port).await?;
    let mut io: Box<dyn ByteStream> = if target.tls {
        let name = ServerName::try_from(target.host.clone()).map_err(|_| ConnectError::BadHost(target.host.clone()))?;
        Box::new(crate::tls::connect(tls, name, tcp).await?)
    } else {
        tcp
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let first_frames = crate::ws_upgrade::upgrade(&mut io, target).await?;
    Ok(WebSocketStream::from_partially_read(io, first_frames, Role::Client, Some(config)).await)
}
