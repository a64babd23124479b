//! The main-gateway side (PROTOCOL.md §1): op 4 payloads out, voice state and
//! voice server updates in, and the three facts a connection needs.

use serde::{Deserialize, Serialize};

use crate::wire::{Snowflake, Token};

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
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// The websocket URL for an endpoint: `wss://{endpoint}/?v={v}`, port kept;
/// a scheme already present is stripped first.
pub fn voice_url(endpoint: &str, version: u8, plain_ws: bool) -> String {
    let host = endpoint
        .strip_prefix("wss://")
        .or_else(|| endpoint.strip_prefix("ws://"))
        .unwrap_or(endpoint)
        .trim_end_matches('/');
    let scheme = if plain_ws { "ws" } else { "wss" };
    format!("{scheme}://{host}/?v={version}")
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
    fn url_keeps_port_and_strips_scheme() {
        assert_eq!(
            voice_url("sweetwater-12345.discord.media:2048", 8, false),
            "wss://sweetwater-12345.discord.media:2048/?v=8"
        );
        assert_eq!(voice_url("wss://a.b:443", 8, false), "wss://a.b:443/?v=8");
        assert_eq!(voice_url("127.0.0.1:9", 4, true), "ws://127.0.0.1:9/?v=4");
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
