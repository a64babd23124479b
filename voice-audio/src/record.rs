//! Recording what [`Hearing`](crate::Hearing) hears: a WAV file per user
//! and one of the whole channel mixed, all on one timeline (a user's file
//! starts when they first speak; their silences are written as silence,
//! so the files line up with the mix).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use voice_driver::Snowflake;

use crate::encode::{FRAME_LEN, Frame};
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

/// Per-user WAV files and the channel's mix, in a directory.
pub struct Recording {
    dir: PathBuf,
    users: HashMap<Snowflake, WavWriter>,
    mix: WavWriter,
}

impl core::fmt::Debug for Recording {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Recording").field("dir", &self.dir).field("users", &self.users.len()).finish()
    }
}

impl Recording {
    /// Records into `dir` (created): `<user>.wav` each and `mix.wav`.
    pub fn create(dir: impl AsRef<Path>) -> std::io::Result<Self> {
        let dir = dir.as_ref().to_owned();
        std::fs::create_dir_all(&dir)?;
        let mix = WavWriter::create(dir.join("mix.wav"))?;
        Ok(Recording { dir, users: HashMap::new(), mix })
    }

    /// One tick of [`Hearing::tick`](crate::Hearing::tick): 20 ms on every
    /// file (silence for those who said nothing).
    pub fn add(&mut self, heard: &[Heard]) -> std::io::Result<()> {
        let mut mix = [0f32; FRAME_LEN];
        let mut spoke: Vec<Snowflake> = Vec::new();
        for h in heard {
            if let Heard::Audio(user, frame) = h {
                if !self.users.contains_key(user) {
                    // A late joiner's file starts at the mix's time.
                    let mut w = WavWriter::create(self.dir.join(format!("{user}.wav")))?;
                    for _ in 0..(self.mix.samples / FRAME_LEN as u64) {
                        w.write_frame(&[0.0; FRAME_LEN])?;
                    }
                    self.users.insert(*user, w);
                }
                if let Some(w) = self.users.get_mut(user) {
                    w.write_frame(frame)?;
                }
                for (m, s) in mix.iter_mut().zip(frame.iter()) {
                    *m += s;
                }
                spoke.push(*user);
            }
        }
        for (user, w) in &mut self.users {
            if !spoke.contains(user) {
                w.write_frame(&[0.0; FRAME_LEN])?;
            }
        }
        self.mix.write_frame(&mix)
    }

    /// Completes every file; returns their paths, the mix first.
    pub fn finish(self) -> std::io::Result<Vec<PathBuf>> {
        let mut paths = vec![self.dir.join("mix.wav")];
        self.mix.finish()?;
        for (user, w) in self.users {
            w.finish()?;
            paths.push(self.dir.join(format!("{user}.wav")));
        }
        Ok(paths)
    }
}
