//! Shared helpers for the integration tests: loading the recorded vectors
//! from `testdata/vectors/` and rebuilding the synthetic Opus stream.

#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use serde::Deserialize;
use voice_rtp::Mode;

/// Path of a file in the workspace's copy of the vectors.
#[macro_export]
macro_rules! vector_path {
    ($file:literal) => {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/", $file)
    };
}

pub const TRANSPORT: &str = vector_path!("transport.jsonl");
pub const IP_DISCOVERY: &str = vector_path!("ip-discovery.jsonl");
pub const GATEWAY_FRAMES: &str = vector_path!("gateway-client-frames.jsonl");

/// `secret_key` of PROTOCOL.md §9.4: bytes 00 01 02 … 1F.
pub fn key_9_4() -> [u8; 32] {
    core::array::from_fn(|i| i as u8)
}

/// Parses space-separated (or contiguous) hex.
pub fn hx(s: &str) -> Vec<u8> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(clean).unwrap()
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExtensionRecord {
    pub profile: String,
    pub body: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TransportRecord {
    pub mode: String,
    pub source: String,
    pub direction: String,
    pub call: u32,
    pub index: u32,
    pub secret_key: String,
    pub datagram: String,
    pub opus: String,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub marker: bool,
    pub nonce: String,
    pub nonce_counter: Option<u32>,
    pub extension: Option<ExtensionRecord>,
    pub csrcs: Option<Vec<u32>>,
}

impl TransportRecord {
    pub fn mode(&self) -> Mode {
        Mode::from_name(&self.mode).unwrap()
    }
    pub fn key(&self) -> voice_rtp::SecretKey {
        voice_rtp::SecretKey::from_slice(&hx(&self.secret_key)).unwrap()
    }
    pub fn datagram(&self) -> Vec<u8> {
        hx(&self.datagram)
    }
    pub fn opus(&self) -> Vec<u8> {
        hx(&self.opus)
    }
    pub fn nonce(&self) -> Vec<u8> {
        hx(&self.nonce)
    }
    /// `(profile, body)` of the recorded extension.
    pub fn extension(&self) -> Option<(u16, Vec<u8>)> {
        self.extension.as_ref().map(|e| {
            let p = hx(&e.profile);
            (u16::from_be_bytes([p[0], p[1]]), hx(&e.body))
        })
    }
    pub fn sent_by_discordjs(&self) -> bool {
        self.direction == "client_to_server"
    }
    /// The nonce bytes a sealed datagram carries at its end for this mode.
    pub fn appended_nonce(&self) -> Vec<u8> {
        match self.mode() {
            Mode::XSalsa20Poly1305 => Vec::new(),
            Mode::XSalsa20Poly1305Suffix => self.nonce(),
            _ => self.nonce_counter.unwrap().to_be_bytes().to_vec(),
        }
    }
    /// Length of the clear part of the datagram under this mode.
    pub fn clear_len(&self) -> usize {
        let cc = 4 * self.csrcs.as_ref().map_or(0, Vec::len);
        if self.mode().is_rtpsize() { 12 + cc + if self.extension.is_some() { 4 } else { 0 } } else { 12 }
    }
}

fn lines(path: &str) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
}

pub fn transport_records() -> Vec<TransportRecord> {
    let v: Vec<TransportRecord> = lines(TRANSPORT).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(v.len(), 88, "transport.jsonl holds 88 records");
    v
}

pub fn json_lines(path: &str) -> Vec<serde_json::Value> {
    lines(path).iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Packet `i` of the synthetic 250-packet Opus stream (vectors/README.md).
pub fn synthetic_opus(i: u32) -> Vec<u8> {
    let mut out = vec![0xFC];
    out.extend_from_slice(b"IOP1");
    out.extend_from_slice(&(i as u16).to_be_bytes());
    out.extend_from_slice(&250u16.to_be_bytes());
    out.push(((i * 7) & 0xFF) as u8);
    let filler = 8 + (i * 37) % 113;
    out.extend((0..filler).map(|j| ((i * 31 + j * 17 + 1) & 0xFF) as u8));
    out
}
