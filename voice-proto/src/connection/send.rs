//! The sending half of an established session: the transport sealer (and
//! with it the nonce counter), the RTP sequence number and timestamp,
//! whether op 5 announced this stream, and the silence trailer's count
//! (PROTOCOL.md §3.4, §5).
//!
//! Inputs: a frame to seal, the trailer's steps, a resume (the next frame
//! announces Speaking again). Outputs: sealed datagrams, and the verdicts
//! the connection sends op 5 on.

use std::time::{Duration, Instant};

use voice_rtp::{Cipher, Mode, RtpHeader, SAMPLES_PER_FRAME, Sealer, SecretKey};

use crate::error::SendError;

/// Silence frames sent when speech stops.
const SILENCE_FRAMES: u8 = 5;
/// One frame of the stream's clock.
const FRAME: Duration = Duration::from_millis(20);

/// What asking for the silence trailer found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trailer {
    /// Audio was not flowing: no trailer.
    NotSpeaking,
    /// A trailer is already under way.
    Running,
    /// A trailer starts: its first frame is due at this instant (the
    /// stream's next slot, or now if that has passed).
    Started(Instant),
}

/// The sender.
pub(crate) struct MediaSend {
    sealer: Sealer,
    sequence: u16,
    timestamp: u32,
    /// Whether op 5 with non-zero flags went out since the last stop.
    speaking: bool,
    silence_left: u8,
    /// When the stream's next frame is due: a slot after the last frame
    /// sent, audio or silence. The trailer keeps the audio's clock.
    next_due: Option<Instant>,
}

impl MediaSend {
    pub(crate) fn new(mode: Mode, key: &SecretKey, sequence: u16, timestamp: u32, nonce: u32) -> Self {
        MediaSend {
            sealer: Sealer::new(Cipher::new(mode, key), nonce),
            sequence,
            timestamp,
            speaking: false,
            silence_left: 0,
            next_due: None,
        }
    }

    /// The session's cipher, for opening what the server sends.
    pub(crate) fn cipher(&self) -> &Cipher {
        self.sealer.cipher()
    }

    /// Writes one sealed packet carrying `write_payload`'s bytes into `out`.
    /// Nothing advances when the payload or the sealing fails.
    pub(crate) fn build(
        &mut self,
        ssrc: u32,
        out: &mut Vec<u8>,
        write_payload: impl FnOnce(&mut Vec<u8>) -> Result<(), SendError>,
    ) -> Result<usize, SendError> {
        out.clear();
        let mut header = [0u8; 12];
        RtpHeader::write_basic(&mut header, self.sequence, self.timestamp, ssrc);
        out.extend_from_slice(&header);
        write_payload(out)?;
        self.sealer.seal(out)?;
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(SAMPLES_PER_FRAME);
        Ok(out.len())
    }

    /// Seals an RTCP packet with the session's key and nonce counter (one
    /// counter for RTP and RTCP: no nonce repeats).
    pub(crate) fn seal_rtcp(&mut self, packet: &mut Vec<u8>) -> Result<(), voice_rtp::Error> {
        self.sealer.seal_rtcp(packet)
    }

    /// Sequence number and timestamp of the next packet.
    pub(crate) fn next_position(&self) -> (u16, u32) {
        (self.sequence, self.timestamp)
    }

    /// Whether audio is flowing (op 5 went out for this stream).
    pub(crate) fn is_speaking(&self) -> bool {
        self.speaking
    }

    /// An audio frame went out at `now`: returns whether it starts a
    /// stream (op 5 announces it). A trailer under way is cut short.
    pub(crate) fn on_audio(&mut self, now: Instant) -> bool {
        let announce = !self.speaking;
        self.speaking = true;
        self.silence_left = 0;
        self.next_due = Some(now + FRAME);
        announce
    }

    /// The session resumed: the next frame announces Speaking again.
    pub(crate) fn on_resumed(&mut self) {
        self.speaking = false;
    }

    /// Speech stops at `now`: the trailer starts if audio was flowing, its
    /// first frame in the slot after the last audio frame.
    pub(crate) fn start_trailer(&mut self, now: Instant) -> Trailer {
        if !self.speaking {
            return Trailer::NotSpeaking;
        }
        if self.silence_left > 0 {
            return Trailer::Running;
        }
        self.silence_left = SILENCE_FRAMES;
        let first = self.next_due.map_or(now, |due| due.max(now));
        self.next_due = Some(first);
        Trailer::Started(first)
    }

    /// Whether a trailer frame is due.
    pub(crate) fn in_trailer(&self) -> bool {
        self.silence_left > 0
    }

    /// A trailer frame went out at `now`: when the next one is due, or
    /// `None` when that was the last. The next slot follows the one this
    /// frame was due in; a frame sent late is followed half a slot later
    /// at the earliest, never in a burst (the driver's pacing rule).
    pub(crate) fn trailer_frame_sent(&mut self, now: Instant) -> Option<Instant> {
        self.silence_left = self.silence_left.saturating_sub(1);
        let due = self.next_due.unwrap_or(now);
        let next = (due + FRAME).max(now + FRAME / 2);
        self.next_due = Some(next);
        (self.silence_left > 0).then_some(next)
    }

    /// The stream ended (the trailer is done, or could not be sealed):
    /// op 5 with no flags goes out.
    pub(crate) fn stop(&mut self) {
        self.speaking = false;
        self.silence_left = 0;
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests pick an arbitrary start instant
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_announced_once_and_its_trailer_keeps_the_audio_clock() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut s = MediaSend::new(Mode::Aes256GcmRtpSize, &SecretKey::new([1; 32]), 10, 0, 0);
        assert_eq!(s.start_trailer(t0), Trailer::NotSpeaking);
        assert!(s.on_audio(t0));
        assert!(!s.on_audio(ms(20)));
        // Asked to stop 5 ms after the last frame: the first silence frame
        // waits for the slot.
        assert_eq!(s.start_trailer(ms(25)), Trailer::Started(ms(40)));
        assert_eq!(s.start_trailer(ms(26)), Trailer::Running);
        // On time, on time, 30 ms late (half a slot after), then back on the grid.
        assert_eq!(s.trailer_frame_sent(ms(40)), Some(ms(60)));
        assert_eq!(s.trailer_frame_sent(ms(60)), Some(ms(80)));
        assert_eq!(s.trailer_frame_sent(ms(110)), Some(ms(120)));
        assert_eq!(s.trailer_frame_sent(ms(120)), Some(ms(140)));
        assert_eq!(s.trailer_frame_sent(ms(140)), None);
        s.stop();
        assert!(!s.is_speaking() && !s.in_trailer());
        // Long after the last frame, the trailer starts at once.
        assert!(s.on_audio(ms(200)));
        assert_eq!(s.start_trailer(ms(500)), Trailer::Started(ms(500)));
        let mut out = Vec::new();
        assert!(
            s.build(7, &mut out, |o| {
                o.extend_from_slice(&[0xF8]);
                Ok(())
            })
            .is_ok()
        );
        assert_eq!(s.next_position(), (11, SAMPLES_PER_FRAME));
    }
}
