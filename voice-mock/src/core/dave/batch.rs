//! Proposals and commits (DAVE.md §5 steps 4-7): one batch of external
//! proposals per epoch, the check of each op 28 against what its sender was
//! sent, the announce of the winner, and the revokes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use openmls::prelude::GroupId;
use tls_codec::{Serialize as _, VLBytes};
use voice_proto::wire::{DaveBinary, Snowflake};

use super::commit::{self, CommitError, ParsedCommit};
use super::room::{DaveRoom, Phase, Transition, TransitionKind};
use super::roster::Occupant;
use super::sender::{Proposed, SignedProposal};
use super::{BinaryKind, Ctx, Effect};
use crate::core::ServerEvent;
use crate::core::session::SessionKey;

/// What one proposal does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// Adds `key` with the key package whose reference is `kp_ref`.
    Add { key: SessionKey, user: Snowflake, kp_ref: Vec<u8> },
    /// Removes the leaf.
    Remove { leaf: u32 },
}

/// The proposals out for one epoch.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) epoch: u64,
    /// The references each recipient was sent (and not revoked), in order.
    pub(crate) sent: BTreeMap<SessionKey, Vec<Vec<u8>>>,
    /// What each reference does.
    pub(crate) changes: BTreeMap<Vec<u8>, Change>,
    /// The commit timeout.
    pub(crate) deadline: Instant,
}

/// Op 27 append: `0x00 ‖ <V>(MLSMessage…)`.
fn append_frame<'a>(messages: impl Iterator<Item = &'a SignedProposal>) -> Vec<u8> {
    let mut all = Vec::new();
    for m in messages {
        all.extend_from_slice(&m.message);
    }
    proposals_frame(0, all)
}

/// Op 27 revoke: `0x01 ‖ <V>(<V>ProposalRef…)`.
fn revoke_frame(refs: &[Vec<u8>]) -> Vec<u8> {
    let mut all = Vec::new();
    for r in refs {
        all.extend_from_slice(&VLBytes::new(r.clone()).tls_serialize_detached().unwrap_or_default());
    }
    proposals_frame(1, all)
}

fn proposals_frame(operation: u8, content: Vec<u8>) -> Vec<u8> {
    let body = VLBytes::new(content).tls_serialize_detached().unwrap_or_default();
    let mut out = Vec::with_capacity(2 + body.len());
    DaveBinary::Proposals { operation, body: &body }.encode(None, &mut out);
    out
}

/// Op 29 / op 30: the opcode, the transition id, the message.
fn announce_frame(op29: bool, tid: u16, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + message.len());
    let msg = if op29 {
        DaveBinary::AnnounceCommitTransition { transition_id: tid, commit: message }
    } else {
        DaveBinary::Welcome { transition_id: tid, welcome: message }
    };
    msg.encode(None, &mut out);
    out
}

impl DaveRoom {
    /// Members in the group in good standing (the recipients at epoch > 0).
    fn in_group(&self) -> Vec<SessionKey> {
        self.members.iter().filter(|(_, m)| m.leaf.is_some()).map(|(&k, _)| k).collect()
    }

    /// Members in the DAVE flow with a key package, not in the group, in
    /// join order, at most `cap`.
    fn addable(&self, cap: usize) -> Vec<SessionKey> {
        self.members
            .iter()
            .filter(|(_, m)| m.told == Some(1) && m.has_sender && m.leaf.is_none() && m.key_package.is_some())
            .map(|(&k, _)| k)
            .take(cap)
            .collect()
    }

    /// The Add of `key`'s key package.
    fn add_of(&self, key: SessionKey) -> Option<Change> {
        let m = self.members.get(&key)?;
        Some(Change::Add { key, user: m.user, kp_ref: m.key_package.as_ref()?.reference.clone() })
    }

    /// `change` as a proposal signed for this epoch.
    fn sign(&self, change: Change, cx: &Ctx<'_>) -> Option<(SignedProposal, Change)> {
        let what = match &change {
            Change::Add { key, .. } => Proposed::Add(&self.members.get(key)?.key_package.as_ref()?.key_package),
            Change::Remove { leaf } => Proposed::Remove(*leaf),
        };
        let group = GroupId::from_slice(&self.group_id());
        let signed = self.sender.propose(what, &group, self.epoch, self.attempt, cx.crypto);
        let signed = signed.map_err(|e| tracing::warn!(error = %e, "cannot sign a proposal")).ok()?;
        Some((signed, change))
    }

    /// Sends the next batch, if there are changes (step 4). With a group:
    /// one op 27 to every member, the Removes of stale leaves then the Adds.
    /// Without (epoch 0): each pending member with a key package gets the
    /// Adds of all the others, once there are two.
    pub(crate) fn propose(&mut self, cx: &mut Ctx<'_>) {
        if !matches!(self.phase, Phase::Idle) || self.version != 1 {
            return;
        }
        let mut sent = BTreeMap::new();
        let mut changes = BTreeMap::new();
        if self.epoch == 0 {
            let candidates = self.addable(cx.max_members);
            if candidates.len() < 2 {
                return;
            }
            let signed: Vec<(SessionKey, SignedProposal)> = candidates
                .iter()
                .filter_map(|&k| {
                    let (p, change) = self.sign(self.add_of(k)?, cx)?;
                    changes.insert(p.reference.clone(), change);
                    Some((k, p))
                })
                .collect();
            for &to in &candidates {
                let others: Vec<&SignedProposal> = signed.iter().filter(|(k, _)| *k != to).map(|(_, p)| p).collect();
                if others.is_empty() {
                    continue;
                }
                cx.out.push(Effect::Binary(to, BinaryKind::Proposals, append_frame(others.iter().copied())));
                sent.insert(to, others.iter().map(|p| p.reference.clone()).collect());
            }
        } else {
            let recipients = self.in_group();
            let stale: Vec<u32> = self
                .roster
                .occupants()
                .filter(|(leaf, o)| self.members.get(&o.key).and_then(|m| m.leaf) != Some(*leaf))
                .map(|(leaf, _)| leaf)
                .collect();
            let seats = cx.max_members.saturating_sub(self.roster.len() - stale.len());
            let adds = self.addable(seats);
            if recipients.is_empty() || (stale.is_empty() && adds.is_empty()) {
                return;
            }
            let mut batch = Vec::new();
            let removes = stale.iter().map(|&leaf| Change::Remove { leaf });
            let changes_in_order: Vec<Change> = removes.chain(adds.iter().filter_map(|&k| self.add_of(k))).collect();
            for p in changes_in_order.into_iter().filter_map(|c| self.sign(c, cx)) {
                changes.insert(p.0.reference.clone(), p.1);
                batch.push(p.0);
            }
            let refs: Vec<Vec<u8>> = batch.iter().map(|p| p.reference.clone()).collect();
            let frame = append_frame(batch.iter());
            for to in recipients {
                cx.out.push(Effect::Binary(to, BinaryKind::Proposals, frame.clone()));
                sent.insert(to, refs.clone());
            }
        }
        if !sent.is_empty() {
            let deadline = cx.now + cx.commit_timeout;
            self.phase = Phase::Commit(Batch { epoch: self.epoch, sent, changes, deadline });
        }
    }

    /// `key` can no longer commit (it left or lost its state): it is no
    /// recipient any more, and the Adds of it are revoked from everyone
    /// who got them. A batch left with nothing out ends.
    pub(crate) fn forget(&mut self, key: SessionKey, cx: &mut Ctx<'_>) {
        let Phase::Commit(batch) = &mut self.phase else { return };
        batch.sent.remove(&key);
        let revoked: BTreeSet<Vec<u8>> = batch
            .changes
            .iter()
            .filter(|(_, c)| matches!(c, Change::Add { key: k, .. } if *k == key))
            .map(|(r, _)| r.clone())
            .collect();
        if !revoked.is_empty() {
            for (&to, refs) in batch.sent.iter_mut() {
                let hit: Vec<Vec<u8>> = refs.iter().filter(|r| revoked.contains(*r)).cloned().collect();
                if !hit.is_empty() {
                    refs.retain(|r| !revoked.contains(r));
                    cx.out.push(Effect::Binary(to, BinaryKind::Proposals, revoke_frame(&hit)));
                }
            }
            batch.changes.retain(|r, _| !revoked.contains(r));
        }
        batch.sent.retain(|_, refs| !refs.is_empty());
        if batch.sent.is_empty() {
            self.phase = Phase::Idle;
        }
    }

    /// No valid commit in time: revoke everything out and propose again
    /// (with new signatures, so new references).
    pub(crate) fn commit_timeout(&mut self, batch: Batch, cx: &mut Ctx<'_>) {
        for (to, refs) in &batch.sent {
            cx.out.push(Effect::Binary(*to, BinaryKind::Proposals, revoke_frame(refs)));
        }
        tracing::debug!(channel = %self.channel, epoch = self.epoch, "no commit in time: proposing again");
        self.counts.commit_timeouts += 1;
        self.attempt = self.attempt.saturating_add(1);
        self.phase = Phase::Idle;
        self.plan(cx);
    }

    /// Op 28 from `key`: true if it was for the DAVE flow.
    pub(crate) fn commit_welcome(&mut self, key: SessionKey, body: &[u8], cx: &mut Ctx<'_>) -> bool {
        let Some(user) = self.members.get(&key).filter(|m| m.told == Some(1) && self.version == 1).map(|m| m.user)
        else {
            return false;
        };
        let Phase::Commit(batch) = &self.phase else {
            // The epoch's commit was chosen already (or none was asked for).
            self.counts.commits_superseded += 1;
            return true;
        };
        let checked = commit::parse(body).and_then(|parsed| {
            if parsed.epoch < batch.epoch && parsed.group_id == self.group_id() {
                return Ok(None);
            }
            self.check(key, batch, &parsed).map(|changes| Some((parsed, changes)))
        });
        match checked {
            Ok(Some((parsed, changes))) => self.announce(key, user, &parsed, changes, cx),
            Ok(None) => self.counts.commits_superseded += 1,
            Err(e) => {
                self.counts.commits_rejected += 1;
                tracing::debug!(%user, reason = %e, "commit refused");
                let (guild, channel) = (self.guild, self.channel);
                cx.out.push(Effect::Event(ServerEvent::DaveCommitRejected {
                    guild,
                    channel,
                    user,
                    reason: e.reason(),
                }));
            }
        }
        true
    }

    /// Step 5: the commit is for this group and epoch, from the member's
    /// own leaf (leaf 0 of its pending group at epoch 0), references
    /// exactly what it was sent, and its Welcome covers every joiner.
    fn check(&self, key: SessionKey, batch: &Batch, parsed: &ParsedCommit<'_>) -> Result<Vec<Change>, CommitError> {
        if parsed.group_id != self.group_id() {
            return Err(CommitError::GroupId);
        }
        if parsed.epoch != batch.epoch {
            return Err(CommitError::Epoch);
        }
        let sent = batch.sent.get(&key).ok_or(CommitError::NotRecipient)?;
        let leaf = if batch.epoch == 0 { Some(0) } else { self.members.get(&key).and_then(|m| m.leaf) };
        if leaf != Some(parsed.sender_leaf) {
            return Err(CommitError::Sender);
        }
        let got: BTreeSet<&Vec<u8>> = parsed.references.iter().collect();
        if got.len() != parsed.references.len() || got != sent.iter().collect() {
            return Err(CommitError::References);
        }
        let changes: Vec<Change> = parsed.references.iter().filter_map(|r| batch.changes.get(r).cloned()).collect();
        let joiners: BTreeSet<&Vec<u8>> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Add { kp_ref, .. } => Some(kp_ref),
                Change::Remove { .. } => None,
            })
            .collect();
        let welcomed: BTreeSet<&Vec<u8>> = parsed.welcomed.iter().collect();
        let welcome_ok = match parsed.welcome {
            None => joiners.is_empty(),
            Some(_) => !joiners.is_empty() && welcomed.len() == parsed.welcomed.len() && welcomed == joiners,
        };
        if !welcome_ok {
            return Err(CommitError::Welcome);
        }
        Ok(changes)
    }

    /// Steps 6 and 7: op 29 to the members (at epoch 0 the committer only),
    /// op 30 to each joiner, under the next transition id; the roster moves
    /// on; op 23s are awaited.
    fn announce(
        &mut self,
        key: SessionKey,
        user: Snowflake,
        parsed: &ParsedCommit<'_>,
        changes: Vec<Change>,
        cx: &mut Ctx<'_>,
    ) {
        let tid = self.next_tid();
        let existing = if self.epoch == 0 { vec![key] } else { self.in_group() };
        let mut removes = Vec::new();
        let mut adds = Vec::new();
        for c in changes {
            match c {
                Change::Remove { leaf } => removes.push(leaf),
                Change::Add { key, user, .. } => adds.push(Occupant { key, user }),
            }
        }
        let commit = announce_frame(true, tid, parsed.commit);
        for &to in &existing {
            cx.out.push(Effect::Binary(to, BinaryKind::Commit, commit.clone()));
        }
        if let Some(welcome) = parsed.welcome {
            let frame = announce_frame(false, tid, welcome);
            for a in &adds {
                cx.out.push(Effect::Binary(a.key, BinaryKind::Welcome, frame.clone()));
            }
        }
        if self.epoch == 0 {
            self.roster.found(Occupant { key, user });
            if let Some(m) = self.members.get_mut(&key) {
                m.leaf = Some(0);
                m.key_package = None;
            }
        }
        let placed = self.roster.apply(&removes, &adds);
        for (a, leaf) in adds.iter().zip(placed) {
            if let Some(m) = self.members.get_mut(&a.key) {
                m.leaf = Some(leaf);
                m.key_package = None;
            }
        }
        self.epoch += 1;
        self.attempt = 0;
        self.counts.commits_accepted += 1;
        let waiting = existing.iter().copied().chain(adds.iter().map(|a| a.key)).collect();
        let deadline = cx.now + cx.execute_timeout;
        self.phase = Phase::Ready(Transition { tid, kind: TransitionKind::Commit, waiting, deadline });
        let (guild, channel, epoch) = (self.guild, self.channel, self.epoch);
        cx.out.push(Effect::Event(ServerEvent::DaveCommitAccepted { guild, channel, user, transition_id: tid, epoch }));
    }
}
