//! The close-code policy: what to do when the voice websocket closes.
//!
//! One table, from PROTOCOL.md §2.7 and §7.3, for every documented code and
//! for abnormal closes, and `ClosePolicy`, the rules that remember
//! earlier closes (the 4004 retry) or depend on the attempt (a resume that
//! times out). The connection consults nothing else.

/// What the connection does after a close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseAction {
    /// Reopen the websocket to the same endpoint and send Resume (op 7);
    /// before a session exists, Identify again with the same credentials.
    Resume,
    /// Start over from main-gateway op 4: fresh credentials, new UDP state.
    Fresh,
    /// The socket is gone for good; wait for the main gateway to say whether
    /// the bot moved (new server update) or left (null channel).
    AwaitMainGateway,
    /// Stop: the reason says why.
    Final(FinalReason),
}

/// Why a close ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FinalReason {
    /// 4017: the call requires DAVE and the client did not offer it.
    E2eeRequired,
    /// 4021: rate limited; never retried automatically.
    RateLimited,
    /// A code that means this client sent something wrong (4001-4005 except
    /// 4004, 4012, 4016, 4020). Retrying would loop.
    ClientError(u16),
}

/// The policy table. `code` is `None` for an abnormal close (no close frame,
/// TCP reset, TLS error, a heartbeat timeout the client detected).
pub fn close_action(code: Option<u16>) -> CloseAction {
    match code {
        None => CloseAction::Resume,
        Some(code) => match code {
            // Network and normal closes from the server side: resume
            // (discord.js: code < 4000 resumes; it also uses 1000 itself to
            // abandon a socket, so 1000 does not mean "left").
            0..=3999 => CloseAction::Resume,
            // Voice server crashed: "try resuming".
            4015 => CloseAction::Resume,
            // Session no longer valid (also a failed resume), bad token (retry
            // once with fresh credentials, bounded by the attempt limit),
            // session timeout (DISAGREE in §2.7: fresh, like discord.js and
            // discord.py), server not found.
            4006 | 4004 | 4009 | 4011 => CloseAction::Fresh,
            // Kicked, moved, main session dropped; call terminated or server
            // changed: a server update may follow.
            4014 | 4022 => CloseAction::AwaitMainGateway,
            4017 => CloseAction::Final(FinalReason::E2eeRequired),
            4021 => CloseAction::Final(FinalReason::RateLimited),
            4001..=4003 | 4005 | 4012 | 4016 | 4020 => CloseAction::Final(FinalReason::ClientError(code)),
            // Undefined 4xxx codes (4000, 4007, 4008, 4010, 4013, 4018, 4019,
            // new ones): treat like a crash and resume; the attempt limit
            // stops a loop.
            _ => CloseAction::Resume,
        },
    }
}

/// The close policy's memory across one connection's attempts: the table
/// above, plus the rules that depend on what came before.
///
/// * 4004 (authentication failed) gets one fresh attempt: a second 4004
///   before a session is established again ends the connection.
/// * A handshake or websocket-open timeout while resuming falls back to a
///   fresh connection (PROTOCOL.md §2.7, 4015 row); otherwise the same
///   credentials are tried again.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClosePolicy {
    /// 4004 closes since the last established session.
    auth_failures: u32,
}

impl ClosePolicy {
    /// What to do after the websocket closed with `code` (`None`: no close
    /// frame).
    pub(crate) fn on_close(&mut self, code: Option<u16>) -> CloseAction {
        if code == Some(4004) {
            self.auth_failures += 1;
            if self.auth_failures > 1 {
                return CloseAction::Final(FinalReason::ClientError(4004));
            }
        }
        close_action(code)
    }

    /// What to do when the websocket did not open, or the handshake did not
    /// finish, in time.
    pub(crate) fn on_handshake_timeout(&self, resuming: bool) -> CloseAction {
        if resuming { CloseAction::Fresh } else { CloseAction::Resume }
    }

    /// A session was established: the credentials work.
    pub(crate) fn on_established(&mut self) {
        self.auth_failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_4004_before_a_session_is_final_and_a_session_forgives_the_first() {
        let mut p = ClosePolicy::default();
        assert_eq!(p.on_close(Some(4004)), CloseAction::Fresh);
        assert_eq!(p.on_close(Some(4004)), CloseAction::Final(FinalReason::ClientError(4004)));
        let mut p = ClosePolicy::default();
        assert_eq!(p.on_close(Some(4004)), CloseAction::Fresh);
        p.on_established();
        assert_eq!(p.on_close(Some(4004)), CloseAction::Fresh);
    }

    #[test]
    fn a_resume_that_times_out_goes_fresh_and_anything_else_retries() {
        let p = ClosePolicy::default();
        assert_eq!(p.on_handshake_timeout(true), CloseAction::Fresh);
        assert_eq!(p.on_handshake_timeout(false), CloseAction::Resume);
    }

    #[test]
    fn table_matches_protocol_md() {
        use CloseAction::*;
        let cases = [
            (None, Resume),
            (Some(1000), Resume),
            (Some(1006), Resume),
            (Some(4015), Resume),
            (Some(4006), Fresh),
            (Some(4009), Fresh),
            (Some(4011), Fresh),
            (Some(4004), Fresh),
            (Some(4014), AwaitMainGateway),
            (Some(4022), AwaitMainGateway),
            (Some(4017), Final(FinalReason::E2eeRequired)),
            (Some(4021), Final(FinalReason::RateLimited)),
            (Some(4001), Final(FinalReason::ClientError(4001))),
            (Some(4016), Final(FinalReason::ClientError(4016))),
            (Some(4020), Final(FinalReason::ClientError(4020))),
            (Some(4012), Final(FinalReason::ClientError(4012))),
            (Some(4000), Resume),
            (Some(4999), Resume),
        ];
        for (code, want) in cases {
            assert_eq!(close_action(code), want, "{code:?}");
        }
    }
}
