//! Plays an Ogg Opus file into a voice channel and records what others say.
//!
//! With no arguments: starts the offline voice server (voice-mock) in this
//! process, connects two bots over TLS, plays the bundled sample from one
//! and records it with the other, then prints a summary.
//!
//! Against any voice server:
//! `play --endpoint HOST:PORT --token T --session S --user U --guild G --channel C
//!       [--ca-file PEM] [--plain-ws] [--mode MODE] [--file IN.ogg] [--record-dir DIR]
//!       [--idle-exit SEC] [--timeout SEC]`

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;
use voice_proto::Mode;
use voice_proto::wire::{Snowflake, Token};
use voice_tokio::ogg::{OggOpusWriter, read_ogg_opus};
use voice_tokio::{Call, CallStats, ConnectionInfo, DriverConfig, ReceivedAudio, connect};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/sample.ogg");

#[derive(Default)]
struct Args {
    endpoint: Option<String>,
    token: Option<String>,
    session: Option<String>,
    user: Option<u64>,
    guild: Option<u64>,
    channel: Option<u64>,
    ca_file: Option<PathBuf>,
    plain_ws: bool,
    mode: Option<Mode>,
    file: Option<PathBuf>,
    record_dir: Option<PathBuf>,
    idle_exit: Option<f64>,
    timeout: Option<f64>,
}

const USAGE: &str = "usage: play [--endpoint HOST:PORT --token T --session S --user U --guild G --channel C]
            [--ca-file PEM] [--plain-ws] [--mode MODE] [--file IN.ogg] [--record-dir DIR]
            [--idle-exit SEC] [--timeout SEC]
With no --endpoint: an offline demo on the embedded voice server.";

fn parse_args() -> Result<Args, BoxError> {
    use lexopt::prelude::*;
    let mut a = Args::default();
    let mut p = lexopt::Parser::from_env();
    while let Some(arg) = p.next()? {
        match arg {
            Long("endpoint") => a.endpoint = Some(p.value()?.string()?),
            Long("token") => a.token = Some(p.value()?.string()?),
            Long("session") => a.session = Some(p.value()?.string()?),
            Long("user") => a.user = Some(p.value()?.parse()?),
            Long("guild") => a.guild = Some(p.value()?.parse()?),
            Long("channel") => a.channel = Some(p.value()?.parse()?),
            Long("ca-file") => a.ca_file = Some(p.value()?.into()),
            Long("plain-ws") => a.plain_ws = true,
            Long("mode") => a.mode = Some(p.value()?.string()?.parse()?),
            Long("file") => a.file = Some(p.value()?.into()),
            Long("record-dir") => a.record_dir = Some(p.value()?.into()),
            Long("idle-exit") => a.idle_exit = Some(p.value()?.parse()?),
            Long("timeout") => a.timeout = Some(p.value()?.parse()?),
            Short('h') | Long("help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    Ok(a)
}

fn driver_config(args: &Args) -> Result<DriverConfig, BoxError> {
    let mut c = DriverConfig::default();
    c.proto.plain_ws = args.plain_ws;
    if let Some(m) = args.mode {
        c.proto.modes.retain(|x| *x != m);
        c.proto.modes.insert(0, m);
    }
    if let Some(path) = &args.ca_file {
        c.trust_pem(&std::fs::read(path)?)?;
    }
    Ok(c)
}

/// Writes each user's packets to `DIR/<user>.ogg`, one Ogg packet per Opus
/// packet, in arrival order.
struct Recorder {
    dir: PathBuf,
    files: HashMap<Snowflake, OggOpusWriter<std::io::BufWriter<std::fs::File>>>,
    packets: u64,
    last: Option<Instant>,
}

impl Recorder {
    fn new(dir: &Path) -> Result<Self, BoxError> {
        std::fs::create_dir_all(dir)?;
        Ok(Recorder { dir: dir.to_owned(), files: HashMap::new(), packets: 0, last: None })
    }

    fn add(&mut self, p: &ReceivedAudio) -> Result<(), BoxError> {
        if !self.files.contains_key(&p.user_id) {
            let path = self.dir.join(format!("{}.ogg", p.user_id));
            let file = std::io::BufWriter::new(std::fs::File::create(path)?);
            self.files.insert(p.user_id, OggOpusWriter::new(file, p.ssrc)?);
        }
        if let Some(w) = self.files.get_mut(&p.user_id) {
            w.write_packet(&p.opus)?;
        }
        self.packets += 1;
        self.last = Some(Instant::now());
        Ok(())
    }

    fn finish(self) -> Result<Vec<PathBuf>, BoxError> {
        let mut paths = Vec::new();
        for (user, w) in self.files {
            w.finish()?;
            paths.push(self.dir.join(format!("{user}.ogg")));
        }
        Ok(paths)
    }
}

/// One line of counters: audio and silence counted apart, the same way for
/// what was sent and what was received.
fn summary(label: &str, s: &CallStats) {
    let p = &s.proto;
    println!(
        "{label}: sent {} audio + {} silence, received {} audio + {} silence; dropped: {} auth, {} unknown ssrc; reconnects {}, resumes {}",
        p.packets_sent - p.silence_frames_sent,
        p.silence_frames_sent,
        p.packets_received - p.silence_frames_received,
        p.silence_frames_received,
        p.decrypt_failures,
        p.unknown_ssrc_drops,
        p.reconnects,
        p.resumes
    );
}

/// End-to-end encryption as the call saw it.
fn e2ee_summary(label: &str, s: &CallStats, state: &voice_tokio::CallState) {
    let d = &s.proto.dave;
    if d.protocol_version == 0 && d.frames_encrypted == 0 && d.frames_decrypted == 0 {
        println!("{label}: transport encryption only (no DAVE)");
        return;
    }
    println!(
        "{label}: DAVE v{}, epoch {}, privacy code {}; {} frames encrypted, {} decrypted ({} held and released, {} expired), {} transitions",
        d.protocol_version,
        d.epoch.map_or("-".into(), |e| e.to_string()),
        state.privacy_code.as_deref().unwrap_or("-"),
        d.frames_encrypted,
        d.frames_decrypted,
        d.held_released,
        d.held_expired,
        d.transitions_executed,
    );
}

async fn demo() -> Result<(), BoxError> {
    let server = voice_mock::Server::start(voice_mock::RunnerConfig::default()).await?;
    println!("offline voice server: wss on 127.0.0.1:{}, udp on 127.0.0.1:{}", server.wss_port(), server.udp_port());
    let mut config = DriverConfig::default();
    config.trust_pem(server.cert_pem().as_bytes())?;
    let (guild, channel) = (Snowflake(1), Snowflake(2));
    // What the main gateway would have said, straight from the server.
    let info = |user: u64| server.join_wss(guild, channel, Snowflake(user));
    let listener = connect(info(20), config.clone()).await?;
    let player = connect(info(10), config.clone()).await?;
    println!("both bots connected over TLS; playing {}", Path::new(SAMPLE).display());

    let packets = read_ogg_opus(&std::fs::read(SAMPLE)?)?;
    let total = packets.len();
    let mut audio = listener.take_audio().ok_or("audio already taken")?;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("target"), |p| p.join("target"))
        .join("play-demo");
    let mut rec = Recorder::new(&dir)?;
    let mut heard = Vec::with_capacity(total);
    let play = {
        let player = player.clone();
        let packets = packets.clone();
        tokio::spawn(async move { player.play(packets).await })
    };
    let started = Instant::now();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            p = audio.recv() => {
                let Some(p) = p else { break };
                rec.add(&p)?;
                heard.push(p.opus.to_vec());
            }
            _ = tick.tick() => {
                let sent = player.stats().await?.frames_sent;
                let got = heard.iter().filter(|p| p.as_slice() != voice_rtp::OPUS_SILENCE).count();
                let line = format!(
                    "  {:>5.1}s  audio sent {sent:>4}/{total}  received {got:>4}  (silence received {})",
                    started.elapsed().as_secs_f64(),
                    heard.len() - got
                );
                if tty { eprint!("\r{line}") } else { eprintln!("{line}") }
                let idle = rec.last.is_some_and(|t| t.elapsed() > Duration::from_millis(600));
                if play.is_finished() && idle {
                    break;
                }
                if started.elapsed() > Duration::from_secs(60) {
                    return Err("demo timed out".into());
                }
            }
        }
    }
    if tty {
        eprintln!();
    }
    play.await??;
    let (pstate, lstate) = (player.state(), listener.state());
    let (ps_live, ls_live) = (player.stats().await?, listener.stats().await?);
    player.leave().await?;
    listener.leave().await?;
    let ps = player.stats().await?;
    let ls = listener.stats().await?;
    let files = rec.finish()?;

    let voice: Vec<&Vec<u8>> = heard.iter().filter(|p| p.as_slice() != voice_rtp::OPUS_SILENCE).collect();
    let identical = voice.len() == total && voice.iter().zip(&packets).all(|(a, b)| *a == b);
    let lost = total.saturating_sub(voice.len());
    println!("\nsummary");
    println!("  mode: {}", server.stats().users.values().find_map(|u| u.mode).map_or("?".into(), |m| m.to_string()));
    summary("  player  ", &ps);
    summary("  listener", &ls);
    e2ee_summary("  player   e2ee", &ps_live, &pstate);
    e2ee_summary("  listener e2ee", &ls_live, &lstate);
    if pstate.privacy_code.is_some() && pstate.privacy_code != lstate.privacy_code {
        return Err("the two bots disagree on the privacy code".into());
    }
    println!(
        "  loss: {lost}/{total} ({:.1}%), received packets identical to the file: {}",
        100.0 * lost as f64 / total as f64,
        if identical { "yes" } else { "no" }
    );
    for f in &files {
        println!("  recording: {}", f.display());
    }
    server.shutdown().await;
    if identical { Ok(()) } else { Err("the recording differs from the file".into()) }
}

async fn direct(args: Args) -> Result<(), BoxError> {
    let need = |o: Option<String>, n: &str| o.ok_or_else(|| format!("--{n} is required with --endpoint"));
    let info = ConnectionInfo {
        guild_id: Snowflake(args.guild.ok_or("--guild is required")?),
        channel_id: Snowflake(args.channel.ok_or("--channel is required")?),
        user_id: Snowflake(args.user.ok_or("--user is required")?),
        session_id: need(args.session.clone(), "session")?,
        token: Token::new(need(args.token.clone(), "token")?),
        endpoint: need(args.endpoint.clone(), "endpoint")?,
    };
    let config = driver_config(&args)?;
    let started = Instant::now();
    let deadline = args.timeout.map(|s| started + Duration::from_secs_f64(s));
    let call: Call = match deadline {
        Some(d) => tokio::time::timeout_at(d, connect(info, config)).await.map_err(|_| "timed out connecting")??,
        None => connect(info, config).await?,
    };
    eprintln!("connected");
    let mut audio = call.take_audio().ok_or("audio already taken")?;
    let mut rec = args.record_dir.as_deref().map(Recorder::new).transpose()?;
    let play = match &args.file {
        Some(f) => {
            let (call, f) = (call.clone(), f.clone());
            Some(tokio::spawn(async move { call.play_ogg(f).await }))
        }
        None => None,
    };
    let idle = args.idle_exit.map(Duration::from_secs_f64);
    let mut last_audio: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            p = audio.recv() => {
                let Some(p) = p else { break };
                last_audio = Some(Instant::now());
                if let Some(r) = rec.as_mut() { r.add(&p)?; }
            }
            _ = tick.tick() => {
                if deadline.is_some_and(|d| Instant::now() >= d) { break; }
                if let (Some(idle), Some(last)) = (idle, last_audio)
                    && last.elapsed() >= idle { break; }
                if matches!(call.state().state, voice_tokio::State::Disconnected | voice_tokio::State::Closed) {
                    break;
                }
                // The file went out (`--timeout` is only a limit), or there
                // is nothing to do and no limit to wait for; leaving sends
                // the silence trailer. Recording goes on until idle or the
                // limit.
                let file_done = play.as_ref().is_some_and(|p| p.is_finished());
                let nothing_to_do = play.is_none() && args.timeout.is_none();
                if rec.is_none() && (file_done || nothing_to_do) {
                    break;
                }
            }
        }
    }
    if let Some(p) = play
        && p.is_finished()
    {
        p.await??;
    }
    let ended = call.state();
    let live = call.stats().await?;
    call.leave().await?;
    let s = call.stats().await?;
    summary("summary", &s);
    e2ee_summary("e2ee", &live, &ended);
    if let Some(r) = rec {
        for f in r.finish()? {
            println!("recording: {}", f.display());
        }
    }
    match (ended.state, ended.last_disconnect) {
        (voice_tokio::State::Disconnected, Some(reason)) => Err(format!("disconnected: {reason:?}").into()),
        _ => Ok(()),
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let result = match parse_args() {
        Ok(args) if args.endpoint.is_none() => demo().await,
        Ok(args) => direct(args).await,
        Err(e) => Err(format!("{e}\n{USAGE}").into()),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
