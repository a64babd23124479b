//! The binary: ready line, certificate file, wss, faults and the log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{T, TestClient};
use serde_json::{Value, json};
use voice_rtp::Mode;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> (Kill, Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_voice-mock"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(20)).expect("ready line");
    (Kill(child), serde_json::from_str(&line).unwrap())
}

#[test]
fn help_lists_faults() {
    let out = Command::new(env!("CARGO_BIN_EXE_voice-mock")).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "--ws-port",
        "--legacy-modes",
        "--cert-out",
        "--log",
        "udp-drop",
        "refuse-resume",
        "ignore-discovery",
        "--seed",
        "--dave POLICY",
        "--dave-execute-timeout-ms",
        "dave-corrupt-welcome",
        "dave-drop-ready",
        "--sink",
        "--sink-report",
        "--udp-recv-buffer",
    ] {
        assert!(help.contains(needle), "{needle}");
    }
    for args in [
        &["--fault", "nope"][..],
        &["--dave", "maybe"],
        &["--dave-execute-timeout-ms", "0"],
        &["--sink-report", "1"],
        &["--sink", "--sink-report", "0"],
    ] {
        let bad = Command::new(env!("CARGO_BIN_EXE_voice-mock")).args(args).output().unwrap();
        assert!(!bad.status.success(), "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_wss_with_faults_and_logs() {
    let dir = std::env::temp_dir().join(format!("voice-mock-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, log) = (dir.join("cert.pem"), dir.join("log.jsonl"));
    let (child, ready) = spawn(&[
        "--modes",
        "aead_xchacha20_poly1305_rtpsize",
        "--cert-out",
        cert.to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
        "--fault",
        "close:4015:0.5",
        "--seed",
        "7",
        "--dave",
        "off",
    ]);
    assert_eq!(ready["cert"], cert.to_str().unwrap());
    let pem = std::fs::read_to_string(&cert).unwrap();
    let wss = format!("127.0.0.1:{}", ready["wss_port"]);
    let mut c = TestClient::connect(&wss, 8, Some(&pem)).await;
    // Any token works; `CHANNEL.x` picks the room.
    let join = voice_mock::JoinInfo {
        guild_id: 5.into(),
        channel_id: 6.into(),
        user_id: 9.into(),
        session_id: "s".into(),
        token: "6.secret-token".into(),
        endpoint: wss.clone(),
    };
    let r = c.identify(&join).await;
    assert_eq!(r["modes"], json!(["aead_xchacha20_poly1305_rtpsize"]));
    assert_eq!(r["port"], ready["udp_port"]);
    c.establish(Mode::XChaCha20Poly1305RtpSize).await;
    assert_eq!(c.wait_close(T).await, Some(4015));
    drop(child);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()));
    assert!(text.contains("\"dir\":\"in\"") && text.contains("\"dir\":\"out\""));
    assert!(text.contains("\"close\":4015"));
    assert!(!text.contains("secret-token"), "tokens are redacted");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_sink_mode_reports_what_it_counted() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_voice-mock"))
        .args(["--sink", "--sink-report", "0.2", "--no-tls", "--dave", "off", "--udp-recv-buffer", "1048576"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Kill(child);
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                break;
            }
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(20)).expect("ready line");
    let ws = format!("127.0.0.1:{}", ready["ws_port"]);
    let mut c = TestClient::connect(&ws, 8, None).await;
    let join = voice_mock::JoinInfo {
        guild_id: 5.into(),
        channel_id: 6.into(),
        user_id: 9.into(),
        session_id: "s".into(),
        token: "6.t".into(),
        endpoint: ws.clone(),
    };
    c.identify(&join).await;
    c.establish(Mode::Aes256GcmRtpSize).await;
    for seq in 0..5u16 {
        c.send_rtp(seq, 960 * u32::from(seq), &[0xFC; 40]).await;
    }
    // Each line covers its own 0.2 s: add them up.
    let (mut packets, mut lines) = (0, Vec::new());
    let deadline = std::time::Instant::now() + T;
    while packets < 5 && std::time::Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else { continue };
        assert_eq!((line["sink"]["decrypt_failures"].as_u64(), line["sink"]["lost"].as_u64()), (Some(0), Some(0)));
        packets += line["sink"]["packets"].as_u64().unwrap();
        lines.push(line["sink"].to_string());
    }
    assert_eq!(packets, 5, "after {} lines: {lines:#?}", lines.len());
    drop(child);
}
