//! Where the gateway calls into DAVE, and where a room's effects become
//! frames (with the DAVE faults applied), events and counters.

use std::time::Instant;

use voice_proto::wire::{DaveBinary, Snowflake};

use super::room::external_sender_frame;
use super::{BinaryKind, Ctx, Dave, DaveRoom, DaveRoomInfo, Effect};
use crate::core::room::RoomId;
use crate::core::session::{Outgoing, SessionKey};
use crate::core::{MockServer, ServerOutput};

impl MockServer {
    /// Runs one step of `room` and performs its effects.
    fn dave_step<R>(&mut self, room: RoomId, f: impl FnOnce(&mut DaveRoom, &mut Ctx<'_>) -> R) -> Option<R> {
        let Dave { crypto, rooms } = &mut self.dave;
        let r = rooms.get_mut(&room)?;
        let mut cx = Ctx {
            now: self.now,
            crypto,
            execute_timeout: self.config.dave_execute_timeout,
            commit_timeout: self.config.dave_commit_timeout,
            execute_delay: self.faults.dave.execute_delay,
            max_members: self.config.limits.dave_group_members.max(1),
            out: Vec::new(),
        };
        let result = f(r, &mut cx);
        let effects = cx.out;
        if r.is_empty() {
            rooms.remove(&room);
        }
        for effect in effects {
            self.dave_effect(effect);
        }
        Some(result)
    }

    fn dave_effect(&mut self, effect: Effect) {
        match effect {
            Effect::Json(key, msg) => self.send(key, msg, true),
            Effect::Binary(key, kind, mut bytes) => {
                let user = self.sessions.get(&key).map(|s| s.user);
                let faulty = matches!(kind, BinaryKind::Commit | BinaryKind::Welcome);
                if let Some(user) = user.filter(|_| faulty)
                    && self.faults.dave.take_corruption(kind == BinaryKind::Commit, user)
                {
                    tracing::debug!(%user, ?kind, "corrupting a DAVE message (fault)");
                    if let Some(last) = bytes.last_mut() {
                        *last ^= 0x01;
                    }
                }
                self.send_out(key, Outgoing::Binary(bytes), true);
            }
            Effect::Event(e) => self.emit(ServerOutput::Event(e)),
        }
    }

    fn room_of(&self, key: SessionKey) -> Option<RoomId> {
        self.sessions.get(&key).map(|s| (s.guild, s.channel))
    }

    /// A session entered `room`.
    pub(crate) fn dave_join(&mut self, key: SessionKey, room: RoomId) {
        let Some(s) = self.sessions.get(&key) else { return };
        let (user, capable) = (s.user, s.dave_capable);
        let (policy, seed) = (self.config.dave, self.config.seed);
        let Dave { crypto, rooms } = &mut self.dave;
        rooms.entry(room).or_insert_with(|| DaveRoom::new(room.0, room.1, policy, seed, crypto));
        self.dave_step(room, |r, cx| r.join(key, user, capable, cx));
    }

    /// A session left `room` (after its op 13 went out).
    pub(crate) fn dave_leave(&mut self, key: SessionKey, room: RoomId) {
        self.dave_step(room, |r, cx| r.leave(key, cx));
    }

    /// The DAVE version for a Session Description of `key`.
    pub(crate) fn dave_describe(&mut self, key: SessionKey) -> u16 {
        let Some(room) = self.room_of(key) else { return 0 };
        self.dave_step(room, |r, _| r.describe(key)).unwrap_or(0)
    }

    /// Op 25 to `key`, right after its first Session Description.
    pub(crate) fn dave_send_external_sender(&mut self, key: SessionKey) {
        let Some(frame) = self
            .room_of(key)
            .and_then(|room| self.dave.rooms.get(&room))
            .map(|r| external_sender_frame(r.sender.external_sender()))
        else {
            return;
        };
        self.send_out(key, Outgoing::Binary(frame), true);
    }

    fn dave_counted(&mut self, handled: Option<bool>) {
        if handled != Some(true) {
            self.stats.dave_frames_ignored += 1;
        }
    }

    /// Op 26 or op 28 from an identified client.
    pub(crate) fn dave_client_binary(&mut self, key: SessionKey, msg: DaveBinary<'_>) {
        let Some(room) = self.room_of(key) else { return };
        let handled = self.dave_step(room, |r, cx| match msg {
            DaveBinary::KeyPackage(body) => r.key_package(key, body, cx),
            DaveBinary::CommitWelcome(body) => r.commit_welcome(key, body, cx),
            _ => false,
        });
        self.dave_counted(handled);
    }

    /// Op 23 from `key`.
    pub(crate) fn dave_transition_ready(&mut self, key: SessionKey, tid: u16) {
        let Some((room, user)) = self.sessions.get(&key).map(|s| ((s.guild, s.channel), s.user)) else { return };
        if self.faults.dave.drop_ready.contains(&user) {
            self.stats.dave_ready_dropped += 1;
            return;
        }
        let handled = self.dave_step(room, |r, cx| r.transition_ready(key, tid, cx));
        self.dave_counted(handled);
    }

    /// Op 31 from `key`.
    pub(crate) fn dave_invalid_commit_welcome(&mut self, key: SessionKey, tid: u16) {
        let Some(room) = self.room_of(key) else { return };
        tracing::debug!(?key, tid, "invalid commit or welcome reported");
        let handled = self.dave_step(room, |r, cx| r.invalid_commit_welcome(key, cx));
        self.dave_counted(handled);
    }

    /// Rooms whose deadline has come.
    pub(crate) fn dave_timeouts(&mut self, now: Instant) {
        let due: Vec<RoomId> =
            self.dave.rooms.iter().filter(|(_, r)| r.deadline().is_some_and(|d| d <= now)).map(|(&id, _)| id).collect();
        for room in due {
            self.dave_step(room, |r, cx| r.timeout(cx));
        }
    }

    /// The earliest DAVE deadline.
    pub(crate) fn dave_deadline(&self) -> Option<Instant> {
        self.dave.rooms.values().filter_map(DaveRoom::deadline).min()
    }

    /// Counts a payload the SFU forwards for `room`.
    pub(crate) fn dave_count_payload(&mut self, room: RoomId, payload: &[u8]) {
        if let Some(r) = self.dave.rooms.get_mut(&room) {
            r.count_payload(super::classify(payload));
        }
    }

    /// The DAVE state of room (`guild`, `channel`), while anyone is in it.
    pub fn dave_room(&self, guild: Snowflake, channel: Snowflake) -> Option<DaveRoomInfo> {
        self.dave.rooms.get(&(guild, channel)).map(DaveRoom::info)
    }

    /// The DAVE state of every room with someone in it.
    pub fn dave_rooms(&self) -> Vec<DaveRoomInfo> {
        self.dave.rooms.values().map(DaveRoom::info).collect()
    }
}
