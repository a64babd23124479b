//! [`Mixer`]: tracks mixed in PCM, 20 ms at a time, each with its handle
//! (pause, resume, stop, seek, loop, volume) and events; a queue plays its
//! tracks one after another beside the tracks mixed freely.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::decode::AudioFile;
use crate::encode::{FRAME_LEN, Frame};
use crate::prefetch::{Producer, Pull};

/// A track's id, unique within its mixer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(pub u64);

/// What a track is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlayState {
    /// Waiting in the queue.
    Queued,
    /// Being mixed.
    Playing,
    /// Paused: keeps its position, mixes nothing.
    Paused,
    /// Finished, stopped or failed: gone from the mixer.
    Ended,
}

/// What happened to a track.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrackEvent {
    /// Its first frame was mixed.
    Started(TrackId),
    /// It was paused.
    Paused(TrackId),
    /// It was resumed.
    Resumed(TrackId),
    /// It went round again (looping).
    Looped(TrackId),
    /// It played to its end or was stopped.
    Ended(TrackId),
    /// Its file could not be decoded further (the message).
    Errored(TrackId, String),
}

/// The controls a handle shares with its track.
#[derive(Debug)]
struct Control {
    state: Mutex<PlayState>,
    stop: AtomicBool,
    volume: AtomicU32,
    looping: AtomicBool,
    seek: Mutex<Option<Duration>>,
    /// Frames mixed so far (20 ms each), from the start of the file.
    position: AtomicU64,
}

/// The handle on a track: cheap to clone, usable from any thread; changes
/// take effect at the track's next frame.
#[derive(Debug, Clone)]
pub struct TrackHandle {
    id: TrackId,
    ctl: Arc<Control>,
}

impl TrackHandle {
    /// The track's id, as its events name it.
    pub fn id(&self) -> TrackId {
        self.id
    }

    /// What it is doing.
    pub fn state(&self) -> PlayState {
        *self.ctl.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Pauses it (a queued track starts paused).
    pub fn pause(&self) {
        self.set_state(PlayState::Playing, PlayState::Paused);
    }

    /// Resumes it.
    pub fn resume(&self) {
        self.set_state(PlayState::Paused, PlayState::Playing);
    }

    /// Stops it for good (in a queue: the next track starts, a skip).
    pub fn stop(&self) {
        self.ctl.stop.store(true, Ordering::Relaxed);
    }

    /// Volume, 1.0 as recorded; 0.0 silent; above 1.0 amplifies (clipped).
    pub fn set_volume(&self, volume: f32) {
        let v = if volume.is_finite() { volume.max(0.0) } else { 1.0 };
        self.ctl.volume.store(v.to_bits(), Ordering::Relaxed);
    }

    /// Loops it (plays from the start again when it ends) or not.
    pub fn set_loop(&self, looping: bool) {
        self.ctl.looping.store(looping, Ordering::Relaxed);
    }

    /// Jumps to `position` from the start.
    pub fn seek(&self, position: Duration) {
        *self.ctl.seek.lock().unwrap_or_else(PoisonError::into_inner) = Some(position);
    }

    /// How far it has played.
    pub fn position(&self) -> Duration {
        Duration::from_millis(self.ctl.position.load(Ordering::Relaxed) * 20)
    }

    fn set_state(&self, from: PlayState, to: PlayState) {
        let mut s = self.ctl.state.lock().unwrap_or_else(PoisonError::into_inner);
        if *s == from || (*s == PlayState::Queued && to == PlayState::Paused) {
            *s = to;
        }
    }
}

struct Track {
    id: TrackId,
    file: Box<dyn Producer>,
    ctl: Arc<Control>,
    started: bool,
    /// The state the mixer last acted on (for Paused/Resumed events).
    seen: PlayState,
    /// The Opus packet of the frame just mixed, if it was one whole packet.
    packet: Option<bytes::Bytes>,
}

impl Track {
    fn state(&self) -> PlayState {
        *self.ctl.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_state(&self, s: PlayState) {
        *self.ctl.state.lock().unwrap_or_else(PoisonError::into_inner) = s;
    }
}

/// What a frame of the mixer is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mixed {
    /// No track played: nothing to send.
    Nothing,
    /// PCM to encode.
    Pcm,
    /// One Opus packet to send as it is.
    Packet(bytes::Bytes),
}

/// Tracks mixed 20 ms at a time.
#[derive(Default)]
pub struct Mixer {
    free: Vec<Track>,
    queue: VecDeque<Track>,
    events: Vec<TrackEvent>,
    next_id: u64,
    underruns: u64,
    /// The tracks whose audio went into the last frame.
    contributed: Vec<TrackId>,
    scratch: Vec<f32>,
}

impl core::fmt::Debug for Mixer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mixer").field("tracks", &self.free.len()).field("queued", &self.queue.len()).finish()
    }
}

impl Mixer {
    /// An empty mixer.
    pub fn new() -> Self {
        Mixer::default()
    }

    /// Mixes `file` in from the next frame, over whatever plays.
    pub fn play(&mut self, file: AudioFile) -> TrackHandle {
        self.play_from(Box::new(file))
    }

    /// Mixes a source in from the next frame.
    pub(crate) fn play_from(&mut self, file: Box<dyn Producer>) -> TrackHandle {
        let (track, handle) = self.track(file, PlayState::Playing);
        self.free.push(track);
        handle
    }

    /// Adds `file` to the queue: it plays once those before it ended.
    pub fn enqueue(&mut self, file: AudioFile) -> TrackHandle {
        self.enqueue_from(Box::new(file))
    }

    /// Queues a source.
    pub(crate) fn enqueue_from(&mut self, file: Box<dyn Producer>) -> TrackHandle {
        let state = if self.queue.is_empty() { PlayState::Playing } else { PlayState::Queued };
        let (track, handle) = self.track(file, state);
        self.queue.push_back(track);
        handle
    }

    /// Whether any track would be mixed (not counting paused ones).
    pub fn is_playing(&self) -> bool {
        let playing = |t: &Track| !matches!(t.state(), PlayState::Paused) || t.ctl.stop.load(Ordering::Relaxed);
        self.free.iter().any(playing) || self.queue.front().is_some_and(playing)
    }

    /// Tracks in the mixer, queued ones included.
    pub fn len(&self) -> usize {
        self.free.len() + self.queue.len()
    }

    /// Whether the mixer holds no track.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events since the last call, in order.
    pub fn take_events(&mut self) -> Vec<TrackEvent> {
        std::mem::take(&mut self.events)
    }

    /// Like [`Mixer::mix`], and when a single track played at full volume
    /// from an Opus file, its packet as it was (`Mixed::Packet`): nothing
    /// to encode, no quality lost to re-encoding.
    pub fn mix_or_pass(&mut self, out: &mut Frame) -> Mixed {
        if !self.mix(out) {
            return Mixed::Nothing;
        }
        if let [only] = self.contributed[..] {
            let track = self.free.iter().chain(self.queue.front()).find(|t| t.id == only);
            if let Some(t) = track
                && f32::from_bits(t.ctl.volume.load(Ordering::Relaxed)) == 1.0
                && let Some(p) = t.packet.clone()
            {
                return Mixed::Packet(p);
            }
        }
        Mixed::Pcm
    }

    /// Mixes the next 20 ms into `out`; `false` when no track played (the
    /// frame is then silent and need not be sent).
    pub fn mix(&mut self, out: &mut Frame) -> bool {
        self.contributed.clear();
        out.fill(0.0);
        self.scratch.resize(FRAME_LEN, 0.0);
        let mut any = false;
        let mut i = 0;
        while i < self.free.len() {
            match self.mix_track(i, false, out) {
                Some(played) => {
                    any |= played;
                    i += 1;
                }
                None => {
                    self.free.swap_remove(i);
                }
            }
        }
        while !self.queue.is_empty() {
            match self.mix_track(0, true, out) {
                Some(played) => {
                    any |= played;
                    break;
                }
                None => {
                    self.queue.pop_front();
                    if let Some(next) = self.queue.front() {
                        next.set_state(PlayState::Playing);
                    }
                }
            }
        }
        for s in out.iter_mut() {
            *s = s.clamp(-1.0, 1.0);
        }
        any
    }

    /// Frames a playing track had nothing for (its source was behind):
    /// they were mixed as silence.
    pub fn underruns(&self) -> u64 {
        self.underruns
    }

    fn track(&mut self, file: Box<dyn Producer>, state: PlayState) -> (Track, TrackHandle) {
        self.next_id += 1;
        let id = TrackId(self.next_id);
        let ctl = Arc::new(Control {
            state: Mutex::new(state),
            stop: AtomicBool::new(false),
            volume: AtomicU32::new(1.0f32.to_bits()),
            looping: AtomicBool::new(false),
            seek: Mutex::new(None),
            position: AtomicU64::new(0),
        });
        let track = Track { id, file, ctl: ctl.clone(), started: false, seen: state, packet: None };
        (track, TrackHandle { id, ctl })
    }

    /// One track's next frame added to `out`: `Some(played)`, or `None`
    /// when it has ended (and is to be removed).
    fn mix_track(&mut self, i: usize, queued: bool, out: &mut Frame) -> Option<bool> {
        let t = if queued { self.queue.get_mut(i)? } else { self.free.get_mut(i)? };
        let id = t.id;
        if t.ctl.stop.load(Ordering::Relaxed) {
            t.set_state(PlayState::Ended);
            self.events.push(TrackEvent::Ended(id));
            return None;
        }
        let state = t.state();
        if state != t.seen {
            match (t.seen, state) {
                (PlayState::Playing, PlayState::Paused) => self.events.push(TrackEvent::Paused(id)),
                (PlayState::Paused, PlayState::Playing) if t.started => self.events.push(TrackEvent::Resumed(id)),
                _ => {}
            }
            t.seen = state;
        }
        if state != PlayState::Playing {
            return Some(false);
        }
        if let Some(to) = t.ctl.seek.lock().unwrap_or_else(PoisonError::into_inner).take() {
            if let Err(e) = t.file.seek(to) {
                tracing::debug!(error = %e, "seek failed");
            } else {
                t.ctl.position.store(to.as_millis() as u64 / 20, Ordering::Relaxed);
            }
        }
        let frame: &mut Frame = match self.scratch.as_mut_slice().try_into() {
            Ok(f) => f,
            Err(_) => return Some(false),
        };
        let looping = t.ctl.looping.load(Ordering::Relaxed);
        let mut got = t.file.pull(frame, looping);
        // Round again: the source went round by itself (a prefetched one,
        // ahead), or looping was asked for after it had ended (seek back).
        let round = match got {
            Ok(Pull::Looped) => Some(false),
            Ok(Pull::Ended) if looping => Some(true),
            _ => None,
        };
        if let Some(seek) = round {
            let back = if seek { t.file.seek(Duration::ZERO) } else { Ok(()) };
            got = back.and_then(|()| t.file.pull(frame, looping));
            t.ctl.position.store(0, Ordering::Relaxed);
            self.events.push(TrackEvent::Looped(id));
        }
        match got {
            Ok(Pull::Frame(packet)) => {
                t.packet = packet;
            }
            // Decoding is behind: before the first frame, the track is not
            // playing yet; after it, this slot is silence (counted).
            Ok(Pull::NotYet) if !t.started => return Some(false),
            // A second loop marker in a row: a source with no audio.
            Ok(Pull::NotYet | Pull::Looped) => {
                self.underruns += 1;
                return Some(true);
            }
            Ok(Pull::Ended) => {
                t.set_state(PlayState::Ended);
                self.events.push(TrackEvent::Ended(id));
                return None;
            }
            Err(e) => {
                t.set_state(PlayState::Ended);
                self.events.push(TrackEvent::Errored(id, e.to_string()));
                return None;
            }
        }
        if !t.started {
            t.started = true;
            self.events.push(TrackEvent::Started(id));
        }
        t.ctl.position.fetch_add(1, Ordering::Relaxed);
        self.contributed.push(id);
        let volume = f32::from_bits(t.ctl.volume.load(Ordering::Relaxed));
        for (o, s) in out.iter_mut().zip(frame.iter()) {
            *o += s * volume;
        }
        Some(true)
    }
}
