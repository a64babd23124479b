//! Heartbeats on the voice websocket and zombie detection (PROTOCOL.md §2.5).
//!
//! A beat goes out every interval from Hello. A beat still unacknowledged
//! when the next is due means the socket is a zombie: the connection closes it
//! and resumes.

use std::time::{Duration, Instant};

/// The shortest interval accepted from Hello; smaller values are raised to it.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The longest interval accepted from Hello.
const MAX_INTERVAL: Duration = Duration::from_secs(600);

/// What the heartbeat wants done at a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Beat {
    /// Send a heartbeat with this nonce.
    Send(u64),
    /// The previous beat was never acknowledged.
    Zombie,
}

/// Heartbeat state of one websocket.
#[derive(Debug, Clone)]
pub(crate) struct Heartbeat {
    interval: Duration,
    next: Instant,
    outstanding: Option<u64>,
    last_nonce: u64,
    /// Round-trip time of the last acknowledged beat.
    rtt: Option<Duration>,
    sent_at: Instant,
}

impl Heartbeat {
    /// Starts beating at `interval_ms` from Hello; the first beat is due one
    /// interval from `now`.
    pub(crate) fn new(interval_ms: f64, now: Instant) -> Self {
        let interval = if interval_ms.is_finite() && interval_ms > 0.0 {
            Duration::from_secs_f64((interval_ms / 1000.0).min(MAX_INTERVAL.as_secs_f64())).max(MIN_INTERVAL)
        } else {
            MIN_INTERVAL
        };
        Heartbeat { interval, next: now + interval, outstanding: None, last_nonce: 0, rtt: None, sent_at: now }
    }

    /// When the next beat is due.
    /// The round trip of the last acknowledged beat.
    pub(crate) fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.next
    }

    /// The interval in use.
    #[cfg(test)]
    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    /// At a deadline: a beat to send (nonce from `nonce_base`, kept strictly
    /// increasing and below 2^53), or the zombie verdict.
    pub(crate) fn on_timeout(&mut self, now: Instant, nonce_base: u64) -> Option<Beat> {
        if now < self.next {
            return None;
        }
        if self.outstanding.is_some() {
            return Some(Beat::Zombie);
        }
        let nonce = nonce_base.max(self.last_nonce + 1) & ((1 << 53) - 1);
        self.last_nonce = nonce;
        self.outstanding = Some(nonce);
        self.sent_at = now;
        // Absolute schedule; if we were late, the next beat is one interval
        // after this one rather than a burst.
        self.next = (self.next + self.interval).max(now + self.interval / 2);
        Some(Beat::Send(nonce))
    }

    /// An ACK arrived; returns whether it matched the outstanding beat.
    pub(crate) fn on_ack(&mut self, nonce: u64, now: Instant) -> bool {
        if self.outstanding == Some(nonce) {
            self.outstanding = None;
            self.rtt = Some(now.saturating_duration_since(self.sent_at));
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests pick an arbitrary start instant
mod tests {
    use super::*;

    #[test]
    fn beats_on_schedule_and_detects_zombies() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(1000.0, t0);
        assert_eq!(hb.on_timeout(t0, 1), None);
        let at = hb.deadline();
        assert_eq!(at, t0 + Duration::from_secs(1));
        let Some(Beat::Send(n)) = hb.on_timeout(at, 5) else { panic!("no beat") };
        assert!(!hb.on_ack(n + 1, at));
        assert!(hb.on_ack(n, at + Duration::from_millis(30)));
        assert_eq!(hb.rtt, Some(Duration::from_millis(30)));
        let Some(Beat::Send(n2)) = hb.on_timeout(hb.deadline(), 5) else { panic!("no beat") };
        assert!(n2 > n, "nonces increase even when the base does not");
        assert_eq!(hb.on_timeout(hb.deadline(), 9), Some(Beat::Zombie));
    }

    #[test]
    fn absurd_intervals_are_clamped() {
        let t0 = Instant::now();
        assert_eq!(Heartbeat::new(f64::NAN, t0).interval(), MIN_INTERVAL);
        assert_eq!(Heartbeat::new(-5.0, t0).interval(), MIN_INTERVAL);
        assert_eq!(Heartbeat::new(1e12, t0).interval(), MAX_INTERVAL);
        assert_eq!(Heartbeat::new(13750.5, t0).interval(), Duration::from_micros(13_750_500));
    }
}
