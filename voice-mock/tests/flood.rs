//! Bad clients: junk datagrams, malformed frames, a client that never
//! reads. The server stays up, bounded, and serves a good client after.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{T, TestClient};
use futures_util::SinkExt;
use serde_json::json;
use tokio::net::{TcpSocket, UdpSocket};
use tokio_tungstenite::tungstenite::Message;
use voice_mock::{RunnerConfig, Server};
use voice_proto::wire::Snowflake;
use voice_rtp::Mode;

/// Two clients with sessions in `channel` (users `channel * 10 + 1` and
/// `+ 2`), the second in `mode_b`.
async fn good_pair(server: &Server, channel: u64, mode_b: Mode) -> (TestClient, TestClient) {
    let (g, ch) = (Snowflake(1), Snowflake(channel));
    let ja = server.join(g, ch, Snowflake(channel * 10 + 1));
    let jb = server.join(g, ch, Snowflake(channel * 10 + 2));
    let mut a = TestClient::connect(&ja.endpoint, 8, None).await;
    let mut b = TestClient::connect(&jb.endpoint, 8, None).await;
    a.identify(&ja).await;
    a.establish(Mode::Aes256GcmRtpSize).await;
    b.identify(&jb).await;
    b.establish(mode_b).await;
    (a, b)
}

async fn good_pair_exchange(server: &Server, channel: u64) {
    let (mut a, mut b) = good_pair(server, channel, Mode::XChaCha20Poly1305RtpSize).await;
    a.send_rtp(1, 960, &[9, 9]).await;
    let (h, p) = b.recv_rtp(T).await.expect("still forwarding");
    assert_eq!((h.ssrc, h.sequence, p.as_slice()), (a.ssrc, 1, &[9u8, 9][..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_datagrams_and_malformed_frames() {
    let server = Server::start(common::no_dave()).await.unwrap();
    let to = format!("127.0.0.1:{}", server.udp_port());
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut rng = fastrand::Rng::with_seed(1);
    for i in 0..20_000u32 {
        let mut d = vec![0u8; rng.usize(1..300)];
        rng.fill(&mut d);
        match i % 4 {
            0 => d = voice_rtp::discovery::request(rng.u32(..)).to_vec(),
            1 if d.len() > 12 => (d[0], d[1]) = (0x80, 0x78),
            2 => d = vec![0x55; 3000],
            _ => {}
        }
        let _ = sock.send_to(&d, &to).await;
        if i % 1000 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // Nothing answers junk (no reflection).
    let mut buf = [0u8; 100];
    assert!(tokio::time::timeout(Duration::from_millis(200), sock.recv_from(&mut buf)).await.is_err());

    // 2000 malformed frames over 200 connections.
    let bad: Vec<Message> = vec![
        Message::text("{"),
        Message::text("[]"),
        Message::text(r#"{"op":"x"}"#),
        Message::text(r#"{"op":1,"d":{"protocol":"udp"}}"#),
        Message::text(r#"{"op":13,"d":{"user_id":"1"}}"#),
        Message::binary(vec![0xFF; 10]),
        Message::binary(Vec::new()),
        Message::text(r#"{"op":0,"d":{"server_id":"1","user_id":"x","session_id":1,"token":2}}"#),
        Message::text("x".repeat(100_000)),
        Message::text(r#"{"op":3,"d":{"t":"nope"}}"#),
    ];
    let endpoint = server.ws_endpoint();
    for round in 0..200 {
        let mut c = TestClient::connect(&endpoint, 8, None).await;
        for k in 0..10 {
            let m = bad[(round + k) % bad.len()].clone();
            let _ = tokio::time::timeout(Duration::from_millis(200), c.ws.send(m)).await;
        }
        let code = c.wait_close(T).await;
        assert!(matches!(code, Some(4001..=4020 | 1006 | 1009)), "round {round}: {code:?}");
    }
    let st = server.stats();
    assert!(st.datagrams_in + server.runner_stats().datagrams_dropped > 1000);
    assert!(st.junk_datagrams > 1000, "{st:?}");
    assert!(st.malformed_frames > 50);
    assert_eq!(st.sessions, 0);
    assert!(st.pending_outputs_peak < 1000);
    good_pair_exchange(&server, 50).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_off() {
    let config = RunnerConfig { conn_queue: 32, write_timeout: Duration::from_millis(500), ..common::no_dave() };
    let server = Server::start(config).await.unwrap();
    // The sleeper: identifies, then never reads again (tiny receive buffer).
    let join = server.join(Snowflake(1), Snowflake(2), Snowflake(7));
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(2048).unwrap();
    let tcp = sock.connect(join.endpoint.parse().unwrap()).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{}/?v=8", join.endpoint), tcp).await.unwrap();
    let identify =
        json!({"op":0,"d":{"server_id":"1","user_id":"7","session_id":join.session_id,"token":join.token.expose()}});
    ws.send(Message::text(identify.to_string())).await.unwrap();

    // A talker in the same room: every op 5 it sends is relayed to the sleeper.
    let jt = server.join(Snowflake(1), Snowflake(2), Snowflake(8));
    let mut talker = TestClient::connect(&jt.endpoint, 8, None).await;
    talker.identify(&jt).await;
    let frame = json!({"op":5,"d":{"speaking":1,"delay":0,"ssrc":talker.ssrc}}).to_string();
    for _ in 0..20_000 {
        if tokio::time::timeout(T, talker.ws.send(Message::text(frame.clone()))).await.is_err() {
            break;
        }
    }
    // The sleeper loses its socket; queues stayed bounded.
    let mut cut = false;
    for _ in 0..50 {
        let r = server.runner_stats();
        if r.ws_queue_full + r.slow_clients_closed > 0 {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = server.runner_stats();
    assert!(cut, "{r:?}");
    assert!(r.conn_queue_peak <= 32, "{r:?}");
    assert!(server.stats().resume_buffer_max <= 256);
    good_pair_exchange(&server, 60).await;
    drop(ws);
    server.shutdown().await;
}

/// Silent sessions to open: two thousand, or fewer if this process may not
/// open the two descriptors each needs (client and server side, here in
/// one process) beside the rest of the test's.
fn silent_sessions() -> u64 {
    // Linux's view of the soft limit; elsewhere assume the common 1024.
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            let line = l.lines().find(|l| l.starts_with("Max open files"))?.to_owned();
            line.split_whitespace().nth(3)?.parse::<u64>().ok()
        })
        .unwrap_or(1024);
    (soft.saturating_sub(1000) / 2).clamp(100, 2000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_silent_sessions_and_spoofed_voice_leave_others_their_audio() {
    use tokio::io::AsyncWriteExt;
    // Room for thousands of sessions: the server's own limits are another
    // test's; this one shows that thousands within them cost the others
    // nothing.
    let mut config = RunnerConfig { tls: true, ..common::no_dave() };
    config.server.limits.max_sessions = 4096;
    config.server.limits.max_conns = 8192;
    let limits = config.server.limits.clone();
    let server = Server::start(config).await.unwrap();
    let (ws, wss) = (server.ws_endpoint(), server.wss_endpoint());
    // 150 sockets each on the plain and the TLS port that start a handshake
    // (half an HTTP request; half a TLS record) and stall.
    let mut stalled = Vec::new();
    for _ in 0..150 {
        let mut a = tokio::net::TcpStream::connect(&ws).await.unwrap();
        a.write_all(b"GET /?v=8 HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let mut b = tokio::net::TcpStream::connect(&wss).await.unwrap();
        b.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await.unwrap();
        stalled.extend([a, b]);
    }
    // Thousands of sessions that identify and never select a protocol.
    let silent_count = silent_sessions();
    println!("{silent_count} silent sessions");
    let mut silent = Vec::new();
    for user in 0..silent_count {
        let join = server.join(Snowflake(1), Snowflake(3), Snowflake(1000 + user));
        let (mut c, _) = tokio_tungstenite::connect_async(format!("ws://{}/?v=8", join.endpoint)).await.unwrap();
        let identify = json!({"op":0,"d":{"server_id":"1","user_id":(1000 + user).to_string(),
            "session_id":join.session_id,"token":join.token.expose()}});
        c.send(Message::text(identify.to_string())).await.unwrap();
        silent.push(c);
    }
    // An honest pair in another channel, while all that is open.
    good_pair_exchange(&server, 70).await;
    // Voice carrying an honest client's SSRC from an address that never did
    // IP discovery: not forwarded, counted.
    let (mut a, mut b) = good_pair(&server, 80, Mode::Aes256GcmRtpSize).await;
    let spoofer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = format!("127.0.0.1:{}", server.udp_port());
    let before = server.stats();
    for seq in 0..200u16 {
        let mut d = vec![0x80, 0x78];
        d.extend_from_slice(&seq.to_be_bytes());
        d.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
        d.extend_from_slice(&a.ssrc.to_be_bytes());
        d.extend_from_slice(&[0xAB; 40]);
        spoofer.send_to(&d, &to).await.unwrap();
    }
    a.send_rtp(1, 960, &[7, 7]).await;
    let (h, p) = b.recv_rtp(T).await.expect("the honest packet arrives");
    assert_eq!((h.ssrc, p.as_slice()), (a.ssrc, &[7u8, 7][..]), "and only it: nothing spoofed came first");
    let after = server.stats();
    assert_eq!(after.rtp_forwarded - before.rtp_forwarded, 1, "{after:?}");
    assert!(after.decrypt_failures + after.junk_datagrams >= before.decrypt_failures + before.junk_datagrams + 150);
    // The server's tables hold what is open, within its limits.
    let st = server.stats();
    assert!(st.conns <= limits.max_conns, "{} conns", st.conns);
    assert!(st.sessions >= silent_count as usize && st.sessions <= limits.max_sessions, "{} sessions", st.sessions);
    drop((stalled, silent));
    server.shutdown().await;
}
