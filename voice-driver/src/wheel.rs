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
//! the seal and its share of one batched send per tick
//! ([`send_batch`](crate::send_batch): one io_uring submission on Linux):
//! the kernel's UDP path and little more. A wheel with few calls wakes
//! every few ticks, so that a wake-up sends more than a packet or two.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::call_shared::{CallShared, NO_KEY, Outcome, UDP_BIND, std_fd};
use crate::queue::Unpark;
use crate::recv_poll::{Poller, RecvBufs};
use crate::runtime::Runtime;
use crate::send_batch::SendBatch;

/// Buckets: one per tick of the 20 ms frame period.
const BUCKETS: usize = 10;
/// A tick: with many calls a frame leaves at most this much after its
/// slot (with few, at most [`MAX_STRIDE`] ticks; Discord's jitter buffer
/// absorbs far more); fewer ticks mean fewer wake-ups.
const TICK: Duration = Duration::from_millis(2);
const TICK_NS: u128 = TICK.as_nanos();

/// Packets a wake-up of the wheel should send at least, when it has few
/// calls: a wake-up costs the same for one packet as for a hundred.
const PACKETS_PER_WAKE: usize = 16;
/// The longest a frame may wait for its wake-up: half a frame.
const MAX_STRIDE: u64 = 5;

/// Ticks between wake-ups of a wheel holding `calls`: 1 (every 2 ms) from
/// 160 calls on; fewer calls spread over the ten buckets would have each
/// wake-up send one or two packets, so the wheel wakes every few ticks and
/// sends the buckets that came due since, up to 10 ms after their slots
/// (each call keeps its 20 ms period: its frames are all late by the same
/// amount; Discord's jitter buffer takes far more). A lone call wakes
/// the wheel once per frame whatever the stride.
fn stride(calls: usize) -> u64 {
    let per_tick = calls.max(1).div_ceil(BUCKETS);
    let wanted = (PACKETS_PER_WAKE.div_ceil(per_tick) as u64).clamp(1, MAX_STRIDE);
    // A stride that divides the ten buckets, so that wake-ups fall on the
    // same phases every period and each call's lateness stays the same
    // (a stride of 3 or 4 would drift and make gaps of 16 and 24 ms).
    [1, 2, 5].into_iter().find(|s| *s >= wanted).unwrap_or(MAX_STRIDE)
}

/// Calls a wheel takes before the next one gets any: one wheel, waking
/// once a tick, carries a thousand calls on a fraction of a core,
/// and fewer wheels mean fewer wake-ups.
const CALLS_PER_WHEEL: usize = 1000;

/// How a configuration's wheels run (from [`DriverConfig`]).
///
/// [`DriverConfig`]: crate::DriverConfig
#[derive(Debug, Clone, Copy)]
pub(crate) struct WheelMode {
    /// Sends batched ([`DriverConfig::batched_send`](crate::DriverConfig::batched_send)).
    pub(crate) batched: bool,
    /// On threads of their own ([`DriverConfig::wheel_threads`](crate::DriverConfig::wheel_threads)).
    pub(crate) thread: bool,
    /// Receiving the calls' datagrams ([`DriverConfig::wheel_receive`](crate::DriverConfig::wheel_receive)).
    pub(crate) receive: bool,
}

/// The wheels of a configuration: up to one per core, started as calls
/// need them, filled in turn.
#[derive(Debug, Default)]
pub(crate) struct Wheels {
    wheels: Mutex<Vec<Arc<Wheel>>>,
    next: AtomicUsize,
    /// The cores, read once (it reads the cgroup and affinity settings).
    cores: std::sync::OnceLock<usize>,
}

impl Wheels {
    /// A wheel for a new call, started on `runtime` when first needed (or
    /// again, when the runtime it ran on went away).
    pub(crate) fn pick(&self, runtime: &Arc<dyn Runtime>, mode: WheelMode) -> Arc<Wheel> {
        let mut wheels = self.wheels.lock().unwrap_or_else(PoisonError::into_inner);
        let max = *self.cores.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from));
        let i = (self.next.fetch_add(1, Ordering::Relaxed) / CALLS_PER_WHEEL) % max;
        while wheels.len() <= i {
            wheels.push(Wheel::start(runtime, mode));
        }
        if !wheels[i].alive.load(Ordering::Acquire) {
            wheels[i] = Wheel::start(runtime, mode);
        }
        wheels[i].acquire()
    }
}

impl Drop for Wheels {
    fn drop(&mut self) {
        for w in self.wheels.get_mut().unwrap_or_else(PoisonError::into_inner).drain(..) {
            w.release();
        }
    }
}

/// One wheel and its task. The task ends once nobody can hand it a call
/// (its configuration and every call that had it are gone) and it holds
/// none.
#[derive(Debug)]
pub(crate) struct Wheel {
    state: Mutex<WheelState>,
    /// Holders that may still add calls: the configuration's [`Wheels`] and
    /// each call's task.
    users: AtomicUsize,
    /// The task runs (false once it ended or its runtime dropped it).
    alive: AtomicBool,
    /// Where the calls' sockets are watched for datagrams, if the wheel
    /// receives.
    poller: Option<Poller>,
}

#[derive(Debug)]
struct WheelState {
    /// Tick 0 of the wheel.
    epoch: Instant,
    buckets: [Vec<Arc<CallShared>>; BUCKETS],
    /// The last tick processed.
    done: u64,
    calls: usize,
    /// The calls the wheel receives for, by their poller key (`None`: a
    /// free key, or one reserved for a call being made).
    receivers: Vec<Option<Arc<CallShared>>>,
    free_keys: Vec<usize>,
    /// Keys in use.
    receiving: usize,
    /// The task's waker: adding a call or the last user leaving wakes it.
    task: Option<Waker>,
}

impl Wheel {
    fn start(runtime: &Arc<dyn Runtime>, mode: WheelMode) -> Arc<Self> {
        // A thread sleeps on the system clock, and its calls' slots must be
        // on the same clock.
        let epoch = if mode.thread { Instant::now() } else { runtime.now() };
        let state = WheelState {
            epoch,
            buckets: std::array::from_fn(|_| Vec::new()),
            done: 0,
            calls: 0,
            receivers: Vec::new(),
            free_keys: Vec::new(),
            receiving: 0,
            task: None,
        };
        let poller = if mode.receive {
            Poller::new().inspect_err(|e| tracing::debug!(error = %e, "calls receive from their tasks")).ok()
        } else {
            None
        };
        let wheel = Arc::new(Wheel {
            state: Mutex::new(state),
            users: AtomicUsize::new(1),
            alive: AtomicBool::new(true),
            poller,
        });
        if mode.thread {
            let w = wheel.clone();
            let spawned = std::thread::Builder::new()
                .name("voice-send-wheel".to_owned())
                .spawn(move || w.run_on_thread(mode.batched));
            match spawned {
                Ok(_) => return wheel,
                Err(e) => tracing::warn!(error = %e, "no thread for the send wheel: it runs as a task"),
            }
        }
        runtime.spawn(Box::pin(wheel.clone().run(runtime.clone(), mode.batched)));
        wheel
    }

    fn lock(&self) -> MutexGuard<'_, WheelState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A call's task will hand calls to this wheel (and releases it when it
    /// ends).
    fn acquire(self: &Arc<Self>) -> Arc<Self> {
        self.users.fetch_add(1, Ordering::AcqRel);
        self.clone()
    }

    /// A holder is done with the wheel.
    pub(crate) fn release(&self) {
        if self.users.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(w) = self.lock().task.take()
        {
            w.wake();
        }
    }

    /// Whether the wheel's task runs; a call whose wheel died sends from
    /// its own task.
    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// A socket for a new call whose datagrams this wheel will receive,
    /// already watched under the returned key (give the call to
    /// [`fill_receiver`](Self::fill_receiver)); `None` if the wheel does
    /// not receive (the call's task does then, on the runtime's socket).
    pub(crate) fn receive_socket(&self) -> Option<(std::net::UdpSocket, usize)> {
        let poller = self.poller.as_ref().filter(|_| self.is_alive())?;
        let socket = std::net::UdpSocket::bind(UDP_BIND)
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .inspect_err(|e| tracing::debug!(error = %e, "no socket of the driver's own"))
            .ok()?;
        let fd = std_fd(&socket)?;
        let mut s = self.lock();
        let key = s.free_keys.pop().unwrap_or_else(|| {
            s.receivers.push(None);
            s.receivers.len() - 1
        });
        match poller.add(fd, key as u64) {
            Ok(()) => {
                s.receiving += 1;
                Some((socket, key))
            }
            Err(e) => {
                tracing::debug!(error = %e, "epoll_ctl add failed: the call receives from its task");
                s.free_keys.push(key);
                None
            }
        }
    }

    /// The call whose socket [`receive_socket`](Self::receive_socket)
    /// watches under `key`.
    pub(crate) fn fill_receiver(&self, key: usize, call: &Arc<CallShared>) {
        call.rx_key.store(key, Ordering::Release);
        let mut s = self.lock();
        if let Some(slot) = s.receivers.get_mut(key) {
            *slot = Some(call.clone());
        }
        // The wheel may be idle: it polls from now on.
        if let Some(w) = s.task.take() {
            w.wake();
        }
    }

    /// The call ends: its socket is watched no more (before it is closed).
    pub(crate) fn remove_receiver(&self, call: &CallShared) {
        let key = call.rx_key.swap(NO_KEY, Ordering::AcqRel);
        if key == NO_KEY {
            return;
        }
        let taken = {
            let mut s = self.lock();
            let taken = s.receivers.get_mut(key).and_then(Option::take);
            if let (Some(poller), Some(fd)) = (&self.poller, call.fd) {
                poller.remove(fd);
            }
            s.free_keys.push(key);
            s.receiving -= 1;
            taken
        };
        // The call dropped outside the wheel's lock.
        drop(taken);
    }

    /// Hands `call` to the wheel, its next slot at `slot`.
    pub(crate) fn add(&self, call: &Arc<CallShared>, slot: Instant) {
        if !self.is_alive() || call.in_wheel.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut s = self.lock();
        let b = s.bucket(slot);
        s.buckets[b].push(call.clone());
        s.calls += 1;
        // The wheel may sleep past this call's bucket: let it look again.
        if let Some(w) = s.task.take() {
            w.wake();
        }
    }

    /// The wheel as a task of the runtime: it sleeps on the runtime's timer
    /// (and clock) between wake-ups.
    async fn run(self: Arc<Self>, runtime: Arc<dyn Runtime>, batched: bool) {
        // Whatever ends the task (its runtime dropping it, a panic), the
        // calls it holds go back to their tasks.
        let _guard = HandBack(self.clone());
        let mut timer = runtime.new_timer(runtime.now() + TICK);
        let mut armed_at: Option<Instant> = None;
        let mut turn = Turn::new(batched);
        loop {
            // Sleep to the next tick that has calls, or until one arrives.
            let stop = std::future::poll_fn(|cx| match self.next_wake(cx.waker()) {
                Next::Stop => std::task::Poll::Ready(true),
                Next::Idle => {
                    armed_at = None;
                    std::task::Poll::Pending
                }
                Next::At(at) => {
                    if armed_at != Some(at) {
                        armed_at = Some(at);
                        timer.as_mut().reset(at);
                    }
                    timer.as_mut().poll(cx).map(|()| false)
                }
            })
            .await;
            if stop {
                return;
            }
            armed_at = None;
            self.turn(runtime.now(), &mut turn);
        }
    }

    /// The wheel on a thread of its own: it sleeps on the system clock
    /// between wake-ups, and wakes on time however busy the runtime's
    /// workers are.
    fn run_on_thread(self: Arc<Self>, batched: bool) {
        let _guard = HandBack(self.clone());
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut turn = Turn::new(batched);
        loop {
            match self.next_wake(&waker) {
                Next::Stop => return,
                Next::Idle => std::thread::park(),
                Next::At(at) => match at.checked_duration_since(Instant::now()) {
                    Some(wait) if !wait.is_zero() => std::thread::park_timeout(wait),
                    _ => self.turn(Instant::now(), &mut turn),
                },
            }
        }
    }

    /// Registers `waker` (adding a call or the last user leaving wakes it)
    /// and says when the next wake-up is due.
    fn next_wake(&self, waker: &Waker) -> Next {
        let mut s = self.lock();
        if !s.task.as_ref().is_some_and(|w| w.will_wake(waker)) {
            s.task = Some(waker.clone());
        }
        if s.calls > 0 || s.receiving > 0 {
            Next::At(s.next_busy_tick())
        } else if self.users.load(Ordering::Acquire) == 0 {
            Next::Stop
        } else {
            Next::Idle
        }
    }

    /// One wake-up's work: sends the frames of every bucket that came due
    /// by `now` and files each call under its next slot.
    fn turn(&self, now: Instant, t: &mut Turn) {
        self.send(now, t);
        self.receive(now, t);
    }

    /// Reads every datagram waiting for the calls the wheel receives for.
    fn receive(&self, now: Instant, t: &mut Turn) {
        let Some(poller) = &self.poller else { return };
        if let Err(e) = poller.ready(&mut t.keys) {
            tracing::debug!(error = %e, "epoll_wait failed");
            return;
        }
        if t.keys.is_empty() {
            return;
        }
        {
            let s = self.lock();
            let calls = t.keys.iter().filter_map(|k| s.receivers.get(usize::try_from(*k).ok()?)?.clone());
            t.due.extend(calls);
        }
        for call in t.due.drain(..) {
            let bufs = &mut t.bufs;
            let handled =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call.receive_due(now, bufs))).is_ok();
            if !handled {
                tracing::error!("a call's receive panicked in the send wheel");
            }
        }
    }

    /// Sends the due frames.
    fn send(&self, now: Instant, t: &mut Turn) {
        let Turn { due, back, batch, .. } = t;
        let mut s = self.lock();
        let now_tick = s.tick_of(now);
        // Late by more than a period: every bucket is due once.
        let from = s.done.max(now_tick.saturating_sub(BUCKETS as u64 - 1)) + 1;
        for tick in from..=now_tick {
            let b = (tick % BUCKETS as u64) as usize;
            due.append(&mut s.buckets[b]);
        }
        s.done = s.done.max(now_tick);
        drop(s);
        let mut calls = due.drain(..).peekable();
        while let Some(call) = calls.next() {
            if let Some(next) = calls.peek() {
                next.prefetch(batch.is_batching());
            }
            let tag = back.len();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call.send_due(now, batch, tag)))
                .unwrap_or_else(|_| {
                    // A source that panicked (say): its call's task
                    // takes over and meets the same fate there.
                    tracing::error!("a call's send panicked in the send wheel");
                    Outcome::Leave
                });
            back.push((call, outcome));
            if batch.is_full() {
                flush(batch, back);
            }
        }
        flush(batch, back);
        // Calls go back to their tasks once their last frame is out: a
        // task may connect the socket elsewhere or send on it.
        for (call, _) in back.iter().filter(|(_, o)| matches!(o, Outcome::Leave)) {
            call.leave_wheel();
        }
        let mut s = self.lock();
        let retry = now + TICK;
        for (call, outcome) in back.iter() {
            let slot = match outcome {
                Outcome::Keep(slot) => *slot,
                Outcome::Busy => retry,
                Outcome::Leave => {
                    s.calls -= 1;
                    continue;
                }
            };
            let b = s.bucket(slot);
            s.buckets[b].push(call.clone());
        }
        drop(s);
        // Calls dropped here, outside the wheel's lock.
        back.clear();
    }
}

/// When a wheel wakes next.
enum Next {
    /// At this tick.
    At(Instant),
    /// When a call arrives.
    Idle,
    /// Never: it holds no call and nobody can hand it one.
    Stop,
}

/// What a wheel's wake-ups reuse.
struct Turn {
    due: Vec<Arc<CallShared>>,
    back: Vec<(Arc<CallShared>, Outcome)>,
    batch: SendBatch,
    /// The poller's ready keys.
    keys: Vec<u64>,
    bufs: RecvBufs,
}

impl Turn {
    fn new(batched: bool) -> Self {
        Turn {
            due: Vec::new(),
            back: Vec::new(),
            batch: SendBatch::new(batched),
            keys: Vec::new(),
            bufs: RecvBufs::new(),
        }
    }
}

/// Sends what the batch holds; a datagram the kernel refused counts as
/// its call's send error, as an unbatched one does (in its stats at its
/// next frame).
fn flush(batch: &mut SendBatch, calls: &[(Arc<CallShared>, Outcome)]) {
    batch.flush(|tag, e| {
        tracing::debug!(error = %e, "udp send failed");
        if let Some((call, _)) = calls.get(tag) {
            call.send_errors.fetch_add(1, Ordering::Relaxed);
        }
    });
}

/// Hands every call a wheel holds back to its task when the wheel's task
/// ends, and marks the wheel dead.
struct HandBack(Arc<Wheel>);

impl Drop for HandBack {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::Release);
        let (calls, deaf): (Vec<Arc<CallShared>>, Vec<Arc<CallShared>>) = {
            let mut s = self.0.lock();
            s.calls = 0;
            let deaf = s.receivers.iter_mut().filter_map(Option::take).collect();
            (s.buckets.iter_mut().flat_map(std::mem::take).collect(), deaf)
        };
        if !deaf.is_empty() {
            // Their sockets are on no reactor: nothing reads them now.
            tracing::error!(calls = deaf.len(), "the send wheel ended: its calls receive no more audio");
        }
        for c in &deaf {
            self.0.remove_receiver(c);
        }
        for c in calls {
            c.leave_wheel();
        }
    }
}

impl WheelState {
    fn tick_of(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos() / TICK_NS).unwrap_or(u64::MAX)
    }

    fn at_tick(&self, tick: u64) -> Instant {
        self.epoch + Duration::from_nanos(u64::try_from(TICK_NS * u128::from(tick)).unwrap_or(u64::MAX))
    }

    /// The tick to wake at: the first after the last one processed whose
    /// bucket has calls, but no sooner than [`stride`] ticks on (the
    /// buckets passed on the way are sent then, a little late); with calls
    /// to receive for, every stride.
    fn next_busy_tick(&self) -> Instant {
        let first_busy = (1..=BUCKETS as u64)
            .find(|d| !self.buckets[((self.done + d) % BUCKETS as u64) as usize].is_empty())
            .unwrap_or(1);
        let stride = stride(self.calls.max(self.receiving));
        // Receiving, the wheel looks at its sockets every stride.
        self.at_tick(self.done + if self.receiving > 0 { stride } else { first_busy.max(stride) })
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_calls_wake_the_wheel_every_few_ticks_many_every_tick() {
        assert_eq!(stride(1), MAX_STRIDE);
        assert_eq!(stride(16), MAX_STRIDE);
        assert_eq!(stride(40), 5);
        assert_eq!(stride(80), 2);
        assert_eq!(stride(128), 2);
        assert_eq!(stride(160), 1);
        assert_eq!(stride(5000), 1);
        // Never later than half a frame, and on the same phases each period.
        assert!((1..10_000).all(|c| stride(c) * TICK.as_millis() as u64 <= 10));
        assert!((1..10_000).all(|c| (BUCKETS as u64).is_multiple_of(stride(c))));
        // Each wake-up of a full stride sends at least the target, or every
        // call there is.
        for calls in [10usize, 16, 50, 100, 128, 159] {
            let per_wake = calls.div_ceil(BUCKETS) * stride(calls) as usize;
            assert!(per_wake >= PACKETS_PER_WAKE.min(calls) || stride(calls) == MAX_STRIDE, "{calls}");
        }
    }
}
