//! The `play` example as a user runs it, whatever its runtime (voice-tokio's
//! `play`, voice-async-std's `play_smol` share these cases): against a
//! voice-mock server on loopback, `--file` with a generous `--timeout`
//! leaves once the file has played, and the offline demo's counts agree
//! with what was sent.
//!
//! `cargo test` builds the examples; these tests run the built binary. The
//! including test file defines `play_binary()` and `listener_runtime()`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;
use voice_driver::DriverConfig;
use voice_proto::wire::Snowflake;

use super::{listener_runtime, play_binary};

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../voice-tokio/assets/sample.ogg");

/// `target/<profile>/examples/NAME`, next to the running test's binary.
pub fn example_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target dir");
    let bin = dir.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} not built (cargo test builds examples)", bin.display());
    bin
}

fn sample_frames() -> usize {
    voice_driver::ogg::read_ogg_opus(&std::fs::read(SAMPLE).unwrap()).unwrap().len()
}

async fn server() -> voice_mock::Server {
    let mut config = voice_mock::RunnerConfig::default();
    config.server.heartbeat_interval_ms = 1000.0;
    voice_mock::Server::start(config).await.expect("mock server")
}

fn driver_config(server: &voice_mock::Server) -> DriverConfig {
    let mut c = DriverConfig::default();
    c.trust_pem(server.cert_pem().as_bytes()).expect("cert");
    c.join_timeout = Duration::from_secs(10);
    c
}

/// Pulls `N` out of `... {label} N ...` in a line.
fn number_after(line: &str, label: &str) -> Option<u64> {
    let rest = &line[line.find(label)? + label.len()..];
    rest.split(|c: char| !c.is_ascii_digit()).find(|s| !s.is_empty())?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_with_a_timeout_leaves_once_the_file_has_played() {
    let server = server().await;
    let (guild, channel) = (Snowflake(71), Snowflake(72));
    // Someone to play to: an end-to-end encrypted call needs a second member.
    let info = server.join_wss(guild, channel, Snowflake(81));
    let listener = voice_driver::connect(listener_runtime(), info, driver_config(&server)).await.expect("listener");
    let info = server.join(guild, channel, Snowflake(82));
    let started = Instant::now();
    let run = Command::new(play_binary())
        .args(["--endpoint", &info.endpoint, "--plain-ws", "--token", info.token.expose()])
        .args(["--session", &info.session_id, "--user", "82", "--guild", "71", "--channel", "72"])
        .args(["--file", SAMPLE, "--timeout", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), run).await.expect("play hung").expect("play ran");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "play failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let frames = sample_frames() as u64;
    let file_len = Duration::from_millis(20 * frames);
    // It ends a few seconds after the file's length, far from the 60 s limit.
    assert!(took < file_len + Duration::from_secs(15), "play stayed {took:?} for a {file_len:?} file");
    let line = stdout.lines().find(|l| l.starts_with("summary")).expect("summary line");
    assert_eq!(number_after(line, "sent"), Some(frames), "{line}");
    assert_eq!(number_after(line, "+"), Some(5), "the silence trailer: {line}");
    listener.close().await.unwrap();
    server.shutdown().await;
}

/// A 16-bit stereo WAV of a 440 Hz tone at 44.1 kHz.
fn tone_wav(secs: f32) -> Vec<u8> {
    let rate = 44_100u32;
    let mut data = Vec::new();
    for i in 0..(rate as f32 * secs) as usize {
        let v = (0.4 * (std::f32::consts::TAU * 440.0 * i as f32 / rate as f32).sin() * 32767.0) as i16;
        data.extend_from_slice(&v.to_le_bytes());
        data.extend_from_slice(&v.to_le_bytes());
    }
    let mut w = b"RIFF".to_vec();
    w.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    for v in [16u32, 0x0002_0001, rate, rate * 4, 0x0010_0004] {
        w.extend_from_slice(&v.to_le_bytes());
    }
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(data.len() as u32).to_le_bytes());
    w.extend_from_slice(&data);
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_takes_any_format_a_wav_is_decoded_resampled_and_encoded() {
    let server = server().await;
    let (guild, channel) = (Snowflake(73), Snowflake(74));
    let info = server.join_wss(guild, channel, Snowflake(83));
    let listener = voice_driver::connect(listener_runtime(), info, driver_config(&server)).await.expect("listener");
    let mut heard = listener.take_audio().unwrap();
    let dir = std::env::temp_dir().join(format!("play-wav-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wav = dir.join("tone.wav");
    std::fs::write(&wav, tone_wav(2.0)).unwrap();
    let info = server.join(guild, channel, Snowflake(84));
    let run = Command::new(play_binary())
        .args(["--endpoint", &info.endpoint, "--plain-ws", "--token", info.token.expose()])
        .args(["--session", &info.session_id, "--user", "84", "--guild", "73", "--channel", "74"])
        .args(["--file", wav.to_str().unwrap(), "--timeout", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), run).await.expect("play hung").expect("play ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "play failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().find(|l| l.starts_with("summary")).expect("summary line");
    // Two seconds: 100 frames (give or take the resampler's last one).
    let sent = number_after(line, "sent").expect("sent");
    assert!((99..=101).contains(&sent), "{line}");
    // The listener hears the tone: decode its Opus and find 440 Hz.
    let mut dec = ropus::Decoder::new(48_000, ropus::Channels::Stereo).unwrap();
    let (mut pcm, mut out) = (Vec::new(), vec![0f32; 5760 * 2]);
    while let Ok(Some(p)) = tokio::time::timeout(Duration::from_millis(500), heard.recv()).await {
        if p.opus.as_ref() != [0xF8, 0xFF, 0xFE] {
            let n = dec.decode_float(&p.opus, &mut out, ropus::DecodeMode::Normal).unwrap();
            pcm.extend(out[..n * 2].chunks_exact(2).map(|s| s[0]));
        }
    }
    assert!(pcm.len() >= 96 * 960, "{} samples heard", pcm.len());
    let x = &pcm[9_600..86_400];
    let w = std::f32::consts::TAU * 440.0 / 48_000.0;
    let (mut s1, mut s2) = (0f32, 0f32);
    for &v in x {
        let s = v + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let level = 2.0 * (s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2).max(0.0).sqrt() / x.len() as f32;
    assert!((level - 0.4).abs() < 0.05, "440 Hz heard at {level}");
    let _ = std::fs::remove_dir_all(&dir);
    listener.close().await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offline_demo_counts_the_same_things_on_both_sides() {
    let run = Command::new(play_binary()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).output();
    let out = tokio::time::timeout(Duration::from_secs(90), run).await.expect("demo hung").expect("demo ran");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "demo failed: {stdout}\n{stderr}");
    let frames = sample_frames() as u64;

    // The last progress line: audio sent and audio received agree, and
    // silence is shown apart.
    let progress = stderr.lines().rfind(|l| l.contains("audio sent")).expect("progress lines");
    assert_eq!(number_after(progress, "audio sent"), Some(frames), "{progress}");
    assert_eq!(number_after(progress, "received"), Some(frames), "{progress}");
    assert_eq!(number_after(progress, "silence received"), Some(5), "{progress}");

    // The summary: what the player sent is what the listener received,
    // audio and silence alike.
    let player = stdout.lines().find(|l| l.trim_start().starts_with("player  :")).expect("player line");
    let listener = stdout.lines().find(|l| l.trim_start().starts_with("listener:")).expect("listener line");
    let sent = (number_after(player, "sent"), number_after(player, "audio +"));
    let heard = &listener[listener.find("received").expect("received")..];
    let received = (number_after(heard, "received"), number_after(heard, "audio +"));
    assert_eq!(sent, (Some(frames), Some(5)), "{player}");
    assert_eq!(received, sent, "{listener}");
    assert!(stdout.contains("identical to the file: yes"), "{stdout}");
    // Decoded per user through the playout buffer, nothing concealed.
    let n = frames + 5;
    let decoded = format!("user 10: {n} packets, {n} decoded, 0 rebuilt from FEC, 0 concealed, 0 late");
    assert!(stdout.contains(&decoded), "{stdout}");
    assert!(stdout.contains("decoded/10.wav") && stdout.contains("decoded/mix.wav"), "{stdout}");
}
