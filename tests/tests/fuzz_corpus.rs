//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the
//! same target bodies the cargo-fuzz shims call, so that stable CI checks
//! every input the fuzzer ever kept. A missing or empty corpus directory is
//! a failure, never a silent pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Instant;

/// The corpus inputs of `target`, sorted by name; panics if there are none.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus directory {}: {e}", dir.display()));
    let mut inputs: Vec<(PathBuf, Vec<u8>)> = entries
        .map(|entry| entry.expect("read corpus directory entry").path())
        .filter(|path| path.is_file())
        .map(|path| {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, data)
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "corpus directory {} holds no inputs", dir.display());
    inputs
}

/// Runs `body` on every input of `target`, naming the input that panicked.
fn replay(target: &str, body: impl Fn(&[u8]) + std::panic::RefUnwindSafe) {
    for (path, data) in corpus(target) {
        if let Err(panic) = std::panic::catch_unwind(|| body(&data)) {
            eprintln!("fuzz target {target} panicked on {}", path.display());
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn rtp_view() {
    replay("rtp_view", voice_rtp::fuzzing::packet_views);
}

#[test]
fn decrypt() {
    replay("decrypt", voice_rtp::fuzzing::open_and_round_trip);
}

#[test]
fn ws_payload() {
    replay("ws_payload", voice_proto::fuzzing::ws_payload);
}

#[test]
fn connection() {
    // Any start instant will do: the connection only ever reads the times it is given.
    replay("connection", |data| voice_proto::fuzzing::connection(data, Instant::now()));
}

#[test]
fn open_null() {
    replay("open_null", voice_rtp::fuzzing::open_null);
}

#[test]
fn rtcp() {
    replay("rtcp", voice_rtp::fuzzing::rtcp_reports);
}

#[test]
fn connection_ops() {
    replay("connection_ops", |data| voice_proto::fuzzing::connection_ops(data, Instant::now()));
}

#[test]
fn server() {
    replay("server", voice_tests::fuzzing::server);
}
