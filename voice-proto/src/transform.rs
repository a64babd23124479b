//! The one place where a frame transform sits between Opus and RTP.
//!
//! End-to-end encryption (DAVE, PROTOCOL.md §6) encrypts each Opus frame
//! before the RTP header and transport encryption are applied, and decrypts
//! each received payload after transport decryption. Both paths go through
//! [`FrameTransform`] and nowhere else. With protocol version 0 (what this
//! crate negotiates until DAVE support lands) the transform is the identity,
//! which is exactly what the protocol prescribes for version 0.

use crate::wire::Snowflake;

/// The frame transform of one connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct FrameTransform {
    /// The negotiated DAVE protocol version.
    version: u16,
}

impl FrameTransform {
    /// Sets the version from Session Description or a transition.
    pub(crate) fn set_version(&mut self, version: u16) {
        if version != 0 {
            tracing::warn!(version, "server negotiated DAVE, which this build does not offer; passing frames through");
        }
        self.version = version;
    }

    /// Appends the transformed `opus` frame to `out` (the RTP payload).
    pub(crate) fn encrypt_into(&mut self, opus: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(opus);
    }

    /// The Opus frame inside a received payload from `user`.
    pub(crate) fn decrypt<'a>(&mut self, _user: Snowflake, payload: &'a mut [u8]) -> &'a mut [u8] {
        payload
    }
}
