//! Plays an Ogg Opus file into a voice channel and records what others say,
//! on tokio. With no arguments: an offline demo on the embedded voice
//! server. `--help` lists the flags; `app.rs` holds the example itself,
//! shared with voice-async-std's `play_smol`.

use std::sync::Arc;

mod app;

#[tokio::main]
async fn main() {
    app::init_logs();
    app::exit(app::run(Arc::new(voice_tokio::TokioRuntime)).await);
}
