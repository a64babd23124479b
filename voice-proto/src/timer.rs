//! The connection's timers: a fixed table keyed by [`TimeoutReason`]; the
//! earliest one is the deadline.

use std::time::Instant;

pub(crate) use crate::output::TimeoutReason as Timer;

/// Every timer, in the order expired timers are handled.
pub(crate) const ALL: [Timer; 12] = [
    Timer::MoveWait,
    Timer::VoiceInfo,
    Timer::WsOpen,
    Timer::Handshake,
    Timer::Heartbeat,
    Timer::Reconnect,
    Timer::Discovery,
    Timer::Keepalive,
    Timer::SpeakingIdle,
    Timer::Silence,
    Timer::DaveHold,
    Timer::RtcpReport,
];

/// Deadlines by timer (`Idle` is never armed).
#[derive(Debug, Clone, Default)]
pub(crate) struct Timers {
    at: [Option<Instant>; 13],
}

impl Timers {
    pub(crate) fn set(&mut self, t: Timer, at: Instant) {
        self.at[t as usize] = Some(at);
    }
    pub(crate) fn stop(&mut self, t: Timer) {
        self.at[t as usize] = None;
    }
    /// Clears the timer and says whether it had expired at `now`.
    pub(crate) fn expired(&mut self, t: Timer, now: Instant) -> bool {
        match self.at[t as usize] {
            Some(at) if at <= now => {
                self.at[t as usize] = None;
                true
            }
            _ => false,
        }
    }
    pub(crate) fn stop_all(&mut self) {
        self.at = Default::default();
    }
    /// The earliest deadline of any timer but `except`.
    pub(crate) fn next_except(&self, except: Timer) -> Option<Instant> {
        ALL.iter().filter(|&&t| t != except).filter_map(|&t| self.at[t as usize]).min()
    }

    /// The earliest deadline and its reason.
    pub(crate) fn next(&self) -> (Option<Instant>, Timer) {
        ALL.iter()
            .filter_map(|&t| self.at[t as usize].map(|at| (at, t)))
            .min_by_key(|&(at, _)| at)
            .map_or((None, Timer::Idle), |(at, t)| (Some(at), t))
    }
}
