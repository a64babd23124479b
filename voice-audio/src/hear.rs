//! [`Hearing`]: each user's received Opus as clean 48 kHz stereo PCM. A
//! playout buffer per user reorders by sequence within a bounded delay,
//! drops duplicates and packets that come too late (counted), and fills a
//! gap from the next packet's forward error correction (LBRR) when it has
//! it, else with packet-loss concealment. Speaking starts and stops are
//! derived from the audio itself. Sans-IO: push packets as they come and
//! call [`Hearing::tick`] every 20 ms.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use voice_driver::{ReceivedAudio, Snowflake};

use crate::encode::{FRAME_LEN, FRAME_SAMPLES, Frame};

/// Packets a user's buffer holds at most (beyond: the oldest go).
const MAX_BUFFERED: usize = 50;
/// Empty ticks after which a user counts as no longer speaking (100 ms).
const SILENT_TICKS: u32 = 5;
/// A jump in sequence this large is a restarted stream, not loss.
const MAX_GAP: u32 = 3000;

/// What the playout buffers did for one user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HearingStats {
    /// Packets pushed.
    pub packets: u64,
    /// Frames decoded from their own packet.
    pub decoded: u64,
    /// Missing frames rebuilt from the next packet's FEC data.
    pub recovered_fec: u64,
    /// Missing frames concealed (packet-loss concealment).
    pub concealed: u64,
    /// Packets dropped: already had them.
    pub duplicates: u64,
    /// Packets dropped: their frame's turn had passed.
    pub late: u64,
    /// Packets dropped: the buffer was full.
    pub overflow: u64,
    /// Packets that failed to decode (concealed instead).
    pub decode_errors: u64,
}

/// What a tick says about a user.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Heard {
    /// The user started speaking (audio after silence).
    Started(Snowflake),
    /// The Opus behind the [`Heard::Audio`] that follows it: the packet
    /// it was decoded from, or `None` for a frame rebuilt in place of a
    /// missing packet (from FEC or concealed). In play order, once each,
    /// gaps included: what an Opus recording writes.
    Opus(Snowflake, Option<Bytes>),
    /// 20 ms of the user's audio.
    Audio(Snowflake, Box<Frame>),
    /// The user stopped speaking (100 ms without audio).
    Stopped(Snowflake),
}

struct User {
    decoder: ropus::Decoder,
    /// A packet has been pushed (`last_seq` means something).
    seen: bool,
    /// Packets by extended sequence number.
    buffer: BTreeMap<u64, Bytes>,
    /// The extended sequence of the next frame to play.
    next: Option<u64>,
    /// The last sequence seen (for extension).
    last_seq: u16,
    cycles: u64,
    speaking: bool,
    empty_ticks: u32,
    stats: HearingStats,
}

impl User {
    fn new() -> Option<Self> {
        Some(User {
            decoder: ropus::Decoder::new(48_000, ropus::Channels::Stereo).ok()?,
            seen: false,
            buffer: BTreeMap::new(),
            next: None,
            last_seq: 0,
            cycles: 0,
            speaking: false,
            empty_ticks: 0,
            stats: HearingStats::default(),
        })
    }

    /// The extended sequence of `seq`, near the last one seen.
    fn extend(&mut self, seq: u16) -> u64 {
        if !self.seen {
            self.seen = true;
            self.last_seq = seq;
            // Room below for packets that come late and out of order.
            self.cycles = 1 << 16;
            return self.cycles + u64::from(seq);
        }
        let delta = seq.wrapping_sub(self.last_seq);
        if delta < 0x8000 {
            if seq < self.last_seq {
                self.cycles += 1 << 16;
            }
            self.last_seq = seq;
            self.cycles + u64::from(seq)
        } else if seq > self.last_seq {
            // A late packet from before the last wrap.
            (self.cycles + u64::from(seq)).saturating_sub(1 << 16)
        } else {
            self.cycles + u64::from(seq)
        }
    }

    fn push(&mut self, seq: u16, opus: Bytes) {
        self.stats.packets += 1;
        let ext = self.extend(seq);
        if let Some(next) = self.next {
            if ext < next {
                self.stats.late += 1;
                return;
            }
            if ext - next > u64::from(MAX_GAP) {
                // The sender restarted: start over from here.
                self.buffer.clear();
                self.next = None;
            }
        }
        if self.buffer.contains_key(&ext) {
            self.stats.duplicates += 1;
            return;
        }
        if self.buffer.len() >= MAX_BUFFERED {
            self.buffer.pop_first();
            self.stats.overflow += 1;
        }
        self.buffer.insert(ext, opus);
    }

    /// The next 20 ms, once `delay` frames are buffered, with the packet
    /// it was decoded from (`None`: rebuilt for a missing one); `None`
    /// while nothing is there to play.
    fn tick(&mut self, delay: usize, out: &mut Frame) -> Option<Option<Bytes>> {
        let next = match self.next {
            Some(n) => n,
            None => {
                // Start once the buffer holds the delay's worth.
                if self.buffer.len() < delay.max(1) {
                    return None;
                }
                *self.buffer.keys().next()?
            }
        };
        if let Some(opus) = self.buffer.remove(&next) {
            self.next = Some(next + 1);
            if self.decode(&opus, ropus::DecodeMode::Normal, out) {
                self.stats.decoded += 1;
                return Some(Some(opus));
            }
            self.stats.decode_errors += 1;
            self.conceal(out);
            return Some(None);
        }
        // A gap: play it only while later packets wait (else the stream
        // paused, and the user falls silent).
        let later = self.buffer.keys().next().copied()?;
        self.next = Some(next + 1);
        if later == next + 1 {
            let opus = self.buffer.get(&later).cloned().unwrap_or_default();
            // Only a packet that carries LBRR data rebuilds its predecessor
            // (without it the decoder would conceal and call it FEC).
            let has_fec = i32::try_from(opus.len())
                .ok()
                .and_then(|len| ropus::opus::decoder::opus_packet_has_lbrr(&opus, len).ok())
                .unwrap_or(false);
            if has_fec && self.decode(&opus, ropus::DecodeMode::Fec, out) {
                self.stats.recovered_fec += 1;
                return Some(None);
            }
        }
        self.conceal(out);
        self.stats.concealed += 1;
        Some(None)
    }

    fn decode(&mut self, opus: &[u8], mode: ropus::DecodeMode, out: &mut Frame) -> bool {
        matches!(self.decoder.decode_float(opus, out, mode), Ok(n) if n == FRAME_SAMPLES)
    }

    fn conceal(&mut self, out: &mut Frame) {
        if !matches!(self.decoder.decode_float(&[], out, ropus::DecodeMode::Normal), Ok(n) if n == FRAME_SAMPLES) {
            out.fill(0.0);
        }
    }
}

/// Every user's playout buffer and decoder.
pub struct Hearing {
    users: HashMap<Snowflake, User>,
    delay: usize,
    max_users: usize,
}

impl core::fmt::Debug for Hearing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Hearing").field("users", &self.users.len()).field("delay", &self.delay).finish()
    }
}

impl Default for Hearing {
    fn default() -> Self {
        Hearing::new(3)
    }
}

impl Hearing {
    /// Buffers of `delay` frames (20 ms each) before a user's audio starts:
    /// packets up to that much out of order are put back in order.
    pub fn new(delay: usize) -> Self {
        Hearing { users: HashMap::new(), delay: delay.clamp(1, MAX_BUFFERED), max_users: 256 }
    }

    /// A received packet (from `Call::take_audio`). Silence frames count
    /// as audio: they end a talk spurt cleanly.
    pub fn push(&mut self, packet: &ReceivedAudio) {
        if !self.users.contains_key(&packet.user_id) && self.users.len() >= self.max_users {
            return;
        }
        let user = match self.users.entry(packet.user_id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => match User::new() {
                Some(u) => e.insert(u),
                None => return,
            },
        };
        user.push(packet.sequence, packet.opus.clone());
    }

    /// The next 20 ms of every user: audio (each [`Heard::Audio`] right
    /// after its [`Heard::Opus`]), and speaking starts and stops. Call
    /// every 20 ms.
    pub fn tick(&mut self) -> Vec<Heard> {
        let mut out = Vec::new();
        for (&user, u) in &mut self.users {
            let mut frame = Box::new([0f32; FRAME_LEN]);
            match u.tick(self.delay, &mut frame) {
                Some(opus) => {
                    u.empty_ticks = 0;
                    if !u.speaking {
                        u.speaking = true;
                        out.push(Heard::Started(user));
                    }
                    out.push(Heard::Opus(user, opus));
                    out.push(Heard::Audio(user, frame));
                }
                None => {
                    u.empty_ticks += 1;
                    if u.speaking && u.empty_ticks >= SILENT_TICKS {
                        u.speaking = false;
                        // The next spurt starts after its own delay.
                        u.next = None;
                        out.push(Heard::Stopped(user));
                    }
                }
            }
        }
        out
    }

    /// What the buffers did for `user`.
    pub fn stats(&self, user: Snowflake) -> Option<HearingStats> {
        self.users.get(&user).map(|u| u.stats)
    }

    /// Forgets a user (they left).
    pub fn remove(&mut self, user: Snowflake) {
        self.users.remove(&user);
    }
}
