//! Audio a bot author can use, above the Opus-level driver: decode common
//! formats ([`AudioFile`]: WAV, FLAC, MP3, Ogg Vorbis and Opus, AAC in
//! MP4/M4A, MKV/WebM), resample to 48 kHz stereo, mix tracks with their
//! own volume, pause, seek and loop ([`Mixer`], [`TrackHandle`]), and
//! encode Opus once per 20 ms ([`OpusEncoder`], ropus: a pure-Rust port
//! of libopus). A [`Player`] runs a call's mixer and encoder off the
//! driver's hot path and feeds its frame queue, on a [`PlayerPool`]'s
//! threads (one per core for thousands of calls) or a thread of its own;
//! an Opus file playing alone at full volume goes out packet for packet,
//! not re-encoded. Sources are files, bytes, any `Read`, an `AsyncRead`
//! (futures-io's or tokio's) or a program's output.
//! [`Hearing`] turns each user's received Opus into clean PCM: a playout
//! buffer per user (order restored, duplicates and late packets dropped,
//! gaps rebuilt from FEC or concealed), and speaking from the audio;
//! [`Recording`] writes it per user and mixed, to WAV or to Ogg Opus
//! (each user's own packets, with granule positions exact across gaps).
//!
//! ```no_run
//! # async fn run(call: voice_driver::Call) -> Result<(), Box<dyn std::error::Error>> {
//! use voice_audio::{AudioFile, Player};
//!
//! let player = Player::start(call.frame_sink(), 64_000)?;
//! let music = player.play(AudioFile::open("song.mp3")?)?;
//! music.set_volume(0.5);
//! player.play(AudioFile::open("ding.wav")?)?; // mixed over the music
//! # Ok(()) }
//! ```

mod async_read;
mod decode;
mod encode;
mod error;
mod hear;
mod mixer;
mod player;
mod prefetch;
mod record;
mod resample;

pub use decode::AudioFile;
pub use encode::{FRAME_LEN, FRAME_SAMPLES, Frame, OpusEncoder};
pub use error::AudioError;
pub use hear::{Heard, Hearing, HearingStats};
pub use mixer::{Mixed, Mixer, PlayState, TrackEvent, TrackHandle, TrackId};
pub use player::{FrameOut, Player, PlayerPool, PlayerStats};
pub use record::{RecordFormat, Recording, WavWriter};
