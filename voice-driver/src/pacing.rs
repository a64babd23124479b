//! 20 ms pacing on an absolute schedule.
//!
//! Slot `n` of a stream is `start + n * 20 ms`, so there is no drift however
//! long the stream runs. When the sender falls behind (its task was late,
//! or a frame came late) it sends the late frames anyway, but never two
//! closer than half a slot apart, so it catches up within a few frames
//! without a burst. Only when it is more than [`MAX_BEHIND`] behind does it
//! skip the missed slots (the caller drops as many queued frames), so that
//! latency does not grow with every stall (PROTOCOL.md §5.2: send late
//! packets but never in bursts; drop frames past about 60-100 ms behind).

use std::time::{Duration, Instant};

/// One Opus frame's duration.
pub const FRAME: Duration = Duration::from_millis(20);

/// Slots a stream may fall behind its schedule and still send every frame.
const MAX_BEHIND_SLOTS: u32 = 3;

/// How far behind its schedule a 20 ms stream may fall and still send
/// every frame: three slots, the protocol's lower bound for dropping.
pub const MAX_BEHIND: Duration = FRAME.saturating_mul(MAX_BEHIND_SLOTS);

/// The send schedule of one call.
#[derive(Debug, Clone)]
pub struct Pacer {
    period: Duration,
    next: Option<Instant>,
    /// When the last frame went out: late frames keep half a slot from it.
    last_sent: Option<Instant>,
    skipped: u64,
    missed: u32,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new(FRAME)
    }
}

impl Pacer {
    /// A pacer with one slot every `period` (at least 1 ms).
    pub fn new(period: Duration) -> Self {
        let period = period.max(Duration::from_millis(1));
        Pacer { period, next: None, last_sent: None, skipped: 0, missed: 0 }
    }

    /// How far behind the schedule may fall before slots are skipped:
    /// [`MAX_BEHIND`] for 20 ms frames, three slots for any period.
    fn max_behind(&self) -> Duration {
        self.period * MAX_BEHIND_SLOTS
    }

    /// When the frame at hand may be sent. A new stream (nothing sent yet,
    /// or the schedule lapsed by more than one slot while idle) starts now.
    /// Behind the schedule by up to [`MAX_BEHIND`], the frame goes half a
    /// slot after the last one (or at once, if that has passed); further
    /// behind, the missed slots are skipped and the frame of the current
    /// slot goes at once.
    pub fn slot(&mut self, now: Instant) -> Instant {
        let Some(next) = self.next else {
            self.next = Some(now);
            return now;
        };
        if now > next + self.max_behind() {
            // Too far behind: skip ahead, keeping the phase.
            let behind = now.duration_since(next);
            let missed = u32::try_from(behind.as_nanos() / self.period.as_nanos()).unwrap_or(u32::MAX);
            self.skipped += u64::from(missed);
            self.missed = self.missed.saturating_add(missed);
            let slot = next + self.period * missed;
            self.next = Some(slot);
            return slot;
        }
        match self.last_sent {
            Some(last) => next.max(last + self.period / 2),
            None => next,
        }
    }

    /// The next slot of a running schedule, without a frame at hand (the
    /// schedule may lapse if none comes by then).
    pub fn upcoming(&self) -> Option<Instant> {
        self.next
    }

    /// Records that a frame went out at `now`, in the current slot.
    pub fn sent(&mut self, now: Instant) {
        if let Some(next) = self.next.as_mut() {
            *next += self.period;
        }
        self.last_sent = Some(now);
    }

    /// Forgets the schedule (the stream ended); the next frame starts afresh.
    pub fn reset(&mut self) {
        self.next = None;
    }

    /// A frame arrived after the queue ran dry: if the schedule lapsed while
    /// there was nothing to send, start afresh instead of counting the idle
    /// time as a stall.
    pub fn resume_after_idle(&mut self, now: Instant) {
        if self.next.is_some_and(|next| now > next + self.period) {
            self.next = None;
        }
    }

    /// Slots missed by stalls since the last call; the caller drops that
    /// many queued frames so latency does not grow with every stall.
    pub fn take_missed(&mut self) -> u32 {
        std::mem::take(&mut self.missed)
    }

    /// The late-frame policy, after a frame went out: drops as many queued
    /// frames as slots were missed, `drop_one` taking one off the queue
    /// each time (false: the queue is empty, stop). Returns how many went.
    /// Every sender calls this, the driver's and the simulation's.
    pub fn drop_missed(&mut self, mut drop_one: impl FnMut() -> bool) -> u64 {
        let mut dropped = 0;
        for _ in 0..self.take_missed() {
            if !drop_one() {
                break;
            }
            dropped += 1;
        }
        dropped
    }

    /// Slots skipped after stalls.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake clock: the pacer only ever sees the `now` it is given.
    struct Clock(Instant);

    impl Clock {
        fn sleep_until(&mut self, t: Instant) {
            self.0 = self.0.max(t);
        }
        fn advance(&mut self, d: Duration) {
            self.0 += d;
        }
    }

    #[test]
    fn no_drift_over_ten_thousand_frames() {
        let mut p = Pacer::default();
        let start = Instant::now();
        let mut clock = Clock(start);
        let mut last = start;
        for i in 0..10_000u32 {
            let slot = p.slot(clock.0);
            clock.sleep_until(slot);
            // Some work that takes time each frame does not add up.
            clock.advance(Duration::from_micros(700));
            last = slot;
            assert_eq!(slot, start + FRAME * i);
            p.sent(clock.0);
        }
        assert_eq!(last.duration_since(start), FRAME * 9_999);
        assert_eq!(p.skipped(), 0);
    }

    /// Ten frames on time (the last at 180 ms), a stall of `stall` after
    /// it, then `n` frames each sent as soon as the pacer allows: when
    /// those went, in ms from the start.
    fn send_across_a_stall(p: &mut Pacer, stall: Duration, n: usize) -> Vec<u128> {
        let start = Instant::now();
        let mut clock = Clock(start);
        for _ in 0..10 {
            let slot = p.slot(clock.0);
            clock.sleep_until(slot);
            p.sent(clock.0);
        }
        clock.advance(stall);
        let mut sends = Vec::new();
        for _ in 0..n {
            let slot = p.slot(clock.0);
            clock.sleep_until(slot);
            sends.push(clock.0.duration_since(start).as_millis());
            p.sent(clock.0);
        }
        sends
    }

    #[test]
    fn a_stall_skips_ahead_instead_of_bursting() {
        let mut p = Pacer::default();
        let ms = send_across_a_stall(&mut p, Duration::from_millis(205), 5);
        // The frame of the current slot (380 ms, now 385 ms) goes at once;
        // the missed slots 200-360 ms are skipped, not sent in a burst; then
        // one frame per slot on the original phase.
        assert_eq!(ms, [385, 400, 420, 440, 460]);
        assert_eq!(p.skipped(), 9);
        assert_eq!(p.take_missed(), 9, "the driver drops this many queued frames");
        assert_eq!(p.take_missed(), 0);
    }

    #[test]
    fn a_short_stall_is_caught_up_without_a_drop_or_a_burst() {
        let mut p = Pacer::default();
        // The task stalls until 245 ms, 45 ms past the slot at 200 ms:
        // within the limit.
        let ms = send_across_a_stall(&mut p, Duration::from_millis(65), 6);
        // Every late frame goes, half a slot apart, until the schedule is
        // met again at 300 ms; from there one frame per slot.
        assert_eq!(ms, [245, 255, 265, 275, 285, 300]);
        assert_eq!((p.skipped(), p.take_missed()), (0, 0), "nothing dropped");
    }

    #[test]
    fn the_limit_is_three_slots_behind() {
        for (stall_ms, missed) in [(60, 0), (61, 3), (79, 3), (81, 4)] {
            let mut p = Pacer::default();
            let start = Instant::now();
            p.slot(start);
            p.sent(start);
            // The slot at 20 ms is `stall_ms` behind.
            let now = start + FRAME + Duration::from_millis(stall_ms);
            let slot = p.slot(now);
            assert_eq!(p.take_missed(), missed, "{stall_ms} ms behind");
            assert!(slot <= now, "the frame at hand goes at once: {stall_ms} ms behind");
        }
        assert_eq!(MAX_BEHIND, Duration::from_millis(60));
    }

    #[test]
    fn the_missed_slots_drop_as_many_queued_frames_as_there_are() {
        let mut p = Pacer::default();
        let start = Instant::now();
        p.slot(start);
        p.sent(start);
        // 205 ms behind the slot at 20 ms: ten slots missed.
        let now = start + Duration::from_millis(225);
        p.slot(now);
        p.sent(now);
        let mut queue: Vec<u32> = (0..5).collect();
        assert_eq!(p.drop_missed(|| queue.pop().is_some()), 5, "only what was queued");
        assert_eq!(p.drop_missed(|| queue.pop().is_some()), 0, "taken once");
        assert_eq!(p.skipped(), 10);
    }

    #[test]
    fn an_idle_gap_is_not_a_stall() {
        let mut p = Pacer::default();
        let mut clock = Clock(Instant::now());
        for _ in 0..5 {
            let slot = p.slot(clock.0);
            clock.sleep_until(slot);
            p.sent(clock.0);
        }
        // Nothing to send for a second, then a new stream.
        clock.advance(Duration::from_secs(1));
        let now = clock.0;
        p.resume_after_idle(now);
        assert_eq!(p.slot(now), now, "starts at once");
        assert_eq!((p.skipped(), p.take_missed()), (0, 0));
    }

    #[test]
    fn a_zero_period_is_clamped() {
        let mut p = Pacer::new(Duration::ZERO);
        let now = Instant::now();
        p.slot(now);
        p.sent(now);
        let _ = p.slot(now + Duration::from_secs(1));
        assert_eq!(p.skipped(), 999, "a 1 ms period, not a division by zero");
    }
}
