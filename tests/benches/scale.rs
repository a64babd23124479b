//! Scale benchmark: N driver-only voice calls (voice-tokio) in one client
//! process against voice-mock in sink mode, for several N in one run. Per N
//! it reports the client's CPU time per packet sent (against a bare loop
//! that seals and sends the same packet), memory per call (idle and
//! playing), what the server received in the window (loss, send gaps,
//! decrypt failures) and how long the joins took.
//!
//! ```text
//! cargo bench -p voice-tests --bench scale -- --calls 16,128 --window 20
//! scripts/scale-bench            # the full table with the default settings
//! ```
//!
//! One orchestrator re-executes itself (`--role`) as a server child per row
//! (voice-mock: DAVE off, sink mode), a client child per row (the N calls,
//! through voice-tokio's public API only) and a bare-loop child, so that each
//! measured process holds nothing else. Children answer one-line commands
//! on stdin with one JSON line on stdout. CPU time is utime + stime of the
//! whole process from `/proc/self/stat` (10 ms ticks: use windows of
//! seconds); RSS is `VmRSS` from `/proc/self/status`. Everything runs on
//! 127.0.0.1.
//!
//! The calls offer no DAVE (`max_dave_protocol_version = 0`, the server's
//! policy is off): a bot alone in a DAVE call cannot send. Each call plays
//! an endless loop of one 160-byte frame (64 kbit/s), from a source the
//! driver pulls (`--queue`: through its frame sink; [`drive_call`]),
//! starting at phases spread evenly over the 20 ms period. In the receive
//! rows call 2k listens and call 2k+1 plays in guild k, so the server
//! forwards every packet (re-encrypted) and the client receives and
//! decrypts half of what it sends.
//!
//! Columns of the table (the JSON lines hold more):
//!
//! * `µs/pkt`: client CPU time in the window over the packets the calls
//!   sent in it (counted by their RTP sequence numbers at the server, so
//!   frames a stalled pacer skipped do not count, and the silence trailers
//!   of calls stalled past the speaking timeout do); `× bare`: that over the bare loop's (the same packet
//!   sealed with voice-rtp's AES-256-GCM and sent from one std socket, as
//!   fast as it goes; the cheapest of three rounds); `client CPU %`: CPU time over the window (100 is one
//!   core).
//! * `KB/call`: RSS at the end of the window minus RSS before the first
//!   join, over the calls; `idle KB/call`: the same one second after the
//!   last join, before playing.
//! * `expected`: senders × window / 20 ms (the server's window);
//!   `received`: packets the server opened; `short %`: how far received
//!   falls behind expected (the client not keeping its pace, or loss);
//!   `lost`: packets numbered by the senders (RTP sequence) that never
//!   arrived; `late`: gaps of 30 ms or more; `gap p50/p99`: time between
//!   consecutive packets of one call at the server (0.1 ms buckets), by
//!   the kernel's arrival stamps where it gives them (64-bit Linux), which
//!   on loopback are the send times: the server's own scheduling delays
//!   are not counted against the client.
//! * `heard`: audio packets the listeners received (receive rows).
//! * `server µs/pkt`: the server's CPU time over the packets it received;
//!   `kernel drops`: UDP datagrams dropped for full receive buffers in the
//!   window (`RcvbufErrors`, the whole network namespace).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};
use voice_proto::ConnectionInfo;
use voice_proto::wire::{Snowflake, Token};
use voice_tokio::{Call, DriverConfig};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const USAGE: &str = "\
scale: N voice calls in one process against voice-mock, for several N

USAGE:
    cargo bench -p voice-tests --bench scale -- [OPTIONS]

OPTIONS:
    --calls LIST          numbers of calls, one row each (default 16,128,512,1000,2000,5000)
    --window SECS         measurement window per row (default 20)
    --warmup SECS         playing time before the window (default 5)
    --receive             also run rows with receive: half the calls play, the
                          other half listen in the same guilds
    --no-receive          no receive rows (undoes an earlier --receive)
    --receive-calls LIST  calls of the receive rows (default 1000)
    --concurrency N       joins in flight at once (default 64)
    --bare-secs SECS      length of the bare seal-and-send loop, in three rounds (default 3)
    --plain-ws            voice gateway over ws:// instead of wss://
    --no-batch            one send system call per datagram (DriverConfig::batched_send off)
    --wheel-threads       send wheels on threads of their own (DriverConfig::wheel_threads)
    --queue               play through each call's frame sink from a task of
                          its own, instead of a looped source the driver pulls
    --run                 run when started without cargo bench's --bench
";

/// Opus-like 20 ms frame: 160 bytes (64 kbit/s), TOC 0xFC (CELT FB 20 ms).
const FRAME_LEN: usize = 160;
const FRAME_MS: f64 = 20.0;
/// RTP gaps at least this long count as late (10 ms behind the 20 ms slot).
const LATE_GAP: Duration = Duration::from_millis(30);
const CHANNEL: Snowflake = Snowflake(2);
const SENDER: Snowflake = Snowflake(10);
const LISTENER: Snowflake = Snowflake(20);
const FIRST_GUILD: u64 = 1000;
/// Rounds of the bare loop; its cost is the cheapest round's.
const BARE_ROUNDS: u32 = 3;

#[derive(Debug, Clone)]
struct Opts {
    role: Option<String>,
    bench: bool,
    run: bool,
    calls: Vec<usize>,
    receive: bool,
    receive_calls: Vec<usize>,
    window: Duration,
    warmup: Duration,
    concurrency: usize,
    bare: Duration,
    plain_ws: bool,
    no_batch: bool,
    wheel_threads: bool,
    /// Feed audio through the frame sink (one producer task per call)
    /// instead of a source the driver pulls.
    queue: bool,
    // Children's parameters, set by the orchestrator.
    endpoint: String,
    udp_port: u16,
    cert: String,
    listeners: bool,
    max_calls: usize,
}

fn list(s: &str) -> Result<Vec<usize>, lexopt::Error> {
    let v: Vec<usize> = s
        .split(',')
        .filter(|x| !x.trim().is_empty())
        .map(|x| x.trim().parse::<usize>().map_err(|e| lexopt::Error::Custom(Box::new(e))))
        .collect::<Result<_, _>>()?;
    if v.is_empty() || v.contains(&0) {
        return Err("a list of call counts, each at least 1".into());
    }
    Ok(v)
}

fn secs(parser: &mut lexopt::Parser) -> Result<Duration, lexopt::Error> {
    use lexopt::ValueExt;
    let s: f64 = parser.value()?.parse()?;
    if !(s.is_finite() && (0.0..=3600.0).contains(&s)) {
        return Err("seconds must be between 0 and 3600".into());
    }
    Ok(Duration::from_secs_f64(s))
}

fn parse() -> Result<Opts, lexopt::Error> {
    use lexopt::prelude::*;
    let mut o = Opts {
        role: None,
        bench: false,
        run: false,
        calls: vec![16, 128, 512, 1000, 2000, 5000],
        receive: false,
        receive_calls: vec![1000],
        window: Duration::from_secs(20),
        warmup: Duration::from_secs(5),
        concurrency: 64,
        bare: Duration::from_secs(3),
        plain_ws: false,
        no_batch: false,
        wheel_threads: false,
        queue: false,
        endpoint: String::new(),
        udp_port: 0,
        cert: String::new(),
        listeners: false,
        max_calls: 0,
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("bench") => o.bench = true,
            Long("run") => o.run = true,
            Long("calls") => o.calls = list(&parser.value()?.string()?)?,
            Long("receive") => o.receive = true,
            Long("no-receive") => o.receive = false,
            Long("receive-calls") => o.receive_calls = list(&parser.value()?.string()?)?,
            Long("window") => o.window = secs(&mut parser)?.max(Duration::from_millis(100)),
            Long("warmup") => o.warmup = secs(&mut parser)?,
            Long("concurrency") => o.concurrency = parser.value()?.parse::<usize>()?.max(1),
            Long("bare-secs") => o.bare = secs(&mut parser)?.max(Duration::from_millis(100)),
            Long("plain-ws") => o.plain_ws = true,
            Long("no-batch") => o.no_batch = true,
            Long("wheel-threads") => o.wheel_threads = true,
            Long("queue") => o.queue = true,
            Long("role") => o.role = Some(parser.value()?.string()?),
            Long("endpoint") => o.endpoint = parser.value()?.string()?,
            Long("udp-port") => o.udp_port = parser.value()?.parse()?,
            Long("cert") => o.cert = parser.value()?.string()?,
            Long("listeners") => o.listeners = true,
            Long("max-calls") => o.max_calls = parser.value()?.parse()?,
            Short('h') | Long("help") => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            // cargo bench may pass a filter; there is nothing to filter.
            lexopt::Arg::Value(_) => {}
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(o)
}

fn main() {
    let opts = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("scale: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let result = match opts.role.as_deref() {
        Some("server") => server_main(&opts),
        Some("client") => client_main(&opts),
        Some("bare") => bare_main(&opts),
        Some(other) => Err(format!("unknown role {other}").into()),
        None if opts.bench || opts.run => orchestrate(&opts),
        None => {
            // `cargo test --all-targets` runs benches without --bench.
            println!(
                "scale: a benchmark; run it with `cargo bench -p voice-tests --bench scale` or scripts/scale-bench"
            );
            Ok(())
        }
    };
    if let Err(e) = result {
        eprintln!("scale: {e}");
        std::process::exit(1);
    }
}

/// Readings from /proc.
mod procfs {
    use std::time::Duration;

    use super::Res;

    /// Clock ticks per second of /proc/self/stat (USER_HZ, 100 on Linux).
    const TICKS_PER_SEC: u64 = 100;

    /// User + system CPU time of this whole process (every thread, live or
    /// ended), at 10 ms resolution.
    pub fn cpu_time() -> Res<Duration> {
        let stat = std::fs::read_to_string("/proc/self/stat")?;
        let rest = stat.rsplit_once(')').ok_or("odd /proc/self/stat")?.1;
        // After the command: field 3 (state) is index 0; utime is field 14,
        // stime field 15.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let tick = |i: usize| -> Res<u64> { Ok(fields.get(i).ok_or("short /proc/self/stat")?.parse::<u64>()?) };
        let ticks = tick(11)? + tick(12)?;
        Ok(Duration::from_micros(ticks * (1_000_000 / TICKS_PER_SEC)))
    }

    fn field(file: &str, name: &str) -> Res<u64> {
        let text = std::fs::read_to_string(file)?;
        let line = text.lines().find(|l| l.starts_with(name)).ok_or_else(|| format!("no {name} in {file}"))?;
        let value = line[name.len()..].split_whitespace().next().ok_or("empty field")?;
        Ok(value.parse()?)
    }

    /// Resident set size of this process in KiB.
    pub fn rss_kb() -> Res<u64> {
        field("/proc/self/status", "VmRSS:")
    }

    /// The soft limit on open files.
    pub fn open_files_limit() -> Res<u64> {
        field("/proc/self/limits", "Max open files")
    }

    /// UDP datagrams the kernel dropped for full receive buffers, in the
    /// whole network namespace (both sides of the benchmark).
    pub fn udp_rcvbuf_errors() -> Res<u64> {
        let snmp = std::fs::read_to_string("/proc/net/snmp")?;
        let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
        let (names, values) = (udp.next().ok_or("no Udp header")?, udp.next().ok_or("no Udp values")?);
        let i = names.split_whitespace().position(|n| n == "RcvbufErrors").ok_or("no RcvbufErrors")?;
        Ok(values.split_whitespace().nth(i).ok_or("short Udp line")?.parse()?)
    }
}

// ---------------------------------------------------------------- children

/// A child process speaking one JSON line per command.
struct Peer {
    name: String,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    fn spawn(name: &str, args: &[String]) -> Res<Peer> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        Ok(Peer { name: name.to_owned(), child, stdin, stdout })
    }

    fn read(&mut self) -> Res<Value> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err(format!("{} exited", self.name).into());
        }
        let v: Value = serde_json::from_str(&line).map_err(|e| format!("{}: {e}: {line}", self.name))?;
        if let Some(e) = v.get("error") {
            return Err(format!("{}: {e}", self.name).into());
        }
        Ok(v)
    }

    fn ask(&mut self, command: &str) -> Res<Value> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        self.read()
    }

    fn finish(mut self) {
        let _ = writeln!(self.stdin, "quit");
        drop(self.stdin);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads command lines on stdin and answers each with `answer`'s JSON line,
/// until `quit` or end of input.
fn serve_commands(mut answer: impl FnMut(&str) -> Res<Option<Value>>) -> Res<()> {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines() {
        let line = line?;
        let reply = match answer(line.trim()) {
            Ok(Some(v)) => v,
            Ok(None) => break,
            Err(e) => json!({ "error": e.to_string() }),
        };
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    Ok(())
}

fn runtime() -> Res<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn ms(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| json!(d.as_secs_f64() * 1000.0))
}

/// The server child: voice-mock in sink mode, DAVE off, sized for the row.
fn server_main(opts: &Opts) -> Res<()> {
    let rt = runtime()?;
    let mut config = voice_mock::RunnerConfig::default();
    config.server.dave = voice_mock::DavePolicy::Off;
    let calls = opts.max_calls.max(16);
    config.server.limits.max_conns = calls + 64;
    config.server.limits.max_sessions = calls + 64;
    config.server.limits.max_grants = calls + 64;
    config.sink = true;
    // Past rmem_max where the bench may (root): the one socket that takes
    // every call's packets rides out the server's own stalls on a busy
    // machine, which are not the client's loss (kernel drops: own column).
    config.udp_recv_buffer = 32 << 20;
    config.datagram_queue = 8192;
    let server = rt.block_on(voice_mock::Server::start(config))?;
    let cert = std::env::temp_dir().join(format!("voice-scale-{}.pem", std::process::id()));
    std::fs::write(&cert, server.cert_pem())?;
    println!(
        "{}",
        json!({ "ws_port": server.ws_port(), "wss_port": server.wss_port(), "udp_port": server.udp_port(),
                "cert": cert.display().to_string() })
    );
    let mut cpu_mark = procfs::cpu_time()?;
    let result = serve_commands(|cmd| match cmd {
        "reset" => {
            server.take_sink_stats();
            cpu_mark = procfs::cpu_time()?;
            Ok(Some(json!({ "ok": true })))
        }
        "snapshot" => {
            let s = server.take_sink_stats().ok_or("sink mode is off")?;
            let cpu = procfs::cpu_time()?.saturating_sub(cpu_mark);
            let (core, runner) = (server.stats(), server.runner_stats());
            let t = &s.total;
            Ok(Some(json!({
                "window_s": s.window.as_secs_f64(),
                "cpu_s": cpu.as_secs_f64(),
                "ssrcs": s.ssrcs.len(),
                "packets": t.packets,
                "bytes": t.bytes,
                "forwarded": t.forwarded,
                "seq_expected": t.expected,
                "seq_lost": t.lost(),
                "decrypt_failures": t.decrypt_failures + core.decrypt_failures,
                "unknown_ssrc": s.unknown_ssrc,
                "gaps": t.gaps.count(),
                "late": t.gaps.count_at_least(LATE_GAP),
                "gap_p50_ms": ms(t.gaps.quantile(0.5)),
                "gap_p99_ms": ms(t.gaps.quantile(0.99)),
                "gap_max_ms": ms(t.gaps.max()),
                "worst_ssrc_p99_ms": ms(s.ssrcs.values().filter_map(|c| c.gaps.quantile(0.99)).max()),
                "sessions": core.sessions,
                "rtp_forwarded": core.rtp_forwarded,
                "core_queue_drops": core.queue_drops,
                "runner_datagrams_dropped": runner.datagrams_dropped,
                "runner_udp_queue_drops": runner.udp_queue_drops,
            })))
        }
        "quit" => Ok(None),
        other => Err(format!("unknown command {other}").into()),
    });
    let _ = std::fs::remove_file(&cert);
    rt.block_on(server.shutdown());
    result
}

/// Plays an endless loop of `frame` on `call`, counting each frame queued.
/// The one place that plays audio: it moves to the pull-based source API
/// when the library has it.
async fn drive_call(call: Call, frame: Bytes, queued: Arc<AtomicU64>, queue: bool, phase: Duration) {
    // Calls start at all times, not in one millisecond: each starts at its
    // own phase of the 20 ms frame period, spread evenly, as calls that
    // began at random times would be.
    tokio::time::sleep(phase).await;
    if !queue {
        // What an audio node does: the driver pulls each frame in its slot.
        let _ = call.start_source(voice_tokio::Looped::forever(vec![frame])).await;
        return;
    }
    let sink = call.frame_sink();
    while sink.send(frame.clone()).await.is_ok() {
        queued.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts the audio a listener receives.
async fn listen(call: Call, heard: Arc<AtomicU64>) {
    let Some(mut audio) = call.take_audio() else { return };
    while audio.recv().await.is_some() {
        heard.fetch_add(1, Ordering::Relaxed);
    }
}

/// A frame as 64 kbit/s CELT 20 ms Opus would look: TOC 0xFC, then bytes.
fn frame() -> Bytes {
    let mut f = vec![0u8; FRAME_LEN];
    f[0] = 0xFC;
    for (i, b) in f.iter_mut().enumerate().skip(1) {
        *b = (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0];
    }
    Bytes::from(f)
}

struct Joined {
    senders: Vec<Call>,
    listeners: Vec<Call>,
    failed: usize,
    first_error: Option<String>,
}

/// Joins `n` calls, `concurrency` at a time. With `listeners`, call 2k
/// listens and call 2k+1 plays in guild k; else every call plays in its
/// own guild.
async fn join_all(opts: &Opts, config: DriverConfig) -> Joined {
    let n = opts.max_calls;
    let sem = Arc::new(tokio::sync::Semaphore::new(opts.concurrency));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let (guild, user) = match opts.listeners {
            true => (FIRST_GUILD + (i / 2) as u64, if i % 2 == 0 { LISTENER } else { SENDER }),
            false => (FIRST_GUILD + i as u64, SENDER),
        };
        let info = ConnectionInfo {
            guild_id: Snowflake(guild),
            channel_id: CHANNEL,
            user_id: user,
            session_id: format!("bench-{guild}-{user}"),
            // voice-mock accepts any token; `CHANNEL.` picks the room.
            token: Token::new(format!("{CHANNEL}.bench{i}")),
            endpoint: opts.endpoint.clone(),
        };
        let Ok(permit) = sem.clone().acquire_owned().await else { break };
        let config = config.clone();
        set.spawn(async move {
            let r = voice_tokio::connect(info, config).await;
            drop(permit);
            (user, r)
        });
    }
    let mut joined = Joined { senders: Vec::new(), listeners: Vec::new(), failed: 0, first_error: None };
    while let Some(r) = set.join_next().await {
        match r {
            Ok((user, Ok(call))) if user == LISTENER => joined.listeners.push(call),
            Ok((_, Ok(call))) => joined.senders.push(call),
            Ok((_, Err(e))) => {
                joined.failed += 1;
                joined.first_error.get_or_insert_with(|| e.to_string());
            }
            Err(e) => {
                joined.failed += 1;
                joined.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    joined
}

/// Sums the calls' counters (over the whole run).
async fn call_totals(calls: &[Call]) -> Value {
    let mut set = tokio::task::JoinSet::new();
    for c in calls {
        let c = c.clone();
        set.spawn(async move { (c.stats().await, c.state()) });
    }
    let (mut sent, mut late, mut skipped, mut not_ready, mut udp_err, mut audio_dropped) = (0, 0, 0, 0, 0, 0);
    let (mut decrypt, mut reconnects, mut not_connected, mut gone) = (0, 0, 0, 0);
    while let Some(r) = set.join_next().await {
        let Ok((stats, state)) = r else {
            gone += 1;
            continue;
        };
        match stats {
            Ok(s) => {
                sent += s.frames_sent;
                late += s.frames_dropped_late;
                skipped += s.slots_skipped;
                not_ready += s.frames_dropped_not_ready;
                udp_err += s.udp_send_errors;
                audio_dropped += s.audio_dropped;
                decrypt += s.proto.decrypt_failures;
            }
            Err(_) => gone += 1,
        }
        reconnects += state.connects.saturating_sub(1);
        if state.state != voice_tokio::State::Connected {
            not_connected += 1;
        }
    }
    json!({
        "frames_sent": sent, "frames_dropped_late": late, "slots_skipped": skipped,
        "frames_dropped_not_ready": not_ready, "udp_send_errors": udp_err, "audio_dropped": audio_dropped,
        "client_decrypt_failures": decrypt, "reconnects": reconnects, "not_connected": not_connected,
        "calls_gone": gone,
    })
}

/// The client child: joins the calls, then plays on command.
fn client_main(opts: &Opts) -> Res<()> {
    let rt = runtime()?;
    let mut config = DriverConfig::default();
    config.trust_pem(&std::fs::read(&opts.cert)?)?;
    config.proto.max_dave_protocol_version = 0;
    config.proto.plain_ws = opts.plain_ws;
    config.batched_send = !opts.no_batch;
    config.wheel_threads = opts.wheel_threads;
    config.join_timeout = Duration::from_secs(120);
    // Everything that is not a call is in this baseline.
    let rss_base = procfs::rss_kb()?;
    let started = Instant::now();
    let joined = rt.block_on(join_all(opts, config));
    let connect_s = started.elapsed().as_secs_f64();
    // Let the joins' transient buffers go before the idle reading.
    std::thread::sleep(Duration::from_secs(1));
    let rss_idle = procfs::rss_kb()?;
    println!(
        "{}",
        json!({ "senders": joined.senders.len(), "listeners": joined.listeners.len(), "failed": joined.failed,
                "first_error": joined.first_error, "connect_s": connect_s, "rss_base_kb": rss_base,
                "rss_idle_kb": rss_idle })
    );
    let queued = Arc::new(AtomicU64::new(0));
    let heard = Arc::new(AtomicU64::new(0));
    let mut mark = (procfs::cpu_time()?, 0u64, 0u64, Instant::now());
    let all: Vec<Call> = joined.senders.iter().chain(&joined.listeners).cloned().collect();
    serve_commands(|cmd| match cmd {
        "play" => {
            let frame = frame();
            for call in &joined.listeners {
                rt.spawn(listen(call.clone(), heard.clone()));
            }
            let n = joined.senders.len().max(1) as u32;
            for (i, call) in joined.senders.iter().enumerate() {
                let phase = Duration::from_millis(FRAME_MS as u64) * i as u32 / n;
                rt.spawn(drive_call(call.clone(), frame.clone(), queued.clone(), opts.queue, phase));
            }
            Ok(Some(json!({ "playing": joined.senders.len() })))
        }
        "start" => {
            mark = (procfs::cpu_time()?, queued.load(Ordering::Relaxed), heard.load(Ordering::Relaxed), Instant::now());
            Ok(Some(json!({ "ok": true })))
        }
        "stop" => {
            let cpu = procfs::cpu_time()?.saturating_sub(mark.0);
            let window = mark.3.elapsed();
            let queued = queued.load(Ordering::Relaxed) - mark.1;
            let heard = heard.load(Ordering::Relaxed) - mark.2;
            Ok(Some(json!({ "cpu_s": cpu.as_secs_f64(), "window_s": window.as_secs_f64(), "queued": queued,
                            "heard": heard, "rss_kb": procfs::rss_kb()? })))
        }
        "stats" => Ok(Some(rt.block_on(call_totals(&all)))),
        "quit" => Ok(None),
        other => Err(format!("unknown command {other}").into()),
    })?;
    // Leaving thousands of calls one by one says nothing here: the server
    // goes too.
    std::process::exit(0)
}

/// The bare loop: the packet the calls send (RTP header, 160-byte payload,
/// AES-256-GCM rtpsize), sealed with voice-rtp and sent with a std socket
/// to the server's UDP port, as fast as it goes.
fn bare_main(opts: &Opts) -> Res<()> {
    use voice_rtp::{Cipher, Mode, RtpHeader, Sealer, SecretKey};
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(("127.0.0.1", opts.udp_port))?;
    let mut sealer = Sealer::new(Cipher::new(Mode::Aes256GcmRtpSize, &SecretKey::new([7; 32])), 1);
    let payload = frame();
    let mut out = Vec::with_capacity(1500);
    // An SSRC no session has: the sink drops it after the lookup.
    let ssrc = 0x7FFF_FFF0;
    let (mut seq, mut ts, mut errors) = (0u16, 0u32, 0u64);
    let mut send_one = |out: &mut Vec<u8>| -> Res<()> {
        out.clear();
        let mut header = [0u8; 12];
        RtpHeader::write_basic(&mut header, seq, ts, ssrc);
        out.extend_from_slice(&header);
        out.extend_from_slice(&payload);
        sealer.seal(out)?;
        if socket.send(out).is_err() {
            errors += 1;
        }
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(960);
        Ok(())
    };
    for _ in 0..20_000 {
        send_one(&mut out)?;
    }
    // Rounds, of which the cheapest is the floor: a round can be disturbed
    // by anything else the machine does.
    let round = opts.bare / BARE_ROUNDS;
    let mut rounds = Vec::new();
    let mut packets = 0u64;
    for _ in 0..BARE_ROUNDS {
        let (cpu0, t0, mut n) = (procfs::cpu_time()?, Instant::now(), 0u64);
        while t0.elapsed() < round {
            for _ in 0..1000 {
                send_one(&mut out)?;
            }
            n += 1000;
        }
        let cpu = procfs::cpu_time()?.saturating_sub(cpu0);
        rounds.push(cpu.as_secs_f64() * 1e6 / n as f64);
        packets += n;
    }
    rounds.sort_by(f64::total_cmp);
    // The same loop over as many sockets as calls, in turn: what the
    // kernel's UDP path costs when each send finds its socket cold, as a
    // thousand calls' do (a reference beside the floor, not the floor).
    let many = many_sockets_floor(opts, &payload, &mut sealer, &mut out)?;
    let paced = paced_floor(opts, &payload, &mut sealer, &mut out)?;
    println!(
        "{}",
        json!({ "packets": packets, "packet_bytes": out.len(), "send_errors": errors,
                "cpu_us_per_packet": rounds[0], "median_us_per_packet": rounds[rounds.len() / 2],
                "rounds_us_per_packet": rounds, "sockets_1000_us_per_packet": many,
                "paced_1000_us_per_packet": paced })
    );
    Ok(())
}

/// The bare loop's cost per packet sent over 1,000 sockets in turn.
fn many_sockets_floor(opts: &Opts, payload: &[u8], sealer: &mut voice_rtp::Sealer, out: &mut Vec<u8>) -> Res<f64> {
    let sockets = (0..1000)
        .map(|_| {
            let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
            s.connect(("127.0.0.1", opts.udp_port))?;
            Ok(s)
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut header = [0u8; 12];
    let (cpu0, t0, mut n) = (procfs::cpu_time()?, Instant::now(), 0u64);
    while t0.elapsed() < opts.bare / BARE_ROUNDS {
        for (i, socket) in sockets.iter().enumerate() {
            out.clear();
            voice_rtp::RtpHeader::write_basic(&mut header, n as u16, 0, 0x7FFF_0000 + i as u32);
            out.extend_from_slice(&header);
            out.extend_from_slice(payload);
            sealer.seal(out)?;
            let _ = socket.send(out);
            n += 1;
        }
    }
    let cpu = procfs::cpu_time()?.saturating_sub(cpu0);
    Ok(cpu.as_secs_f64() * 1e6 / n as f64)
}

/// The bare loop shaped as 1,000 calls' traffic: 1,000 sockets, each
/// sending one packet every 20 ms, a tenth of them every 2 ms tick, the
/// thread asleep in between. This is what the kernel costs for exactly
/// the calls' traffic, waking the sleeping receiver included, with no
/// library at all: the floor a paced sender can reach (beside the issue's
/// floor, which sends as fast as it goes to a receiver that never sleeps).
fn paced_floor(opts: &Opts, payload: &[u8], sealer: &mut voice_rtp::Sealer, out: &mut Vec<u8>) -> Res<f64> {
    const SOCKETS: usize = 1000;
    const TICK: Duration = Duration::from_millis(2);
    let sockets = (0..SOCKETS)
        .map(|_| {
            let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
            s.connect(("127.0.0.1", opts.udp_port))?;
            Ok(s)
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let per_tick = SOCKETS / 10;
    let mut header = [0u8; 12];
    let (cpu0, t0, mut n) = (procfs::cpu_time()?, Instant::now(), 0u64);
    let mut tick = 0u32;
    while t0.elapsed() < opts.bare {
        let due = t0 + TICK * tick;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let bucket = tick as usize % 10;
        for (i, socket) in sockets.iter().enumerate().skip(bucket * per_tick).take(per_tick) {
            out.clear();
            voice_rtp::RtpHeader::write_basic(&mut header, (tick / 10) as u16, 0, 0x7FFF_0000 + i as u32);
            out.extend_from_slice(&header);
            out.extend_from_slice(payload);
            sealer.seal(out)?;
            let _ = socket.send(out);
            n += 1;
        }
        tick += 1;
    }
    let cpu = procfs::cpu_time()?.saturating_sub(cpu0);
    Ok(cpu.as_secs_f64() * 1e6 / n.max(1) as f64)
}

// ------------------------------------------------------------ orchestrator

fn f(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

fn u(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn start_server(max_calls: usize) -> Res<(Peer, Value)> {
    let mut server =
        Peer::spawn("server", &["--role".into(), "server".into(), "--max-calls".into(), max_calls.to_string()])?;
    let ready = server.read()?;
    Ok((server, ready))
}

fn bare(opts: &Opts) -> Res<Value> {
    let (server, ready) = start_server(16)?;
    let args = [
        "--role".to_owned(),
        "bare".to_owned(),
        "--udp-port".to_owned(),
        u(&ready, "udp_port").to_string(),
        "--bare-secs".to_owned(),
        opts.bare.as_secs_f64().to_string(),
    ];
    let drops0 = procfs::udp_rcvbuf_errors().unwrap_or(0);
    let mut child = Peer::spawn("bare loop", &args)?;
    let mut result = child.read()?;
    result["kernel_udp_drops"] = json!(procfs::udp_rcvbuf_errors().unwrap_or(0).saturating_sub(drops0));
    child.finish();
    server.finish();
    Ok(result)
}

/// One row: a fresh server, a client with `calls` calls, a warm-up, the window.
fn row(opts: &Opts, calls: usize, receive: bool, bare_us: f64) -> Res<Value> {
    let (mut server, ready) = start_server(calls)?;
    let port = if opts.plain_ws { u(&ready, "ws_port") } else { u(&ready, "wss_port") };
    let mut args = vec![
        "--role".to_owned(),
        "client".to_owned(),
        "--max-calls".to_owned(),
        calls.to_string(),
        "--endpoint".to_owned(),
        format!("127.0.0.1:{port}"),
        "--cert".to_owned(),
        ready.get("cert").and_then(Value::as_str).unwrap_or_default().to_owned(),
        "--concurrency".to_owned(),
        opts.concurrency.to_string(),
    ];
    if receive {
        args.push("--listeners".to_owned());
    }
    if opts.queue {
        args.push("--queue".to_owned());
    }
    if opts.plain_ws {
        args.push("--plain-ws".to_owned());
    }
    if opts.no_batch {
        args.push("--no-batch".to_owned());
    }
    if opts.wheel_threads {
        args.push("--wheel-threads".to_owned());
    }
    let mut client = Peer::spawn("client", &args)?;
    let joined = client.read()?;
    let senders = u(&joined, "senders");
    if let Some(e) = joined.get("first_error").and_then(Value::as_str) {
        eprintln!("scale: {calls} calls: {} joins failed, first: {e}", u(&joined, "failed"));
    }
    client.ask("play")?;
    std::thread::sleep(opts.warmup);
    let drops0 = procfs::udp_rcvbuf_errors().unwrap_or(0);
    server.ask("reset")?;
    client.ask("start")?;
    std::thread::sleep(opts.window);
    let c = client.ask("stop")?;
    let s = server.ask("snapshot")?;
    let kernel_drops = procfs::udp_rcvbuf_errors().unwrap_or(0).saturating_sub(drops0);
    let totals = client.ask("stats")?;
    client.finish();
    server.finish();

    let connected = senders + u(&joined, "listeners");
    let expected = senders as f64 * f(&s, "window_s") * 1000.0 / FRAME_MS;
    let received = u(&s, "packets");
    // What the calls sent, by their RTP sequence numbers as the server saw
    // them: frames queued overstate it when a stalled pacer skips frames.
    let sent = u(&s, "seq_expected");
    let cpu_us = f(&c, "cpu_s") * 1e6 / sent.max(1) as f64;
    let per_call = |kb: u64| kb.saturating_sub(u(&joined, "rss_base_kb")) as f64 / connected.max(1) as f64;
    Ok(json!({
        "mode": if receive { "receive" } else { "send" },
        "calls": calls,
        "senders": senders,
        "listeners": u(&joined, "listeners"),
        "connect_failed": u(&joined, "failed"),
        "connect_s": f(&joined, "connect_s"),
        "window_s": f(&c, "window_s"),
        "cpu_us_per_packet": cpu_us,
        "ratio_to_bare": cpu_us / bare_us,
        "client_cpu_pct": 100.0 * f(&c, "cpu_s") / f(&c, "window_s"),
        "kb_per_call": per_call(u(&c, "rss_kb")),
        "idle_kb_per_call": per_call(u(&joined, "rss_idle_kb")),
        "rss_base_kb": u(&joined, "rss_base_kb"),
        "rss_kb": u(&c, "rss_kb"),
        "packets_expected": expected.round(),
        "packets_sent": sent,
        "frames_queued": u(&c, "queued"),
        "packets_received": received,
        "shortfall": (expected - received as f64).max(0.0).round(),
        "lost": u(&s, "seq_lost"),
        "late": u(&s, "late"),
        "decrypt_failures": u(&s, "decrypt_failures"),
        "gap_p50_ms": s.get("gap_p50_ms"),
        "gap_p99_ms": s.get("gap_p99_ms"),
        "gap_max_ms": s.get("gap_max_ms"),
        "worst_call_gap_p99_ms": s.get("worst_ssrc_p99_ms"),
        "heard": u(&c, "heard"),
        "server_cpu_us_per_packet": f(&s, "cpu_s") * 1e6 / received.max(1) as f64,
        "kernel_udp_drops": kernel_drops,
        "server": s,
        "calls_run": totals,
    }))
}

fn table(bare: &Value, rows: &[Value]) -> String {
    let mut t = String::new();
    t.push_str(&format!(
        "bare loop (seal AES-256-GCM + send, {} B packets): {:.2} µs/packet (cheapest of {} rounds, median {:.2}) over {} packets\n\n",
        u(bare, "packet_bytes"),
        f(bare, "cpu_us_per_packet"),
        BARE_ROUNDS,
        f(bare, "median_us_per_packet"),
        u(bare, "packets")
    ));
    t.push_str(&format!(
        "the same loop over 1000 sockets in turn (each send finds its socket cold, as calls' do): {:.2} µs/packet\n\n",
        f(bare, "sockets_1000_us_per_packet")
    ));
    t.push_str(&format!(
        "the same loop paced as 1000 calls' traffic (each socket every 20 ms, a tenth of them per 2 ms tick, asleep between): {:.2} µs/packet\n\n",
        f(bare, "paced_1000_us_per_packet")
    ));
    t.push_str(
        "| mode | calls | connect s | µs/pkt | × bare | client CPU % | KB/call | idle KB/call | expected | received | short % | lost | late | decrypt fail | gap p50 ms | gap p99 ms | heard | server µs/pkt | kernel drops |\n",
    );
    t.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let expected = f(r, "packets_expected");
        let gap = |k: &str| r.get(k).and_then(Value::as_f64).map_or("-".to_owned(), |x| format!("{x:.1}"));
        let heard = if r["mode"] == "receive" { u(r, "heard").to_string() } else { "-".to_owned() };
        t.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.0} | {:.1} | {:.1} | {:.0} | {} | {:.2} | {} | {} | {} | {} | {} | {} | {:.2} | {} |\n",
            r["mode"].as_str().unwrap_or("?"),
            u(r, "calls"),
            f(r, "connect_s"),
            f(r, "cpu_us_per_packet"),
            f(r, "ratio_to_bare"),
            f(r, "client_cpu_pct"),
            f(r, "kb_per_call"),
            f(r, "idle_kb_per_call"),
            expected,
            u(r, "packets_received"),
            100.0 * f(r, "shortfall") / expected.max(1.0),
            u(r, "lost"),
            u(r, "late"),
            u(r, "decrypt_failures"),
            gap("gap_p50_ms"),
            gap("gap_p99_ms"),
            heard,
            f(r, "server_cpu_us_per_packet"),
            u(r, "kernel_udp_drops"),
        ));
    }
    t
}

fn orchestrate(opts: &Opts) -> Res<()> {
    let mut plan: Vec<(usize, bool)> = opts.calls.iter().map(|&n| (n, false)).collect();
    if opts.receive {
        plan.extend(opts.receive_calls.iter().map(|&n| (n, true)));
    }
    let most = plan.iter().map(|p| p.0).max().unwrap_or(0) as u64;
    // A call holds a TCP and a UDP socket; the server, a TCP socket per call.
    let limit = procfs::open_files_limit()?;
    if limit < 2 * most + 256 {
        eprintln!(
            "scale: the open-files limit is {limit}, and {most} calls need about {}: raise it (ulimit -n) or expect failed joins",
            2 * most + 256
        );
    }
    eprintln!(
        "scale: window {:.0} s after {:.0} s of warm-up; rows {:?}",
        opts.window.as_secs_f64(),
        opts.warmup.as_secs_f64(),
        plan
    );
    let bare = bare(opts)?;
    println!("{}", json!({ "bare": bare }));
    let bare_us = f(&bare, "cpu_us_per_packet");
    let mut rows = Vec::new();
    for (calls, receive) in plan {
        eprintln!("scale: {calls} calls{}...", if receive { " with receive" } else { "" });
        let r = row(opts, calls, receive, bare_us)?;
        println!("{r}");
        rows.push(r);
    }
    println!("\n{}", table(&bare, &rows));
    Ok(())
}
