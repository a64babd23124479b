//! The one place where a frame transform sits between Opus and RTP.
//!
//! End-to-end encryption (DAVE, PROTOCOL.md §6) encrypts each Opus frame
//! before the RTP header and transport encryption are applied, and
//! decrypts each received payload after transport decryption, extension
//! body and padding removal (DAVE.md §3). Both paths go through
//! [`FrameTransform`] and nowhere else, silence included.
//!
//! Send: on a call at version 0 the frame goes out as it is. On a DAVE call
//! it is encrypted into a scratch buffer owned here, then copied into the
//! RTP payload; before a send key is installed it is refused
//! ([`SendError::E2eePending`]), never sent as plaintext. Opus silence is
//! never encrypted and always allowed.
//!
//! Receive: silence and (where the call allows it) plaintext pass; a DAVE
//! frame is decrypted by its sender's user id into a scratch buffer and
//! copied back in place; one whose key is not installed yet is *held*
//! ([`crate::dave::Hold`]) and delivered once the key arrives. No
//! allocation per packet in steady state.

use std::time::Instant;

use davey::errors::{DecryptError, DecryptorDecryptError, EncryptError};
use davey::{Codec, MediaType};

use crate::config::Config;
use crate::dave::{Dave, HeldFrame, Hold, OPUS_SILENCE, Pushed, is_dave_frame};
use crate::error::{E2eeError, SendError};
use crate::stats::DaveStats;
use crate::wire::Snowflake;

/// Scratch space for one frame: the largest Opus frame accepted plus the
/// DAVE trailer and davey's working margin.
const SCRATCH: usize = 2048;

/// What became of a received payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opened {
    /// The first `n` bytes of the payload are the Opus frame.
    Frame(usize),
    /// Held until its key arrives.
    Held,
}

/// RTP fields of a received frame, kept with it if it is held.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameMeta {
    pub(crate) ssrc: u32,
    pub(crate) user: Snowflake,
    pub(crate) sequence: u16,
    pub(crate) timestamp: u32,
}

/// A held frame that decrypted once its key arrived.
#[derive(Debug)]
pub(crate) struct Released {
    pub(crate) meta: FrameMeta,
    pub(crate) opus: Vec<u8>,
}

/// The frame transform of one voice session: DAVE state, scratch buffers
/// and the hold buffer.
#[derive(Debug)]
pub(crate) struct FrameTransform {
    dave: Dave,
    sealed: Vec<u8>,
    opened: Vec<u8>,
    hold: Hold,
}

impl FrameTransform {
    pub(crate) fn new(config: &Config) -> Self {
        let (dave, hold) = session_state(config);
        // The scratch buffers are reserved on first DAVE use: a call without
        // DAVE holds none.
        FrameTransform { dave, sealed: Vec::new(), opened: Vec::new(), hold }
    }

    /// A fresh voice session: new DAVE state, nothing held; the scratch
    /// buffers stay.
    pub(crate) fn reset(&mut self, config: &Config) {
        (self.dave, self.hold) = session_state(config);
    }

    /// The DAVE machine.
    pub(crate) fn dave(&self) -> &Dave {
        &self.dave
    }

    /// The DAVE machine, to feed it.
    pub(crate) fn dave_mut(&mut self) -> &mut Dave {
        &mut self.dave
    }

    /// Whether a non-silent frame can be sent now.
    pub(crate) fn can_send(&self) -> bool {
        self.dave.can_send()
    }

    /// Appends the transformed `opus` frame to `out` (the RTP payload).
    pub(crate) fn encrypt_into(
        &mut self,
        opus: &[u8],
        out: &mut Vec<u8>,
        stats: &mut DaveStats,
    ) -> Result<(), SendError> {
        if self.dave.version() == 0 {
            out.extend_from_slice(opus);
            return Ok(());
        }
        if opus == OPUS_SILENCE {
            stats.silence_passed += 1;
            out.extend_from_slice(opus);
            return Ok(());
        }
        let Some(session) = self.dave.session_mut().filter(|s| s.can_encrypt()) else {
            stats.send_refused_pending += 1;
            return Err(SendError::E2eePending);
        };
        reserve_scratch(&mut self.sealed);
        match session.encrypt_into(MediaType::AUDIO, Codec::OPUS, opus, &mut self.sealed) {
            Ok(()) => {
                stats.frames_encrypted += 1;
                out.extend_from_slice(&self.sealed);
                Ok(())
            }
            Err(EncryptError::NotReady) => {
                stats.send_refused_pending += 1;
                Err(SendError::E2eePending)
            }
            Err(error) => {
                tracing::warn!(%error, "end-to-end encryption failed");
                stats.encrypt_failures += 1;
                Err(SendError::E2eeFailed)
            }
        }
    }

    /// Opens a received payload in place: `Frame(n)` when `payload[..n]` is
    /// the Opus frame, `Held` when it waits for its key.
    pub(crate) fn decrypt(
        &mut self,
        meta: FrameMeta,
        payload: &mut [u8],
        now: Instant,
        stats: &mut DaveStats,
    ) -> Result<Opened, E2eeError> {
        let len = payload.len();
        if payload == OPUS_SILENCE {
            if self.dave.version() != 0 {
                stats.silence_passed += 1;
            }
            return Ok(Opened::Frame(len));
        }
        if !is_dave_frame(payload) {
            if self.dave.accepts_plaintext(now) {
                if self.dave.version() != 0 {
                    stats.plaintext_accepted += 1;
                }
                return Ok(Opened::Frame(len));
            }
            stats.unencrypted_refused += 1;
            return Err(E2eeError::Unencrypted);
        }
        let Some(session) = self.dave.session_mut() else {
            // A version-0 call that never had DAVE: the transform is the
            // identity, whatever the bytes look like.
            return Ok(Opened::Frame(len));
        };
        reserve_scratch(&mut self.opened);
        self.opened.resize(len, 0);
        match session.decrypt_into(meta.user.0, MediaType::AUDIO, payload, &mut self.opened[..len]) {
            Ok(n) => {
                stats.frames_decrypted += 1;
                payload[..n].copy_from_slice(&self.opened[..n]);
                Ok(Opened::Frame(n))
            }
            Err(DecryptError::DecryptionFailed(DecryptorDecryptError::InvalidNonce)) => {
                stats.replays_refused += 1;
                Err(E2eeError::Replayed)
            }
            Err(_) if len > SCRATCH => {
                // No Opus frame is that large: not worth holding.
                stats.held_overflow += 1;
                Err(E2eeError::Undecryptable)
            }
            Err(_) => {
                // No decryptor for the sender yet, or no key that opens it:
                // a transition this client has not processed yet.
                let frame = HeldFrame {
                    ssrc: meta.ssrc,
                    sequence: meta.sequence,
                    timestamp: meta.timestamp,
                    at: now,
                    data: payload.to_vec(),
                };
                match self.hold.push(meta.user.0, frame) {
                    Pushed::Held => stats.frames_held += 1,
                    Pushed::HeldDroppingOldest => {
                        stats.frames_held += 1;
                        stats.held_overflow += 1;
                    }
                    Pushed::Refused => {
                        stats.held_overflow += 1;
                        return Err(E2eeError::Undecryptable);
                    }
                }
                Ok(Opened::Held)
            }
        }
    }

    /// Tries every held frame again (keys changed); returns those that
    /// decrypted, oldest first per sender.
    pub(crate) fn retry_held(&mut self, stats: &mut DaveStats) -> Vec<Released> {
        let mut released = Vec::new();
        if self.hold.len() == 0 {
            return released;
        }
        let FrameTransform { dave, opened, hold, .. } = self;
        let Some(session) = dave.session_mut() else { return released };
        hold.retry(|user, f| {
            let len = f.data.len();
            reserve_scratch(opened);
            opened.resize(len, 0);
            let Ok(n) = session.decrypt_into(user, MediaType::AUDIO, &f.data, &mut opened[..len]) else {
                return false;
            };
            let mut opus = std::mem::take(&mut f.data);
            opus.clear();
            opus.extend_from_slice(&opened[..n]);
            let meta = FrameMeta { ssrc: f.ssrc, user: Snowflake(user), sequence: f.sequence, timestamp: f.timestamp };
            released.push(Released { meta, opus });
            true
        });
        stats.held_released += released.len() as u64;
        stats.frames_decrypted += released.len() as u64;
        released
    }

    /// Drops held frames past the age limit at `now`.
    pub(crate) fn expire_held(&mut self, now: Instant, stats: &mut DaveStats) {
        stats.held_expired += self.hold.expire(now) as u64;
    }

    /// When the oldest held frame expires.
    pub(crate) fn hold_deadline(&self) -> Option<Instant> {
        self.hold.deadline()
    }
}

/// The per-session part of the transform: DAVE state and the hold buffer.
fn session_state(config: &Config) -> (Dave, Hold) {
    let dave =
        Dave::new(config.user_id, config.max_dave_protocol_version, config.max_users, config.dave_max_recoveries);
    (dave, Hold::new(config.dave_hold_frames, config.dave_hold_total, config.dave_hold_age))
}

/// A scratch buffer's room, reserved once on first use.
fn reserve_scratch(buf: &mut Vec<u8>) {
    if buf.capacity() == 0 {
        buf.reserve(SCRATCH);
    }
}
