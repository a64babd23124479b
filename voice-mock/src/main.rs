//! `voice-mock`: an offline Discord voice server on 127.0.0.1.

use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use voice_mock::{DavePolicy, Fault, RunnerConfig, Server, ServerConfig};
use voice_rtp::Mode;

const HELP: &str = "\
voice-mock: an offline Discord voice server (voice gateway v4/v8, ws + wss, UDP media,
DAVE end-to-end encryption as the MLS external sender)

USAGE:
    voice-mock [OPTIONS]

Binds 127.0.0.1, accepts any token (a token `CHANNEL_ID.anything` joins that
channel's room; other tokens share one room per guild), and prints one JSON
line when ready:
    {\"ws_port\":P,\"wss_port\":P,\"udp_port\":P,\"cert\":\"PATH\"}
Connect with ws://127.0.0.1:WS_PORT/?v=8 or wss://localhost:WSS_PORT/?v=8
(trusting the certificate at PATH). Stop with Ctrl-C.

OPTIONS:
    --ws-port P          websocket port (default 0: a free port)
    --wss-port P         TLS websocket port (default 0: a free port)
    --udp-port P         UDP media port (default 0: a free port)
    --modes M1,M2        offer only these modes, in this order
                         (default: aead_aes256_gcm_rtpsize,aead_xchacha20_poly1305_rtpsize)
    --legacy-modes       also offer the five discontinued modes
    --cert-out FILE      write the certificate PEM here (default: a temporary file)
    --log FILE           JSON lines: every frame received and sent (tokens
                         redacted), closes, events, per-client RTP counts every 5 s
    --seed N             seed of SSRCs, keys and UDP faults (default 24301)
    --heartbeat-ms MS    heartbeat interval sent in Hello (default 13750);
                         no heartbeat for 1.5 intervals closes with 4009
    --require-token      refuse tokens not issued in-process (4004); rarely useful here
    --no-tls             do not serve wss
    --sink               sink mode, for load tests: RTP from a client alone in its
                         room is decrypted (to verify it), counted per SSRC with a
                         histogram of the gaps between packets, and dropped in the
                         UDP receiver; RTP with a listener is still forwarded
    --sink-report SECS   with --sink: print one JSON line of sink counters every
                         SECS seconds (each line covers the SECS before it);
                         with --sink one line is printed at exit in any case
    --udp-recv-buffer B  UDP receive buffer in bytes (past rmem_max with CAP_NET_ADMIN; default: the system's)
    --dave POLICY        DAVE end-to-end encryption (the server is the MLS
                         external sender and delivery service):
                           required  every room runs DAVE version 1; an Identify
                                     without max_dave_protocol_version >= 1 is
                                     closed with 4017 after Hello (default)
                           optional  DAVE while every member of a room supports
                                     it, version 0 while any does not
                                     (downgrade on join, upgrade on leave)
                           off       version 0 for everyone
    --dave-execute-timeout-ms MS
                         op 22 goes this long after a transition was announced
                         even if not every member sent op 23 (default 2000)
    --dave-commit-timeout-ms MS
                         proposals without a valid commit this long are revoked
                         and proposed again (default 5000)
    --fault SPEC         inject a fault; repeatable:
        close:CODE:SECS          close each session with CODE, SECS after it identified
        close-user:USER:CODE[:SECS]  close one user's websocket
        no-heartbeat-ack         never answer heartbeats
        udp-drop:P               drop a share P (0..1) of forwarded media datagrams
        udp-reorder:P            swap a share P of forwarded datagrams with the next one
        udp-delay-ms:MS          delay every forwarded datagram by MS
        refuse-resume            answer every Resume with 4006
        ignore-discovery:N       answer none of the next N IP discovery requests
        cut-user:USER            drop USER's websocket without a close frame
        stall-user:USER:SECS     USER's open websocket goes silent both ways for SECS
        dave-corrupt-welcome[:USER]  flip a byte of the next op 30 (to USER)
        dave-corrupt-commit[:USER]   flip a byte of the next op 29 (to USER)
        dave-delay-execute-ms:MS     send op 22 MS after a transition is ready
        dave-drop-ready:USER         ignore USER's op 23 (transitions time out)
    -h, --help           print this help
";

struct Args {
    config: RunnerConfig,
    cert_out: Option<PathBuf>,
    sink_report: Option<Duration>,
}

/// A duration in whole milliseconds, 1 to 600000.
fn millis(parser: &mut lexopt::Parser) -> Result<Duration, lexopt::Error> {
    use lexopt::ValueExt;
    let ms: u64 = parser.value()?.parse()?;
    if !(1..=600_000).contains(&ms) {
        return Err("milliseconds must be between 1 and 600000".into());
    }
    Ok(Duration::from_millis(ms))
}

fn parse_args() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut config = RunnerConfig::default();
    let mut server = ServerConfig::default();
    let mut cert_out = None;
    let mut sink_report = None;
    let mut modes: Option<Vec<Mode>> = None;
    let mut legacy = false;
    let mut faults = Vec::new();
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("ws-port") => config.ws_port = parser.value()?.parse()?,
            Long("wss-port") => config.wss_port = parser.value()?.parse()?,
            Long("udp-port") => config.udp_port = parser.value()?.parse()?,
            Long("modes") => {
                let list: String = parser.value()?.parse()?;
                let parsed = list
                    .split(',')
                    .map(|m| m.trim().parse::<Mode>().map_err(|e| lexopt::Error::Custom(Box::new(e))))
                    .collect::<Result<Vec<_>, _>>()?;
                modes = Some(parsed);
            }
            Long("legacy-modes") => legacy = true,
            Long("cert-out") => cert_out = Some(PathBuf::from(parser.value()?)),
            Long("log") => config.log = Some(PathBuf::from(parser.value()?)),
            Long("seed") => server.seed = parser.value()?.parse()?,
            Long("heartbeat-ms") => {
                let ms: f64 = parser.value()?.parse()?;
                if !(ms.is_finite() && ms >= 1.0) {
                    return Err("--heartbeat-ms must be at least 1".into());
                }
                server.heartbeat_interval_ms = ms;
            }
            Long("require-token") => server.require_token = true,
            Long("no-tls") => config.tls = false,
            Long("sink") => config.sink = true,
            Long("sink-report") => {
                let secs: f64 = parser.value()?.parse()?;
                if !(secs.is_finite() && (0.1..=86_400.0).contains(&secs)) {
                    return Err("--sink-report takes 0.1 to 86400 seconds".into());
                }
                sink_report = Some(Duration::from_secs_f64(secs));
            }
            Long("udp-recv-buffer") => config.udp_recv_buffer = parser.value()?.parse()?,
            Long("dave") => {
                let name: String = parser.value()?.parse()?;
                server.dave = DavePolicy::from_name(&name).ok_or("--dave takes required, optional or off")?;
            }
            Long("dave-execute-timeout-ms") => server.dave_execute_timeout = millis(&mut parser)?,
            Long("dave-commit-timeout-ms") => server.dave_commit_timeout = millis(&mut parser)?,
            Long("fault") => faults.push(parser.value()?.parse::<String>()?),
            Short('h') | Long("help") => {
                print!("{HELP}");
                std::process::exit(0);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    if let Some(m) = modes {
        server.modes = m;
    }
    if legacy {
        for m in Mode::PREFERENCE {
            if !server.modes.contains(&m) {
                server.modes.push(m);
            }
        }
    }
    config.faults = Fault::parse_specs(&faults).map_err(|e| lexopt::Error::Custom(Box::new(e)))?;
    config.server = server;
    if sink_report.is_some() && !config.sink {
        return Err("--sink-report needs --sink".into());
    }
    Ok(Args { config, cert_out, sink_report })
}

/// One JSON line of the sink's counters over a window.
fn sink_line(stats: &voice_mock::SinkStats) -> String {
    let ms = |d: Option<Duration>| d.map_or(serde_json::Value::Null, |d| (d.as_secs_f64() * 1000.0).into());
    let t = &stats.total;
    serde_json::json!({
        "sink": {
            "window_ms": stats.window.as_secs_f64() * 1000.0,
            "ssrcs": stats.ssrcs.len(),
            "packets": t.packets,
            "bytes": t.bytes,
            "forwarded": t.forwarded,
            "lost": t.lost(),
            "decrypt_failures": t.decrypt_failures,
            "unknown_ssrc": stats.unknown_ssrc,
            "gap_p50_ms": ms(t.gaps.quantile(0.5)),
            "gap_p99_ms": ms(t.gaps.quantile(0.99)),
            "gap_max_ms": ms(t.gaps.max()),
        }
    })
    .to_string()
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("voice-mock: {e}\n\n{HELP}");
            return ExitCode::from(2);
        }
    };
    let server = match Server::start(args.config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("voice-mock: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cert_path =
        args.cert_out.unwrap_or_else(|| std::env::temp_dir().join(format!("voice-mock-{}.pem", std::process::id())));
    if !server.cert_pem().is_empty()
        && let Err(e) = std::fs::write(&cert_path, server.cert_pem())
    {
        eprintln!("voice-mock: cannot write {}: {e}", cert_path.display());
        return ExitCode::FAILURE;
    }
    let cert = if server.cert_pem().is_empty() { String::new() } else { cert_path.display().to_string() };
    let ready = format!(
        r#"{{"ws_port":{},"wss_port":{},"udp_port":{},"cert":{}}}"#,
        server.ws_port(),
        server.wss_port(),
        server.udp_port(),
        serde_json::Value::String(cert)
    );
    if args.sink_report.is_some() {
        // The first window starts here, before a client can learn the
        // ports: a reset after the ready line could discard its packets.
        server.take_sink_stats();
    }
    println!("{ready}");
    match args.sink_report {
        Some(every) => {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => break,
                    _ = tick.tick() => {
                        if let Some(s) = server.take_sink_stats() {
                            println!("{}", sink_line(&s));
                        }
                    }
                }
            }
            if let Some(s) = server.take_sink_stats() {
                println!("{}", sink_line(&s));
            }
        }
        None => {
            let _ = tokio::signal::ctrl_c().await;
            if let Some(s) = server.sink_stats() {
                println!("{}", sink_line(&s));
            }
        }
    }
    server.shutdown().await;
    ExitCode::SUCCESS
}
