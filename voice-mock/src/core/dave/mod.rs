//! DAVE on the server side (DAVE.md §5): every room's MLS external sender
//! and delivery service.
//!
//! * `sender.rs`: the room's P-256 key, op 25, the signed external Add and
//!   Remove proposals and their references, the key package check.
//! * `commit.rs`: op 28 split and read by hand.
//! * `roster.rs`: who holds which leaf.
//! * `room.rs`: the room's state machine (members, protocol version,
//!   transitions); `batch.rs`: proposals and commits.
//! * `hooks.rs`: where the gateway calls in, and where the room's effects
//!   become frames, faults and events.
//! * `frame.rs`: what the SFU counts of each payload.
//!
//! A room does not send: it returns [`Effect`]s, which the gateway turns
//! into frames in order (so that per connection op 4 comes before op 25,
//! op 25 before op 11, and so on). No clock is read: deadlines come from
//! `now`. Signatures are RFC 6979, the key comes from the seed, and nothing
//! draws from the crypto provider's own RNG, so a run is reproducible.

mod batch;
mod commit;
mod frame;
mod hooks;
mod room;
mod roster;
mod sender;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use openmls_rust_crypto::RustCrypto;
use voice_proto::wire::{Message, Snowflake};

use super::ServerEvent;
use super::room::RoomId;
use super::session::SessionKey;

pub(crate) use frame::{PayloadKind, classify};
pub(crate) use room::DaveRoom;

/// A snapshot of one room's DAVE state, from
/// [`crate::MockServer::dave_room`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DaveRoomInfo {
    /// The guild.
    pub guild: Snowflake,
    /// The channel.
    pub channel: Snowflake,
    /// The room's DAVE protocol version now (0 = transport encryption only).
    pub protocol_version: u16,
    /// The MLS epoch the server knows (0 = no group yet).
    pub epoch: u64,
    /// The group's members in leaf order, as each member's
    /// `get_user_ids()` lists them. A member that lost its group state
    /// (op 31, or a new key package) stays here until its Remove commits.
    pub roster: Vec<Snowflake>,
    /// Members in the DAVE flow that are not (or no longer) in the group:
    /// waiting for their key package to be proposed and committed.
    pub pending: Vec<Snowflake>,
    /// Whether a transition or a batch of proposals is under way.
    pub busy: bool,
    /// Transitions executed (op 22 sent), including timed-out ones.
    pub transitions_executed: u64,
    /// Transitions executed because the execute timeout expired.
    pub transitions_timed_out: u64,
    /// The id of the last transition executed.
    pub last_transition_id: Option<u16>,
    /// Commits accepted (announced with op 29 / op 30).
    pub commits_accepted: u64,
    /// Commits refused (they failed a check of DAVE.md §5 step 5).
    pub commits_rejected: u64,
    /// Commits for an epoch whose commit was already chosen (dropped).
    pub commits_superseded: u64,
    /// Batches of proposals revoked and proposed again because no valid
    /// commit came within the commit timeout.
    pub commit_timeouts: u64,
    /// Key packages accepted (op 26).
    pub key_packages_accepted: u64,
    /// Key packages refused (undecodable, invalid, wrong credential,
    /// ciphersuite or lifetime).
    pub key_packages_rejected: u64,
    /// Op 31 received (a member could not process a commit or welcome).
    pub invalid_commit_welcomes: u64,
    /// Sole-member resets (op 24 epoch 1 + op 21 transition 0).
    pub group_resets: u64,
    /// Media payloads forwarded that carried the DAVE trailer (counted once
    /// per packet a sender sent, after transport decryption).
    pub payloads_with_trailer: u64,
    /// Media payloads that were the Opus silence frame `F8 FF FE`.
    pub payloads_silence: u64,
    /// Media payloads that were neither: plaintext Opus.
    pub payloads_plaintext: u64,
}

/// Which binary message an effect carries (the faults pick by kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryKind {
    /// Op 25.
    ExternalSender,
    /// Op 27.
    Proposals,
    /// Op 29.
    Commit,
    /// Op 30.
    Welcome,
}

/// What a room asks the gateway to do, in order.
#[derive(Debug)]
pub(crate) enum Effect {
    /// A JSON message to a member.
    Json(SessionKey, Message),
    /// A binary message (opcode and body, no sequence number) to a member.
    Binary(SessionKey, BinaryKind, Vec<u8>),
    /// An event for the caller.
    Event(ServerEvent),
}

/// What a room's step may use and where it puts its effects.
pub(crate) struct Ctx<'a> {
    pub(crate) now: Instant,
    pub(crate) crypto: &'a RustCrypto,
    pub(crate) execute_timeout: Duration,
    pub(crate) commit_timeout: Duration,
    /// The `DaveDelayExecute` fault (zero when off).
    pub(crate) execute_delay: Duration,
    pub(crate) max_members: usize,
    pub(crate) out: Vec<Effect>,
}

/// The DAVE state of the server: one crypto provider, the rooms.
#[derive(Default)]
pub(crate) struct Dave {
    /// The provider seeds its own RNG from the OS; nothing the server does
    /// with it (hashing, verifying, ECDSA by RFC 6979) draws from it.
    pub(crate) crypto: RustCrypto,
    pub(crate) rooms: BTreeMap<RoomId, DaveRoom>,
}

impl core::fmt::Debug for Dave {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Dave").field("rooms", &self.rooms.len()).finish_non_exhaustive()
    }
}
