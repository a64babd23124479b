//! The main-gateway side (PROTOCOL.md §1): op 4 payloads out, voice state and
//! voice server updates in, and the three facts a connection needs.

use serde::{Deserialize, Serialize};

use crate::wire::{GatewayVersion, Snowflake, Token};

/// Op 4 "Update Voice State", to send on the bot's main gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateVoiceState {
    /// The guild.
    pub guild_id: Snowflake,
    /// The channel to join or move to; `None` leaves voice.
    pub channel_id: Option<Snowflake>,
    /// Self-mute.
    pub self_mute: bool,
    /// Self-deafen.
    pub self_deaf: bool,
}

impl UpdateVoiceState {
    /// The whole gateway payload: `{"op":4,"d":{...}}`.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Op4<'a> {
            op: u8,
            d: &'a UpdateVoiceState,
        }
        // Plain struct: serialisation cannot fail.
        serde_json::to_string(&Op4 { op: 4, d: self }).unwrap_or_default()
    }
}

/// A main-gateway dispatch that concerns voice, already parsed by the bot's
/// gateway library (or by [`GatewayEvent::from_dispatch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GatewayEvent {
    /// `VOICE_STATE_UPDATE`.
    VoiceStateUpdate(VoiceStateUpdate),
    /// `VOICE_SERVER_UPDATE`.
    VoiceServerUpdate(VoiceServerUpdate),
}

/// The fields of `VOICE_STATE_UPDATE` that matter to voice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceStateUpdate {
    /// The guild (absent for DM calls).
    #[serde(default)]
    pub guild_id: Option<Snowflake>,
    /// The channel; `None` when the user is in no channel.
    pub channel_id: Option<Snowflake>,
    /// The user whose state this is.
    pub user_id: Snowflake,
    /// The voice session id.
    pub session_id: String,
}

/// The fields of `VOICE_SERVER_UPDATE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceServerUpdate {
    /// The guild.
    pub guild_id: Snowflake,
    /// The voice token.
    pub token: Token,
    /// `host:port`; `None` while Discord allocates a new server.
    pub endpoint: Option<String>,
}

impl GatewayEvent {
    /// Parses a dispatch by its `t` name and `d` JSON; `Ok(None)` for other
    /// dispatches.
    pub fn from_dispatch(t: &str, d: &str) -> Result<Option<Self>, serde_json::Error> {
        Ok(match t {
            "VOICE_STATE_UPDATE" => Some(GatewayEvent::VoiceStateUpdate(serde_json::from_str(d)?)),
            "VOICE_SERVER_UPDATE" => Some(GatewayEvent::VoiceServerUpdate(serde_json::from_str(d)?)),
            _ => None,
        })
    }
}

/// Everything it takes to open a voice connection without a main gateway:
/// the ids, and what the voice state and voice server updates said.
/// Deserializes from JSON with these field names (ids as strings or
/// numbers), the shape an audio node receives credentials in.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ConnectionInfo {
    /// The guild.
    pub guild_id: Snowflake,
    /// The voice channel.
    pub channel_id: Snowflake,
    /// The bot's user id.
    pub user_id: Snowflake,
    /// From `VOICE_STATE_UPDATE`.
    pub session_id: String,
    /// From `VOICE_SERVER_UPDATE`.
    pub token: Token,
    /// From `VOICE_SERVER_UPDATE`: `host:port`, without scheme.
    pub endpoint: String,
}

impl ConnectionInfo {
    /// The two dispatches the main gateway would have delivered.
    pub fn gateway_events(&self) -> [GatewayEvent; 2] {
        [
            GatewayEvent::VoiceStateUpdate(VoiceStateUpdate {
                guild_id: Some(self.guild_id),
                channel_id: Some(self.channel_id),
                user_id: self.user_id,
                session_id: self.session_id.clone(),
            }),
            GatewayEvent::VoiceServerUpdate(VoiceServerUpdate {
                guild_id: self.guild_id,
                token: self.token.clone(),
                endpoint: Some(self.endpoint.clone()),
            }),
        ]
    }
}

/// The three facts needed to open a voice websocket, gathered in either order.
#[derive(Debug, Clone, Default)]
pub(crate) struct VoiceInfo {
    pub(crate) session_id: Option<String>,
    pub(crate) token: Option<Token>,
    pub(crate) endpoint: Option<String>,
}

impl VoiceInfo {
    pub(crate) fn complete(&self) -> bool {
        self.session_id.is_some() && self.token.is_some() && self.endpoint.is_some()
    }
}

/// Where to open the voice websocket, from a `VOICE_SERVER_UPDATE`
/// endpoint: typed, so that an adapter opens TCP (and TLS) to `host:port`
/// without parsing a URL back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct WsTarget {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port: the endpoint's, else 443 for TLS and 80 without.
    pub port: u16,
    /// Whether the websocket runs over TLS (`wss://`).
    pub tls: bool,
    /// The voice gateway version, sent as `?v=`.
    pub version: GatewayVersion,
}

impl WsTarget {
    /// The target of `endpoint` (`host`, `host:port`, `[v6]:port`, with or
    /// without a `ws://`/`wss://` scheme and trailing `/`). `plain_ws`
    /// selects `ws://` for local servers. A port that is not a number is
    /// kept as part of the host, and the connect fails for that endpoint.
    pub fn from_endpoint(endpoint: &str, version: GatewayVersion, plain_ws: bool) -> Self {
        let rest = endpoint
            .strip_prefix("wss://")
            .or_else(|| endpoint.strip_prefix("ws://"))
            .unwrap_or(endpoint)
            .trim_end_matches('/');
        let authority = rest.split(['/', '?']).next().unwrap_or(rest);
        let tls = !plain_ws;
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            match v6.split_once(']') {
                Some((h, tail)) => (h, tail.strip_prefix(':').and_then(|p| p.parse().ok()).unwrap_or(default_port)),
                None => (authority, default_port),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => match p.parse() {
                    Ok(port) => (h, port),
                    Err(_) => (authority, default_port),
                },
                _ => (authority, default_port),
            }
        };
        WsTarget { host: host.to_owned(), port, tls, version }
    }

    /// The URL the websocket upgrade requests: `wss://host:port/?v=8`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.authority(), self.path())
    }

    /// `host:port` as the URL and the upgrade's `Host` header name it (an
    /// IPv6 address in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The path and query the upgrade requests: `/?v=8`.
    pub fn path(&self) -> String {
        format!("/?v={}", self.version.as_u8())
    }
}

impl core::fmt::Display for WsTarget {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.url())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op4_matches_protocol_md() {
        let p = UpdateVoiceState {
            guild_id: Snowflake(41771983423143937),
            channel_id: Some(Snowflake(127121515262115840)),
            self_mute: false,
            self_deaf: false,
        };
        assert_eq!(
            p.to_json(),
            r#"{"op":4,"d":{"guild_id":"41771983423143937","channel_id":"127121515262115840","self_mute":false,"self_deaf":false}}"#
        );
        let leave = UpdateVoiceState { channel_id: None, ..p };
        assert!(leave.to_json().contains(r#""channel_id":null"#));
    }

    #[test]
    fn targets_keep_port_and_strip_scheme() {
        let t = WsTarget::from_endpoint("sweetwater-12345.discord.media:2048", GatewayVersion::V8, false);
        assert_eq!((t.host.as_str(), t.port, t.tls), ("sweetwater-12345.discord.media", 2048, true));
        assert_eq!(t.url(), "wss://sweetwater-12345.discord.media:2048/?v=8");
        let t = WsTarget::from_endpoint("wss://a.b/", GatewayVersion::V8, false);
        assert_eq!((t.host.as_str(), t.port), ("a.b", 443));
        let t = WsTarget::from_endpoint("127.0.0.1:9", GatewayVersion::V4, true);
        assert_eq!(
            (t.host.as_str(), t.port, t.tls, t.url().as_str()),
            ("127.0.0.1", 9, false, "ws://127.0.0.1:9/?v=4")
        );
        let t = WsTarget::from_endpoint("[::1]:7000", GatewayVersion::V8, true);
        assert_eq!((t.host.as_str(), t.port, t.url().as_str()), ("::1", 7000, "ws://[::1]:7000/?v=8"));
        let t = WsTarget::from_endpoint("h:port", GatewayVersion::V8, false);
        assert_eq!((t.host.as_str(), t.port), ("h:port", 443), "a bad port is not guessed");
    }

    #[test]
    fn dispatches_parse() {
        let d = r#"{"guild_id":"1","channel_id":null,"user_id":"2","session_id":"s","deaf":false,"mute":false}"#;
        let Some(GatewayEvent::VoiceStateUpdate(v)) = GatewayEvent::from_dispatch("VOICE_STATE_UPDATE", d).unwrap()
        else {
            panic!()
        };
        assert_eq!((v.channel_id, v.user_id, v.session_id.as_str()), (None, Snowflake(2), "s"));
        let d = r#"{"guild_id":"1","token":"t","endpoint":null}"#;
        let Some(GatewayEvent::VoiceServerUpdate(s)) = GatewayEvent::from_dispatch("VOICE_SERVER_UPDATE", d).unwrap()
        else {
            panic!()
        };
        assert_eq!(s.endpoint, None);
        assert!(GatewayEvent::from_dispatch("READY", "{}").unwrap().is_none());
    }
}
