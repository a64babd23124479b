//! The MLS side of DAVE (DAVE.md §2): the external sender (op 25), key
//! packages (op 26), proposals (op 27) answered with a commit and welcome
//! (op 28).

use davey::ProposalsOperationType;

use super::{Dave, DaveOutput};
use crate::stats::DaveStats;
use crate::wire::DaveBinary;

impl Dave {
    /// Op 25: the gateway's external sender, applied now and kept for
    /// sessions made later (it may arrive before Session Description). One
    /// the session refuses is not kept, and the one before it is applied
    /// again: davey drops its pending group before it parses a new sender.
    pub(super) fn on_external_sender(&mut self, body: &[u8], stats: &mut DaveStats) {
        let Some(session) = self.session.as_mut() else {
            self.external_sender = Some(body.to_vec());
            return;
        };
        match super::decode_guard(|| session.set_external_sender(body)) {
            Ok(()) => self.external_sender = Some(body.to_vec()),
            Err(error) => {
                // Also what a repeated op 25 gets once the group is established.
                tracing::debug!(%error, "external sender refused");
                stats.mls_errors += 1;
                if let Some(good) = self.external_sender.as_deref() {
                    let _ = super::decode_guard(|| session.set_external_sender(good));
                }
            }
        }
    }

    /// Sends a new key package (op 26): after Session Description with a
    /// version above 0, after op 24 with epoch 1, and after op 31; never
    /// otherwise (PROTOCOL.md §6.6 h).
    pub(super) fn send_key_package(&mut self, stats: &mut DaveStats) {
        let Some(session) = self.session.as_mut() else { return };
        match session.create_key_package() {
            Ok(kp) => {
                let mut frame = Vec::with_capacity(kp.len() + 1);
                DaveBinary::KeyPackage(&kp).encode(None, &mut frame);
                stats.key_packages_sent += 1;
                self.out.push_back(DaveOutput::Binary(frame));
            }
            Err(error) => {
                tracing::warn!(%error, "could not create a key package");
                stats.mls_errors += 1;
            }
        }
    }

    /// Op 27: proposals to append or revoke. Adds for users the gateway
    /// never announced (op 11) are refused with the whole batch, as libdave
    /// does; a commit (with a welcome when it adds members) answers the
    /// rest.
    pub(super) fn on_proposals(&mut self, operation: u8, body: &[u8], stats: &mut DaveStats) {
        let operation = match operation {
            0 => ProposalsOperationType::APPEND,
            1 => ProposalsOperationType::REVOKE,
            other => {
                tracing::warn!(operation = other, "unknown proposals operation");
                stats.mls_errors += 1;
                return;
            }
        };
        let expected = self.expected_users();
        let Some(session) = self.session.as_mut() else {
            // No local group (PROTOCOL.md §6.6 b.7): nothing to commit to.
            return;
        };
        match super::decode_guard(|| session.process_proposals(operation, body, Some(&expected))) {
            Ok(Some(cw)) => {
                let welcome = cw.welcome.as_deref().unwrap_or_default();
                let mut body = Vec::with_capacity(cw.commit.len() + welcome.len());
                body.extend_from_slice(&cw.commit);
                body.extend_from_slice(welcome);
                let mut frame = Vec::with_capacity(body.len() + 1);
                DaveBinary::CommitWelcome(&body).encode(None, &mut frame);
                stats.commits_sent += 1;
                self.out.push_back(DaveOutput::Binary(frame));
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "proposals refused");
                stats.mls_errors += 1;
            }
        }
    }
}
