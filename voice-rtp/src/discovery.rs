//! The IP discovery datagram (PROTOCOL.md §3.2): a 74-byte request that the
//! client sends to the voice server, and the response carrying the client's
//! external address and port.

use crate::error::need;
use crate::{Error, Result};

/// Length of both the request and the response.
pub const DISCOVERY_LEN: usize = 74;
/// Type field of a request.
pub const REQUEST_TYPE: u16 = 1;
/// Type field of a response.
pub const RESPONSE_TYPE: u16 = 2;
const BODY_LEN: u16 = 70;
const ADDRESS: core::ops::Range<usize> = 8..72;

fn write(kind: u16, ssrc: u32, address: &[u8], port: u16) -> [u8; DISCOVERY_LEN] {
    let mut out = [0u8; DISCOVERY_LEN];
    out[0..2].copy_from_slice(&kind.to_be_bytes());
    out[2..4].copy_from_slice(&BODY_LEN.to_be_bytes());
    out[4..8].copy_from_slice(&ssrc.to_be_bytes());
    out[8..8 + address.len()].copy_from_slice(address);
    out[72..74].copy_from_slice(&port.to_be_bytes());
    out
}

/// Builds the request for `ssrc` (address and port zero).
pub fn request(ssrc: u32) -> [u8; DISCOVERY_LEN] {
    write(REQUEST_TYPE, ssrc, &[], 0)
}

/// Builds a response telling the client `address` and `port`.
///
/// The address is ASCII text of at most 63 bytes (so that a NUL follows it).
pub fn response(ssrc: u32, address: &str, port: u16) -> Result<[u8; DISCOVERY_LEN]> {
    if address.len() >= ADDRESS.len() || !address.is_ascii() || address.contains('\0') {
        return Err(Error::OutOfRange("discovery address"));
    }
    Ok(write(RESPONSE_TYPE, ssrc, address.as_bytes(), port))
}

/// A parsed request or response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discovery<'a> {
    /// [`REQUEST_TYPE`] or [`RESPONSE_TYPE`].
    pub kind: u16,
    /// The SSRC the client sent (echoed in the response).
    pub ssrc: u32,
    /// The address text up to the first NUL (empty in a request).
    pub address: &'a str,
    /// The port (zero in a request).
    pub port: u16,
}

impl<'a> Discovery<'a> {
    /// Parses a request or response: 74 bytes, type 1 or 2, length 70.
    pub fn parse(buf: &'a [u8]) -> Result<Self> {
        need(buf, DISCOVERY_LEN)?;
        if buf.len() != DISCOVERY_LEN {
            return Err(Error::MalformedDiscovery("length is not 74"));
        }
        let kind = u16::from_be_bytes([buf[0], buf[1]]);
        if kind != REQUEST_TYPE && kind != RESPONSE_TYPE {
            return Err(Error::MalformedDiscovery("unknown type"));
        }
        if u16::from_be_bytes([buf[2], buf[3]]) != BODY_LEN {
            return Err(Error::MalformedDiscovery("length field is not 70"));
        }
        let field = &buf[ADDRESS];
        let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        let address =
            core::str::from_utf8(&field[..end]).map_err(|_| Error::MalformedDiscovery("address is not text"))?;
        Ok(Discovery {
            kind,
            ssrc: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            address,
            port: u16::from_be_bytes([buf[72], buf[73]]),
        })
    }

    /// Parses a response, rejecting requests.
    pub fn parse_response(buf: &'a [u8]) -> Result<Self> {
        let d = Self::parse(buf)?;
        if d.kind != RESPONSE_TYPE {
            return Err(Error::MalformedDiscovery("not a response"));
        }
        Ok(d)
    }

    /// The address as an IP address, if it is one.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        self.address.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_matches_vector_9_1() {
        let r = request(1);
        assert_eq!(&r[..8], &[0, 1, 0, 0x46, 0, 0, 0, 1]);
        assert!(r[8..].iter().all(|&b| b == 0));
    }

    #[test]
    fn response_matches_vector_9_2() {
        let r = response(1, "203.0.113.7", 50000).unwrap();
        assert_eq!(&r[8..20], b"203.0.113.7\0");
        assert_eq!(&r[72..], &[0xC3, 0x50]);
        let d = Discovery::parse_response(&r).unwrap();
        assert_eq!((d.ssrc, d.address, d.port), (1, "203.0.113.7", 50000));
        assert_eq!(d.ip(), Some("203.0.113.7".parse().unwrap()));
    }

    #[test]
    fn rejects_malformed() {
        assert!(Discovery::parse(&[0; 10]).is_err());
        assert!(Discovery::parse(&[0; 75]).is_err());
        let mut r = response(1, "1.2.3.4", 1).unwrap();
        assert!(Discovery::parse_response(&request(1)).is_err());
        r[2] = 9;
        assert!(Discovery::parse(&r).is_err());
        assert!(response(1, &"1".repeat(64), 1).is_err());
    }
}
