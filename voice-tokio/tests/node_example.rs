//! The `node` example (driver-only audio node) as a user runs it offline:
//! `--mock 3` connects three calls on the embedded server, each looping
//! the sample from the driver, and prints each call's stats as JSON lines.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn the_node_example_reports_every_call_and_its_audio_is_heard() {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(|d| d.parent()).unwrap().join("examples").join("node");
    assert!(bin.exists(), "{} not built (cargo test builds examples)", bin.display());
    let out = Command::new(&bin).args(["--mock", "3", "--seconds", "3", "--every", "1"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let summary = lines.last().unwrap();
    assert_eq!(summary["calls"], 3);
    let sent = summary["packets_sent"].as_u64().unwrap();
    let heard = summary["listeners_heard"].as_u64().unwrap();
    // About 3 s of 50 packets/s per call, and the listeners heard them.
    assert!(sent >= 3 * 100, "{summary}");
    assert!(heard * 10 >= sent * 9 && heard <= sent, "{summary}");
    let stats: Vec<&serde_json::Value> = lines.iter().filter(|l| l.get("guild").is_some()).collect();
    for guild in ["1000", "1001", "1002"] {
        let last = stats.iter().rev().find(|l| l["guild"] == guild).expect("a stats line per call");
        assert_eq!(last["state"], "Connected");
        assert_eq!(last["mode"], "aead_aes256_gcm_rtpsize");
        assert_eq!(last["dave"], 1);
        assert!(last["packets_sent"].as_u64().unwrap() > 50);
        assert_eq!(last["users"].as_array().unwrap().len(), 0, "the listener sends nothing: no user heard");
    }
}
