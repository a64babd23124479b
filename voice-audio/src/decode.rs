//! [`AudioFile`]: any supported file or stream as 20 ms frames of 48 kHz
//! stereo PCM. symphonia demuxes and decodes (WAV, FLAC, MP3, Ogg Vorbis,
//! AAC in MP4/M4A, MKV/WebM); Opus tracks (Ogg or WebM) are decoded with
//! ropus; other rates are resampled with rubato, mono is duplicated and
//! extra channels dropped.

use std::collections::VecDeque;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use symphonia::core::codecs::audio::well_known::CODEC_ID_OPUS;
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, SeekMode, SeekTo, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream, MediaSourceStreamOptions, ReadOnlySource};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::units::Time;

use crate::AudioError;
use crate::encode::{FRAME_LEN, Frame};
use crate::resample::Resampler;

/// The codec behind a track: symphonia's decoder, or ropus for Opus.
enum Codec {
    Symphonia(Box<dyn AudioDecoder>),
    Opus(Box<ropus::Decoder>),
}

/// A file or stream, decoded to 20 ms frames of 48 kHz stereo.
pub struct AudioFile {
    format: Box<dyn FormatReader>,
    track: u32,
    codec: Codec,
    channels: usize,
    resampler: Option<Resampler>,
    /// Decoded samples at the source rate, interleaved, source channels.
    decoded: Vec<f32>,
    /// 48 kHz stereo samples not yet handed out.
    ready: VecDeque<f32>,
    /// Per whole frame in `ready`: the Opus packet it was decoded from,
    /// when it is exactly one 20 ms packet (it can be sent as it is).
    packets: VecDeque<Option<bytes::Bytes>>,
    ended: bool,
}

impl core::fmt::Debug for AudioFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AudioFile").field("channels", &self.channels).finish_non_exhaustive()
    }
}

impl AudioFile {
    /// Opens a file; its extension helps the probe.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AudioError> {
        let path = path.as_ref();
        let file = std::fs::File::open(path)?;
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        Self::from_source(Box::new(file), hint)
    }

    /// Reads any stream (a download, a child process's stdout).
    pub fn from_reader(reader: impl Read + Send + Sync + 'static) -> Result<Self, AudioError> {
        Self::from_source(Box::new(ReadOnlySource::new(reader)), Hint::new())
    }

    /// The standard output of a program (a user's `ffmpeg` or `yt-dlp`,
    /// say: `Command::new("yt-dlp").args(["-o", "-", url])`), which is
    /// started here and read as it writes.
    pub fn from_command(command: &mut std::process::Command) -> Result<Self, AudioError> {
        let mut child = command.stdout(std::process::Stdio::piped()).spawn()?;
        let stdout = child.stdout.take().ok_or(AudioError::Unsupported("no standard output".into()))?;
        Self::from_reader(stdout)
    }

    /// Bytes in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, AudioError> {
        Self::from_source(Box::new(std::io::Cursor::new(bytes)), Hint::new())
    }

    fn from_source(source: Box<dyn MediaSource>, hint: Hint) -> Result<Self, AudioError> {
        let mss = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
        let format = symphonia::default::get_probe()
            .probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
            .map_err(|e| AudioError::Unsupported(e.to_string()))?;
        let track = format.default_track(TrackType::Audio).ok_or(AudioError::Unsupported("no audio track".into()))?;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or(AudioError::Unsupported("no audio parameters".into()))?
            .clone();
        let id = track.id;
        let channels = params.channels.as_ref().map_or(2, |c| c.count()).max(1);
        let (codec, rate) = if params.codec == CODEC_ID_OPUS {
            let ch = if channels == 1 { ropus::Channels::Mono } else { ropus::Channels::Stereo };
            let d = ropus::Decoder::new(48_000, ch).map_err(|e| AudioError::Unsupported(format!("{e:?}")))?;
            (Codec::Opus(Box::new(d)), 48_000)
        } else {
            let d = symphonia::default::get_codecs()
                .make_audio_decoder(&params, &AudioDecoderOptions::default())
                .map_err(|e| AudioError::Unsupported(e.to_string()))?;
            (Codec::Symphonia(d), params.sample_rate.unwrap_or(48_000))
        };
        let channels = if matches!(codec, Codec::Opus(_)) { channels.min(2) } else { channels };
        let resampler = (rate != 48_000).then(|| Resampler::new(rate)).transpose()?;
        Ok(AudioFile {
            format,
            track: id,
            codec,
            channels,
            resampler,
            decoded: Vec::new(),
            ready: VecDeque::new(),
            packets: VecDeque::new(),
            ended: false,
        })
    }

    /// Fills `frame` with the next 20 ms; `false` once the audio has ended
    /// (the last frame is padded with silence and returned `true` first).
    pub fn next_frame(&mut self, frame: &mut Frame) -> Result<bool, AudioError> {
        Ok(self.next_frame_and_packet(frame)?.is_some())
    }

    /// Like [`AudioFile::next_frame`], with the Opus packet the frame was
    /// decoded from when it is exactly one 20 ms packet of an Opus file:
    /// `Some(Some(packet))`, which a lone track at full volume can send
    /// without re-encoding. `None` once the audio has ended.
    pub fn next_frame_and_packet(&mut self, frame: &mut Frame) -> Result<Option<Option<bytes::Bytes>>, AudioError> {
        while self.ready.len() < FRAME_LEN && !self.ended {
            self.decode_more()?;
        }
        if self.ready.is_empty() {
            return Ok(None);
        }
        for s in frame.iter_mut() {
            *s = self.ready.pop_front().unwrap_or(0.0);
        }
        Ok(Some(self.packets.pop_front().flatten()))
    }

    /// `samples` were appended to `ready`, from `packet` if they are one
    /// whole 20 ms Opus packet starting on a frame boundary.
    fn appended(&mut self, before: usize, packet: Option<bytes::Bytes>) {
        let after = self.ready.len();
        let frames = after / FRAME_LEN - before / FRAME_LEN;
        let whole = before.is_multiple_of(FRAME_LEN) && after - before == FRAME_LEN;
        let mut packet = packet.filter(|_| whole);
        for _ in 0..frames {
            self.packets.push_back(packet.take());
        }
    }

    /// Jumps to `position` from the start.
    pub fn seek(&mut self, position: Duration) -> Result<(), AudioError> {
        let time = Time::try_from_nanos_u128(position.as_nanos()).ok_or(AudioError::Decode("seek too far".into()))?;
        self.format
            .seek(SeekMode::Accurate, SeekTo::Time { time, track_id: Some(self.track) })
            .map_err(|e| AudioError::Decode(e.to_string()))?;
        match &mut self.codec {
            Codec::Symphonia(d) => d.reset(),
            Codec::Opus(d) => {
                **d = ropus::Decoder::new(48_000, opus_channels(self.channels))
                    .map_err(|e| AudioError::Decode(format!("{e:?}")))?
            }
        }
        if let Some(r) = &mut self.resampler {
            r.reset();
        }
        self.ready.clear();
        self.packets.clear();
        self.ended = false;
        Ok(())
    }

    /// Decodes one more packet into `ready`.
    fn decode_more(&mut self) -> Result<(), AudioError> {
        let packet = match self.format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => return self.finish(),
            // A truncated stream ends where it breaks.
            Err(symphonia::core::errors::Error::IoError(_)) => return self.finish(),
            Err(e) => return Err(AudioError::Decode(e.to_string())),
        };
        if packet.track_id != self.track {
            return Ok(());
        }
        self.decoded.clear();
        let opus = matches!(self.codec, Codec::Opus(_)).then(|| bytes::Bytes::copy_from_slice(&packet.data));
        match &mut self.codec {
            Codec::Symphonia(d) => match d.decode(&packet) {
                Ok(buf) => buf.copy_to_vec_interleaved(&mut self.decoded),
                // A corrupt packet is skipped, as players do.
                Err(symphonia::core::errors::Error::DecodeError(e)) => {
                    tracing::debug!(error = e, "skipped a corrupt packet");
                    return Ok(());
                }
                Err(e) => return Err(AudioError::Decode(e.to_string())),
            },
            Codec::Opus(d) => {
                self.decoded.resize(5760 * self.channels, 0.0);
                match d.decode_float(&packet.data, &mut self.decoded, ropus::DecodeMode::Normal) {
                    Ok(n) => self.decoded.truncate(n * self.channels),
                    Err(e) => {
                        tracing::debug!(error = ?e, "skipped a corrupt Opus packet");
                        return Ok(());
                    }
                }
            }
        }
        let stereo = to_stereo(&self.decoded, self.channels);
        let before = self.ready.len();
        match &mut self.resampler {
            Some(r) => r.push(&stereo, &mut self.ready)?,
            None => self.ready.extend(stereo),
        }
        self.appended(before, opus.filter(|_| self.resampler.is_none()));
        Ok(())
    }

    fn finish(&mut self) -> Result<(), AudioError> {
        self.ended = true;
        if let Some(r) = &mut self.resampler {
            let before = self.ready.len();
            r.flush(&mut self.ready)?;
            self.appended(before, None);
        }
        Ok(())
    }
}

fn opus_channels(channels: usize) -> ropus::Channels {
    if channels == 1 { ropus::Channels::Mono } else { ropus::Channels::Stereo }
}

/// Interleaved samples of `channels` channels as stereo: mono duplicated,
/// the first two of more kept.
fn to_stereo(samples: &[f32], channels: usize) -> Vec<f32> {
    match channels {
        2 => samples.to_vec(),
        1 => samples.iter().flat_map(|&s| [s, s]).collect(),
        n => samples.chunks_exact(n).flat_map(|c| [c[0], c[1]]).collect(),
    }
}
