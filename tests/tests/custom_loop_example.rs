//! The `custom_loop` example (a hand-written loop over std sockets driving
//! `VoiceConnection` against voice-mock) exits 0: the audio went through.
//!
//! `cargo test` builds the examples; this test runs the built binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `target/<profile>/examples/custom_loop`, next to this test's own binary.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target dir");
    let bin = dir.join("examples").join(format!("custom_loop{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} not built (cargo test builds examples)", bin.display());
    bin
}

#[test]
fn the_custom_loop_example_gets_its_audio_through() {
    let mut child = Command::new(example_binary()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Read both pipes while waiting, so that a chatty run cannot block on them.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    // The example gives up by itself after 10 s; this is the backstop.
    let limit = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > limit {
            child.kill().unwrap();
            panic!("custom_loop still running after 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    assert!(status.success(), "custom_loop failed ({status}):\n{stdout}\n{stderr}");
    let summary = stdout.lines().find(|l| l.starts_with("summary: ok")).expect("summary line");
    assert!(summary.contains("sent 50/50") && summary.contains("heard 50"), "{summary}");
}
