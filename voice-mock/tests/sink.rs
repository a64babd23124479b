//! Sink mode: RTP of a client alone in its room is verified, counted and
//! dropped in the UDP receiver; RTP with a listener is counted and
//! forwarded; routes follow room membership.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{T, TestClient};
use voice_mock::{RunnerConfig, Server, SinkStats};
use voice_proto::wire::Snowflake;
use voice_rtp::{Mode, RtpHeader};

const GUILD: Snowflake = Snowflake(1);
const OPUS: [u8; 160] = [0xFC; 160];
/// RTP header, payload, AES-GCM tag and 4-byte nonce.
const PACKET_LEN: u64 = 12 + 160 + 16 + 4;

fn sink_config() -> RunnerConfig {
    RunnerConfig { sink: true, udp_recv_buffer: 1 << 20, ..common::no_dave() }
}

async fn established(server: &Server, channel: u64, user: u64) -> TestClient {
    let join = server.join(GUILD, Snowflake(channel), Snowflake(user));
    let mut c = TestClient::connect(&join.endpoint, 8, None).await;
    c.identify(&join).await;
    c.establish(Mode::Aes256GcmRtpSize).await;
    c
}

/// A sealed packet of `c`'s with `ssrc`, one ciphertext byte flipped if `corrupt`.
async fn send_raw(c: &mut TestClient, ssrc: u32, seq: u16, corrupt: bool) {
    let mut p = Vec::new();
    RtpHeader { payload_type: 120, sequence: seq, timestamp: 960 * u32::from(seq), ssrc, ..RtpHeader::default() }
        .write(&OPUS, &mut p)
        .unwrap();
    c.sealer.as_mut().unwrap().seal(&mut p).unwrap();
    if corrupt {
        p[40] ^= 1;
    }
    c.udp.send_to(&p, c.server_udp.unwrap()).await.unwrap();
}

/// Polls the sink until `done` holds (bounded by `T`).
async fn sink_until(server: &Server, done: impl Fn(&SinkStats) -> bool) -> SinkStats {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let s = server.sink_stats().expect("sink mode");
        if done(&s) || tokio::time::Instant::now() >= deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_counts_verifies_and_measures_gaps() {
    let server = Server::start(sink_config()).await.unwrap();
    let mut a = established(&server, 10, 1).await;
    let mut b = established(&server, 20, 2).await;
    let mut c = established(&server, 20, 3).await;
    server.take_sink_stats().unwrap();

    for seq in 0..20u16 {
        a.send_rtp(seq, 960 * u32::from(seq), &OPUS).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ssrc = a.ssrc;
    send_raw(&mut a, ssrc, 20, true).await;
    send_raw(&mut a, ssrc ^ 0x5555_5555, 0, false).await;
    for seq in 0..5u16 {
        b.send_rtp(seq, 960 * u32::from(seq), &OPUS).await;
    }
    for seq in 0..5u16 {
        let (h, payload) = c.recv_rtp(T).await.expect("forwarded to the listener");
        assert_eq!((h.ssrc, h.sequence, payload.as_slice()), (b.ssrc, seq, &OPUS[..]));
    }

    let s =
        sink_until(&server, |s| s.total.packets >= 25 && s.total.decrypt_failures >= 1 && s.unknown_ssrc >= 1).await;
    let sa = &s.ssrcs[&a.ssrc];
    assert_eq!((sa.packets, sa.bytes, sa.forwarded, sa.decrypt_failures), (20, 20 * PACKET_LEN, 0, 1));
    // Sequence numbers 0..20 opened; the corrupt 20 does not count.
    assert_eq!((sa.expected, sa.lost()), (20, 0));
    assert_eq!(sa.gaps.count(), 19);
    let p50 = sa.gaps.quantile(0.5).unwrap();
    assert!(p50 >= Duration::from_millis(8) && p50 <= Duration::from_millis(100), "p50 {p50:?}");
    assert!(sa.gaps.max().unwrap() >= p50);
    let sb = &s.ssrcs[&b.ssrc];
    assert_eq!((sb.packets, sb.forwarded, sb.decrypt_failures), (5, 5, 0));
    assert_eq!(s.ssrcs[&c.ssrc].packets, 0);
    assert_eq!((s.total.packets, s.total.forwarded, s.unknown_ssrc), (25, 5, 1));
    assert_eq!(s.total.gaps.count(), 19 + 4);

    // The core saw only what it forwarded.
    let core = server.stats();
    assert_eq!(core.users[&Snowflake(1)].rtp_in, 0);
    assert_eq!(core.users[&Snowflake(2)].rtp_in, 5);
    assert_eq!(core.users[&Snowflake(3)].rtp_out, 5);
    assert_eq!((core.decrypt_failures, core.junk_datagrams), (0, 0));

    // A new window starts from zero; the first gap runs from the last packet.
    let taken = server.take_sink_stats().unwrap();
    assert_eq!(taken.total.packets, 25);
    assert_eq!(server.sink_stats().unwrap().total, Default::default());
    a.send_rtp(22, 960 * 22, &OPUS).await;
    let s = sink_until(&server, |s| s.total.packets >= 1).await;
    assert_eq!((s.total.packets, s.total.gaps.count()), (1, 1));
    // 20 and 21 never arrived (20 did, corrupt): two lost.
    assert_eq!((s.total.expected, s.total.lost()), (3, 2));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_follow_room_membership() {
    let server = Server::start(sink_config()).await.unwrap();
    let mut a = established(&server, 10, 1).await;
    a.send_rtp(0, 0, &OPUS).await;
    let s = sink_until(&server, |s| s.total.packets >= 1).await;
    assert_eq!((s.total.packets, s.total.forwarded), (1, 0), "alone: sunk");

    // A listener joins: A's packets are forwarded to it.
    let mut d = established(&server, 10, 4).await;
    a.send_rtp(1, 960, &OPUS).await;
    let (h, _) = d.recv_rtp(T).await.expect("forwarded once someone listens");
    assert_eq!((h.ssrc, h.sequence), (a.ssrc, 1));
    let s = sink_until(&server, |s| s.total.forwarded >= 1).await;
    assert_eq!(s.ssrcs[&a.ssrc].forwarded, 1);

    // The listener leaves: sunk again (once the driver has applied the route).
    server.leave(GUILD, Snowflake(4));
    let mut sunk = false;
    for seq in 2..200u16 {
        let before = server.sink_stats().unwrap().total;
        a.send_rtp(seq, 960 * u32::from(seq), &OPUS).await;
        let s = sink_until(&server, |s| s.total.packets > before.packets).await;
        assert_eq!(s.total.packets, before.packets + 1);
        if s.total.forwarded == before.forwarded {
            sunk = true;
            break;
        }
    }
    assert!(sunk, "a session left alone is sunk again");
    assert!(!server.sink_stats().unwrap().ssrcs.contains_key(&d.ssrc), "an ended session leaves the table");

    // A session that ends keeps its counts in the window's total.
    let before = server.sink_stats().unwrap().total.packets;
    server.leave(GUILD, Snowflake(1));
    let s = sink_until(&server, |s| s.ssrcs.is_empty()).await;
    assert!(s.ssrcs.is_empty());
    assert_eq!(s.total.packets, before);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_sink_mode_the_core_sees_everything() {
    let server = Server::start(common::no_dave()).await.unwrap();
    assert!(server.sink_stats().is_none());
    let mut a = established(&server, 10, 1).await;
    for seq in 0..3u16 {
        a.send_rtp(seq, 960 * u32::from(seq), &OPUS).await;
    }
    let deadline = tokio::time::Instant::now() + T;
    while server.stats().users[&Snowflake(1)].rtp_in < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.stats().users[&Snowflake(1)].rtp_in, 3);
    server.shutdown().await;
}
