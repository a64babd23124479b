//! Binary voice gateway frames: the DAVE opcodes 25-30 (PROTOCOL.md §6.5).
//!
//! Server frames carry a 2-byte big-endian sequence number before the opcode
//! on gateway v8 and none on v4; client frames never do. Bodies are kept as borrowed MLS bytes: their
//! meaning belongs to the DAVE layer.

use super::{GatewayVersion, WireError};

/// A DAVE binary message, borrowing its body from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DaveBinary<'a> {
    /// Op 25 (server): the external sender.
    ExternalSender(&'a [u8]),
    /// Op 26 (client): a key package.
    KeyPackage(&'a [u8]),
    /// Op 27 (server): proposals to append (0) or revoke (1).
    Proposals {
        /// 0 = append, 1 = revoke.
        operation: u8,
        /// The vector of proposals or references.
        body: &'a [u8],
    },
    /// Op 28 (client): a commit, optionally followed by a welcome.
    CommitWelcome(&'a [u8]),
    /// Op 29 (server): a commit to apply at a transition.
    AnnounceCommitTransition {
        /// The transition id.
        transition_id: u16,
        /// The commit message.
        commit: &'a [u8],
    },
    /// Op 30 (server): a welcome into the group at a transition.
    Welcome {
        /// The transition id.
        transition_id: u16,
        /// The welcome message.
        welcome: &'a [u8],
    },
}

impl<'a> DaveBinary<'a> {
    /// The opcode.
    pub fn op(&self) -> u8 {
        match self {
            DaveBinary::ExternalSender(_) => 25,
            DaveBinary::KeyPackage(_) => 26,
            DaveBinary::Proposals { .. } => 27,
            DaveBinary::CommitWelcome(_) => 28,
            DaveBinary::AnnounceCommitTransition { .. } => 29,
            DaveBinary::Welcome { .. } => 30,
        }
    }

    fn parse_body(op: u8, body: &'a [u8]) -> Result<Self, WireError> {
        let tid = |b: &'a [u8]| -> Result<(u16, &'a [u8]), WireError> {
            match b {
                [hi, lo, rest @ ..] => Ok((u16::from_be_bytes([*hi, *lo]), rest)),
                _ => Err(WireError::BinaryTooShort { op: Some(op) }),
            }
        };
        Ok(match op {
            25 => DaveBinary::ExternalSender(body),
            26 => DaveBinary::KeyPackage(body),
            27 => match body {
                [operation, rest @ ..] => DaveBinary::Proposals { operation: *operation, body: rest },
                [] => return Err(WireError::BinaryTooShort { op: Some(op) }),
            },
            28 => DaveBinary::CommitWelcome(body),
            29 => {
                let (transition_id, commit) = tid(body)?;
                DaveBinary::AnnounceCommitTransition { transition_id, commit }
            }
            30 => {
                let (transition_id, welcome) = tid(body)?;
                DaveBinary::Welcome { transition_id, welcome }
            }
            op => return Err(WireError::UnknownBinaryOpcode(op)),
        })
    }

    /// Parses a server-to-client frame: `seq: u16 BE`, `op: u8`, body.
    pub fn parse_server(frame: &'a [u8]) -> Result<(u16, Self), WireError> {
        match frame {
            [hi, lo, op, body @ ..] => Ok((u16::from_be_bytes([*hi, *lo]), Self::parse_body(*op, body)?)),
            _ => Err(WireError::BinaryTooShort { op: None }),
        }
    }

    /// Parses a server-to-client frame as gateway `version` frames it: on v8
    /// with the `seq: u16 BE` prefix, on v4 without (PROTOCOL.md §2.1, DAVE.md
    /// §2: songbird's v4 connections see `[op][payload]`). The sequence number
    /// is `None` on v4.
    pub fn parse_server_for(version: GatewayVersion, frame: &'a [u8]) -> Result<(Option<u16>, Self), WireError> {
        match version {
            GatewayVersion::V8 => Self::parse_server(frame).map(|(seq, m)| (Some(seq), m)),
            GatewayVersion::V4 => Self::parse_client(frame).map(|m| (None, m)),
        }
    }

    /// Parses a client-to-server frame: `op: u8`, body.
    pub fn parse_client(frame: &'a [u8]) -> Result<Self, WireError> {
        match frame {
            [op, body @ ..] => Self::parse_body(*op, body),
            [] => Err(WireError::BinaryTooShort { op: None }),
        }
    }

    /// Appends the frame to `out`, with the sequence prefix when `seq` is given
    /// (server frames).
    pub fn encode(&self, seq: Option<u16>, out: &mut Vec<u8>) {
        if let Some(seq) = seq {
            out.extend_from_slice(&seq.to_be_bytes());
        }
        out.push(self.op());
        match *self {
            DaveBinary::ExternalSender(b) | DaveBinary::KeyPackage(b) | DaveBinary::CommitWelcome(b) => {
                out.extend_from_slice(b)
            }
            DaveBinary::Proposals { operation, body } => {
                out.push(operation);
                out.extend_from_slice(body);
            }
            DaveBinary::AnnounceCommitTransition { transition_id, commit: b }
            | DaveBinary::Welcome { transition_id, welcome: b } => {
                out.extend_from_slice(&transition_id.to_be_bytes());
                out.extend_from_slice(b);
            }
        }
    }
}
