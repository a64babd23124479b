//! The `play` example, whatever the runtime: `play` runs it on tokio
//! (voice-tokio), `play_smol` on smol (voice-async-std). Plays an Ogg Opus
//! file into a voice channel and records what others say.
//!
//! With no arguments: starts the offline voice server (voice-mock) in this
//! process, connects two bots over TLS, plays the bundled sample from one
//! and records it with the other, then prints a summary.
//!
//! Against any voice server:
//! `play --endpoint HOST:PORT --token T --session S --user U --guild G --channel C
//!       [--ca-file PEM] [--plain-ws] [--mode MODE] [--file IN] [--record-dir DIR]
//!       [--idle-exit SEC] [--timeout SEC]`

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use voice_driver::ogg::{OggOpusWriter, read_ogg_opus};
use voice_driver::runtime::{Runtime, timeout};
use voice_driver::{Call, CallState, CallStats, ConnectionInfo, DriverConfig, ReceivedAudio, State, connect};
use voice_proto::Mode;
use voice_proto::wire::{Snowflake, Token};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../voice-tokio/assets/sample.ogg");

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
            [--ca-file PEM] [--plain-ws] [--mode MODE] [--file IN] [--record-dir DIR]
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
    rt: Arc<dyn Runtime>,
    dir: PathBuf,
    files: HashMap<Snowflake, OggOpusWriter<std::io::BufWriter<std::fs::File>>>,
    packets: u64,
    last: Option<Instant>,
    /// Decoded: each user through a playout buffer, to WAV in `decoded/`.
    hearing: voice_audio::Hearing,
    decoded: voice_audio::Recording,
    next_play: Instant,
}

impl Recorder {
    fn new(rt: &Arc<dyn Runtime>, dir: &Path) -> Result<Self, BoxError> {
        std::fs::create_dir_all(dir)?;
        Ok(Recorder {
            rt: rt.clone(),
            dir: dir.to_owned(),
            files: HashMap::new(),
            packets: 0,
            last: None,
            hearing: voice_audio::Hearing::new(3),
            decoded: voice_audio::Recording::create(dir.join("decoded"))?,
            next_play: rt.now(),
        })
    }

    /// The playout clock: one 20 ms tick of every user's buffer per 20 ms
    /// passed (caught up when packets arrive).
    fn play_out(&mut self, until: Instant) -> Result<(), BoxError> {
        while self.next_play <= until {
            let heard = self.hearing.tick();
            self.decoded.add(&heard)?;
            self.next_play += Duration::from_millis(20);
        }
        Ok(())
    }

    fn now(&self) -> Instant {
        self.rt.now()
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
        self.last = Some(self.now());
        self.hearing.push(p);
        self.play_out(self.now())
    }

    fn finish(mut self) -> Result<Vec<PathBuf>, BoxError> {
        // What is still buffered plays out.
        let end = self.next_play + Duration::from_millis(200);
        self.play_out(end)?;
        for user in self.files.keys() {
            if let Some(s) = self.hearing.stats(*user) {
                println!(
                    "  user {user}: {} packets, {} decoded, {} rebuilt from FEC, {} concealed, {} late, {} duplicates",
                    s.packets, s.decoded, s.recovered_fec, s.concealed, s.late, s.duplicates
                );
            }
        }
        let mut paths = self.decoded.finish()?;
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
fn e2ee_summary(label: &str, s: &CallStats, state: &CallState) {
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

/// Runs `future` on the runtime and hands back a way to see whether it has
/// finished, and its result.
struct Task<T>(oneshot::Receiver<T>, Option<T>);

impl<T: Send + 'static> Task<T> {
    fn spawn(rt: &Arc<dyn Runtime>, future: impl Future<Output = T> + Send + 'static) -> Self {
        let (tx, rx) = oneshot::channel();
        rt.spawn(Box::pin(async move {
            let _ = tx.send(future.await);
        }));
        Task(rx, None)
    }

    fn is_finished(&mut self) -> bool {
        if self.1.is_none()
            && let Ok(v) = self.0.try_recv()
        {
            self.1 = Some(v);
        }
        self.1.is_some()
    }

    async fn join(mut self) -> Result<T, BoxError> {
        match self.1.take() {
            Some(v) => Ok(v),
            None => Ok(self.0.await?),
        }
    }
}

/// The offline voice server, on a tokio runtime of its own (whatever runs
/// the bots), until dropped.
struct OfflineServer {
    server: Option<voice_mock::Server>,
    stop: Option<oneshot::Sender<voice_mock::Server>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OfflineServer {
    fn start() -> Result<Self, BoxError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<voice_mock::Server>();
        let thread = std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return drop(ready_tx.send(Err(e))),
            };
            rt.block_on(async move {
                let _ = ready_tx.send(voice_mock::Server::start(voice_mock::RunnerConfig::default()).await);
                if let Ok(server) = stop_rx.await {
                    server.shutdown().await;
                }
            });
        });
        let server = ready_rx.recv()??;
        Ok(OfflineServer { server: Some(server), stop: Some(stop_tx), thread: Some(thread) })
    }

    fn get(&self) -> Result<&voice_mock::Server, BoxError> {
        Ok(self.server.as_ref().ok_or("the offline server stopped")?)
    }
}

impl Drop for OfflineServer {
    fn drop(&mut self) {
        if let (Some(server), Some(stop)) = (self.server.take(), self.stop.take()) {
            let _ = stop.send(server);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Plays a file: Ogg Opus goes out as it is, packet for packet; any other
/// format (MP3, FLAC, WAV, Vorbis, M4A, WebM) is decoded, resampled and
/// encoded by `voice_audio`'s player. Resolves once the last frame went out.
async fn play_file(rt: &Arc<dyn Runtime>, call: &Call, path: &Path) -> Result<u64, BoxError> {
    if read_ogg_opus(&std::fs::read(path)?).is_ok() {
        return Ok(call.play_ogg(path).await?);
    }
    let player = voice_audio::Player::start(call.frame_sink(), 64_000)?;
    let track = player.play(voice_audio::AudioFile::open(path)?)?;
    while track.state() != voice_audio::PlayState::Ended {
        voice_driver::runtime::sleep(&**rt, Duration::from_millis(50)).await;
    }
    call.flush().await?;
    let s = player.stats();
    Ok(s.frames_encoded + s.frames_passed_through)
}

async fn demo(rt: Arc<dyn Runtime>) -> Result<(), BoxError> {
    let offline = OfflineServer::start()?;
    let server = offline.get()?;
    println!("offline voice server: wss on 127.0.0.1:{}, udp on 127.0.0.1:{}", server.wss_port(), server.udp_port());
    let mut config = DriverConfig::default();
    config.trust_pem(server.cert_pem().as_bytes())?;
    let (guild, channel) = (Snowflake(1), Snowflake(2));
    // What the main gateway would have said, straight from the server.
    let info = |user: u64| server.join_wss(guild, channel, Snowflake(user));
    let listener = connect(rt.clone(), info(20), config.clone()).await?;
    let player = connect(rt.clone(), info(10), config.clone()).await?;
    println!("both bots connected over TLS; playing {}", Path::new(SAMPLE).display());

    let packets = read_ogg_opus(&std::fs::read(SAMPLE)?)?;
    let total = packets.len();
    let mut audio = listener.take_audio().ok_or("audio already taken")?;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("target"), |p| p.join("target"))
        .join("play-demo");
    let mut rec = Recorder::new(&rt, &dir)?;
    let mut heard = Vec::with_capacity(total);
    let mut play = {
        let player = player.clone();
        let packets = packets.clone();
        Task::spawn(&rt, async move { player.play(packets).await })
    };
    let started = rt.now();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut next_tick = started;
    loop {
        let wait = next_tick.saturating_duration_since(rt.now());
        if let Ok(p) = timeout(&*rt, wait, audio.recv()).await {
            let Some(p) = p else { break };
            rec.add(&p)?;
            heard.push(p.opus.to_vec());
            continue;
        }
        next_tick += Duration::from_millis(500);
        let sent = player.stats().await?.frames_sent;
        let got = heard.iter().filter(|p| p.as_slice() != voice_rtp::OPUS_SILENCE).count();
        let elapsed = rt.now().duration_since(started);
        let line = format!(
            "  {:>5.1}s  audio sent {sent:>4}/{total}  received {got:>4}  (silence received {})",
            elapsed.as_secs_f64(),
            heard.len() - got
        );
        if tty {
            eprint!("\r{line}")
        } else {
            eprintln!("{line}")
        }
        let idle = rec.last.is_some_and(|t| rt.now().duration_since(t) > Duration::from_millis(600));
        if play.is_finished() && idle {
            break;
        }
        if elapsed > Duration::from_secs(60) {
            return Err("demo timed out".into());
        }
    }
    if tty {
        eprintln!();
    }
    play.join().await??;
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
    drop(offline);
    if identical { Ok(()) } else { Err("the recording differs from the file".into()) }
}

async fn direct(rt: Arc<dyn Runtime>, args: Args) -> Result<(), BoxError> {
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
    let started = rt.now();
    let deadline = args.timeout.map(|s| started + Duration::from_secs_f64(s));
    let call: Call = match deadline {
        Some(d) => {
            let limit = d.saturating_duration_since(rt.now());
            timeout(&*rt, limit, connect(rt.clone(), info, config)).await.map_err(|_| "timed out connecting")??
        }
        None => connect(rt.clone(), info, config).await?,
    };
    eprintln!("connected");
    let mut audio = call.take_audio().ok_or("audio already taken")?;
    let mut rec = args.record_dir.as_deref().map(|d| Recorder::new(&rt, d)).transpose()?;
    let mut play = match &args.file {
        Some(f) => {
            let (call, f, clock) = (call.clone(), f.clone(), rt.clone());
            Some(Task::spawn(&rt, async move { play_file(&clock, &call, &f).await }))
        }
        None => None,
    };
    let idle = args.idle_exit.map(Duration::from_secs_f64);
    let mut last_audio: Option<Instant> = None;
    let mut next_tick = rt.now();
    loop {
        let wait = next_tick.saturating_duration_since(rt.now());
        if let Ok(p) = timeout(&*rt, wait, audio.recv()).await {
            let Some(p) = p else { break };
            last_audio = Some(rt.now());
            if let Some(r) = rec.as_mut() {
                r.add(&p)?;
            }
            continue;
        }
        next_tick += Duration::from_millis(100);
        let now = rt.now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        if let (Some(idle), Some(last)) = (idle, last_audio)
            && now.duration_since(last) >= idle
        {
            break;
        }
        if matches!(call.state().state, State::Disconnected | State::Closed) {
            break;
        }
        // The file went out (`--timeout` is only a limit), or there is
        // nothing to do and no limit to wait for; leaving sends the silence
        // trailer. Recording goes on until idle or the limit.
        let file_done = play.as_mut().is_some_and(|p| p.is_finished());
        let nothing_to_do = play.is_none() && args.timeout.is_none();
        if rec.is_none() && (file_done || nothing_to_do) {
            break;
        }
    }
    if let Some(mut p) = play
        && p.is_finished()
    {
        p.join().await??;
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
        (State::Disconnected, Some(reason)) => Err(format!("disconnected: {reason:?}").into()),
        _ => Ok(()),
    }
}

/// Logs to stderr, `warn` unless `RUST_LOG` says otherwise.
pub fn init_logs() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
}

/// The whole example on `rt`: the offline demo with no arguments, else a
/// call to the given server.
pub async fn run(rt: Arc<dyn Runtime>) -> Result<(), BoxError> {
    match parse_args() {
        Ok(args) if args.endpoint.is_none() => demo(rt).await,
        Ok(args) => direct(rt, args).await,
        Err(e) => Err(format!("{e}\n{USAGE}").into()),
    }
}

/// Exits non-zero with the error, if any.
pub fn exit(result: Result<(), BoxError>) {
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
