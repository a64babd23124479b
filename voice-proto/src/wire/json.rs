//! Voice gateway JSON messages (PROTOCOL.md §2.3), both directions, for
//! gateway versions 4 and 8.
//!
//! Parsing is tolerant: unknown fields are ignored, unknown opcodes become
//! [`Message::Unknown`] (their `seq` still counts), and a malformed frame is a
//! [`WireError`] for that frame only. Serialising writes compact JSON with
//! fields in the order Discord's clients use, so frames compare byte for byte
//! with recorded traffic.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use voice_rtp::SecretKey;

use super::ids::{Snowflake, Token};
use super::{GatewayVersion, WireError};

/// Op 0: Identify (client to server).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identify {
    /// The guild id.
    pub server_id: Snowflake,
    /// The bot's user id.
    pub user_id: Snowflake,
    /// The main gateway's voice session id.
    pub session_id: String,
    /// The voice token.
    pub token: Token,
    /// Highest DAVE protocol version supported; absent or 0 means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_dave_protocol_version: Option<u16>,
}

/// The `data` of Select Protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectProtocolData {
    /// External address from IP discovery.
    pub address: String,
    /// External port from IP discovery.
    pub port: u16,
    /// The chosen encryption mode's name.
    pub mode: String,
}

/// Op 1: Select Protocol (client to server).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectProtocol {
    /// Always `"udp"`.
    pub protocol: String,
    /// Address, port and mode.
    pub data: SelectProtocolData,
}

/// Op 2: Ready (server to client).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// The SSRC assigned to this client.
    pub ssrc: u32,
    /// UDP media address.
    pub ip: String,
    /// UDP media port.
    pub port: u16,
    /// Encryption modes the server accepts.
    pub modes: Vec<String>,
}

/// Op 3: Heartbeat (client to server). v8: `{t, seq_ack}`; v4: a bare nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// The nonce, echoed by the ACK (below 2^53, sent as a JSON number).
    pub nonce: u64,
    /// Last `seq` the client saw (v8); `None` before any.
    pub seq_ack: Option<i64>,
}

/// Op 4: Session Description (server to client).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDescription {
    /// The selected mode's name.
    pub mode: String,
    /// The 32-byte transport key, as an array of numbers on the wire.
    #[serde(with = "secret_key_serde")]
    pub secret_key: SecretKey,
    /// Initial DAVE protocol version (0 = transport encryption only).
    #[serde(default)]
    pub dave_protocol_version: u16,
}

/// Op 5: Speaking. From a client: `speaking`, `delay`, `ssrc`; from the
/// server: `user_id`, `ssrc`, `speaking`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Speaking {
    /// Speaking flags (1 microphone, 2 soundshare, 4 priority).
    pub speaking: u32,
    /// Always 0 for bots; absent in server messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<u32>,
    /// The speaker's SSRC.
    pub ssrc: u32,
    /// The speaker (server messages only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Snowflake>,
}

/// Op 6: Heartbeat ACK (server to client). v8: `{t}`; v4: a bare nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatAck {
    /// The echoed nonce.
    pub nonce: u64,
}

/// Op 7: Resume (client to server).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// The guild id.
    pub server_id: Snowflake,
    /// The voice session id.
    pub session_id: String,
    /// The voice token.
    pub token: Token,
    /// Last `seq` seen on the old socket (v8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq_ack: Option<i64>,
}

/// Op 8: Hello (server to client).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Gateway version (observed on v8, undocumented).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<u8>,
    /// Heartbeat interval in milliseconds; may be fractional.
    #[serde(serialize_with = "whole_number")]
    pub heartbeat_interval: f64,
}

/// Op 11: Clients Connect (server to client).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientsConnect {
    /// Users present or joining.
    pub user_ids: Vec<Snowflake>,
}

/// Op 13: Client Disconnect (server to client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientDisconnect {
    /// The user who left.
    pub user_id: Snowflake,
}

/// Op 21: DAVE Prepare Transition (server to client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DavePrepareTransition {
    /// Transition id (0 = execute at once).
    pub transition_id: u16,
    /// Protocol version after the transition (0 = downgrade).
    pub protocol_version: u16,
}

/// Ops 22, 23 and 31: a bare transition id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionId {
    /// The transition id.
    pub transition_id: u16,
}

/// Op 24: DAVE Prepare Epoch (server to client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DavePrepareEpoch {
    /// Epoch (1 = a new group).
    pub epoch: u64,
    /// Protocol version of the epoch.
    pub protocol_version: u16,
    /// The transition this epoch belongs to. The api-docs include it, the
    /// whitepaper does not: both shapes are accepted (DAVE.md §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition_id: Option<u16>,
}

/// A voice gateway JSON message.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Message {
    /// Op 0.
    Identify(Identify),
    /// Op 1.
    SelectProtocol(SelectProtocol),
    /// Op 2.
    Ready(Ready),
    /// Op 3.
    Heartbeat(Heartbeat),
    /// Op 4.
    SessionDescription(SessionDescription),
    /// Op 5.
    Speaking(Speaking),
    /// Op 6.
    HeartbeatAck(HeartbeatAck),
    /// Op 7.
    Resume(Resume),
    /// Op 8.
    Hello(Hello),
    /// Op 9.
    Resumed,
    /// Op 11.
    ClientsConnect(ClientsConnect),
    /// Op 13.
    ClientDisconnect(ClientDisconnect),
    /// Op 21.
    DavePrepareTransition(DavePrepareTransition),
    /// Op 22.
    DaveExecuteTransition(TransitionId),
    /// Op 23.
    DaveTransitionReady(TransitionId),
    /// Op 24.
    DavePrepareEpoch(DavePrepareEpoch),
    /// Op 31.
    DaveMlsInvalidCommitWelcome(TransitionId),
    /// An opcode this crate does not interpret (10, 12, 14-20, new ones).
    Unknown {
        /// The opcode.
        op: u8,
    },
}

/// A parsed text frame: the message and its `seq`, if it carried one.
#[derive(Debug, Clone, PartialEq)]
pub struct TextFrame {
    /// The message.
    pub message: Message,
    /// The top-level `seq` (v8 server messages).
    pub seq: Option<i64>,
}

#[derive(Deserialize)]
struct RawFrame<'a> {
    op: u64,
    #[serde(borrow, default)]
    d: Option<&'a RawValue>,
    #[serde(default)]
    seq: Option<i64>,
}

#[derive(Serialize)]
struct OutFrame<'a, T: Serialize> {
    op: u8,
    d: &'a T,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct HeartbeatV8 {
    t: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq_ack: Option<i64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NonceShape {
    Bare(u64),
    V8(HeartbeatV8),
}

fn whole_number<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && *v >= 0.0 && *v < 9.0e15 { s.serialize_u64(*v as u64) } else { s.serialize_f64(*v) }
}

mod secret_key_serde {
    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};
    use voice_rtp::{KEY_LEN, SecretKey};
    use zeroize::Zeroize;

    pub(super) fn serialize<S: Serializer>(k: &SecretKey, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(k.as_bytes().iter())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretKey, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SecretKey;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("an array of 32 bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SecretKey, A::Error> {
                let mut bytes = [0u8; KEY_LEN];
                let mut n = 0;
                while let Some(b) = seq.next_element::<u8>()? {
                    if n == KEY_LEN {
                        bytes.zeroize();
                        return Err(de::Error::custom("secret_key longer than 32 bytes"));
                    }
                    bytes[n] = b;
                    n += 1;
                }
                if n != KEY_LEN {
                    bytes.zeroize();
                    return Err(de::Error::custom("secret_key shorter than 32 bytes"));
                }
                let key = SecretKey::new(bytes);
                bytes.zeroize();
                Ok(key)
            }
        }
        d.deserialize_seq(V)
    }
}

fn data<T: DeserializeOwned>(op: u8, d: Option<&RawValue>) -> Result<T, WireError> {
    let d = d.ok_or(WireError::MissingData { op })?;
    serde_json::from_str(d.get()).map_err(|e| WireError::Malformed { op: Some(op), reason: e.to_string() })
}

fn nonce(op: u8, d: Option<&RawValue>) -> Result<(u64, Option<i64>), WireError> {
    Ok(match data::<NonceShape>(op, d)? {
        NonceShape::Bare(t) => (t, None),
        NonceShape::V8(h) => (h.t, h.seq_ack),
    })
}

impl Message {
    /// The opcode.
    pub fn op(&self) -> u8 {
        match self {
            Message::Identify(_) => 0,
            Message::SelectProtocol(_) => 1,
            Message::Ready(_) => 2,
            Message::Heartbeat(_) => 3,
            Message::SessionDescription(_) => 4,
            Message::Speaking(_) => 5,
            Message::HeartbeatAck(_) => 6,
            Message::Resume(_) => 7,
            Message::Hello(_) => 8,
            Message::Resumed => 9,
            Message::ClientsConnect(_) => 11,
            Message::ClientDisconnect(_) => 13,
            Message::DavePrepareTransition(_) => 21,
            Message::DaveExecuteTransition(_) => 22,
            Message::DaveTransitionReady(_) => 23,
            Message::DavePrepareEpoch(_) => 24,
            Message::DaveMlsInvalidCommitWelcome(_) => 31,
            Message::Unknown { op } => *op,
        }
    }

    /// Parses a text frame. Either heartbeat shape is accepted on any version.
    pub fn parse(text: &str) -> Result<TextFrame, WireError> {
        let raw: RawFrame<'_> =
            serde_json::from_str(text).map_err(|e| WireError::Malformed { op: None, reason: e.to_string() })?;
        let Ok(op) = u8::try_from(raw.op) else {
            return Ok(TextFrame { message: Message::Unknown { op: u8::MAX }, seq: raw.seq });
        };
        let d = raw.d;
        let message = match op {
            0 => Message::Identify(data(op, d)?),
            1 => Message::SelectProtocol(data(op, d)?),
            2 => Message::Ready(data(op, d)?),
            3 => {
                let (nonce, seq_ack) = nonce(op, d)?;
                Message::Heartbeat(Heartbeat { nonce, seq_ack })
            }
            4 => Message::SessionDescription(data(op, d)?),
            5 => Message::Speaking(data(op, d)?),
            6 => Message::HeartbeatAck(HeartbeatAck { nonce: nonce(op, d)?.0 }),
            7 => Message::Resume(data(op, d)?),
            8 => Message::Hello(data(op, d)?),
            9 => Message::Resumed,
            11 => Message::ClientsConnect(data(op, d)?),
            13 => Message::ClientDisconnect(data(op, d)?),
            21 => Message::DavePrepareTransition(data(op, d)?),
            22 => Message::DaveExecuteTransition(data(op, d)?),
            23 => Message::DaveTransitionReady(data(op, d)?),
            24 => Message::DavePrepareEpoch(data(op, d)?),
            31 => Message::DaveMlsInvalidCommitWelcome(data(op, d)?),
            op => Message::Unknown { op },
        };
        Ok(TextFrame { message, seq: raw.seq })
    }

    /// Serialises the message as compact JSON for `version`, with a top-level
    /// `seq` when given (server messages on v8 only).
    pub fn to_json(&self, version: GatewayVersion, seq: Option<i64>) -> String {
        let op = self.op();
        fn frame<T: Serialize>(op: u8, d: &T, seq: Option<i64>) -> String {
            // Serialising these plain structs cannot fail.
            serde_json::to_string(&OutFrame { op, d, seq }).unwrap_or_default()
        }
        let v8 = version == GatewayVersion::V8;
        match self {
            Message::Identify(m) => frame(op, m, seq),
            Message::SelectProtocol(m) => frame(op, m, seq),
            Message::Ready(m) => frame(op, m, seq),
            Message::Heartbeat(h) if v8 => frame(op, &HeartbeatV8 { t: h.nonce, seq_ack: h.seq_ack }, seq),
            Message::Heartbeat(h) => frame(op, &h.nonce, seq),
            Message::SessionDescription(m) => frame(op, m, seq),
            Message::Speaking(m) => frame(op, m, seq),
            Message::HeartbeatAck(h) if v8 => frame(op, &HeartbeatV8 { t: h.nonce, seq_ack: None }, seq),
            Message::HeartbeatAck(h) => frame(op, &h.nonce, seq),
            Message::Resume(m) => frame(op, m, seq),
            Message::Hello(m) => frame(op, m, seq),
            Message::Resumed => frame(op, &(), seq),
            Message::ClientsConnect(m) => frame(op, m, seq),
            Message::ClientDisconnect(m) => frame(op, m, seq),
            Message::DavePrepareTransition(m) => frame(op, m, seq),
            Message::DaveExecuteTransition(m)
            | Message::DaveTransitionReady(m)
            | Message::DaveMlsInvalidCommitWelcome(m) => frame(op, m, seq),
            Message::DavePrepareEpoch(m) => frame(op, m, seq),
            Message::Unknown { .. } => frame(op, &(), seq),
        }
    }
}
