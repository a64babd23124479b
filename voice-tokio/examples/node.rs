//! A driver-only audio node: voice credentials in (one JSON object per
//! line), a call per line playing an Ogg Opus file in a loop from the
//! driver itself (no task per call), and every call's stats out as JSON
//! lines. No main gateway: the bot framework that owns it sends op 4 and
//! forwards what Discord answered.
//!
//! ```text
//! # Offline: N calls on an embedded voice-mock server, each heard by a listener.
//! cargo run -p voice-tokio --example node -- --mock 4 --seconds 10
//! # Real credentials, one per line on stdin:
//! # {"guild_id":"…","channel_id":"…","user_id":"…","session_id":"…","token":"…","endpoint":"…:443"}
//! cargo run -p voice-tokio --example node -- --file song.ogg < credentials.jsonl
//! ```

use std::io::BufRead as _;
use std::time::Duration;

use serde_json::json;
use voice_tokio::{Bytes, Call, CallSnapshot, ConnectionInfo, DriverConfig, Looped, Snowflake};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    mock: Option<u64>,
    file: String,
    seconds: u64,
    every: u64,
}

fn args() -> Result<Args, BoxError> {
    use lexopt::prelude::*;
    let mut a = Args {
        mock: None,
        file: concat!(env!("CARGO_MANIFEST_DIR"), "/assets/sample.ogg").into(),
        seconds: 0,
        every: 5,
    };
    let mut p = lexopt::Parser::from_env();
    while let Some(arg) = p.next()? {
        match arg {
            Long("mock") => a.mock = Some(p.value()?.parse()?),
            Long("file") => a.file = p.value()?.string()?,
            Long("seconds") => a.seconds = p.value()?.parse()?,
            Long("every") => a.every = p.value()?.parse::<u64>()?.max(1),
            Long("help") => {
                println!("node [--mock N] [--file OGG] [--seconds S (0: until ^C)] [--every S]  < credentials.jsonl");
                std::process::exit(0);
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    Ok(a)
}

/// One stats line: what a dashboard of the node shows per call.
fn line(s: &CallSnapshot) -> serde_json::Value {
    let p = &s.stats.proto;
    json!({
        "guild": s.guild_id.to_string(),
        "state": format!("{:?}", s.state.state),
        "mode": s.state.mode.map(|m| m.as_str()),
        "ssrc": s.state.ssrc,
        "dave": s.state.dave_protocol_version,
        "endpoint": s.endpoint,
        "rtt_ms": s.heartbeat_rtt.map(|d| d.as_secs_f64() * 1e3),
        "rtcp_rtt_ms": p.rtcp.remote.and_then(|r| r.rtt).map(|d| d.as_secs_f64() * 1e3),
        "packets_sent": p.packets_sent,
        "bytes_sent": p.bytes_sent,
        "packets_received": p.packets_received,
        "frames_dropped_late": s.stats.frames_dropped_late,
        "users": s.users.iter().map(|u| json!({
            "user": u.user_id.to_string(), "received": u.received, "lost": u.lost,
            "jitter_ms": u.jitter.as_secs_f64() * 1e3,
        })).collect::<Vec<_>>(),
        "reconnections": s.reconnections.len(),
    })
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt().with_env_filter("warn").with_writer(std::io::stderr).init();
    let a = args()?;
    let frames: Vec<Bytes> =
        voice_tokio::ogg::read_ogg_opus(&std::fs::read(&a.file)?)?.into_iter().map(Bytes::from).collect();
    let mut config = DriverConfig::default();

    // Credentials: from the embedded server, or one JSON object per line.
    let mut mock = None;
    let credentials: Vec<ConnectionInfo> = match a.mock {
        Some(n) => {
            let server = voice_mock::Server::start(voice_mock::RunnerConfig::default()).await?;
            config.trust_pem(server.cert_pem().as_bytes())?;
            let infos = (0..n).map(|i| server.join_wss(Snowflake(1000 + i), Snowflake(1), Snowflake(10))).collect();
            mock = Some(server);
            infos
        }
        None => {
            let mut v = Vec::new();
            for l in std::io::stdin().lock().lines() {
                let l = l?;
                if !l.trim().is_empty() {
                    v.push(serde_json::from_str(&l)?);
                }
            }
            v
        }
    };

    let mut calls: Vec<Call> = Vec::new();
    let mut listeners = Vec::new();
    for info in credentials {
        let guild = info.guild_id;
        // With the embedded server, someone to hear each call (an end-to-end
        // encrypted call sends once it has a group).
        if let Some(server) = &mock {
            let listener = server.join_wss(guild, info.channel_id, Snowflake(20));
            listeners.push(voice_tokio::connect(listener, config.clone()).await?);
        }
        match voice_tokio::connect(info, config.clone()).await {
            Ok(call) => {
                // Pulled by the driver, one frame per slot, round and round.
                call.start_source(Looped::forever(frames.clone())).await?;
                calls.push(call);
            }
            Err(e) => println!("{}", json!({ "guild": guild.to_string(), "error": e.to_string() })),
        }
    }
    eprintln!("{} calls connected", calls.len());

    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(a.every));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        for call in &calls {
            if let Ok(s) = call.snapshot().await {
                println!("{}", line(&s));
            }
        }
        if a.seconds > 0 && started.elapsed() >= Duration::from_secs(a.seconds) {
            break;
        }
    }
    let mut heard = 0;
    for l in &listeners {
        heard += l.stats().await.map_or(0, |s| s.proto.packets_received);
    }
    let mut sent = 0;
    for c in &calls {
        sent += c.stats().await.map_or(0, |s| s.proto.packets_sent);
        let _ = c.close().await;
    }
    println!("{}", json!({ "calls": calls.len(), "packets_sent": sent, "listeners_heard": heard }));
    Ok(())
}
