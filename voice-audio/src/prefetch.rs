//! Decoding ahead of the mixer, on a thread per track: a slow source (a
//! download, a program that stalls) leaves its track silent for a moment,
//! counted as an underrun, and never stalls the mixer, the other tracks or
//! the call's pacing.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;

use crate::AudioError;
use crate::decode::AudioFile;
use crate::encode::{FRAME_LEN, Frame};

/// Frames decoded ahead (500 ms).
const AHEAD: usize = 25;
/// Frames decoded before a track starts (or resumes after a seek), so
/// that the mixer's first pulls in a burst find them.
const PREROLL: usize = 4;

/// What a track's source has for the mixer now.
pub(crate) enum Pull {
    /// A frame was written, with its Opus packet if it is one whole 20 ms
    /// packet of an Opus file.
    Frame(Option<Bytes>),
    /// Nothing yet: decoding is behind.
    NotYet,
    /// The audio went round to its start (looping); pull again.
    Looped,
    /// The audio has ended.
    Ended,
}

/// A track's audio, pulled 20 ms at a time.
pub(crate) trait Producer: Send {
    /// The next frame; at the end, while `looping`, the start again.
    fn pull(&mut self, out: &mut Frame, looping: bool) -> Result<Pull, AudioError>;
    fn seek(&mut self, to: Duration) -> Result<(), AudioError>;
}

impl Producer for AudioFile {
    fn pull(&mut self, out: &mut Frame, looping: bool) -> Result<Pull, AudioError> {
        Ok(match self.next_frame_and_packet(out)? {
            Some(packet) => Pull::Frame(packet),
            None if looping => {
                AudioFile::seek(self, Duration::ZERO)?;
                Pull::Looped
            }
            None => Pull::Ended,
        })
    }
    fn seek(&mut self, to: Duration) -> Result<(), AudioError> {
        AudioFile::seek(self, to)
    }
}

enum Msg {
    Frame(Box<Frame>, Option<Bytes>),
    /// The end. The thread went back to the start at once and decodes it
    /// ahead (`Ok`: the frames after this are the start's), or could not
    /// (`Err`: why); whether the track loops is decided when the mixer
    /// reaches this, so a loop asked for late still has no gap.
    End(Result<(), String>),
    /// The end, and no going back: the decoding thread is gone.
    Gone,
    Error(String),
}

struct Control {
    /// A seek asked for, with the generation its frames will carry.
    seek: Mutex<Option<(u64, Duration)>>,
    stop: AtomicBool,
}

/// An [`AudioFile`] decoded on a thread of its own.
pub(crate) struct Prefetch {
    rx: Receiver<(u64, Msg)>,
    generation: u64,
    ctl: Arc<Control>,
    /// Taken from `rx` while pre-rolling.
    held: VecDeque<Msg>,
    /// [`PREROLL`] frames (or the end) arrived since the start or seek.
    primed: bool,
}

impl Prefetch {
    pub(crate) fn spawn(file: AudioFile) -> Result<Self, AudioError> {
        let (tx, rx) = sync_channel(AHEAD);
        let ctl = Arc::new(Control { seek: Mutex::new(None), stop: AtomicBool::new(false) });
        let c = ctl.clone();
        std::thread::Builder::new().name("voice-audio-decode".into()).spawn(move || decode(file, &tx, &c))?;
        Ok(Prefetch { rx, generation: 0, ctl, held: VecDeque::new(), primed: false })
    }
}

impl Producer for Prefetch {
    fn pull(&mut self, out: &mut Frame, looping: bool) -> Result<Pull, AudioError> {
        while !self.primed {
            match self.next_msg() {
                Some(msg) => {
                    self.primed = !matches!(msg, Msg::Frame(..)) || self.held.len() + 1 >= PREROLL;
                    self.held.push_back(msg);
                }
                None => return Ok(Pull::NotYet),
            }
        }
        let Some(msg) = self.held.pop_front().or_else(|| self.next_msg()) else {
            return Ok(Pull::NotYet);
        };
        Ok(match msg {
            Msg::Frame(f, packet) => {
                out.copy_from_slice(&f[..]);
                Pull::Frame(packet)
            }
            Msg::End(Ok(())) if looping => Pull::Looped,
            Msg::End(Err(e)) if looping => return Err(AudioError::Decode(e)),
            Msg::End(_) | Msg::Gone => Pull::Ended,
            Msg::Error(e) => return Err(AudioError::Decode(e)),
        })
    }

    fn seek(&mut self, to: Duration) -> Result<(), AudioError> {
        self.held.clear();
        self.primed = false;
        self.generation += 1;
        *self.ctl.seek.lock().unwrap_or_else(PoisonError::into_inner) = Some((self.generation, to));
        Ok(())
    }
}

impl Prefetch {
    /// The next message of the current generation, if one has come (the
    /// end, once the decoding thread is gone).
    fn next_msg(&mut self) -> Option<Msg> {
        loop {
            match self.rx.try_recv() {
                // From before the last seek.
                Ok((g, _)) if g != self.generation => {}
                Ok((_, msg)) => return Some(msg),
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => return Some(Msg::Gone),
            }
        }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.ctl.stop.store(true, Ordering::Relaxed);
    }
}

fn decode(mut file: AudioFile, tx: &SyncSender<(u64, Msg)>, ctl: &Control) {
    let mut generation = 0;
    let mut done = false;
    while !ctl.stop.load(Ordering::Relaxed) {
        if let Some((g, to)) = ctl.seek.lock().unwrap_or_else(PoisonError::into_inner).take() {
            generation = g;
            done = false;
            if let Err(e) = file.seek(to) {
                done = tx.send((g, Msg::Error(e.to_string()))).is_err();
            }
        }
        if done {
            // Ended: a seek (a loop) may start it again.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let mut frame = Box::new([0f32; FRAME_LEN]);
        let msg = match file.next_frame_and_packet(&mut frame) {
            Ok(Some(packet)) => Msg::Frame(frame, packet),
            // Back to the start at once, decoded ahead like the rest, so a
            // loop has no gap; the mixer decides at the marker whether the
            // track loops (it may have been asked to after this point).
            Ok(None) => {
                let back = file.seek(Duration::ZERO).map_err(|e| e.to_string());
                done = back.is_err();
                Msg::End(back)
            }
            Err(e) => {
                done = true;
                Msg::Error(e.to_string())
            }
        };
        if tx.send((generation, msg)).is_err() {
            return;
        }
    }
}
