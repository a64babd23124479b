//! The connection's timers: a fixed table keyed by the private, exhaustive
//! [`Timer`]; the earliest deadline is the connection's. The public
//! [`TimeoutReason`] that [`Output::Timeout`](crate::Output::Timeout)
//! carries maps from it.

use std::time::Instant;

use crate::output::TimeoutReason;

/// Every deadline the connection keeps. Declared in the order expired
/// timers are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    MoveWait,
    VoiceInfo,
    WsOpen,
    Handshake,
    Heartbeat,
    Reconnect,
    Discovery,
    Keepalive,
    SpeakingIdle,
    Silence,
    DaveHold,
    RtcpReport,
}

impl Timer {
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
    const COUNT: usize = Timer::ALL.len();

    /// What [`Output::Timeout`](crate::Output::Timeout) says this deadline is for.
    pub(crate) fn reason(self) -> TimeoutReason {
        match self {
            Timer::MoveWait => TimeoutReason::MoveWait,
            Timer::VoiceInfo => TimeoutReason::VoiceInfo,
            Timer::WsOpen => TimeoutReason::WsOpen,
            Timer::Handshake => TimeoutReason::Handshake,
            Timer::Heartbeat => TimeoutReason::Heartbeat,
            Timer::Reconnect => TimeoutReason::Reconnect,
            Timer::Discovery => TimeoutReason::Discovery,
            Timer::Keepalive => TimeoutReason::Keepalive,
            Timer::SpeakingIdle => TimeoutReason::SpeakingIdle,
            Timer::Silence => TimeoutReason::Silence,
            Timer::DaveHold => TimeoutReason::DaveHold,
            Timer::RtcpReport => TimeoutReason::RtcpReport,
        }
    }
}

/// Deadlines by timer.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timers {
    at: [Option<Instant>; Timer::COUNT],
}

impl Timers {
    pub(crate) fn set(&mut self, t: Timer, at: Instant) {
        self.at[t as usize] = Some(at);
    }
    pub(crate) fn stop(&mut self, t: Timer) {
        self.at[t as usize] = None;
    }
    /// Sets the timer to `at`, or stops it for `None`.
    pub(crate) fn set_or_stop(&mut self, t: Timer, at: Option<Instant>) {
        self.at[t as usize] = at;
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
    /// The first timer (in handling order) expired at `now`, cleared.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<Timer> {
        Timer::ALL.into_iter().find(|&t| self.expired(t, now))
    }
    pub(crate) fn stop_all(&mut self) {
        self.at = Default::default();
    }
    /// The earliest deadline of any timer but `except`.
    pub(crate) fn next_except(&self, except: Timer) -> Option<Instant> {
        Timer::ALL.iter().filter(|&&t| t != except).filter_map(|&t| self.at[t as usize]).min()
    }

    /// The earliest deadline and what it is for.
    pub(crate) fn next(&self) -> (Option<Instant>, TimeoutReason) {
        Timer::ALL
            .iter()
            .filter_map(|&t| self.at[t as usize].map(|at| (at, t)))
            .min_by_key(|&(at, _)| at)
            .map_or((None, TimeoutReason::Idle), |(at, t)| (Some(at), t.reason()))
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests pick an arbitrary start instant
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_table_holds_every_timer_in_its_declared_slot() {
        for (i, t) in Timer::ALL.into_iter().enumerate() {
            assert_eq!(t as usize, i, "{t:?}");
        }
    }

    #[test]
    fn the_earliest_deadline_wins_and_ties_go_in_handling_order() {
        let now = Instant::now();
        let mut timers = Timers::default();
        assert_eq!(timers.next(), (None, TimeoutReason::Idle));
        timers.set(Timer::RtcpReport, now + Duration::from_secs(5));
        timers.set(Timer::Heartbeat, now + Duration::from_secs(1));
        timers.set(Timer::Keepalive, now + Duration::from_secs(1));
        assert_eq!(timers.next(), (Some(now + Duration::from_secs(1)), TimeoutReason::Heartbeat));
        assert_eq!(timers.next_except(Timer::Heartbeat), Some(now + Duration::from_secs(1)));
        let later = now + Duration::from_secs(2);
        assert_eq!(timers.pop_expired(later), Some(Timer::Heartbeat));
        assert_eq!(timers.pop_expired(later), Some(Timer::Keepalive));
        assert_eq!(timers.pop_expired(later), None);
        assert_eq!(timers.next(), (Some(now + Duration::from_secs(5)), TimeoutReason::RtcpReport));
    }
}
