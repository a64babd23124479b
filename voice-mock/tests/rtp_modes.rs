//! Two clients exchange RTP through the runner over loopback, in every mode,
//! over ws (v8 and v4) and wss.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{T, TestClient};
use voice_mock::{RunnerConfig, Server};
use voice_proto::wire::Snowflake;
use voice_rtp::Mode;

async fn legacy_server() -> Server {
    let config = RunnerConfig { server: common::plain().with_legacy_modes(), ..common::no_dave() };
    Server::start(config).await.unwrap()
}

/// A and B join one room; each sends three packets the other must receive
/// re-encrypted under its own key and mode, with ssrc/seq/ts/Opus intact.
async fn exchange(server: &Server, mode_a: Mode, mode_b: Mode, tls: bool, v: u8, channel: u64) {
    let (g, ch) = (Snowflake(1), Snowflake(channel));
    let (ua, ub) = (Snowflake(channel * 10 + 1), Snowflake(channel * 10 + 2));
    let (ja, jb) = if tls {
        (server.join_wss(g, ch, ua), server.join_wss(g, ch, ub))
    } else {
        (server.join(g, ch, ua), server.join(g, ch, ub))
    };
    let root = tls.then(|| server.cert_pem().to_owned());
    let mut a = TestClient::connect(&ja.endpoint, v, root.as_deref()).await;
    let mut b = TestClient::connect(&jb.endpoint, v, root.as_deref()).await;
    a.identify(&ja).await;
    a.establish(mode_a).await;
    b.identify(&jb).await;
    b.establish(mode_b).await;
    a.speaking().await;
    b.speaking().await;
    for i in 0..3u16 {
        let opus = [0xFC, i as u8, 0xAB, 0xCD];
        a.send_rtp(100 + i, 960 * u32::from(i) + 7, &opus).await;
        let (h, payload) = b.recv_rtp(T).await.expect("B receives A's packet");
        assert_eq!((h.ssrc, h.sequence, h.timestamp), (a.ssrc, 100 + i, 960 * u32::from(i) + 7));
        assert_eq!(payload, opus);
        b.send_rtp(500 + i, 48_000 + u32::from(i), &[0xF8, 0xFF, 0xFE]).await;
        let (h, payload) = a.recv_rtp(T).await.expect("A receives B's packet");
        assert_eq!((h.ssrc, h.sequence, h.timestamp), (b.ssrc, 500 + i, 48_000 + u32::from(i)));
        assert_eq!(payload, [0xF8, 0xFF, 0xFE]);
    }
    // B was told A's SSRC (op 5 with user_id), and v4 frames carry no seq.
    b.pump(Duration::from_millis(100)).await;
    let told = b.frames.iter().any(|f| f["op"] == 5 && f["d"]["ssrc"] == a.ssrc && f["d"]["user_id"] == ua.to_string());
    assert!(told, "{:?}", b.frames);
    assert!(b.frames.iter().any(|f| f["op"] == 11));
    for f in &b.frames {
        assert_eq!(f.get("seq").is_some(), v == 8, "{f}");
    }
    let st = server.stats();
    assert_eq!(st.users[&ua].rtp_in, 3);
    assert_eq!(st.users[&ub].rtp_out, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_over_ws() {
    let server = legacy_server().await;
    for (i, mode) in Mode::PREFERENCE.into_iter().enumerate() {
        exchange(&server, mode, mode, false, 8, 100 + i as u64).await;
    }
    // Mixed modes: the server re-encrypts for each receiver.
    exchange(&server, Mode::Aes256GcmRtpSize, Mode::XSalsa20Poly1305, false, 8, 200).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_modes_over_wss_and_v4() {
    let server = Server::start(common::no_dave()).await.unwrap();
    exchange(&server, Mode::Aes256GcmRtpSize, Mode::XChaCha20Poly1305RtpSize, true, 8, 300).await;
    exchange(&server, Mode::XChaCha20Poly1305RtpSize, Mode::Aes256GcmRtpSize, false, 4, 301).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_separate() {
    let server = Server::start(common::no_dave()).await.unwrap();
    let g = Snowflake(1);
    let ja = server.join(g, Snowflake(10), Snowflake(1));
    let jb = server.join(g, Snowflake(11), Snowflake(2));
    let mut a = TestClient::connect(&ja.endpoint, 8, None).await;
    let mut b = TestClient::connect(&jb.endpoint, 8, None).await;
    a.identify(&ja).await;
    a.establish(Mode::Aes256GcmRtpSize).await;
    b.identify(&jb).await;
    b.establish(Mode::Aes256GcmRtpSize).await;
    a.send_rtp(1, 1, &[1]).await;
    assert!(b.recv_rtp(Duration::from_millis(300)).await.is_none());
    server.shutdown().await;
}
