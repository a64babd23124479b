//! Reconnect backoff: bounded exponential with jitter from the seeded RNG.

use std::time::Duration;

/// Attempts in a row and the delay before the next.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    attempts: u32,
}

impl Backoff {
    pub(crate) fn new(base: Duration, max: Duration) -> Self {
        Backoff { base, max: max.max(base), attempts: 0 }
    }

    /// Failed attempts since the last success.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Records an attempt and returns the delay before making it: zero for
    /// the first, then `base * 2^(n-1)` capped at `max`, scaled by a jitter
    /// in [0.5, 1.0).
    pub(crate) fn next_delay(&mut self, rng: &mut fastrand::Rng) -> Duration {
        let n = self.attempts;
        self.attempts = self.attempts.saturating_add(1);
        if n == 0 {
            return Duration::ZERO;
        }
        let exp = self.base.saturating_mul(1u32 << (n - 1).min(20)).min(self.max);
        exp.mul_f64(0.5 + rng.f64() / 2.0)
    }

    /// A connection succeeded: start over.
    pub(crate) fn reset(&mut self) {
        self.attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_jitters_and_caps() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        assert_eq!(b.next_delay(&mut rng), Duration::ZERO);
        let d: Vec<_> = (0..8).map(|_| b.next_delay(&mut rng)).collect();
        for (i, d) in d.iter().enumerate() {
            let cap = Duration::from_secs(1 << i.min(3));
            assert!(*d >= cap / 2 && *d < cap, "{i}: {d:?}");
        }
        assert_eq!(b.attempts(), 9);
        b.reset();
        assert_eq!(b.next_delay(&mut rng), Duration::ZERO);
    }
}
