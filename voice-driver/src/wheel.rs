//! The send wheel: the paced audio of many calls, sent from one task per
//! core off one timer, instead of a timer and a wake-up per call per frame.
//!
//! Each call's slots recur every 20 ms, so a call that is playing sits in
//! one of ten 2 ms buckets (its phase). Every tick the wheel's task takes
//! the bucket that came due and, for each call in it,
//! sends the frame of its slot (the call's [`CallCore`] decides: pacing,
//! late skip, encryption) and puts the call back for its next slot. A call
//! whose stream has to start or stop (the first frame goes with op 5 on the
//! websocket; the queue ran dry; end-to-end encryption not ready) leaves
//! the wheel, and its own task, woken, takes over.
//!
//! What a call costs per frame here: a lock without contention, the frame,
//! the seal and one non-blocking send: the kernel's share and little more.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::core::CallCore;
use crate::runtime::{AsyncUdpSocket, Runtime};

/// Buckets: one per tick of the 20 ms frame period.
const BUCKETS: usize = 10;
/// A tick: a frame leaves at most this much after its slot (Discord's
/// jitter buffer absorbs far more); fewer ticks mean fewer wake-ups.
const TICK: Duration = Duration::from_millis(2);
const TICK_NS: u128 = TICK.as_nanos();

/// One call as its task and the wheel share it.
#[derive(Debug)]
pub(crate) struct CallShared {
    locked: Mutex<Locked>,
    pub(crate) udp: Box<dyn AsyncUdpSocket>,
    task: Mutex<Option<Waker>>,
    in_wheel: AtomicBool,
}

/// What is behind the call's lock.
#[derive(Debug)]
pub(crate) struct Locked {
    pub(crate) core: CallCore,
    /// Where the UDP socket is connected.
    pub(crate) peer: Option<SocketAddr>,
    /// The deadline the call's task has its timer set for.
    pub(crate) armed: Option<Instant>,
}

impl CallShared {
    pub(crate) fn new(core: CallCore, udp: Box<dyn AsyncUdpSocket>) -> Self {
        CallShared {
            locked: Mutex::new(Locked { core, peer: None, armed: None }),
            udp,
            task: Mutex::new(None),
            in_wheel: AtomicBool::new(false),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Locked> {
        // A panic while locked leaves counters half-updated at worst.
        self.locked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the wheel sends this call's frames now.
    pub(crate) fn in_wheel(&self) -> bool {
        self.in_wheel.load(Ordering::Acquire)
    }

    /// The call's task registers its waker, for the wheel to hand back.
    pub(crate) fn set_task(&self, waker: &Waker) {
        let mut t = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if !t.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *t = Some(waker.clone());
        }
    }

    fn wake_task(&self) {
        if let Some(w) = self.task.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            w.wake_by_ref();
        }
    }

    /// Sends one datagram, connecting the socket to a new peer first so
    /// that the kernel filters every other source.
    pub(crate) fn transmit(&self, peer: &mut Option<SocketAddr>, bytes: &[u8], to: SocketAddr) -> std::io::Result<()> {
        if *peer != Some(to) {
            match self.udp.connect(to) {
                Ok(()) => *peer = Some(to),
                Err(e) => tracing::debug!(error = %e, "udp connect failed"),
            }
        }
        let sent = if *peer == Some(to) { self.udp.try_send(bytes) } else { self.udp.try_send_to(bytes, to) };
        sent.map(drop).inspect_err(|e| tracing::debug!(error = %e, "udp send failed"))
    }

    /// Sends the frame of a due slot. `Some(next slot)` to stay in the
    /// wheel, `None` when the call's task must take over.
    fn send_due(&self, now: Instant) -> Option<Instant> {
        let mut g = self.lock();
        let Locked { core, peer, armed } = &mut *g;
        let slot = core.next_slot(now)?;
        if slot > now {
            return Some(slot);
        }
        if !core.connection().is_speaking() || core.connection().is_closed() {
            return None;
        }
        let to = core.send_slot(now)?;
        if self.transmit(peer, core.datagram(), to).is_err() {
            core.send_failed();
        }
        // The frame pushed "speaking stops" back; anything else (a
        // heartbeat now nearer than that) needs the task's timer.
        if core.has_io() || core.deadline_while_flowing() != *armed {
            self.wake_task();
        }
        core.pull_frame(now);
        core.next_slot(now)
    }
}

/// Calls a wheel takes before the next one gets any: one wheel, waking
/// once a tick, carries a thousand calls on a fraction of a core,
/// and fewer wheels mean fewer wake-ups.
const CALLS_PER_WHEEL: usize = 1000;

/// The wheels of a configuration: one per core, filled in turn.
#[derive(Debug, Default)]
pub(crate) struct Wheels {
    wheels: Mutex<Vec<Arc<Wheel>>>,
    next: AtomicUsize,
}

impl Wheels {
    /// A wheel for a new call, started on `runtime` when first needed.
    pub(crate) fn pick(&self, runtime: &Arc<dyn Runtime>) -> Arc<Wheel> {
        let mut wheels = self.wheels.lock().unwrap_or_else(PoisonError::into_inner);
        if wheels.is_empty() {
            let n = std::thread::available_parallelism().map_or(1, usize::from);
            for _ in 0..n {
                let wheel = Arc::new(Wheel::new(runtime.now()));
                runtime.spawn(Box::pin(wheel.clone().run(runtime.clone())));
                wheels.push(wheel);
            }
        }
        let i = (self.next.fetch_add(1, Ordering::Relaxed) / CALLS_PER_WHEEL) % wheels.len();
        wheels[i].clone()
    }
}

/// One wheel and its task.
#[derive(Debug)]
pub(crate) struct Wheel {
    state: Mutex<WheelState>,
}

#[derive(Debug)]
struct WheelState {
    /// Tick 0 of the wheel.
    epoch: Instant,
    buckets: [Vec<Arc<CallShared>>; BUCKETS],
    /// The last tick processed.
    done: u64,
    calls: usize,
    /// The task sleeps (no call to send for); adding a call wakes it.
    parked: Option<Waker>,
}

impl Wheel {
    fn new(now: Instant) -> Self {
        let state =
            WheelState { epoch: now, buckets: std::array::from_fn(|_| Vec::new()), done: 0, calls: 0, parked: None };
        Wheel { state: Mutex::new(state) }
    }

    fn lock(&self) -> MutexGuard<'_, WheelState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands `call` to the wheel, its next slot at `slot`.
    pub(crate) fn add(&self, call: &Arc<CallShared>, slot: Instant) {
        if call.in_wheel.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut s = self.lock();
        let b = s.bucket(slot);
        s.buckets[b].push(call.clone());
        s.calls += 1;
        if let Some(w) = s.parked.take() {
            w.wake();
        }
    }

    async fn run(self: Arc<Self>, runtime: Arc<dyn Runtime>) {
        let mut timer = runtime.new_timer(runtime.now() + TICK);
        let mut due: Vec<Arc<CallShared>> = Vec::new();
        let mut back: Vec<(Arc<CallShared>, Option<Instant>)> = Vec::new();
        loop {
            // Sleep to the next tick, or until a call arrives.
            let next = {
                let s = self.lock();
                s.epoch + Duration::from_nanos(u64::try_from(TICK_NS * u128::from(s.done + 1)).unwrap_or(u64::MAX))
            };
            timer.as_mut().reset(next);
            std::future::poll_fn(|cx| {
                let mut s = self.lock();
                if s.calls == 0 {
                    s.parked = Some(cx.waker().clone());
                    return std::task::Poll::Pending;
                }
                s.parked = None;
                drop(s);
                timer.as_mut().poll(cx)
            })
            .await;
            let now = runtime.now();
            let mut s = self.lock();
            let now_tick =
                u64::try_from(now.saturating_duration_since(s.epoch).as_nanos() / TICK_NS).unwrap_or(u64::MAX);
            if s.calls == 0 {
                // Woken by a new call after sleeping: no backlog to catch up.
                s.done = now_tick.saturating_sub(1);
            }
            // Late by more than a period: every bucket is due once.
            let from = s.done.max(now_tick.saturating_sub(BUCKETS as u64 - 1)) + 1;
            for tick in from..=now_tick {
                let b = (tick % BUCKETS as u64) as usize;
                due.append(&mut s.buckets[b]);
            }
            s.done = s.done.max(now_tick);
            drop(s);
            for call in due.drain(..) {
                let next = call.send_due(now);
                if next.is_none() {
                    call.in_wheel.store(false, Ordering::Release);
                    call.wake_task();
                }
                back.push((call, next));
            }
            let mut s = self.lock();
            for (call, next) in back.drain(..) {
                match next {
                    Some(slot) => {
                        let b = s.bucket(slot);
                        s.buckets[b].push(call);
                    }
                    None => s.calls -= 1,
                }
            }
        }
    }
}

impl WheelState {
    /// The bucket of the tick `slot` falls in (rounded up, so that
    /// it is sent at or after its slot, never before).
    fn bucket(&self, slot: Instant) -> usize {
        let d = slot.saturating_duration_since(self.epoch);
        let ns = d.as_nanos();
        let tick = ns.div_ceil(TICK_NS);
        let tick = u64::try_from(tick).unwrap_or(u64::MAX).max(self.done + 1);
        (tick % BUCKETS as u64) as usize
    }
}
