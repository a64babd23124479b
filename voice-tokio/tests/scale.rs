//! Fifty calls in one process against one voice-mock server: two bots, each
//! in 25 guilds through one manager; every packet accounted for.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use voice_proto::wire::Snowflake;

const GUILDS: u64 = 25;
const FRAMES: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_simultaneous_calls_account_for_every_packet() {
    let server = Arc::new(server().await);
    let (a, b) = (bot(&server, 10), bot(&server, 20));
    let mut listeners = Vec::new();
    for g in 0..GUILDS {
        let guild = Snowflake(100 + g);
        let call_b = b.manager.join(guild, CHANNEL).await.expect("listener joins");
        listeners.push((guild, call_b.take_audio().unwrap(), call_b));
    }
    let mut players = Vec::new();
    for g in 0..GUILDS {
        let guild = Snowflake(100 + g);
        let call_a = a.manager.join(guild, CHANNEL).await.expect("player joins");
        let sent = frames(g as u8, FRAMES);
        let to_play = sent.clone();
        let c = call_a.clone();
        players.push((sent, call_a, tokio::spawn(async move { c.play(to_play).await })));
    }
    let mut collectors = Vec::new();
    for (guild, mut audio, call) in listeners {
        collectors.push(tokio::spawn(async move {
            let got = collect(&mut audio, FRAMES, Duration::from_secs(30)).await;
            (guild, got, call)
        }));
    }
    for (i, c) in collectors.into_iter().enumerate() {
        let (guild, got, call_b) = c.await.unwrap();
        let (sent, call_a, play) = &mut players[i];
        play.await.unwrap().unwrap();
        assert_eq!(voice_only(&got), *sent, "guild {guild}: every packet, in order, from its own player only");
        assert!(got.iter().all(|p| p.user_id == Snowflake(10)));
        let sa = call_a.stats().await.unwrap();
        let sb = call_b.stats().await.unwrap();
        assert_eq!(sa.frames_sent, FRAMES as u64);
        assert_eq!(sa.frames_dropped_not_ready + sa.udp_send_errors, 0);
        assert_eq!(sb.audio_dropped + sb.proto.decrypt_failures + sb.proto.unknown_ssrc_drops, 0);
    }
    let s = server.stats();
    assert_eq!(s.sessions, 50);
    assert_eq!(s.junk_datagrams + s.decrypt_failures, 0);
    let forwarded: u64 = s.users.values().map(|u| u.rtp_out).sum();
    let received: u64 = s.users.values().map(|u| u.rtp_in).sum();
    assert_eq!(received, forwarded, "each packet forwarded to exactly one listener");
    assert!(received >= GUILDS * FRAMES as u64);
}
