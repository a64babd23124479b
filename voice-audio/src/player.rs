//! [`Player`]: a mixer and an Opus encoder on a thread of their own,
//! feeding a call's frame queue a few frames ahead. Nothing is encoded or
//! sent while nothing plays (the driver then sends the silence trailer and
//! goes quiet); decoding and encoding never run on the driver's task.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
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

/// Where a player's frames go: a call's [`FrameSink`], or anything else.
pub trait FrameOut: Send + 'static {
    /// Queues a frame, waiting for room; `false` once nobody takes frames.
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

struct Shared {
    mixer: Mutex<Mixer>,
    wake: Condvar,
    stop: AtomicBool,
    frames: AtomicU64,
    passed: AtomicU64,
    encode_errors: AtomicU64,
    events_dropped: AtomicU64,
    events: tokio::sync::mpsc::Sender<TrackEvent>,
}

/// A mixer and encoder feeding one call. Dropping it stops the thread.
pub struct Player {
    shared: Arc<Shared>,
    events: Mutex<Option<tokio::sync::mpsc::Receiver<TrackEvent>>>,
}

impl core::fmt::Debug for Player {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Player").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl Player {
    /// Starts a player encoding at `bitrate` into `out` (a call's
    /// [`FrameSink`]: `call.frame_sink()`).
    pub fn start(out: impl FrameOut, bitrate: u32) -> Result<Self, AudioError> {
        let encoder = OpusEncoder::new(bitrate)?;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let shared = Arc::new(Shared {
            mixer: Mutex::new(Mixer::new()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            frames: AtomicU64::new(0),
            passed: AtomicU64::new(0),
            encode_errors: AtomicU64::new(0),
            events_dropped: AtomicU64::new(0),
            events: tx,
        });
        let s = shared.clone();
        std::thread::Builder::new().name("voice-audio-player".into()).spawn(move || run(&s, out, encoder))?;
        Ok(Player { shared, events: Mutex::new(Some(rx)) })
    }

    /// Mixes `file` in now, over whatever plays. It is decoded ahead on a
    /// thread of its own: a slow source underruns into silence (counted in
    /// [`PlayerStats::underruns`]) and stalls nothing else.
    pub fn play(&self, file: AudioFile) -> Result<TrackHandle, AudioError> {
        let source = Prefetch::spawn(file)?;
        let h = self.mixer().play_from(Box::new(source));
        self.shared.wake.notify_one();
        Ok(h)
    }

    /// Queues `file` after the queue's tracks (decoded ahead once queued).
    pub fn enqueue(&self, file: AudioFile) -> Result<TrackHandle, AudioError> {
        let source = Prefetch::spawn(file)?;
        let h = self.mixer().enqueue_from(Box::new(source));
        self.shared.wake.notify_one();
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
        self.shared.wake.notify_one();
    }
}

fn run(s: &Shared, out: impl FrameOut, mut encoder: OpusEncoder) {
    let mut frame = [0f32; FRAME_LEN];
    while !s.stop.load(Ordering::Relaxed) {
        if out.queued() >= AHEAD {
            // The driver takes one frame per 20 ms: wait for room.
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let mut m = s.mixer.lock().unwrap_or_else(PoisonError::into_inner);
        let mixed = m.mix_or_pass(&mut frame);
        let played = mixed != Mixed::Nothing;
        for e in m.take_events() {
            if s.events.try_send(e).is_err() {
                s.events_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        if !played {
            // Nothing plays: sleep until a track is added (or a paused one
            // may resume: look again every 20 ms while any is held).
            let wait = if m.is_empty() { Duration::from_millis(500) } else { Duration::from_millis(20) };
            drop(s.wake.wait_timeout(m, wait).unwrap_or_else(PoisonError::into_inner));
            continue;
        }
        drop(m);
        if let Mixed::Packet(packet) = mixed {
            // A lone Opus track at full volume: sent as it is.
            s.passed.fetch_add(1, Ordering::Relaxed);
            if !out.send(packet) {
                return;
            }
            continue;
        }
        match encoder.encode(&frame) {
            Ok(packet) => {
                s.frames.fetch_add(1, Ordering::Relaxed);
                if !out.send(packet) {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "frame not encoded");
                s.encode_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
