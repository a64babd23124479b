//! Sending audio (PROTOCOL.md §3.4, §5): Speaking before the first frame,
//! RTP sequence and timestamp, transport sealing, and the five-frame silence
//! trailer when speech stops.

use std::net::SocketAddr;
use std::time::Instant;

use voice_rtp::OPUS_SILENCE;

use super::send::{MediaSend, Trailer};
use super::{State, VoiceConnection};
use crate::SpeakingFlags;
use crate::error::{Misuse, SendError};
use crate::timer::Timer;
use crate::wire::{Message, Speaking};

/// Largest Opus frame accepted by `send_opus`: what fits a 1500-byte path
/// with IP, UDP, RTP and transport overhead to spare.
pub const MAX_FRAME_LEN: usize = 1400;

/// Where to send a datagram that `send_opus` wrote into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// The voice server's UDP address.
    pub to: SocketAddr,
    /// Bytes written to the buffer.
    pub len: usize,
}

impl VoiceConnection {
    /// Sends one 20 ms Opus frame: writes the sealed RTP datagram into `out`
    /// (cleared first; no allocation once it has capacity) and says where to
    /// send it.
    ///
    /// The first frame after silence queues op 5 Speaking: drain
    /// [`poll_output`](Self::poll_output) before sending the datagram.
    /// Before the session is established this returns
    /// [`SendError::NotReady`], and on an end-to-end encrypted (DAVE) call
    /// before its first transition [`SendError::E2eePending`]
    /// ([`can_send_audio`](Self::can_send_audio) tells in advance); audio
    /// is never queued, and never sent as plaintext on a DAVE call.
    pub fn send_opus(&mut self, frame: &[u8], now: Instant, out: &mut Vec<u8>) -> Result<Transmit, SendError> {
        let now = self.advance(now);
        if self.state == State::Closed {
            return Err(Misuse::Closed.into());
        }
        if frame.len() > MAX_FRAME_LEN {
            return Err(SendError::FrameTooLarge(frame.len()));
        }
        if !self.is_ready() || self.leaving {
            // Leaving: the silence trailer is the last audio.
            return Err(SendError::NotReady);
        }
        let flags = self.speaking_flags();
        let (Some(path), Some(sender)) = (self.path.as_ref(), self.sender.as_mut()) else {
            return Err(SendError::NotReady);
        };
        let (ssrc, to) = (path.ssrc(), path.server());
        let (transform, stats) = (&mut self.transform, &mut self.stats.dave);
        let len = sender.build(ssrc, out, |out| transform.encrypt_into(frame, out, stats))?;
        if sender.on_audio(now) {
            self.send_message(&Message::Speaking(Speaking { speaking: flags, delay: Some(0), ssrc, user_id: None }));
        }
        self.timers.stop(Timer::Silence);
        self.timers.set(Timer::SpeakingIdle, now + self.config.speaking_idle);
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += len as u64;
        Ok(Transmit { to, len })
    }

    /// Whether audio is flowing: op 5 went out for this stream, so the next
    /// frame queues no websocket message (a driver may send it from a
    /// context that carries out datagrams only).
    pub fn is_speaking(&self) -> bool {
        self.sender.as_ref().is_some_and(MediaSend::is_speaking)
    }

    fn speaking_flags(&self) -> u32 {
        self.config.speaking_flags.bits()
    }

    /// Sets the flags op 5 announces (microphone, soundshare, priority).
    /// While audio flows, a new op 5 with them goes out now; otherwise the
    /// next frame announces them.
    pub fn set_speaking_flags(&mut self, flags: SpeakingFlags, now: Instant) {
        self.advance(now);
        if self.config.speaking_flags == flags {
            return;
        }
        self.config.speaking_flags = flags;
        let Some(path) = self.path.as_ref() else { return };
        if self.sender.as_ref().is_some_and(MediaSend::is_speaking) && !self.leaving {
            let ssrc = path.ssrc();
            self.send_message(&Message::Speaking(Speaking {
                speaking: flags.bits(),
                delay: Some(0),
                ssrc,
                user_id: None,
            }));
        }
    }

    /// Sequence number and timestamp the next frame will carry.
    pub fn next_rtp_position(&self) -> Option<(u16, u32)> {
        self.sender.as_ref().map(MediaSend::next_position)
    }

    /// Stops speaking now: five silence frames at 20 ms, then op 5 with 0.
    /// (This also happens by itself when no frame is sent for a while.)
    pub fn stop_speaking(&mut self, now: Instant) {
        let now = self.advance(now);
        self.start_silence_trailer(now);
    }

    /// Starts the silence trailer if audio was flowing; returns whether it did.
    pub(crate) fn start_silence_trailer(&mut self, now: Instant) -> bool {
        if !self.is_ready() {
            return false;
        }
        let Some(sender) = self.sender.as_mut() else {
            return false;
        };
        match sender.start_trailer(now) {
            Trailer::NotSpeaking => false,
            Trailer::Running => true,
            Trailer::Started(first) => {
                self.timers.stop(Timer::SpeakingIdle);
                if first <= now {
                    self.on_silence_timer(now);
                } else {
                    self.timers.set(Timer::Silence, first);
                }
                true
            }
        }
    }

    pub(crate) fn on_speaking_idle(&mut self, now: Instant) {
        self.start_silence_trailer(now);
    }

    pub(crate) fn on_silence_timer(&mut self, now: Instant) {
        let ready = self.is_ready();
        let mut bytes = Vec::new();
        let Some(path) = self.path.as_ref() else {
            return self.after_trailer();
        };
        let (ssrc, to) = (path.ssrc(), path.server());
        let Some(sender) = self.sender.as_mut().filter(|_| ready) else {
            return self.after_trailer();
        };
        if !sender.in_trailer() {
            return;
        }
        let (transform, stats) = (&mut self.transform, &mut self.stats.dave);
        match sender.build(ssrc, &mut bytes, |out| transform.encrypt_into(&OPUS_SILENCE, out, stats)) {
            Ok(len) => {
                let next = sender.trailer_frame_sent(now);
                self.stats.packets_sent += 1;
                self.stats.silence_frames_sent += 1;
                self.stats.bytes_sent += len as u64;
                self.transmit(to, bytes);
                if let Some(next) = next {
                    self.timers.set(Timer::Silence, next);
                    return;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not seal a silence frame"),
        }
        if let Some(sender) = self.sender.as_mut() {
            sender.stop();
        }
        self.send_message(&Message::Speaking(Speaking { speaking: 0, delay: Some(0), ssrc, user_id: None }));
        self.after_trailer();
    }

    fn after_trailer(&mut self) {
        if self.leaving {
            self.finish_leave();
        }
    }
}
