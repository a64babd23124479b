//! Errors of the audio layer.

/// A file or stream could not be played.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AudioError {
    /// The file could not be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// No decodable audio track, or a codec this build does not decode.
    #[error("unsupported audio: {0}")]
    Unsupported(String),
    /// The stream is corrupt past recovery.
    #[error("decode: {0}")]
    Decode(String),
    /// The resampler or the encoder failed.
    #[error("encode: {0}")]
    Encode(String),
}
