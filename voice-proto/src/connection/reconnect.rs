//! The reconnect plan: what a pending reconnect will do when its backoff
//! ends, the backoff itself with its attempt limit, and the close code that
//! sent the connection to wait for a move.
//!
//! Inputs: a failure with the plan for it, the backoff timer, "the session
//! proved healthy" (resets the backoff), new credentials (cancel). Outputs:
//! the delay to wait, or that the attempts are spent; the plan to carry out.

use std::time::Duration;

use crate::backoff::Backoff;

/// What a pending reconnect will do when its backoff ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pending {
    /// Resume the established session.
    Resume,
    /// Identify again with the credentials in hand.
    Reidentify,
    /// Send op 4 again for fresh credentials.
    Fresh,
}

/// The reconnect sub-machine.
#[derive(Debug)]
pub(crate) struct Reconnect {
    backoff: Backoff,
    pending: Option<Pending>,
    /// The close code that led to waiting for a move (4014, 4022).
    move_code: u16,
}

impl Reconnect {
    pub(crate) fn new(base: Duration, max: Duration) -> Self {
        Reconnect { backoff: Backoff::new(base, max), pending: None, move_code: 0 }
    }

    /// Plans `pending` after a backoff: the delay, or `None` when
    /// `max_attempts` reconnects in a row have been spent (give up).
    pub(crate) fn schedule(
        &mut self,
        pending: Pending,
        max_attempts: u32,
        rng: &mut fastrand::Rng,
    ) -> Option<Duration> {
        if self.backoff.attempts() >= max_attempts {
            return None;
        }
        self.pending = Some(pending);
        Some(self.backoff.next_delay(rng))
    }

    /// The backoff ended: the plan to carry out. A resume falls back to
    /// identifying again when no session is `established` any more (it was
    /// dropped meanwhile).
    pub(crate) fn take(&mut self, established: bool) -> Option<Pending> {
        match self.pending.take() {
            Some(Pending::Resume) if !established => Some(Pending::Reidentify),
            p => p,
        }
    }

    /// Forgets the plan (new credentials superseded it, or the connection
    /// went down for good).
    pub(crate) fn cancel(&mut self) {
        self.pending = None;
    }

    /// The session proved healthy, or the application or the main gateway
    /// started over: reconnects start from the short end of the backoff.
    pub(crate) fn reset_backoff(&mut self) {
        self.backoff.reset();
    }

    /// The socket closed with `code` and a move may follow.
    pub(crate) fn await_move(&mut self, code: u16) {
        self.move_code = code;
    }

    /// The code that sent the connection to wait for a move.
    pub(crate) fn move_code(&self) -> u16 {
        self.move_code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_until_the_attempts_are_spent_and_a_dropped_session_is_identified_again() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut r = Reconnect::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(r.schedule(Pending::Resume, 2, &mut rng), Some(Duration::ZERO));
        assert_eq!(r.take(false), Some(Pending::Reidentify));
        assert_eq!(r.take(true), None, "taken once");
        assert!(r.schedule(Pending::Resume, 2, &mut rng).is_some());
        assert_eq!(r.take(true), Some(Pending::Resume));
        assert_eq!(r.schedule(Pending::Fresh, 2, &mut rng), None, "two attempts spent");
        r.reset_backoff();
        assert!(r.schedule(Pending::Fresh, 2, &mut rng).is_some());
        r.cancel();
        assert_eq!(r.take(true), None);
    }
}
