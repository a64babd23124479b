//! Wire formats of the voice gateway: JSON text frames, DAVE binary frames,
//! ids and tokens. Shared by the client state machine and by `voice-mock`.

mod binary;
mod ids;
mod json;

pub use binary::DaveBinary;
pub use ids::{Snowflake, Token};
pub use json::{
    ClientDisconnect, ClientsConnect, DavePrepareEpoch, DavePrepareTransition, Heartbeat, HeartbeatAck, Hello,
    Identify, Message, Ready, Resume, SelectProtocol, SelectProtocolData, SessionDescription, Speaking, TextFrame,
    TransitionId,
};

/// A voice gateway version this crate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum GatewayVersion {
    /// Version 4: bare heartbeat nonces, no `seq`.
    V4,
    /// Version 8: `seq`/`seq_ack`, buffered resume, binary sequence prefix.
    #[default]
    V8,
}

impl GatewayVersion {
    /// The number in the URL's `v` parameter.
    pub fn as_u8(self) -> u8 {
        match self {
            GatewayVersion::V4 => 4,
            GatewayVersion::V8 => 8,
        }
    }
    /// The version for a `v` parameter, if spoken.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            4 => Some(GatewayVersion::V4),
            8 => Some(GatewayVersion::V8),
            _ => None,
        }
    }
}

/// A frame that could not be parsed. The connection is unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The JSON is invalid or a field has the wrong type.
    #[error("malformed frame (op {op:?}): {reason}")]
    Malformed {
        /// The opcode, if it was read.
        op: Option<u8>,
        /// What was wrong.
        reason: String,
    },
    /// The opcode needs a `d` and there was none.
    #[error("op {op} has no data")]
    MissingData {
        /// The opcode.
        op: u8,
    },
    /// A binary frame ends before its header does.
    #[error("binary frame too short (op {op:?})")]
    BinaryTooShort {
        /// The opcode, if it was read.
        op: Option<u8>,
    },
    /// A binary frame with an opcode outside 25-30.
    #[error("unknown binary opcode {0}")]
    UnknownBinaryOpcode(u8),
    /// The frame exceeds the size limit.
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
}

/// A websocket message received, borrowed from the adapter's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WsMessage<'a> {
    /// A text frame (JSON).
    Text(&'a str),
    /// A binary frame (DAVE opcodes).
    Binary(&'a [u8]),
}

impl WsMessage<'_> {
    /// Length of the payload in bytes.
    pub fn len(&self) -> usize {
        match self {
            WsMessage::Text(t) => t.len(),
            WsMessage::Binary(b) => b.len(),
        }
    }
    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// An owned copy.
    pub fn to_frame(&self) -> WsFrame {
        match self {
            WsMessage::Text(t) => WsFrame::Text((*t).to_owned()),
            WsMessage::Binary(b) => WsFrame::Binary(b.to_vec()),
        }
    }
}

/// A websocket message to send, owned.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WsFrame {
    /// A text frame (JSON).
    Text(String),
    /// A binary frame (DAVE opcodes).
    Binary(Vec<u8>),
}

impl WsFrame {
    /// A borrowed view of the frame.
    pub fn as_message(&self) -> WsMessage<'_> {
        match self {
            WsFrame::Text(t) => WsMessage::Text(t),
            WsFrame::Binary(b) => WsMessage::Binary(b),
        }
    }
    /// The text, for a text frame.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            WsFrame::Text(t) => Some(t),
            WsFrame::Binary(_) => None,
        }
    }
    /// Length of the payload in bytes.
    pub fn len(&self) -> usize {
        match self {
            WsFrame::Text(t) => t.len(),
            WsFrame::Binary(b) => b.len(),
        }
    }
    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl core::fmt::Debug for WsFrame {
    /// Frames may carry tokens (Identify, Resume): `Debug` shows only the
    /// opcode and length.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WsFrame::Text(t) => {
                let op = Message::parse(t).map(|m| m.message.op()).ok();
                write!(f, "Text(op {op:?}, {} bytes)", t.len())
            }
            WsFrame::Binary(b) => write!(f, "Binary(op {:?}, {} bytes)", b.first(), b.len()),
        }
    }
}
