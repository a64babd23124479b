//! Simulated RTCP and reception statistics: loss and jitter per remote
//! source as RFC 3550 counts them, reports every five seconds that the
//! server opens and answers, and the round trip measured from them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use voice_mock::Fault;
use voice_proto::Mode;
use voice_proto::wire::Snowflake;
use voice_tests::netem::Link;
use voice_tests::sim::Sim;

#[test]
fn loss_jitter_and_round_trip_come_from_rtp_and_rtcp() {
    let mut sim = Sim::call(31);
    // The server drops 5% of what it forwards.
    sim.inject(Fault::UdpLoss { drop: 0.05, reorder: 0.0, delay: Duration::ZERO });
    let now = sim.now;
    sim.clients[0].queue_frames(500, now);
    sim.run_for(Duration::from_secs(12));

    // What the listener heard of the player, counted from the packets.
    let b = &sim.clients[1];
    let heard: Vec<u16> = b.received.iter().filter(|r| r.user == Snowflake(111)).map(|r| r.sequence).collect();
    assert!(heard.len() > 400, "{}", heard.len());
    let first = heard[0];
    let span = u64::from(heard.last().unwrap().wrapping_sub(first)) + 1;
    let source = b.conn.sources().find(|s| s.user_id == Snowflake(111)).expect("the player as a source");
    assert_eq!(source.received, heard.len() as u64);
    assert_eq!(source.lost, span as i64 - heard.len() as i64, "lost = expected - received");
    let dropped = sim.server.stats().users[&Snowflake(222)].rtp_out_dropped as i64;
    assert!(source.lost > 0 && source.lost <= dropped, "{} lost, {dropped} dropped", source.lost);
    assert!(source.jitter < Duration::from_millis(1), "steady links: {:?}", source.jitter);

    // Reports: the player sent sender reports, the server opened every one
    // and echoed them; the round trip is the two 10 ms link latencies.
    let a = &sim.clients[0];
    let rtcp = &a.conn.stats().rtcp;
    assert!(rtcp.reports_sent >= 2, "{rtcp:?}");
    let server = sim.server.stats();
    assert_eq!(server.users[&Snowflake(111)].rtcp_reports, rtcp.reports_sent);
    assert_eq!(server.rtcp_decrypt_failures + server.rtcp_malformed, 0);
    let remote = rtcp.remote.expect("the server's block about our stream");
    let rtt = remote.rtt.expect("a round trip from the echoed sender report");
    assert!(rtt >= Duration::from_millis(19) && rtt <= Duration::from_millis(21), "{rtt:?}");
    // The listener sent receiver reports and read the server's sender
    // report for the player.
    let rtcp = &b.conn.stats().rtcp;
    assert!(rtcp.reports_sent >= 2 && rtcp.sender_reports_read >= 1, "{rtcp:?}");
    assert_eq!(server.users[&Snowflake(222)].rtcp_reports, rtcp.reports_sent);
    assert_eq!(a.conn.stats().decrypt_failures + b.conn.stats().decrypt_failures, 0);
}

#[test]
fn a_jittery_link_shows_as_jitter_and_no_reports_go_out_when_disabled() {
    let mut sim = Sim::default_server(32);
    for user in [111, 222] {
        let i = sim.add_client(user, |c| c.rtcp_interval = None);
        sim.connect(i, voice_tests::sim::CHANNEL);
    }
    assert!(sim.run_until_sendable(&[0, 1], Duration::from_secs(10)));
    sim.down.link = Link { latency: Duration::from_millis(10), jitter: Duration::from_millis(30), loss: 0.0 };
    let now = sim.now;
    sim.clients[0].queue_frames(300, now);
    sim.run_for(Duration::from_secs(8));
    let source = sim.clients[1].conn.sources().find(|s| s.user_id == Snowflake(111)).unwrap();
    // Uniform 0-30 ms extra delay: mean |D| is 10 ms, and J settles near it.
    assert!(
        source.jitter > Duration::from_millis(4) && source.jitter < Duration::from_millis(20),
        "{:?}",
        source.jitter
    );
    for c in &sim.clients {
        assert_eq!(c.conn.stats().rtcp.reports_sent, 0);
    }
    assert_eq!(sim.server.stats().rtcp_in, 0);
}

#[test]
fn reports_go_both_ways_in_every_mode_but_the_header_nonce_one() {
    for mode in Mode::PREFERENCE {
        let config = voice_mock::ServerConfig { modes: vec![mode], ..Default::default() };
        let mut sim = Sim::new(config, 33);
        for user in [111, 222] {
            let i = sim.add_client(user, |c| c.modes = vec![mode]);
            sim.connect(i, voice_tests::sim::CHANNEL);
        }
        assert!(sim.run_until_sendable(&[0, 1], Duration::from_secs(10)), "{mode}");
        let now = sim.now;
        sim.clients[0].queue_frames(300, now);
        sim.run_for(Duration::from_secs(7));
        let server = sim.server.stats();
        assert_eq!(server.rtcp_decrypt_failures + server.rtcp_malformed, 0, "{mode}");
        for (i, user) in [(0, 111), (1, 222)] {
            let c = &sim.clients[i].conn;
            let rtcp = &c.stats().rtcp;
            assert_eq!(rtcp.malformed, 0, "{mode}");
            if mode == Mode::XSalsa20Poly1305 {
                // Its nonce is the clear header, which reports repeat.
                assert_eq!((rtcp.reports_sent, server.rtcp_in), (0, 0), "{mode}");
                continue;
            }
            assert!(rtcp.reports_sent >= 1, "{mode}: {rtcp:?}");
            assert_eq!(server.users[&Snowflake(user)].rtcp_reports, rtcp.reports_sent, "{mode}");
            assert!(rtcp.receiver_reports_read >= 1, "{mode}: {rtcp:?}");
        }
        let rtt = sim.clients[0].conn.stats().rtcp.remote.and_then(|r| r.rtt);
        assert_eq!(rtt.is_some(), mode != Mode::XSalsa20Poly1305, "{mode}");
    }
}
