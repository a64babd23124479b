//! [`Player`]: a call's mixer and Opus encoder, feeding its frame queue a
//! few frames ahead, run by a [`PlayerPool`]'s threads (a node with
//! thousands of calls runs them on a thread per core, not a thread per
//! call) or on a thread of its own. Nothing is encoded or sent while
//! nothing plays (the driver then sends the silence trailer and goes
//! quiet); decoding and encoding never run on the driver's task.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use voice_driver::FrameSink;

use crate::AudioError;
use crate::decode::AudioFile;
use crate::encode::{FRAME_LEN, OpusEncoder};
use crate::mixer::{Mixed, Mixer, TrackEvent, TrackHandle};
use crate::prefetch::Prefetch;

/// Frames encoded ahead of the driver: pause, volume and skips take effect
/// within this many frames (60 ms).
const AHEAD: usize = 3;

/// How often a pool's thread looks again at players whose queues are full
/// (the driver takes a frame every 20 ms).
const RECHECK: Duration = Duration::from_millis(5);

/// Where a player's frames go: a call's [`FrameSink`], or anything else.
pub trait FrameOut: Send + 'static {
    /// Queues a frame; `false` once nobody takes frames. It is called only
    /// while fewer than three frames are queued, and must not wait then (a
    /// pool's thread serves other calls).
    fn send(&self, frame: Bytes) -> bool;
    /// Frames queued and not yet sent.
    fn queued(&self) -> usize;
}

impl FrameOut for FrameSink {
    fn send(&self, frame: Bytes) -> bool {
        self.blocking_send(frame).is_ok()
    }
    fn queued(&self) -> usize {
        FrameSink::queued(self)
    }
}

/// What a player did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlayerStats {
    /// Frames mixed and encoded.
    pub frames_encoded: u64,
    /// Opus packets sent as they were (a lone Opus track at full volume).
    pub frames_passed_through: u64,
    /// Frames that failed to encode (skipped).
    pub encode_errors: u64,
    /// Track events dropped because nobody read them.
    pub events_dropped: u64,
    /// Frames a playing track's source had nothing for (mixed as silence).
    pub underruns: u64,
}

/// A player's state, shared by its handle and the thread that runs it.
struct Shared {
    mixer: Mutex<Mixer>,
    /// Wakes the thread that runs this player.
    wake: Arc<Wake>,
    stop: AtomicBool,
    frames: AtomicU64,
    passed: AtomicU64,
    encode_errors: AtomicU64,
    events_dropped: AtomicU64,
    events: tokio::sync::mpsc::Sender<TrackEvent>,
}

/// A sleeping pool thread's alarm: set and notified when a player is
/// added, given a track or dropped.
#[derive(Default)]
struct Wake {
    poked: Mutex<bool>,
    cv: Condvar,
}

impl Wake {
    fn poke(&self) {
        *self.poked.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.cv.notify_one();
    }

    fn sleep(&self, at_most: Duration) {
        let guard = self.poked.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut guard, _) =
            self.cv.wait_timeout_while(guard, at_most, |poked| !*poked).unwrap_or_else(PoisonError::into_inner);
        *guard = false;
    }
}

/// One player as a pool's thread runs it.
struct Job {
    shared: Arc<Shared>,
    out: Box<dyn FrameOut>,
    encoder: OpusEncoder,
}

/// What a job did when its turn came.
enum Turn {
    /// Its queue is full: look again soon.
    Full,
    /// Nothing plays: look again within this (sooner if poked).
    Idle(Duration),
    /// The player was dropped or nobody takes its frames.
    Done,
}

/// One of a pool's threads.
struct Worker {
    /// Players handed to it, not yet taken into its list.
    incoming: Mutex<Vec<Job>>,
    wake: Arc<Wake>,
    /// Players it runs (for placing new ones on the least loaded).
    load: AtomicUsize,
}

/// Threads that run many [`Player`]s: each thread takes its share of the
/// calls and, every few milliseconds, mixes and encodes for each call
/// whose queue has room. Size it to the cores given to audio: a thread
/// keeps about 100 to 200 calls of mixed and encoded music in time on this
/// project's reference machine (an Opus file passed through costs far
/// less). The threads end when the pool and its last player are dropped.
#[derive(Clone)]
pub struct PlayerPool {
    workers: Arc<Vec<Arc<Worker>>>,
}

impl core::fmt::Debug for PlayerPool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PlayerPool").field("players_per_thread", &self.load()).finish()
    }
}

impl PlayerPool {
    /// A pool of `threads` threads (at least one).
    pub fn new(threads: usize) -> Result<Self, AudioError> {
        let workers: Vec<Arc<Worker>> = (0..threads.max(1))
            .map(|_| {
                Arc::new(Worker { incoming: Mutex::new(Vec::new()), wake: Arc::default(), load: AtomicUsize::new(0) })
            })
            .collect();
        let workers = Arc::new(workers);
        for w in workers.iter() {
            let (w, pool) = (w.clone(), Arc::downgrade(&workers));
            std::thread::Builder::new().name("voice-audio-player".into()).spawn(move || run(&w, &pool))?;
        }
        Ok(PlayerPool { workers })
    }

    /// Starts a player encoding at `bitrate` into `out` (a call's
    /// [`FrameSink`]: `call.frame_sink()`), on the least loaded thread.
    pub fn start(&self, out: impl FrameOut, bitrate: u32) -> Result<Player, AudioError> {
        let encoder = OpusEncoder::new(bitrate)?;
        let worker = self
            .workers
            .iter()
            .min_by_key(|w| w.load.load(Ordering::Relaxed))
            .ok_or(AudioError::Encode("a pool with no thread".into()))?;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let shared = Arc::new(Shared {
            mixer: Mutex::new(Mixer::new()),
            wake: worker.wake.clone(),
            stop: AtomicBool::new(false),
            frames: AtomicU64::new(0),
            passed: AtomicU64::new(0),
            encode_errors: AtomicU64::new(0),
            events_dropped: AtomicU64::new(0),
            events: tx,
        });
        worker.load.fetch_add(1, Ordering::Relaxed);
        let job = Job { shared: shared.clone(), out: Box::new(out), encoder };
        worker.incoming.lock().unwrap_or_else(PoisonError::into_inner).push(job);
        worker.wake.poke();
        Ok(Player { shared, events: Mutex::new(Some(rx)), _pool: self.clone() })
    }

    /// Players on each thread.
    pub fn load(&self) -> Vec<usize> {
        self.workers.iter().map(|w| w.load.load(Ordering::Relaxed)).collect()
    }
}

/// A call's mixer and encoder. Dropping it stops its audio.
pub struct Player {
    shared: Arc<Shared>,
    events: Mutex<Option<tokio::sync::mpsc::Receiver<TrackEvent>>>,
    /// Keeps the threads running while the player lives.
    _pool: PlayerPool,
}

impl core::fmt::Debug for Player {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Player").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl Player {
    /// Starts a player on a thread of its own, encoding at `bitrate` into
    /// `out` (a call's [`FrameSink`]: `call.frame_sink()`). For many calls,
    /// start them on a [`PlayerPool`] instead.
    pub fn start(out: impl FrameOut, bitrate: u32) -> Result<Self, AudioError> {
        PlayerPool::new(1)?.start(out, bitrate)
    }

    /// Mixes `file` in now, over whatever plays. It is decoded ahead on a
    /// thread of its own: a slow source underruns into silence (counted in
    /// [`PlayerStats::underruns`]) and stalls nothing else.
    pub fn play(&self, file: AudioFile) -> Result<TrackHandle, AudioError> {
        let source = Prefetch::spawn(file)?;
        let h = self.mixer().play_from(Box::new(source));
        self.shared.wake.poke();
        Ok(h)
    }

    /// Queues `file` after the queue's tracks (decoded ahead once queued).
    pub fn enqueue(&self, file: AudioFile) -> Result<TrackHandle, AudioError> {
        let source = Prefetch::spawn(file)?;
        let h = self.mixer().enqueue_from(Box::new(source));
        self.shared.wake.poke();
        Ok(h)
    }

    /// The track events (started, paused, resumed, looped, ended, errored);
    /// `None` after the first call.
    pub fn take_events(&self) -> Option<tokio::sync::mpsc::Receiver<TrackEvent>> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// What it did so far.
    pub fn stats(&self) -> PlayerStats {
        PlayerStats {
            frames_encoded: self.shared.frames.load(Ordering::Relaxed),
            frames_passed_through: self.shared.passed.load(Ordering::Relaxed),
            encode_errors: self.shared.encode_errors.load(Ordering::Relaxed),
            events_dropped: self.shared.events_dropped.load(Ordering::Relaxed),
            underruns: self.mixer().underruns(),
        }
    }

    fn mixer(&self) -> std::sync::MutexGuard<'_, Mixer> {
        self.shared.mixer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.wake.poke();
    }
}

/// A pool thread: takes new players, gives each its turn, sleeps until the
/// soonest one needs it again or it is poked; ends once the pool is gone
/// and it has no player left.
fn run(worker: &Worker, pool: &Weak<Vec<Arc<Worker>>>) {
    let mut jobs: Vec<Job> = Vec::new();
    let mut frame = [0f32; FRAME_LEN];
    loop {
        jobs.append(&mut worker.incoming.lock().unwrap_or_else(PoisonError::into_inner));
        let mut sleep = Duration::from_millis(500);
        jobs.retain_mut(|job| match turn(job, &mut frame) {
            Turn::Full => {
                sleep = sleep.min(RECHECK);
                true
            }
            Turn::Idle(wait) => {
                sleep = sleep.min(wait);
                true
            }
            Turn::Done => {
                worker.load.fetch_sub(1, Ordering::Relaxed);
                false
            }
        });
        if jobs.is_empty() && pool.strong_count() == 0 {
            return;
        }
        worker.wake.sleep(sleep);
    }
}

/// Fills one player's queue: mixes and encodes (or passes through) until
/// it holds [`AHEAD`] frames or nothing plays.
fn turn(job: &mut Job, frame: &mut [f32; FRAME_LEN]) -> Turn {
    let s = &*job.shared;
    loop {
        if s.stop.load(Ordering::Relaxed) {
            return Turn::Done;
        }
        if job.out.queued() >= AHEAD {
            return Turn::Full;
        }
        let mut m = s.mixer.lock().unwrap_or_else(PoisonError::into_inner);
        let mixed = m.mix_or_pass(frame);
        for e in m.take_events() {
            if s.events.try_send(e).is_err() {
                s.events_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        if mixed == Mixed::Nothing {
            // Nothing plays: until a track is added (a poke), or while a
            // paused one is held, look again every 20 ms.
            let wait = if m.is_empty() { Duration::from_millis(500) } else { Duration::from_millis(20) };
            return Turn::Idle(wait);
        }
        drop(m);
        let packet = match mixed {
            // A lone Opus track at full volume: sent as it is.
            Mixed::Packet(packet) => {
                s.passed.fetch_add(1, Ordering::Relaxed);
                packet
            }
            _ => match job.encoder.encode(frame) {
                Ok(packet) => {
                    s.frames.fetch_add(1, Ordering::Relaxed);
                    packet
                }
                Err(e) => {
                    tracing::debug!(error = %e, "frame not encoded");
                    s.encode_errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            },
        };
        if !job.out.send(packet) {
            return Turn::Done;
        }
    }
}
