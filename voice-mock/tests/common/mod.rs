//! A small voice client for the runner tests: tokio-tungstenite for the
//! gateway, a tokio UDP socket and voice-rtp for media. Every wait is bounded.
#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use voice_mock::{DavePolicy, JoinInfo, RunnerConfig, ServerConfig};
use voice_rtp::discovery::{self, Discovery};
use voice_rtp::{Cipher, Mode, RtpFields, RtpHeader, Sealer, SecretKey};

pub const T: Duration = Duration::from_secs(5);

/// The core's defaults with DAVE off: these clients speak JSON only
/// (dave.rs drives the DAVE flow).
pub fn plain() -> ServerConfig {
    ServerConfig { dave: DavePolicy::Off, ..ServerConfig::default() }
}

/// The runner's defaults with DAVE off.
pub fn no_dave() -> RunnerConfig {
    RunnerConfig { server: plain(), ..RunnerConfig::default() }
}

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct TestClient {
    pub ws: WebSocketStream<Box<dyn Io>>,
    pub frames: Vec<Value>,
    pub close: Option<u16>,
    pub udp: UdpSocket,
    pub ssrc: u32,
    pub server_udp: Option<SocketAddr>,
    pub sealer: Option<Sealer>,
    pub join: Option<JoinInfo>,
}

pub fn tls_config(pem: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

impl TestClient {
    /// Connects to `ws://endpoint/?v=N`, or `wss://` trusting `tls_root`.
    pub async fn connect(endpoint: &str, v: u8, tls_root: Option<&str>) -> TestClient {
        let tcp = timeout(T, TcpStream::connect(endpoint)).await.unwrap().unwrap();
        let (stream, url): (Box<dyn Io>, String) = match tls_root {
            None => (Box::new(tcp), format!("ws://{endpoint}/?v={v}")),
            Some(pem) => {
                let connector = tokio_rustls::TlsConnector::from(tls_config(pem));
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                let tls = timeout(T, connector.connect(name, tcp)).await.unwrap().unwrap();
                (Box::new(tls), format!("wss://{endpoint}/?v={v}"))
            }
        };
        let (ws, _) = timeout(T, tokio_tungstenite::client_async(url, stream)).await.unwrap().unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        TestClient { ws, frames: Vec::new(), close: None, udp, ssrc: 0, server_udp: None, sealer: None, join: None }
    }

    pub async fn send(&mut self, v: Value) {
        self.send_text(v.to_string()).await;
    }

    pub async fn send_text(&mut self, t: String) {
        let _ = timeout(T, self.ws.send(Message::text(t))).await;
    }

    /// The next text frame within `d`; `None` on timeout or close.
    pub async fn next_text(&mut self, d: Duration) -> Option<Value> {
        loop {
            match timeout(d, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    self.frames.push(v.clone());
                    return Some(v);
                }
                Ok(Some(Ok(Message::Close(f)))) => {
                    self.close = Some(f.map_or(1005, |f| u16::from(f.code)));
                    return None;
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) | Ok(None) => {
                    self.close.get_or_insert(1006);
                    return None;
                }
                Err(_) => return None,
            }
        }
    }

    /// Waits for a frame with `op`, keeping the others in `frames`.
    pub async fn wait_op(&mut self, op: i64) -> Value {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_text(left).await {
                Some(v) if v["op"] == op => return v,
                Some(_) => {}
                None => panic!("no op {op} (close {:?}); got {:?}", self.close, self.frames),
            }
        }
    }

    /// Waits for the server to close; the close code.
    pub async fn wait_close(&mut self, d: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + d;
        while self.close.is_none() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            self.next_text(left).await;
        }
        self.close
    }

    /// Identify; returns Ready's `d`.
    pub async fn identify(&mut self, join: &JoinInfo) -> Value {
        self.join = Some(join.clone());
        self.send(json!({"op":0,"d":{"server_id":join.guild_id.to_string(),"user_id":join.user_id.to_string(),
            "session_id":join.session_id,"token":join.token.expose(),"max_dave_protocol_version":0}}))
            .await;
        self.wait_op(8).await;
        let ready = self.wait_op(2).await["d"].clone();
        self.ssrc = ready["ssrc"].as_u64().unwrap() as u32;
        let ip = ready["ip"].as_str().unwrap();
        self.server_udp = Some(format!("{ip}:{}", ready["port"]).parse().unwrap());
        ready
    }

    /// IP discovery (retried), then Select Protocol and Session Description.
    pub async fn establish(&mut self, mode: Mode) {
        let to = self.server_udp.unwrap();
        let mut buf = [0u8; 2048];
        let mut reply = None;
        for _ in 0..5 {
            self.udp.send_to(&discovery::request(self.ssrc), to).await.unwrap();
            if let Ok(Ok((n, _))) = timeout(Duration::from_secs(1), self.udp.recv_from(&mut buf)).await {
                let d = Discovery::parse_response(&buf[..n]).unwrap();
                reply = Some((d.address.to_owned(), d.port));
                break;
            }
        }
        let (address, port) = reply.expect("no IP discovery reply");
        assert_eq!(SocketAddr::from(([127, 0, 0, 1], port)), self.udp.local_addr().unwrap());
        self.send(json!({"op":1,"d":{"protocol":"udp","data":{"address":address,"port":port,"mode":mode.as_str()}}}))
            .await;
        let sd = self.wait_op(4).await["d"].clone();
        assert_eq!(sd["mode"], mode.as_str());
        assert_eq!(sd["dave_protocol_version"], 0);
        let key: Vec<u8> = sd["secret_key"].as_array().unwrap().iter().map(|b| b.as_u64().unwrap() as u8).collect();
        let key = SecretKey::from_slice(&key).unwrap();
        self.sealer = Some(Sealer::new(Cipher::new(mode, &key), 1));
    }

    pub async fn speaking(&mut self) {
        let ssrc = self.ssrc;
        self.send(json!({"op":5,"d":{"speaking":1,"delay":0,"ssrc":ssrc}})).await;
    }

    pub async fn heartbeat(&mut self, nonce: u64) {
        let seq = self.frames.iter().filter_map(|f| f["seq"].as_i64()).max().unwrap_or(-1);
        self.send(json!({"op":3,"d":{"t":nonce,"seq_ack":seq}})).await;
    }

    pub async fn send_rtp(&mut self, seq: u16, ts: u32, opus: &[u8]) {
        let mut p = Vec::new();
        RtpHeader { payload_type: 120, sequence: seq, timestamp: ts, ssrc: self.ssrc, ..RtpHeader::default() }
            .write(opus, &mut p)
            .unwrap();
        self.sealer.as_mut().unwrap().seal(&mut p).unwrap();
        self.udp.send_to(&p, self.server_udp.unwrap()).await.unwrap();
    }

    /// The next RTP packet within `d`, opened with this client's key.
    pub async fn recv_rtp(&mut self, d: Duration) -> Option<(RtpFields, Vec<u8>)> {
        let mut buf = [0u8; 2048];
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (n, _) = timeout(left, self.udp.recv_from(&mut buf)).await.ok()?.ok()?;
            if voice_rtp::classify(&buf[..n]) != voice_rtp::DatagramKind::Rtp {
                continue;
            }
            let opened = self.sealer.as_ref().unwrap().cipher().open(&mut buf[..n]).expect("decrypts under own key");
            return Some((opened.header, opened.payload.to_vec()));
        }
    }

    /// Reads frames already sent (short wait) into `frames`.
    pub async fn pump(&mut self, d: Duration) {
        while self.next_text(d).await.is_some() {}
    }
}
