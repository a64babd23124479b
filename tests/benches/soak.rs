//! Soak: calls that join, play, leave, move, resume and start over for
//! minutes, on voice-tokio against voice-mock over loopback (TLS, DAVE),
//! with memory, file descriptors and the server's tables sampled all along
//! and compared at the end, once every call has left, with the baseline
//! taken after a first round of the same churn. Not part of `cargo test`:
//!
//! ```text
//! scripts/soak                      # 3 minutes, 16 bots
//! cargo bench -p voice-tests --bench soak -- --minutes 1 --bots 8
//! ```
//!
//! Exits non-zero if a step hangs (20 s), or if descriptors, server
//! connections or sessions do not come back to the baseline, or memory
//! grew by more than a quarter.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

#[allow(dead_code)]
#[path = "../tests/loopback/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::{Bot, CHANNEL, GUILD, Mock, Rt, bot, frames};
use voice_driver::{Call, GatewayEvent, VoiceServerUpdate};
use voice_mock::Fault;
use voice_proto::wire::Snowflake;

struct Sample {
    rss_kb: u64,
    fds: usize,
    conns: usize,
    sessions: usize,
    /// Frames the server keeps for inspection (bounded per user: the same
    /// process, so part of the RSS).
    kept: usize,
}

fn sample(server: &Mock, bots: usize) -> Sample {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0);
    let st = server.stats();
    let kept = (0..bots as u64).map(|i| server.received_frames(Snowflake(100 + i)).len()).sum();
    Sample { rss_kb, fds, conns: st.conns, sessions: st.sessions, kept }
}

fn print(label: &str, t: Duration, s: &Sample, calls: usize) {
    println!(
        r#"{{"at":"{label}","secs":{},"calls":{calls},"rss_kb":{},"fds":{},"server_conns":{},"server_sessions":{},"server_frames_kept":{}}}"#,
        t.as_secs(),
        s.rss_kb,
        s.fds,
        s.conns,
        s.sessions,
        s.kept
    );
}

/// One random step of churn, which must finish within 20 s (joins time
/// out at 10 s): one that does not is reported as a hang and fails the run.
async fn churn(rt: &Rt, server: &Mock, bots: &[Bot], calls: &mut [Option<Call>], rng: &mut fastrand::Rng) -> bool {
    let i = rng.usize(..bots.len());
    let action = rng.u8(0..6);
    let state = calls[i].as_ref().map(|c| c.state());
    let step = step(rt, server, bots, calls, i, action);
    if tokio::time::timeout(Duration::from_secs(20), step).await.is_err() {
        eprintln!("HANG: bot {i}, action {action}, call state before: {state:?}");
        return false;
    }
    true
}

async fn step(rt: &Rt, server: &Mock, bots: &[Bot], calls: &mut [Option<Call>], i: usize, action: u8) {
    let mut rng = fastrand::Rng::with_seed(i as u64 ^ u64::from(action));
    let user = Snowflake(100 + i as u64);
    let channel = Snowflake(CHANNEL.0 + rng.u64(0..3));
    match (&calls[i], action) {
        (None, _) | (Some(_), 0) => {
            // Join (or move, when already in): and play a few seconds.
            if let Ok(call) = bots[i].manager.join(GUILD, channel).await {
                let c = call.clone();
                drop(rt.spawn(async move {
                    let _ = c.play(frames(i as u8, 150)).await;
                }));
                calls[i] = Some(call);
            }
        }
        (Some(_), 1) => {
            let _ = bots[i].manager.leave(GUILD).await;
            calls[i] = None;
        }
        (Some(_), 2) => server.inject(Fault::CloseUser { user, code: 4015, after: None }),
        (Some(_), 3) => server.inject(Fault::CloseUser { user, code: 4009, after: None }),
        (Some(_), 4) => {
            // A new endpoint: the same server under another name.
            let endpoint = format!("localhost:{}", server.wss_port());
            if let Some(info) = server.move_client(user, GUILD, None, Some(endpoint)) {
                let update = VoiceServerUpdate { guild_id: GUILD, token: info.token, endpoint: Some(info.endpoint) };
                bots[i].manager.handle_gateway_event(GatewayEvent::VoiceServerUpdate(update)).await;
            }
        }
        (Some(call), _) => {
            // A bot alone in a DAVE call cannot send (its frames wait for a
            // key, as `Call::flush` says): bounded here, as its docs ask.
            let _ = tokio::time::timeout(Duration::from_secs(2), call.play(frames(i as u8, 25))).await;
        }
    }
}

async fn leave_all(bots: &[Bot], calls: &mut [Option<Call>]) {
    for (b, c) in bots.iter().zip(calls.iter_mut()) {
        if c.take().is_some() {
            let _ = b.manager.leave(GUILD).await;
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut minutes, mut bots_n) = (3.0f64, 16usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--minutes" => minutes = args.next().and_then(|v| v.parse().ok()).unwrap_or(minutes),
            "--bots" => bots_n = args.next().and_then(|v| v.parse().ok()).unwrap_or(bots_n),
            "--bench" => {}
            other => {
                eprintln!("unknown argument {other}; use --minutes M --bots N");
                std::process::exit(2);
            }
        }
    }
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let ok = tokio.block_on(async move {
        let rt = Rt::tokio();
        let server = Mock::start_keeping(16).await;
        let bots: Vec<Bot> = (0..bots_n).map(|i| bot(&rt, &server, 100 + i as u64)).collect();
        let mut calls: Vec<Option<Call>> = vec![None; bots_n];
        let mut rng = fastrand::Rng::with_seed(5);
        let start = Instant::now();
        // A first round of the same churn, so that the baseline holds what
        // is allocated once (TLS, DAVE, buffers at their working size).
        let mut hangs = 0;
        for _ in 0..bots_n * 4 {
            hangs += usize::from(!churn(&rt, &server, &bots, &mut calls, &mut rng).await);
        }
        leave_all(&bots, &mut calls).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let base = sample(&server, bots_n);
        print("baseline", start.elapsed(), &base, 0);
        let end = start + Duration::from_secs_f64(minutes * 60.0);
        let mut next_sample = Instant::now() + Duration::from_secs(15);
        let mut steps = 0u64;
        while Instant::now() < end {
            hangs += usize::from(!churn(&rt, &server, &bots, &mut calls, &mut rng).await);
            steps += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            if Instant::now() >= next_sample {
                print("churn", start.elapsed(), &sample(&server, bots_n), calls.iter().flatten().count());
                next_sample += Duration::from_secs(15);
            }
        }
        leave_all(&bots, &mut calls).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let last = sample(&server, bots_n);
        print("end", start.elapsed(), &last, 0);
        let flat = hangs == 0
            && last.fds <= base.fds + 2
            && last.conns <= base.conns
            && last.sessions <= base.sessions
            && last.rss_kb <= base.rss_kb + base.rss_kb / 4;
        println!(
            "{} steps of churn, {hangs} hung; descriptors {} -> {}, RSS {} -> {} kB, server connections {} -> {}, sessions {} -> {}: {}",
            steps,
            base.fds,
            last.fds,
            base.rss_kb,
            last.rss_kb,
            base.conns,
            last.conns,
            base.sessions,
            last.sessions,
            if flat { "flat" } else { "GREW" }
        );
        flat
    });
    std::process::exit(if ok { 0 } else { 1 });
}
