//! DAVE, Discord's audio end-to-end encryption (PROTOCOL.md §6, DAVE.md §2):
//! the MLS group of a call and the keys its frames are sealed with, on the
//! `davey` crate.
//!
//! [`Dave`] is owned per voice session: it is kept across a resume and made
//! anew for a fresh connection. It takes the voice gateway's DAVE messages
//! (ops 21, 22, 24 as JSON; 25, 27, 29, 30 as binary), the roster messages
//! (ops 11, 13) and Session Description's version, and queues what to send
//! (ops 23, 26, 28, 31) and what to report ([`DaveOutput`]); the connection
//! drains the queue after every input. Media goes through
//! [`FrameTransform`](crate::transform::FrameTransform), which asks this
//! module for the session's keys.
//!
//! Files: `mls.rs` (external sender, key packages, proposals and commits),
//! `transitions.rs` (prepare, execute, epochs, recovery), `frame.rs` (the
//! frame check), `hold.rs` (frames waiting for their key).
//!
//! **The one clock in voice-proto.** This crate never reads a clock (clippy
//! enforces it), but davey does, inside: its decryptors expire the previous
//! epoch's keys 10 s after a transition and time their own statistics with
//! `Instant::now()`. That timing is davey's alone and is isolated here: the
//! connection's own deadlines (the hold buffer's age limit, the passthrough
//! window after an upgrade) run on the `now` the caller passes in, and no
//! test depends on davey's internal expiry.

mod frame;
mod hold;
mod mls;
mod transitions;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::num::NonZeroU16;
use std::time::{Duration, Instant};

use davey::DaveSession;

pub(crate) use self::frame::OPUS_SILENCE;
pub use self::frame::is_dave_frame;
pub(crate) use self::hold::{HeldFrame, Hold, Pushed};
use crate::output::DisconnectReason;
use crate::stats::DaveStats;
use crate::wire::{DaveBinary, Message, Snowflake};

/// After an upgrade from version 0 executes, plaintext from peers that have
/// not switched yet is still accepted this long (the whitepaper's 10 s).
const PASSTHROUGH_AFTER_UPGRADE: Duration = Duration::from_secs(10);
/// Prepared transitions remembered at once; a server that never executes
/// them cannot grow the map.
const MAX_PENDING_TRANSITIONS: usize = 64;

/// Runs a davey call that decodes bytes from the server. The MLS decoder
/// underneath (tls_codec 0.4) `debug_assert!`s on some malformed length
/// prefixes just before it returns its error, so in a build with debug
/// assertions on, hostile bytes would panic rather than fail. The panic is
/// caught and becomes that call's error, handled like any refused message
/// (a commit or welcome leads to recovery). Release builds never panic
/// here; with `panic = "abort"` a debug build has nothing to catch.
fn decode_guard<T, E: core::fmt::Display>(f: impl FnOnce() -> Result<T, E>) -> Result<T, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("malformed MLS message (decoder assertion)".to_owned()),
    }
}

/// Something the DAVE machine asks of the connection.
#[derive(Debug)]
pub(crate) enum DaveOutput {
    /// Send a JSON message (ops 23, 31).
    Json(Message),
    /// Send a binary frame (ops 26, 28), already framed (`op ‖ body`).
    Binary(Vec<u8>),
    /// The voice privacy code changed (`None`: no group, or DAVE off).
    PrivacyCode(Option<String>),
    /// End-to-end encryption cannot work on this call: disconnect.
    Failed(DisconnectReason),
}

/// When received plaintext (non-DAVE frames) is accepted on a DAVE call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Passthrough {
    /// Never (the steady state of a DAVE call).
    Closed,
    /// Until a transition executes (a downgrade to 0 or an upgrade from 0
    /// is under way).
    Open,
    /// Until this instant (just after an upgrade executed).
    Until(Instant),
}

/// The DAVE state of one voice session.
pub(crate) struct Dave {
    user_id: u64,
    channel_id: u64,
    max_version: u16,
    /// The version frames are sent under: 0 means transport encryption only.
    version: u16,
    /// Boxed: the MLS state is kilobytes, and a call that never meets DAVE
    /// (or between sessions) holds only the pointer.
    session: Option<Box<DaveSession>>,
    /// The op 25 body, kept for a session made (or re-made) later.
    external_sender: Option<Vec<u8>>,
    /// Users the gateway said are in the call (ops 11 and 13).
    recognised: BTreeSet<u64>,
    max_recognised: usize,
    /// Prepared transitions awaiting op 22: id → protocol version.
    pending: BTreeMap<u16, u16>,
    passthrough: Passthrough,
    /// The privacy code last reported.
    reported_code: Option<String>,
    /// Keys were installed or switched since the held frames were last
    /// retried.
    keys_changed: bool,
    /// Recoveries since the last transition that prepared.
    failed_in_a_row: u32,
    max_recoveries: u32,
    out: VecDeque<DaveOutput>,
}

impl core::fmt::Debug for Dave {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Dave")
            .field("version", &self.version)
            .field("session", &self.session.is_some())
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl Dave {
    /// No DAVE yet: Session Description decides.
    pub(crate) fn new(user_id: Snowflake, max_version: u16, max_recognised: usize, max_recoveries: u32) -> Self {
        Dave {
            user_id: user_id.0,
            channel_id: 0,
            max_version,
            version: 0,
            session: None,
            external_sender: None,
            recognised: BTreeSet::new(),
            max_recognised,
            pending: BTreeMap::new(),
            passthrough: Passthrough::Closed,
            reported_code: None,
            keys_changed: false,
            failed_in_a_row: 0,
            max_recoveries,
            out: VecDeque::new(),
        }
    }

    /// Whether keys changed since the last call (held frames may now
    /// decrypt); clears the flag.
    pub(crate) fn take_keys_changed(&mut self) -> bool {
        std::mem::take(&mut self.keys_changed)
    }

    /// The next thing to do, if any.
    pub(crate) fn poll(&mut self) -> Option<DaveOutput> {
        self.out.pop_front()
    }

    /// The version frames are sent under (0: transport encryption only).
    pub(crate) fn version(&self) -> u16 {
        self.version
    }

    /// Whether a frame can be sent now: always on a version-0 call, else
    /// once a send key is installed.
    pub(crate) fn can_send(&self) -> bool {
        self.version == 0 || self.session.as_deref().is_some_and(DaveSession::can_encrypt)
    }

    /// Whether received plaintext (a frame without the DAVE layout) is
    /// acceptable at `now`.
    pub(crate) fn accepts_plaintext(&self, now: Instant) -> bool {
        self.version == 0
            || match self.passthrough {
                Passthrough::Closed => false,
                Passthrough::Open => true,
                Passthrough::Until(t) => now < t,
            }
    }

    pub(crate) fn session_mut(&mut self) -> Option<&mut DaveSession> {
        self.session.as_deref_mut()
    }

    /// The voice privacy code of the group, once there is one.
    pub(crate) fn privacy_code(&self) -> Option<&str> {
        self.session.as_deref().and_then(DaveSession::voice_privacy_code)
    }

    /// The 45-digit verification code for `user` in the current group.
    pub(crate) fn verification_code(&self, user: Snowflake) -> Option<String> {
        self.session.as_ref()?.get_verification_code(user.0).ok()
    }

    /// The group's epoch.
    pub(crate) fn epoch(&self) -> Option<u64> {
        self.session.as_ref()?.epoch().map(|e| e.as_u64())
    }

    /// The group's members, in leaf order.
    pub(crate) fn members(&self) -> Option<Vec<Snowflake>> {
        Some(self.session.as_ref()?.get_user_ids()?.into_iter().map(Snowflake).collect())
    }

    /// The group's epoch authenticator (equal at every member of an epoch).
    pub(crate) fn epoch_authenticator(&self) -> Option<Vec<u8>> {
        Some(self.session.as_ref()?.get_epoch_authenticator()?.as_slice().to_vec())
    }

    /// Session Description negotiated `version` for `channel`.
    pub(crate) fn start(&mut self, version: u16, channel: Snowflake, stats: &mut DaveStats) {
        self.channel_id = channel.0;
        self.version = version;
        if version == 0 {
            return self.sync(stats);
        }
        if self.max_version == 0 {
            tracing::warn!(version, "server negotiated DAVE, which the configuration does not offer");
            self.out.push_back(DaveOutput::Failed(DisconnectReason::E2eeRequired));
            return;
        }
        if self.reinit(version) {
            self.send_key_package(stats);
        }
        self.sync(stats);
    }

    /// Users joined the call (op 11).
    pub(crate) fn recognise(&mut self, users: &[Snowflake]) {
        for u in users {
            if self.recognised.len() >= self.max_recognised && !self.recognised.contains(&u.0) {
                tracing::warn!("recognised-user set full; ignoring a user");
                break;
            }
            self.recognised.insert(u.0);
        }
    }

    /// A user left the call (op 13).
    pub(crate) fn forget(&mut self, user: Snowflake) {
        self.recognised.remove(&user.0);
    }

    /// A binary DAVE message from the server.
    pub(crate) fn handle_binary(&mut self, msg: DaveBinary<'_>, now: Instant, stats: &mut DaveStats) {
        match msg {
            DaveBinary::ExternalSender(body) => self.on_external_sender(body, stats),
            DaveBinary::Proposals { operation, body } => self.on_proposals(operation, body, stats),
            DaveBinary::AnnounceCommitTransition { transition_id, commit } => {
                self.on_commit(transition_id, commit, now, stats)
            }
            DaveBinary::Welcome { transition_id, welcome } => self.on_welcome(transition_id, welcome, now, stats),
            // Client-only opcodes coming from the server.
            _ => stats.mls_errors += 1,
        }
        self.sync(stats);
    }

    /// A JSON DAVE message from the server (ops 21, 22, 24); others are
    /// not for this module and are ignored.
    pub(crate) fn handle_message(&mut self, msg: &Message, now: Instant, stats: &mut DaveStats) {
        match msg {
            Message::DavePrepareTransition(t) => {
                self.on_prepare_transition(t.transition_id, t.protocol_version, now, stats)
            }
            Message::DaveExecuteTransition(t) => self.on_execute_transition(t.transition_id, now, stats),
            Message::DavePrepareEpoch(e) => self.on_prepare_epoch(e.epoch, e.protocol_version, stats),
            _ => return,
        }
        self.sync(stats);
    }

    /// Makes (or re-makes) the MLS session for `version`, with the known
    /// external sender. False when that is impossible (reported).
    fn reinit(&mut self, version: u16) -> bool {
        let Some(v) = NonZeroU16::new(version) else { return false };
        let made = match self.session.as_mut() {
            Some(s) => s.reinit(v, self.user_id, self.channel_id, None).map_err(|e| e.to_string()),
            None => DaveSession::new(v, self.user_id, self.channel_id, None)
                .map(|s| self.session = Some(Box::new(s)))
                .map_err(|e| e.to_string()),
        };
        if let Err(error) = made {
            tracing::warn!(%error, version, "cannot start a DAVE session");
            self.out.push_back(DaveOutput::Failed(DisconnectReason::E2eeFailed));
            return false;
        }
        // A reinit forgets davey's prepared transitions; forget ours too.
        self.pending.clear();
        if let (Some(body), Some(s)) = (self.external_sender.as_deref(), self.session.as_mut())
            && let Err(error) = decode_guard(|| s.set_external_sender(body))
        {
            tracing::debug!(%error, "external sender not applied to the new session");
        }
        true
    }

    /// Users a proposal or welcome may add: the recognised ones and us.
    fn expected_users(&self) -> Vec<u64> {
        self.recognised.iter().copied().chain([self.user_id]).collect()
    }

    /// Reports a changed privacy code and keeps the statistics current.
    fn sync(&mut self, stats: &mut DaveStats) {
        let code = if self.version == 0 { None } else { self.privacy_code().map(str::to_owned) };
        if code != self.reported_code {
            self.reported_code.clone_from(&code);
            self.out.push_back(DaveOutput::PrivacyCode(code));
        }
        stats.protocol_version = self.version;
        stats.epoch = self.epoch();
    }
}
