//! Recording what [`Hearing`](crate::Hearing) hears: a file per user and
//! one of the whole channel mixed, all on one timeline (a user's file
//! starts with the recording, so a late joiner's begins with silence, and
//! their silences are written as silence: the files line up with the mix).
//! WAV holds the decoded audio; Ogg Opus holds each user's packets as they
//! came (in play order, not re-encoded), a lost packet as a zero-length
//! frame that decoders conceal, and silence as Opus silence frames, so
//! every 20 ms has its packet and the granule positions count the
//! timeline exactly, gaps included; the mix is encoded once.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use voice_driver::Snowflake;
use voice_driver::ogg::{OggOpusWriter, opus_packet_samples};

use crate::encode::{FRAME_LEN, FRAME_SAMPLES, Frame, OpusEncoder};
use crate::hear::Heard;

/// A 16-bit 48 kHz stereo WAV file, written as frames come.
pub struct WavWriter {
    out: BufWriter<File>,
    samples: u64,
}

impl core::fmt::Debug for WavWriter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WavWriter").field("samples", &self.samples).finish()
    }
}

impl WavWriter {
    /// Creates `path` (its header is completed by [`WavWriter::finish`]).
    pub fn create(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let mut out = BufWriter::new(File::create(path)?);
        out.write_all(&header(0))?;
        Ok(WavWriter { out, samples: 0 })
    }

    /// Appends 20 ms.
    pub fn write_frame(&mut self, frame: &Frame) -> std::io::Result<()> {
        let mut bytes = [0u8; FRAME_LEN * 2];
        for (b, s) in bytes.chunks_exact_mut(2).zip(frame.iter()) {
            b.copy_from_slice(&((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
        }
        self.samples += FRAME_LEN as u64;
        self.out.write_all(&bytes)
    }

    /// Seconds written so far.
    pub fn seconds(&self) -> f64 {
        self.samples as f64 / 96_000.0
    }

    /// Completes the header with the length.
    pub fn finish(mut self) -> std::io::Result<()> {
        let data = u32::try_from(self.samples * 2).unwrap_or(u32::MAX);
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header(data))?;
        self.out.flush()
    }
}

fn header(data: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    h[..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data.saturating_add(36).to_le_bytes());
    h[8..16].copy_from_slice(b"WAVEfmt ");
    for (i, v) in [16u32, 0x0002_0001, 48_000, 48_000 * 4, 0x0010_0004].into_iter().enumerate() {
        h[16 + 4 * i..20 + 4 * i].copy_from_slice(&v.to_le_bytes());
    }
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    h
}

/// The files a [`Recording`] writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordFormat {
    /// `<user>.wav` and `mix.wav`: decoded, 16-bit 48 kHz stereo.
    #[default]
    Wav,
    /// `<user>.opus` and `mix.opus`: Ogg Opus (RFC 7845). A user's file
    /// holds their own packets; the mix is encoded at 64 kbit/s.
    OggOpus,
}

impl RecordFormat {
    fn extension(self) -> &'static str {
        match self {
            RecordFormat::Wav => "wav",
            RecordFormat::OggOpus => "opus",
        }
    }
}

/// `dir/<name>.<ext>`: a user's file or the mix.
fn file(dir: &Path, name: impl core::fmt::Display, format: RecordFormat) -> PathBuf {
    dir.join(format!("{name}.{}", format.extension()))
}

type OggFile = OggOpusWriter<BufWriter<File>>;

/// One file of a recording.
enum Track {
    Wav(WavWriter),
    /// A user's packets, with the TOC byte of the last one (a lost packet
    /// is written as that TOC alone: a zero-length frame, concealed).
    Ogg(Box<OggFile>, u8),
    /// The mix, encoded.
    OggMix(Box<OggFile>, Box<OpusEncoder>),
}

/// TOC of a 20 ms fullband stereo CELT frame: for a lost packet before any
/// packet was seen.
const TOC_20MS: u8 = 0xFC;

fn ogg_err(e: voice_driver::OggError) -> std::io::Error {
    std::io::Error::other(e)
}

impl Track {
    fn create(path: &Path, format: RecordFormat, mix: bool) -> std::io::Result<Self> {
        Ok(match format {
            RecordFormat::Wav => Track::Wav(WavWriter::create(path)?),
            RecordFormat::OggOpus => {
                let w = Box::new(OggOpusWriter::new(BufWriter::new(File::create(path)?), 1).map_err(ogg_err)?);
                if mix {
                    let enc = OpusEncoder::new(64_000).map_err(std::io::Error::other)?;
                    Track::OggMix(w, Box::new(enc))
                } else {
                    Track::Ogg(w, TOC_20MS)
                }
            }
        })
    }

    /// 20 ms: `frame` decoded, from `opus` (`Some(None)`: a lost packet;
    /// `None`: the user said nothing).
    fn write(&mut self, frame: &Frame, opus: Option<Option<&Bytes>>) -> std::io::Result<()> {
        match self {
            Track::Wav(w) => w.write_frame(frame),
            Track::OggMix(w, enc) => {
                let packet = enc.encode(frame).map_err(std::io::Error::other)?;
                w.write_packet(&packet).map_err(ogg_err)
            }
            Track::Ogg(w, toc) => {
                let packet: &[u8] = match opus {
                    Some(Some(p)) if opus_packet_samples(p) == Some(FRAME_SAMPLES as u32) => {
                        *toc = p[0];
                        p
                    }
                    // Lost (or not one 20 ms packet): a zero-length frame
                    // of the same kind, which decoders conceal.
                    Some(_) => &[*toc & !3],
                    None => &voice_driver::OPUS_SILENCE,
                };
                w.write_packet(packet).map_err(ogg_err)
            }
        }
    }

    fn finish(self) -> std::io::Result<()> {
        match self {
            Track::Wav(w) => w.finish(),
            Track::Ogg(w, _) | Track::OggMix(w, _) => {
                let mut out = w.finish().map_err(ogg_err)?;
                out.flush()
            }
        }
    }
}

/// Per-user files and the channel's mix, in a directory.
pub struct Recording {
    dir: PathBuf,
    format: RecordFormat,
    users: HashMap<Snowflake, Track>,
    mix: Track,
    /// Frames written to every file.
    frames: u64,
}

impl core::fmt::Debug for Recording {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Recording")
            .field("dir", &self.dir)
            .field("format", &self.format)
            .field("users", &self.users.len())
            .field("frames", &self.frames)
            .finish()
    }
}

impl Recording {
    /// Records WAV into `dir` (created): `<user>.wav` each and `mix.wav`.
    pub fn create(dir: impl AsRef<Path>) -> std::io::Result<Self> {
        Self::create_with(dir, RecordFormat::Wav)
    }

    /// Records `format` into `dir` (created): `<user>.<ext>` each and
    /// `mix.<ext>`.
    pub fn create_with(dir: impl AsRef<Path>, format: RecordFormat) -> std::io::Result<Self> {
        let dir = dir.as_ref().to_owned();
        std::fs::create_dir_all(&dir)?;
        let mix = Track::create(&file(&dir, "mix", format), format, true)?;
        Ok(Recording { dir, format, users: HashMap::new(), mix, frames: 0 })
    }

    /// One tick of [`Hearing::tick`](crate::Hearing::tick): 20 ms on every
    /// file (silence for those who said nothing). Ogg Opus files take each
    /// user's packet from the [`Heard::Opus`] before their audio.
    pub fn add(&mut self, heard: &[Heard]) -> std::io::Result<()> {
        const SILENT: Frame = [0.0; FRAME_LEN];
        let mut mix = [0f32; FRAME_LEN];
        let mut spoke: Vec<Snowflake> = Vec::new();
        let mut opus: Option<(Snowflake, Option<&Bytes>)> = None;
        for h in heard {
            let (user, frame) = match h {
                Heard::Opus(user, o) => {
                    opus = Some((*user, o.as_ref()));
                    continue;
                }
                Heard::Audio(user, frame) => (*user, frame),
                _ => continue,
            };
            if !self.users.contains_key(&user) {
                // A late joiner's file starts at the recording's start.
                let mut t = Track::create(&file(&self.dir, user, self.format), self.format, false)?;
                for _ in 0..self.frames {
                    t.write(&SILENT, None)?;
                }
                self.users.insert(user, t);
            }
            let packet = opus.take().filter(|(u, _)| *u == user).map(|(_, o)| o);
            if let Some(t) = self.users.get_mut(&user) {
                // Audio with no Opus before it (made by hand): as lost.
                t.write(frame, Some(packet.flatten()))?;
            }
            for (m, s) in mix.iter_mut().zip(frame.iter()) {
                *m += s;
            }
            spoke.push(user);
        }
        for (user, t) in &mut self.users {
            if !spoke.contains(user) {
                t.write(&SILENT, None)?;
            }
        }
        self.frames += 1;
        self.mix.write(&mix, None)
    }

    /// Seconds recorded so far.
    pub fn seconds(&self) -> f64 {
        self.frames as f64 * 0.02
    }

    /// Completes every file; returns their paths, the mix first.
    pub fn finish(self) -> std::io::Result<Vec<PathBuf>> {
        let mut paths = vec![file(&self.dir, "mix", self.format)];
        self.mix.finish()?;
        for (user, t) in self.users {
            paths.push(file(&self.dir, user, self.format));
            t.finish()?;
        }
        Ok(paths)
    }
}
