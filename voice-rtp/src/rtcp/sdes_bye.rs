//! Source description (SDES) and goodbye (BYE) packets.

use super::{RtcpPacket, be32};
use crate::{Error, Result};

/// One SDES item (type and text bytes, e.g. 1 = CNAME).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesItem<'a> {
    /// Item type (1 CNAME, 2 NAME, ... 8 PRIV).
    pub kind: u8,
    /// Item value, uninterpreted.
    pub value: &'a [u8],
}

/// One SDES chunk: a source and its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesChunk<'a> {
    /// The source described.
    pub ssrc: u32,
    /// Its items.
    pub items: Vec<SdesItem<'a>>,
}

/// A source description packet (type 202).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdes<'a> {
    /// The chunks, one per source.
    pub chunks: Vec<SdesChunk<'a>>,
}

impl<'a> Sdes<'a> {
    pub(super) fn parse(p: &RtcpPacket<'a>) -> Result<Self> {
        let mut body = p.body()?;
        // Bounded by the 5-bit count: at most 31 chunks.
        let mut chunks = Vec::with_capacity(usize::from(p.count()));
        for _ in 0..p.count() {
            if body.len() < 4 {
                return Err(Error::MalformedRtcp("SDES chunk without SSRC"));
            }
            let ssrc = be32(body);
            let mut at = 4;
            let mut items = Vec::new();
            loop {
                let kind = *body.get(at).ok_or(Error::MalformedRtcp("SDES chunk not terminated"))?;
                if kind == 0 {
                    at += 1;
                    break;
                }
                let len = usize::from(*body.get(at + 1).ok_or(Error::MalformedRtcp("SDES item truncated"))?);
                let value = body.get(at + 2..at + 2 + len).ok_or(Error::MalformedRtcp("SDES item truncated"))?;
                items.push(SdesItem { kind, value });
                at += 2 + len;
            }
            // Chunks end on a 32-bit boundary.
            at = at.div_ceil(4) * 4;
            body = body.get(at..).unwrap_or(&[]);
            chunks.push(SdesChunk { ssrc, items });
        }
        Ok(Sdes { chunks })
    }
}

/// A goodbye packet (type 203).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bye<'a> {
    sources: &'a [u8],
    /// The optional reason text.
    pub reason: Option<&'a [u8]>,
}

impl<'a> Bye<'a> {
    pub(super) fn parse(p: &RtcpPacket<'a>) -> Result<Self> {
        let body = p.body()?;
        let n = 4 * usize::from(p.count());
        let sources = body.get(..n).ok_or(Error::MalformedRtcp("BYE sources run past the packet"))?;
        let reason = match body.get(n) {
            None => None,
            Some(&len) => {
                Some(body.get(n + 1..n + 1 + usize::from(len)).ok_or(Error::MalformedRtcp("BYE reason truncated"))?)
            }
        };
        Ok(Bye { sources, reason })
    }
    /// The sources leaving.
    pub fn sources(&self) -> impl ExactSizeIterator<Item = u32> + 'a {
        self.sources.chunks_exact(4).map(be32)
    }
}
