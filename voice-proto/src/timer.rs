//! The connection's timers: a fixed table, the earliest one is the deadline.

use std::time::Instant;

use crate::output::TimeoutReason;

/// Every timer the connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    VoiceInfo,
    WsOpen,
    Handshake,
    Heartbeat,
    Discovery,
    Keepalive,
    Silence,
    SpeakingIdle,
    Reconnect,
    MoveWait,
}

const ALL: [Timer; 10] = [
    Timer::VoiceInfo,
    Timer::WsOpen,
    Timer::Handshake,
    Timer::Heartbeat,
    Timer::Discovery,
    Timer::Keepalive,
    Timer::Silence,
    Timer::SpeakingIdle,
    Timer::Reconnect,
    Timer::MoveWait,
];

impl Timer {
    fn reason(self) -> TimeoutReason {
        match self {
            Timer::VoiceInfo => TimeoutReason::VoiceInfo,
            Timer::WsOpen => TimeoutReason::WsOpen,
            Timer::Handshake => TimeoutReason::Handshake,
            Timer::Heartbeat => TimeoutReason::Heartbeat,
            Timer::Discovery => TimeoutReason::Discovery,
            Timer::Keepalive => TimeoutReason::Keepalive,
            Timer::Silence => TimeoutReason::Silence,
            Timer::SpeakingIdle => TimeoutReason::SpeakingIdle,
            Timer::Reconnect => TimeoutReason::Reconnect,
            Timer::MoveWait => TimeoutReason::MoveWait,
        }
    }
}

/// Deadlines by timer.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timers {
    at: [Option<Instant>; ALL.len()],
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
    /// The earliest deadline and its reason.
    pub(crate) fn next(&self) -> (Option<Instant>, TimeoutReason) {
        ALL.iter()
            .filter_map(|&t| self.at[t as usize].map(|at| (at, t)))
            .min_by_key(|&(at, _)| at)
            .map_or((None, TimeoutReason::Idle), |(at, t)| (Some(at), t.reason()))
    }
}
