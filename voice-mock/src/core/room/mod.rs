//! Rooms: the sessions of one (guild, channel), who sees whom.

mod rtcp;
mod sfu;

use std::collections::{BTreeMap, BTreeSet};

use voice_proto::wire::{ClientsConnect, Message, Snowflake, Speaking};

use super::MockServer;
use super::session::SessionKey;

/// A room: (guild, channel). Clients without a channel (an unknown token
/// without a `CHANNEL_ID.` prefix) share channel 0 of their guild.
pub(crate) type RoomId = (Snowflake, Snowflake);

/// Membership of every room.
#[derive(Debug, Default)]
pub(crate) struct Rooms {
    members: BTreeMap<RoomId, BTreeSet<SessionKey>>,
}

impl Rooms {
    /// Adds `key`; returns the members that were there before.
    pub(crate) fn join(&mut self, room: RoomId, key: SessionKey) -> Vec<SessionKey> {
        let set = self.members.entry(room).or_default();
        let before = set.iter().copied().filter(|&k| k != key).collect();
        set.insert(key);
        before
    }

    /// Removes `key`; returns the members left.
    pub(crate) fn leave(&mut self, room: RoomId, key: SessionKey) -> Vec<SessionKey> {
        let Some(set) = self.members.get_mut(&room) else { return Vec::new() };
        set.remove(&key);
        let rest = set.iter().copied().collect();
        if set.is_empty() {
            self.members.remove(&room);
        }
        rest
    }

    /// Members of a room.
    pub(crate) fn members(&self, room: RoomId) -> impl Iterator<Item = SessionKey> + '_ {
        self.members.get(&room).into_iter().flatten().copied()
    }
}

impl MockServer {
    /// The other sessions in `key`'s room.
    pub(crate) fn peers(&self, key: SessionKey) -> Vec<SessionKey> {
        let Some(s) = self.sessions.get(&key) else { return Vec::new() };
        self.rooms.members((s.guild, s.channel)).filter(|&k| k != key).collect()
    }

    /// Puts a new session into its room and tells those already there
    /// (op 11) that hear the room. A session without DAVE is told at once
    /// who is there; a DAVE session once it has its Session Description and
    /// op 25 ([`MockServer::introduce`]).
    pub(crate) fn enter_room(&mut self, key: SessionKey) {
        let Some(s) = self.sessions.get(&key) else { return };
        let (room, user, dave) = ((s.guild, s.channel), s.user, s.dave_capable);
        let before = self.rooms.join(room, key);
        self.sink_touch_session(key);
        if let [alone] = before[..] {
            // It was alone: its packets now have a listener.
            self.sink_touch_session(alone);
        }
        if !dave {
            self.introduce(key);
        }
        let hello = Message::ClientsConnect(ClientsConnect { user_ids: vec![user] });
        for peer in before {
            if self.sessions.get(&peer).is_some_and(|p| p.introduced) {
                self.send(peer, hello.clone(), true);
            }
        }
        self.dave_join(key, room);
    }

    /// Tells a session who is in its room (op 11, and op 5 for those
    /// speaking); from now on it hears arrivals, departures and speakers.
    pub(crate) fn introduce(&mut self, key: SessionKey) {
        let peers = self.peers(key);
        let Some(s) = self.sessions.get_mut(&key) else { return };
        s.introduced = true;
        if peers.is_empty() {
            return;
        }
        let user_ids = peers.iter().filter_map(|k| self.sessions.get(k)).map(|p| p.user).collect();
        self.send(key, Message::ClientsConnect(ClientsConnect { user_ids }), true);
        for peer in &peers {
            let Some(p) = self.sessions.get(peer) else { continue };
            if p.speaking != 0 {
                let msg = speaking_of(p.user, p.ssrc, p.speaking);
                self.send(key, msg, true);
                if let Some(s) = self.sessions.get_mut(&key) {
                    s.known_speakers.insert(*peer);
                }
            }
        }
    }

    /// Tells `receiver` the SSRC of `sender` (op 5) unless it knows it.
    pub(crate) fn announce(&mut self, receiver: SessionKey, sender: SessionKey) {
        let Some(r) = self.sessions.get(&receiver) else { return };
        if r.known_speakers.contains(&sender) {
            return;
        }
        let Some(s) = self.sessions.get(&sender) else { return };
        let msg = speaking_of(s.user, s.ssrc, if s.speaking == 0 { 1 } else { s.speaking });
        if let Some(r) = self.sessions.get_mut(&receiver) {
            r.known_speakers.insert(sender);
        }
        self.send(receiver, msg, true);
    }
}

/// Op 5 as the server sends it.
pub(crate) fn speaking_of(user: Snowflake, ssrc: u32, speaking: u32) -> Message {
    Message::Speaking(Speaking { speaking, delay: None, ssrc, user_id: Some(user) })
}
