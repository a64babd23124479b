//! 20 ms pacing on an absolute schedule.
//!
//! Slot `n` of a stream is `start + n * 20 ms`, so there is no drift however
//! long the stream runs. After a stall (the task was late, or the
//! application stopped feeding frames for a while) the schedule skips the
//! missed slots instead of sending them in a burst: at most one frame goes
//! out per slot.

use std::time::Duration;

use tokio::time::Instant;

/// One Opus frame's duration.
pub const FRAME: Duration = Duration::from_millis(20);

/// The send schedule of one call.
#[derive(Debug, Clone)]
pub struct Pacer {
    period: Duration,
    next: Option<Instant>,
    skipped: u64,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new(FRAME)
    }
}

impl Pacer {
    /// A pacer with one slot every `period`.
    pub fn new(period: Duration) -> Self {
        Pacer { period, next: None, skipped: 0 }
    }

    /// When the frame at hand may be sent. A new stream (nothing sent yet,
    /// or the schedule lapsed by more than one slot while idle) starts now.
    pub fn slot(&mut self, now: Instant) -> Instant {
        match self.next {
            Some(next) if now <= next + self.period => next,
            Some(next) => {
                // Late by more than a slot: skip ahead, keeping the phase.
                let behind = now.duration_since(next);
                let missed = (behind.as_nanos() / self.period.as_nanos()) as u32;
                self.skipped += u64::from(missed);
                let slot = next + self.period * missed;
                self.next = Some(slot);
                slot
            }
            None => {
                self.next = Some(now);
                now
            }
        }
    }

    /// Records that a frame went out in the current slot.
    pub fn sent(&mut self) {
        if let Some(next) = self.next.as_mut() {
            *next += self.period;
        }
    }

    /// Forgets the schedule (the stream ended); the next frame starts afresh.
    pub fn reset(&mut self) {
        self.next = None;
    }

    /// Slots skipped after stalls.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn no_drift_over_ten_thousand_frames() {
        let mut p = Pacer::default();
        let start = Instant::now();
        let mut last = start;
        for i in 0..10_000u32 {
            let slot = p.slot(Instant::now());
            tokio::time::sleep_until(slot).await;
            // Some work that takes time each frame does not add up.
            tokio::time::advance(Duration::from_micros(700)).await;
            last = slot;
            assert_eq!(slot, start + FRAME * i);
            p.sent();
        }
        assert_eq!(last.duration_since(start), FRAME * 9_999);
        assert_eq!(p.skipped(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_skips_ahead_instead_of_bursting() {
        let mut p = Pacer::default();
        let start = Instant::now();
        for _ in 0..10 {
            tokio::time::sleep_until(p.slot(Instant::now())).await;
            p.sent();
        }
        // The task stalls for 205 ms.
        tokio::time::advance(Duration::from_millis(205)).await;
        let mut sends = Vec::new();
        for _ in 0..5 {
            let slot = p.slot(Instant::now());
            tokio::time::sleep_until(slot).await;
            sends.push(Instant::now());
            p.sent();
        }
        // The frame of the current slot (380 ms, now 385 ms) goes at once;
        // the missed slots 200-360 ms are skipped, not sent in a burst; then
        // one frame per slot on the original phase.
        let ms: Vec<u128> = sends.iter().map(|t| t.duration_since(start).as_millis()).collect();
        assert_eq!(ms, [385, 400, 420, 440, 460]);
        assert_eq!(p.skipped(), 9);
    }
}
