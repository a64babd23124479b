//! DAVE transitions (PROTOCOL.md §6.6, DAVE.md §2): a commit (op 29) or
//! welcome (op 30) is processed and its transition *prepared* (new receive
//! keys at once, op 23 to say so); the send key changes only when the
//! gateway *executes* it (op 22), or at once for transition id 0. Op 21
//! prepares a version change (0 = downgrade to transport encryption, with
//! plaintext accepted meanwhile), op 24 with epoch 1 starts a new group, and
//! a commit or welcome that cannot be processed is answered with op 31 and
//! a new key package (recovery).

use std::time::Instant;

use super::{Dave, DaveOutput, MAX_PENDING_TRANSITIONS, PASSTHROUGH_AFTER_UPGRADE, Passthrough};
use crate::output::DisconnectReason;
use crate::stats::DaveStats;
use crate::wire::{Message, TransitionId};

impl Dave {
    /// Op 29: the winning commit of the epoch, to apply at `tid`.
    pub(super) fn on_commit(&mut self, tid: u16, commit: &[u8], now: Instant, stats: &mut DaveStats) {
        let Some(session) = self.session.as_mut() else { return };
        let version = session.protocol_version().get();
        match super::decode_guard(|| session.process_commit(commit)) {
            Ok(true) => self.prepare(tid, version, now, stats),
            // No group yet, or a pending one: the welcome will follow.
            Ok(false) => tracing::debug!(tid, "commit ignored (no established group)"),
            Err(error) => {
                tracing::warn!(%error, tid, "commit could not be processed");
                self.recover(tid, stats);
            }
        }
    }

    /// Op 30: a welcome into the group, to apply at `tid`. Every member it
    /// names must be a recognised user (or us).
    pub(super) fn on_welcome(&mut self, tid: u16, welcome: &[u8], now: Instant, stats: &mut DaveStats) {
        let expected = self.expected_users();
        let Some(session) = self.session.as_mut() else { return };
        let version = session.protocol_version().get();
        match super::decode_guard(|| session.process_welcome(welcome, Some(&expected))) {
            Ok(()) => self.prepare(tid, version, now, stats),
            Err(error) => {
                tracing::warn!(%error, tid, "welcome could not be processed");
                self.recover(tid, stats);
            }
        }
    }

    /// Op 21: prepare a change to `version` at `tid`. A downgrade (version
    /// 0) opens passthrough at once: peers that executed it send plaintext.
    pub(super) fn on_prepare_transition(&mut self, tid: u16, version: u16, now: Instant, stats: &mut DaveStats) {
        self.prepare(tid, version, now, stats);
    }

    /// Op 22: the transition `tid` executes; the send side switches.
    pub(super) fn on_execute_transition(&mut self, tid: u16, now: Instant, stats: &mut DaveStats) {
        let Some(version) = self.pending.remove(&tid) else {
            tracing::debug!(tid, "execute for a transition that was not prepared");
            return;
        };
        if let Some(session) = self.session.as_mut()
            && let Err(error) = session.execute_transition(tid)
        {
            tracing::warn!(%error, tid, "transition could not be executed");
            stats.mls_errors += 1;
            return;
        }
        self.keys_changed = true;
        self.executed(version, now, stats);
    }

    /// Op 24: a new epoch. Epoch 1 means a new group: the MLS state starts
    /// over and a new key package goes out. An upgrade from version 0
    /// accepts plaintext until it executes.
    pub(super) fn on_prepare_epoch(&mut self, epoch: u64, version: u16, stats: &mut DaveStats) {
        if epoch != 1 {
            // The existing group moves to `version`; its commit and
            // transition follow as usual.
            return;
        }
        if version == 0 || self.max_version == 0 {
            tracing::warn!(version, "op 24 for a new group this client cannot join");
            stats.mls_errors += 1;
            return;
        }
        if self.version == 0 {
            self.passthrough = Passthrough::Open;
        }
        if self.reinit(version) {
            self.send_key_package(stats);
        }
    }

    /// Prepares `tid` for `version`: new receive keys now, op 23 to the
    /// gateway, or for id 0 execution at once (and nothing sent).
    fn prepare(&mut self, tid: u16, version: u16, now: Instant, stats: &mut DaveStats) {
        match self.session.as_mut() {
            Some(session) => {
                if let Err(error) = session.prepare_transition(tid, version) {
                    tracing::warn!(%error, tid, "transition could not be prepared");
                    stats.mls_errors += 1;
                    return;
                }
                self.keys_changed = true;
            }
            // Without an MLS session only a move to version 0 (transport
            // encryption) can be made ready; anything else arrives by op 24.
            None if version != 0 => {
                tracing::warn!(tid, version, "transition to DAVE without a DAVE session");
                stats.mls_errors += 1;
                return;
            }
            None => {}
        }
        if version == 0 {
            // Peers that executed the downgrade send plaintext.
            self.passthrough = Passthrough::Open;
        }
        stats.transitions_prepared += 1;
        if version != 0 {
            self.failed_in_a_row = 0;
        }
        if tid == 0 {
            return self.executed(version, now, stats);
        }
        if self.pending.len() >= MAX_PENDING_TRANSITIONS && !self.pending.contains_key(&tid) {
            self.pending.pop_first();
        }
        self.pending.insert(tid, version);
        self.out.push_back(DaveOutput::Json(Message::DaveTransitionReady(TransitionId { transition_id: tid })));
    }

    /// A transition to `version` took effect.
    fn executed(&mut self, version: u16, now: Instant, stats: &mut DaveStats) {
        let upgraded = self.version == 0 && version != 0;
        self.version = version;
        stats.transitions_executed += 1;
        if version != 0 && (upgraded || self.passthrough == Passthrough::Open) {
            // Peers that have not switched yet may still send plaintext.
            self.passthrough = Passthrough::Until(now + PASSTHROUGH_AFTER_UPGRADE);
        }
    }

    /// A commit or welcome for `tid` failed: tell the gateway (op 31), start
    /// the MLS state over and send a new key package, so that it removes
    /// and re-adds us. Gives up after too many in a row.
    fn recover(&mut self, tid: u16, stats: &mut DaveStats) {
        stats.recoveries += 1;
        self.failed_in_a_row += 1;
        if self.failed_in_a_row > self.max_recoveries {
            tracing::warn!(attempts = self.failed_in_a_row, "end-to-end encryption keeps failing; giving up");
            self.out.push_back(DaveOutput::Failed(DisconnectReason::E2eeFailed));
            return;
        }
        let invalid = Message::DaveMlsInvalidCommitWelcome(TransitionId { transition_id: tid });
        self.out.push_back(DaveOutput::Json(invalid));
        let version = self.session.as_ref().map_or(self.version, |s| s.protocol_version().get());
        if self.reinit(version) {
            self.send_key_package(stats);
        }
    }
}
