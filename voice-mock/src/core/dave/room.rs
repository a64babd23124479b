//! One room's DAVE state machine: members, the room's protocol version,
//! transitions (op 21 / 22 / 23 / 24 / 31), resets. Proposals and commits
//! are in `batch.rs`.
//!
//! One thing happens at a time ([`Phase`]): a batch of proposals waiting
//! for its commit, then a transition waiting for its op 23s, then (with the
//! delay fault) a wait before op 22. Only when idle does the room plan the
//! next step: a version change first, then the next batch.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use openmls_rust_crypto::RustCrypto;
use voice_proto::wire::{DavePrepareEpoch, DavePrepareTransition, Message, Snowflake, TransitionId};

use super::batch::Batch;
use super::roster::Roster;
use super::sender::{CheckedKeyPackage, SenderKey, check_key_package};
use super::{BinaryKind, Ctx, DaveRoomInfo, Effect, PayloadKind};
use crate::core::ServerEvent;
use crate::core::config::DavePolicy;
use crate::core::session::SessionKey;

/// A session of the room, as DAVE sees it.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) user: Snowflake,
    /// Its Identify offered DAVE (and the policy is not Off).
    pub(crate) capable: bool,
    /// The version its client was last told (op 4, op 24, op 22 of a
    /// downgrade); `None` before its Session Description.
    pub(crate) told: Option<u16>,
    /// It was sent op 25.
    pub(crate) has_sender: bool,
    /// Its one key package, not yet used.
    pub(crate) key_package: Option<CheckedKeyPackage>,
    /// Its leaf while it is in the group in good standing.
    pub(crate) leaf: Option<u32>,
}

/// What a transition does when op 22 executes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransitionKind {
    /// A commit moved the group to a new epoch.
    Commit,
    /// The room goes to protocol version 0.
    Downgrade,
}

/// An announced transition.
#[derive(Debug)]
pub(crate) struct Transition {
    pub(crate) tid: u16,
    pub(crate) kind: TransitionKind,
    /// Members whose op 23 is still due.
    pub(crate) waiting: BTreeSet<SessionKey>,
    /// The execute timeout.
    pub(crate) deadline: Instant,
}

/// What the room is waiting for.
#[derive(Debug, Default)]
pub(crate) enum Phase {
    /// Nothing: the next step may start.
    #[default]
    Idle,
    /// A batch of proposals is out; the first valid commit wins.
    Commit(Batch),
    /// A transition is announced; op 22 goes when all are ready.
    Ready(Transition),
    /// Ready (or timed out): op 22 goes at `at` (the delay fault).
    Execute { at: Instant, transition: Transition, timed_out: bool },
}

/// One room: (guild, channel).
#[derive(Debug)]
pub(crate) struct DaveRoom {
    pub(crate) guild: Snowflake,
    pub(crate) channel: Snowflake,
    pub(crate) sender: SenderKey,
    policy: DavePolicy,
    /// The room's version now.
    pub(crate) version: u16,
    pub(crate) epoch: u64,
    pub(crate) roster: Roster,
    pub(crate) members: BTreeMap<SessionKey, Member>,
    pub(crate) phase: Phase,
    next_tid: u16,
    /// Batches proposed at this epoch before (see `SenderKey::add`).
    pub(crate) attempt: u32,
    /// The counters of [`DaveRoomInfo`] (its other fields are filled in by
    /// [`DaveRoom::info`]).
    pub(crate) counts: DaveRoomInfo,
}

impl DaveRoom {
    /// A room with no one in it yet.
    pub(crate) fn new(
        guild: Snowflake,
        channel: Snowflake,
        policy: DavePolicy,
        seed: u64,
        crypto: &RustCrypto,
    ) -> Self {
        let version = u16::from(policy != DavePolicy::Off);
        DaveRoom {
            guild,
            channel,
            sender: SenderKey::derive(seed, guild, channel, crypto),
            policy,
            version,
            epoch: 0,
            roster: Roster::default(),
            members: BTreeMap::new(),
            phase: Phase::Idle,
            next_tid: 1,
            attempt: 0,
            counts: DaveRoomInfo::default(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The group id: the channel id as 8 bytes big-endian.
    pub(crate) fn group_id(&self) -> [u8; 8] {
        self.channel.0.to_be_bytes()
    }

    /// The next transition id: non-zero, wrapping past 0.
    pub(crate) fn next_tid(&mut self) -> u16 {
        let tid = self.next_tid;
        self.next_tid = self.next_tid.wrapping_add(1).max(1);
        tid
    }

    /// Members in the DAVE flow: told version 1 (op 4 or op 24).
    pub(crate) fn participants(&self) -> Vec<SessionKey> {
        self.members.iter().filter(|(_, m)| m.told == Some(1)).map(|(&k, _)| k).collect()
    }

    fn participating(&self, key: SessionKey) -> bool {
        self.version == 1 && self.members.get(&key).is_some_and(|m| m.told == Some(1))
    }

    fn desired_version(&self) -> u16 {
        match self.policy {
            DavePolicy::Off => 0,
            DavePolicy::Optional if !self.members.values().all(|m| m.capable) => 0,
            _ => 1,
        }
    }

    fn downgrading(&self) -> bool {
        matches!(&self.phase, Phase::Ready(t) | Phase::Execute { transition: t, .. } if t.kind == TransitionKind::Downgrade)
    }

    /// A session entered the room.
    pub(crate) fn join(&mut self, key: SessionKey, user: Snowflake, capable: bool, cx: &mut Ctx<'_>) {
        let member = Member { user, capable, told: None, has_sender: false, key_package: None, leaf: None };
        self.members.insert(key, member);
        self.plan(cx);
    }

    /// The version for `key`'s Session Description: what it was told
    /// before, else the room's version now (0 while a downgrade is under
    /// way). A first description at version 1 is followed by op 25.
    pub(crate) fn describe(&mut self, key: SessionKey) -> u16 {
        let version = if self.downgrading() { 0 } else { self.version };
        let Some(m) = self.members.get_mut(&key) else { return 0 };
        if !m.capable {
            return 0;
        }
        if let Some(v) = m.told {
            return v;
        }
        m.told = Some(version);
        m.has_sender = version == 1;
        version
    }

    /// A session left the room (its session ended).
    pub(crate) fn leave(&mut self, key: SessionKey, cx: &mut Ctx<'_>) {
        if self.members.remove(&key).is_none() {
            return;
        }
        let parts = self.participants();
        if self.version == 1 && self.epoch > 0 && parts.len() == 1 && !self.downgrading() {
            // Sole-member reset (DAVE.md §5 step 9): whatever was under way
            // is moot; the member re-initialises and sends a key package.
            let epoch = DavePrepareEpoch { epoch: 1, protocol_version: 1, transition_id: None };
            let now = DavePrepareTransition { transition_id: 0, protocol_version: 1 };
            cx.out.push(Effect::Json(parts[0], Message::DavePrepareEpoch(epoch)));
            cx.out.push(Effect::Json(parts[0], Message::DavePrepareTransition(now)));
            self.reset_group(true);
            self.phase = Phase::Idle;
            self.counts.group_resets += 1;
        } else {
            self.lost(key, cx);
        }
        self.plan(cx);
    }

    /// `key` left the group's flow (gone, or its client lost its group):
    /// it is due no op 23 and can no longer commit; an Add of it that is
    /// out is revoked.
    fn lost(&mut self, key: SessionKey, cx: &mut Ctx<'_>) {
        if let Some(m) = self.members.get_mut(&key) {
            m.leaf = None;
        }
        if matches!(self.phase, Phase::Commit(_)) {
            self.forget(key, cx);
            return;
        }
        self.readiness(key, None, cx);
    }

    /// `key` is no longer due an op 23 (for transition `tid`, or whatever
    /// transition is announced); the last one due sends op 22.
    fn readiness(&mut self, key: SessionKey, tid: Option<u16>, cx: &mut Ctx<'_>) {
        let Phase::Ready(t) = &mut self.phase else { return };
        if tid.is_some_and(|tid| tid != t.tid) {
            return;
        }
        if t.waiting.remove(&key) && t.waiting.is_empty() {
            self.all_ready(false, cx);
        }
    }

    /// Op 26 from `key`: true if it was for the DAVE flow.
    pub(crate) fn key_package(&mut self, key: SessionKey, body: &[u8], cx: &mut Ctx<'_>) -> bool {
        if !self.participating(key) {
            return false;
        }
        let Some(user) = self.members.get(&key).map(|m| m.user) else { return false };
        match check_key_package(body, user, cx.crypto) {
            Ok(kp) => {
                self.counts.key_packages_accepted += 1;
                // A key package means a fresh client state: whatever the
                // member held or had out is void, and this one replaces
                // the one it had.
                if let Some(m) = self.members.get_mut(&key) {
                    m.key_package = Some(kp);
                }
                self.lost(key, cx);
                self.plan(cx);
            }
            Err(e) => {
                self.counts.key_packages_rejected += 1;
                tracing::debug!(%user, reason = e.reason(), "key package refused");
                let (guild, channel) = (self.guild, self.channel);
                cx.out.push(Effect::Event(ServerEvent::DaveKeyPackageRejected {
                    guild,
                    channel,
                    user,
                    reason: e.reason(),
                }));
            }
        }
        true
    }

    /// Op 23 from `key` for `tid`.
    pub(crate) fn transition_ready(&mut self, key: SessionKey, tid: u16, cx: &mut Ctx<'_>) -> bool {
        if !self.participating(key) {
            return false;
        }
        self.readiness(key, Some(tid), cx);
        true
    }

    /// Op 31 from `key`: it could not process the commit or welcome of a
    /// transition. It stops counting for readiness and its leaf will be
    /// removed; its next key package re-adds it.
    pub(crate) fn invalid_commit_welcome(&mut self, key: SessionKey, cx: &mut Ctx<'_>) -> bool {
        if !self.participating(key) {
            return false;
        }
        self.counts.invalid_commit_welcomes += 1;
        if let Some(m) = self.members.get_mut(&key) {
            m.key_package = None;
        }
        self.lost(key, cx);
        self.plan(cx);
        true
    }

    /// Everyone due is ready (or the timeout passed): op 22, now or after
    /// the delay fault.
    fn all_ready(&mut self, timed_out: bool, cx: &mut Ctx<'_>) {
        let transition = match std::mem::take(&mut self.phase) {
            Phase::Ready(t) => t,
            other => {
                self.phase = other;
                return;
            }
        };
        if cx.execute_delay.is_zero() {
            self.execute(transition, timed_out, cx);
        } else {
            self.phase = Phase::Execute { at: cx.now + cx.execute_delay, transition, timed_out };
        }
    }

    fn execute(&mut self, t: Transition, timed_out: bool, cx: &mut Ctx<'_>) {
        for key in self.participants() {
            cx.out.push(Effect::Json(key, Message::DaveExecuteTransition(TransitionId { transition_id: t.tid })));
        }
        if t.kind == TransitionKind::Downgrade {
            self.version = 0;
            self.reset_group(true);
            for m in self.members.values_mut() {
                if m.told == Some(1) {
                    m.told = Some(0);
                }
            }
        }
        self.counts.transitions_executed += 1;
        self.counts.transitions_timed_out += u64::from(timed_out);
        self.counts.last_transition_id = Some(t.tid);
        self.phase = Phase::Idle;
        cx.out.push(Effect::Event(ServerEvent::DaveTransitionExecuted {
            guild: self.guild,
            channel: self.channel,
            transition_id: t.tid,
            epoch: self.epoch,
            protocol_version: self.version,
            timed_out,
        }));
        self.plan(cx);
    }

    /// Back to epoch 0: no group. With `rekey` the clients are being told
    /// to start afresh (op 24, or a downgrade), so every key package held
    /// is void; without, those sent since are kept.
    fn reset_group(&mut self, rekey: bool) {
        self.epoch = 0;
        self.attempt = 0;
        self.roster.clear();
        for m in self.members.values_mut() {
            m.leaf = None;
            if rekey {
                m.key_package = None;
            }
        }
    }

    /// The next step, if idle: a version change, else the next batch.
    pub(crate) fn plan(&mut self, cx: &mut Ctx<'_>) {
        let desired = self.desired_version();
        if desired != self.version {
            match self.phase {
                // A version change resets the group: the batch is moot.
                Phase::Commit(_) => self.phase = Phase::Idle,
                Phase::Idle => {}
                _ => return,
            }
            if desired == 0 {
                self.downgrade(cx);
            } else {
                self.upgrade(cx);
            }
        }
        if !matches!(self.phase, Phase::Idle) || self.version == 0 {
            return;
        }
        if self.epoch > 0 && !self.members.values().any(|m| m.leaf.is_some()) {
            // Every member lost the group (all sent op 31 and started
            // afresh): create it again from their new key packages.
            self.reset_group(false);
        }
        self.propose(cx);
    }

    /// Version 1 to 0 (a client without DAVE joined, policy Optional):
    /// op 21 `{tid, 0}` to the members in the DAVE flow, then op 22.
    fn downgrade(&mut self, cx: &mut Ctx<'_>) {
        let parts = self.participants();
        if parts.is_empty() {
            self.version = 0;
            self.reset_group(true);
            return;
        }
        let tid = self.next_tid();
        for &key in &parts {
            let prepare = DavePrepareTransition { transition_id: tid, protocol_version: 0 };
            cx.out.push(Effect::Json(key, Message::DavePrepareTransition(prepare)));
        }
        let waiting = parts.into_iter().collect();
        let deadline = cx.now + cx.execute_timeout;
        self.phase = Phase::Ready(Transition { tid, kind: TransitionKind::Downgrade, waiting, deadline });
    }

    /// Version 0 to 1 (the last client without DAVE left): op 24 `{1, 1}`
    /// to every member told version 0, op 25 to those that never had it;
    /// then the group is created as in flow (b) once key packages arrive.
    fn upgrade(&mut self, cx: &mut Ctx<'_>) {
        self.version = 1;
        self.reset_group(true);
        let sender = self.sender.external_sender().to_vec();
        for (&key, m) in self.members.iter_mut().filter(|(_, m)| m.capable && m.told.is_some()) {
            let epoch = DavePrepareEpoch { epoch: 1, protocol_version: 1, transition_id: None };
            cx.out.push(Effect::Json(key, Message::DavePrepareEpoch(epoch)));
            if !m.has_sender {
                cx.out.push(Effect::Binary(key, BinaryKind::ExternalSender, external_sender_frame(&sender)));
                m.has_sender = true;
            }
            m.told = Some(1);
        }
    }

    /// The next deadline: commit timeout, execute timeout, or delayed op 22.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Idle => None,
            Phase::Commit(b) => Some(b.deadline),
            Phase::Ready(t) => Some(t.deadline),
            Phase::Execute { at, .. } => Some(*at),
        }
    }

    /// Time passed.
    pub(crate) fn timeout(&mut self, cx: &mut Ctx<'_>) {
        let now = cx.now;
        match std::mem::take(&mut self.phase) {
            Phase::Commit(b) if b.deadline <= now => self.commit_timeout(b, cx),
            Phase::Ready(t) if t.deadline <= now => {
                self.phase = Phase::Ready(t);
                self.all_ready(true, cx);
            }
            Phase::Execute { at, transition, timed_out } if at <= now => self.execute(transition, timed_out, cx),
            other => self.phase = other,
        }
    }

    /// Counts a forwarded payload.
    pub(crate) fn count_payload(&mut self, kind: PayloadKind) {
        let count = match kind {
            PayloadKind::Dave => &mut self.counts.payloads_with_trailer,
            PayloadKind::Silence => &mut self.counts.payloads_silence,
            PayloadKind::Plaintext => &mut self.counts.payloads_plaintext,
        };
        *count += 1;
    }

    /// A snapshot.
    pub(crate) fn info(&self) -> DaveRoomInfo {
        let pending = self
            .members
            .iter()
            .filter(|(k, m)| self.participating(**k) && m.leaf.is_none())
            .map(|(_, m)| m.user)
            .collect();
        DaveRoomInfo {
            guild: self.guild,
            channel: self.channel,
            protocol_version: self.version,
            epoch: self.epoch,
            roster: self.roster.users(),
            pending,
            busy: !matches!(self.phase, Phase::Idle),
            ..self.counts.clone()
        }
    }
}

/// Op 25: the opcode and the `ExternalSender`.
pub(crate) fn external_sender_frame(sender: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + sender.len());
    voice_proto::wire::DaveBinary::ExternalSender(sender).encode(None, &mut out);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn transition_ids_skip_zero_when_they_wrap() {
        let crypto = RustCrypto::default();
        let mut room = DaveRoom::new(Snowflake(1), Snowflake(2), DavePolicy::Required, 7, &crypto);
        assert_eq!((room.next_tid(), room.next_tid()), (1, 2));
        room.next_tid = u16::MAX;
        assert_eq!((room.next_tid(), room.next_tid()), (u16::MAX, 1));
        // The key, and so op 25, depends on the seed and the room only.
        let again = DaveRoom::new(Snowflake(1), Snowflake(2), DavePolicy::Optional, 7, &crypto);
        let other = DaveRoom::new(Snowflake(1), Snowflake(3), DavePolicy::Required, 7, &crypto);
        assert_eq!(room.sender.external_sender(), again.sender.external_sender());
        assert_ne!(room.sender.external_sender(), other.sender.external_sender());
    }
}
