//! Decoding ahead of the mixer, on a thread per track: a slow source (a
//! download, a program that stalls) leaves its track silent for a moment,
//! counted as an underrun, and never stalls the mixer, the other tracks or
//! the call's pacing.

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

/// What a track's source has for the mixer now.
pub(crate) enum Pull {
    /// A frame was written, with its Opus packet if it is one whole 20 ms
    /// packet of an Opus file.
    Frame(Option<Bytes>),
    /// Nothing yet: decoding is behind.
    NotYet,
    /// The audio has ended.
    Ended,
}

/// A track's audio, pulled 20 ms at a time.
pub(crate) trait Producer: Send {
    fn pull(&mut self, out: &mut Frame) -> Result<Pull, AudioError>;
    fn seek(&mut self, to: Duration) -> Result<(), AudioError>;
}

impl Producer for AudioFile {
    fn pull(&mut self, out: &mut Frame) -> Result<Pull, AudioError> {
        Ok(match self.next_frame_and_packet(out)? {
            Some(packet) => Pull::Frame(packet),
            None => Pull::Ended,
        })
    }
    fn seek(&mut self, to: Duration) -> Result<(), AudioError> {
        AudioFile::seek(self, to)
    }
}

enum Msg {
    Frame(Box<Frame>, Option<Bytes>),
    End,
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
}

impl Prefetch {
    pub(crate) fn spawn(file: AudioFile) -> Result<Self, AudioError> {
        let (tx, rx) = sync_channel(AHEAD);
        let ctl = Arc::new(Control { seek: Mutex::new(None), stop: AtomicBool::new(false) });
        let c = ctl.clone();
        std::thread::Builder::new().name("voice-audio-decode".into()).spawn(move || decode(file, &tx, &c))?;
        Ok(Prefetch { rx, generation: 0, ctl })
    }
}

impl Producer for Prefetch {
    fn pull(&mut self, out: &mut Frame) -> Result<Pull, AudioError> {
        loop {
            match self.rx.try_recv() {
                // From before the last seek.
                Ok((g, _)) if g != self.generation => {}
                Ok((_, Msg::Frame(f, packet))) => {
                    out.copy_from_slice(&f[..]);
                    return Ok(Pull::Frame(packet));
                }
                Ok((_, Msg::End)) => return Ok(Pull::Ended),
                Ok((_, Msg::Error(e))) => return Err(AudioError::Decode(e)),
                Err(TryRecvError::Empty) => return Ok(Pull::NotYet),
                Err(TryRecvError::Disconnected) => return Ok(Pull::Ended),
            }
        }
    }

    fn seek(&mut self, to: Duration) -> Result<(), AudioError> {
        self.generation += 1;
        *self.ctl.seek.lock().unwrap_or_else(PoisonError::into_inner) = Some((self.generation, to));
        Ok(())
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
            Ok(None) => {
                done = true;
                Msg::End
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
