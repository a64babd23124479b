//! Every fault knob through the runner, over loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{T, TestClient};
use serde_json::json;
use voice_mock::{Fault, RunnerConfig, Server, ServerConfig};
use voice_proto::wire::Snowflake;
use voice_rtp::Mode;

const G: Snowflake = Snowflake(1);
const CH: Snowflake = Snowflake(2);

async fn ready_client(server: &Server, user: u64) -> TestClient {
    let join = server.join(G, CH, Snowflake(user));
    let mut c = TestClient::connect(&join.endpoint, 8, None).await;
    c.identify(&join).await;
    c.establish(Mode::Aes256GcmRtpSize).await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_now_and_after() {
    let server = Server::start(common::no_dave()).await.unwrap();
    let mut a = ready_client(&server, 1).await;
    server.inject(Fault::CloseUser { user: Snowflake(1), code: 4015, after: None });
    assert_eq!(a.wait_close(T).await, Some(4015));

    let mut b = ready_client(&server, 2).await;
    let start = Instant::now();
    server.inject(Fault::CloseUser { user: Snowflake(2), code: 4022, after: Some(Duration::from_millis(400)) });
    assert_eq!(b.wait_close(T).await, Some(4022));
    assert!(start.elapsed() >= Duration::from_millis(350), "{:?}", start.elapsed());
    assert_eq!(server.stats().users[&Snowflake(2)].closes_sent, vec![4022]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_each_from_command_line_spec() {
    let faults = Fault::parse_specs(&["close:4014:0.3"]).unwrap();
    let server = Server::start(RunnerConfig { faults, ..common::no_dave() }).await.unwrap();
    let mut a = ready_client(&server, 1).await;
    assert_eq!(a.wait_close(T).await, Some(4014));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_heartbeat_ack_and_heartbeat_timeout() {
    let config =
        RunnerConfig { server: ServerConfig { heartbeat_interval_ms: 400.0, ..common::plain() }, ..common::no_dave() };
    let server = Server::start(config).await.unwrap();
    let mut a = ready_client(&server, 1).await;
    a.heartbeat(11).await;
    assert_eq!(a.wait_op(6).await["d"]["t"], 11);
    server.inject(Fault::StopHeartbeatAcks { user: Some(Snowflake(1)) });
    a.heartbeat(12).await;
    a.pump(Duration::from_millis(250)).await;
    assert!(!a.frames.iter().any(|f| f["op"] == 6 && f["d"]["t"] == 12));
    assert_eq!(server.stats().users[&Snowflake(1)].heartbeat_acks_withheld, 1);
    // No heartbeat for 1.5 intervals (600 ms): 4009.
    assert_eq!(a.wait_close(T).await, Some(4009));
    server.shutdown().await;
}

async fn count_received(b: &mut TestClient, n: usize) -> Vec<u16> {
    let mut seqs = Vec::new();
    while seqs.len() < n {
        match b.recv_rtp(Duration::from_millis(500)).await {
            Some((h, _)) => seqs.push(h.sequence),
            None => break,
        }
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_drop_reorder_delay() {
    let config = RunnerConfig { server: ServerConfig { seed: 9, ..common::plain() }, ..common::no_dave() };
    let server = Server::start(config).await.unwrap();
    let mut a = ready_client(&server, 1).await;
    let mut b = ready_client(&server, 2).await;

    // Drop 30 %.
    server.inject(Fault::UdpLoss { drop: 0.3, reorder: 0.0, delay: Duration::ZERO });
    for i in 0..200u16 {
        a.send_rtp(i, u32::from(i) * 960, &[1]).await;
        if i % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let got = count_received(&mut b, 200).await;
    let st = server.stats();
    assert_eq!(st.users[&Snowflake(1)].rtp_in, 200);
    assert_eq!(got.len() as u64 + st.udp_fault_dropped, 200);
    assert!((30..90).contains(&st.udp_fault_dropped), "{}", st.udp_fault_dropped);

    // Reorder 50 %: everything arrives, not in order.
    server.inject(Fault::UdpLoss { drop: 0.0, reorder: 0.5, delay: Duration::ZERO });
    for i in 1000..1100u16 {
        a.send_rtp(i, 0, &[2]).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let got = count_received(&mut b, 100).await;
    assert_eq!(got.len(), 100);
    assert!(got.windows(2).any(|w| w[1] < w[0]), "{got:?}");
    assert!(server.stats().udp_fault_reordered > 10);

    // Delay 150 ms.
    server.inject(Fault::UdpLoss { drop: 0.0, reorder: 0.0, delay: Duration::from_millis(150) });
    let start = Instant::now();
    a.send_rtp(2000, 0, &[3]).await;
    assert!(b.recv_rtp(Duration::from_millis(100)).await.is_none());
    let (h, _) = b.recv_rtp(T).await.unwrap();
    assert_eq!(h.sequence, 2000);
    assert!(start.elapsed() >= Duration::from_millis(140));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_client_closes_4014_and_new_token_works() {
    let server = Server::start(common::no_dave()).await.unwrap();
    let mut a = ready_client(&server, 1).await;
    let old = a.join.clone().unwrap();
    let moved = server.move_client(Snowflake(1), G, Some(Snowflake(3)), None).unwrap();
    assert_ne!(moved.token, old.token);
    assert_eq!(moved.endpoint, old.endpoint);
    assert_eq!(a.wait_close(T).await, Some(4014));
    let mut a2 = TestClient::connect(&moved.endpoint, 8, None).await;
    a2.identify(&moved).await;
    a2.establish(Mode::XChaCha20Poly1305RtpSize).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_works_then_refused_with_4006() {
    let server = Server::start(common::no_dave()).await.unwrap();
    let a = ready_client(&server, 1).await;
    let join = a.join.clone().unwrap();
    let resume = |seq_ack: i64| json!({"op":7,"d":{"server_id":"1","session_id":join.session_id,"token":join.token.expose(),"seq_ack":seq_ack}});
    drop(a.ws);
    let mut r = TestClient::connect(&join.endpoint, 8, None).await;
    r.send(resume(3)).await;
    r.wait_op(8).await;
    r.wait_op(9).await;
    server.inject(Fault::RefuseResumes(true));
    drop(r.ws);
    let mut r2 = TestClient::connect(&join.endpoint, 8, None).await;
    r2.send(resume(5)).await;
    assert_eq!(r2.wait_close(T).await, Some(4006));
    server.shutdown().await;
}

/// The runner reads tokio's clock: with paused time a 13.75 s heartbeat
/// interval times out (4009) without a real wait.
#[tokio::test(start_paused = true)]
async fn paused_time_heartbeat_timeout() {
    let server = Server::start(RunnerConfig { tls: false, ..common::no_dave() }).await.unwrap();
    let join = server.join(G, CH, Snowflake(1));
    let mut c = TestClient::connect(&join.endpoint, 8, None).await;
    c.identify(&join).await;
    let start = tokio::time::Instant::now();
    assert_eq!(c.wait_close(Duration::from_secs(60)).await, Some(4009));
    assert!(start.elapsed() >= Duration::from_millis(20_000), "{:?}", start.elapsed());
    server.shutdown().await;
}
