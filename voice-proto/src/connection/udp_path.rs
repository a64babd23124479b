//! The UDP path of one voice server session (from Ready until a fresh
//! connection): the server's media address, our SSRC, the transport mode,
//! IP discovery with its attempt count, and the keepalive counter
//! (PROTOCOL.md §3.1-3.3).
//!
//! Inputs: Ready (`new`), the discovery and keepalive timers, a discovery
//! answer. Outputs: the datagrams to send and whether discovery is spent.

use std::net::SocketAddr;

use voice_rtp::Mode;
use voice_rtp::discovery::{self, Discovery};

/// The UDP path.
#[derive(Debug)]
pub(crate) struct UdpPath {
    ssrc: u32,
    server: SocketAddr,
    mode: Mode,
    discovery_attempts: u32,
    keepalive_counter: u32,
}

impl UdpPath {
    pub(crate) fn new(ssrc: u32, server: SocketAddr, mode: Mode) -> Self {
        UdpPath { ssrc, server, mode, discovery_attempts: 0, keepalive_counter: 0 }
    }

    /// Our SSRC.
    pub(crate) fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The voice server's media address: the only source datagrams are
    /// taken from, and where everything is sent.
    pub(crate) fn server(&self) -> SocketAddr {
        self.server
    }

    /// The transport mode selected (then as Session Description confirmed).
    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }

    /// Session Description named the mode in force.
    pub(crate) fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
    }

    /// The next IP discovery request (counted as an attempt).
    pub(crate) fn discovery_request(&mut self) -> Vec<u8> {
        self.discovery_attempts += 1;
        discovery::request(self.ssrc).to_vec()
    }

    /// Whether `limit` discovery requests went out already.
    pub(crate) fn discovery_spent(&self, limit: u32) -> bool {
        self.discovery_attempts >= limit
    }

    /// Whether a discovery response answers our request.
    pub(crate) fn answers(&self, response: &Discovery<'_>) -> bool {
        response.ssrc == self.ssrc
    }

    /// discord.js's keepalive: a u32 little-endian counter and four zeros;
    /// the server need not answer.
    pub(crate) fn keepalive(&mut self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(8);
        bytes.extend_from_slice(&self.keepalive_counter.to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        self.keepalive_counter = self.keepalive_counter.wrapping_add(1);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_counts_its_attempts_and_keepalives_count_up() {
        let server = SocketAddr::from(([127, 0, 0, 1], 5000));
        let mut p = UdpPath::new(7, server, Mode::Aes256GcmRtpSize);
        assert!(!p.discovery_spent(2));
        assert_eq!(p.discovery_request(), discovery::request(7).to_vec());
        p.discovery_request();
        assert!(p.discovery_spent(2));
        assert_eq!(p.keepalive(), [0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(p.keepalive(), [1, 0, 0, 0, 0, 0, 0, 0]);
    }
}
