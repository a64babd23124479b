//! Simulated network trouble: IP discovery loss, lossy and reordering links.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use voice_mock::Fault;
use voice_proto::{DisconnectReason, Event, ReconnectReason, State};
use voice_rtp::{DatagramKind, classify};
use voice_tests::netem::Link;
use voice_tests::sim::{CHANNEL, Sim};

fn discovery_requests(sim: &Sim, i: usize) -> usize {
    sim.clients[i].datagrams.iter().filter(|(_, d)| classify(d) == DatagramKind::DiscoveryRequest).count()
}

#[test]
fn lost_ip_discovery_is_retried_until_it_succeeds() {
    let mut sim = Sim::default_server(20);
    sim.add_client(111, |_| {});
    sim.join(0, CHANNEL);
    // Before Ready arrives, arrange to drop the client's next two datagrams:
    // the first discovery request and the keepalive sent beside it.
    let ok = sim.run_until(Duration::from_secs(2), |s| s.clients[0].conn.state() == State::Identifying);
    assert!(ok);
    assert_eq!(sim.clients[0].datagrams.len(), 0);
    sim.up.drop_next = 2;
    let ok = sim.run_until(Duration::from_secs(10), |s| s.clients[0].conn.state() == State::Connected);
    assert!(ok, "{:?}", sim.clients[0].events);
    assert_eq!(discovery_requests(&sim, 0), 2, "one retry after a second");
    assert!(!sim.clients[0].saw(|e| matches!(e, Event::Reconnecting { .. })));
}

#[test]
fn ip_discovery_gives_up_with_a_typed_timeout() {
    let mut sim = Sim::default_server(21);
    sim.add_client(111, |c| c.max_reconnect_attempts = 2);
    sim.up.link.loss = 1.0;
    sim.join(0, CHANNEL);
    sim.run_for(Duration::from_secs(30));
    let a = &sim.clients[0];
    assert!(a.saw(|e| *e == Event::Reconnecting { reason: ReconnectReason::DiscoveryTimeout }));
    // Five requests per connection attempt: the first attempt and two retries.
    assert_eq!(discovery_requests(&sim, 0), 15);
    assert_eq!(a.events_matching(|e| matches!(e, Event::Reconnecting { .. })).len(), 2);
    assert!(a.saw(|e| *e == Event::Disconnected { reason: DisconnectReason::ReconnectFailed }));
    assert_eq!(a.conn.state(), State::Disconnected);
}

#[test]
fn receive_under_five_percent_loss_and_reordering() {
    let mut sim = Sim::default_server(22);
    sim.add_client(111, |_| {});
    sim.add_client(222, |_| {});
    sim.connect(0, CHANNEL);
    sim.connect(1, CHANNEL);
    // Server-side impairment of forwarded media, plus a jittery downlink.
    sim.inject(Fault::UdpLoss { drop: 0.05, reorder: 0.1, delay: Duration::ZERO });
    sim.down.link = Link { latency: Duration::from_millis(10), jitter: Duration::from_millis(35), loss: 0.0 };
    let now = sim.now;
    sim.clients[0].queue_frames(1000, now);
    let sent: Vec<Vec<u8>> = sim.clients[0].audio.iter().cloned().collect();
    sim.run_for(Duration::from_secs(25));

    let b = &sim.clients[1];
    let srv = sim.server.stats();
    let user_b = &srv.users[&voice_proto::wire::Snowflake(222)];
    let got = b.received.len() as u64;
    // Every packet is accounted for: delivered or dropped by the fault.
    assert_eq!(got + user_b.rtp_out_dropped, 1005, "1000 frames + 5 silence");
    let loss = user_b.rtp_out_dropped as f64 / 1005.0;
    assert!((0.025..0.08).contains(&loss), "loss {loss}");
    // Reordered, yet each packet is intact and unique.
    let reordered = b.received.windows(2).filter(|w| voice_rtp::rtp::seq_newer(w[0].sequence, w[1].sequence)).count();
    assert!(reordered > 10, "reordered {reordered}");
    let seqs: BTreeSet<u16> = b.received.iter().map(|r| r.sequence).collect();
    assert_eq!(seqs.len() as u64, got, "no duplicates");
    let sent_set: BTreeSet<&Vec<u8>> = sent.iter().collect();
    for r in &b.received {
        assert!(r.opus == [0xF8, 0xFF, 0xFE] || sent_set.contains(&r.opus), "payload corrupted");
    }
    assert_eq!(b.conn.stats().decrypt_failures, 0);
    assert_eq!(b.conn.state(), State::Connected);
}

#[test]
fn voice_that_outruns_its_op5_is_kept_until_the_ssrc_is_named() {
    let mut sim = Sim::call(23);
    // The listener's websocket is slow: op 5 naming the player's SSRC
    // arrives 200 ms after the player's first packets.
    sim.clients[1].ws_delay = Duration::from_millis(200);
    let now = sim.now;
    sim.clients[0].queue_frames(100, now);
    let sent: Vec<Vec<u8>> = sim.clients[0].audio.iter().cloned().collect();
    sim.run_for(Duration::from_secs(4));
    let b = &sim.clients[1];
    let heard: Vec<Vec<u8>> =
        b.received.iter().filter(|r| r.user == voice_proto::wire::Snowflake(111)).map(|r| r.opus.clone()).collect();
    assert_eq!(&heard[..100], &sent[..], "every packet, in order, none lost to the race");
    let stats = b.conn.stats();
    assert!(stats.unknown_ssrc_held >= 5, "{}", stats.unknown_ssrc_held);
    assert_eq!(stats.unknown_ssrc_drops, 0);
}

#[test]
fn voice_from_an_ssrc_never_named_is_bounded_and_dropped() {
    let mut sim = Sim::call(24);
    // Op 5 two seconds late: more than the kept few, older than a second.
    sim.clients[1].ws_delay = Duration::from_secs(2);
    let now = sim.now;
    sim.clients[0].queue_frames(200, now);
    sim.run_for(Duration::from_secs(6));
    let b = &sim.clients[1];
    let stats = b.conn.stats();
    assert!(stats.unknown_ssrc_held > 16, "{}", stats.unknown_ssrc_held);
    assert!(stats.unknown_ssrc_drops > 0 && stats.unknown_ssrc_drops <= stats.unknown_ssrc_held);
    let heard = b.received.iter().filter(|r| r.user == voice_proto::wire::Snowflake(111)).count() as u64;
    // Whatever was not dropped was delivered once the SSRC was named.
    assert!(heard > 0);
    assert_eq!(heard + stats.unknown_ssrc_drops, 200 + 5, "the 200 frames and the silence trailer");
}
