//! The `play` example (tokio) as a user runs it: the cases in
//! `play_cases/`, shared with voice-async-std's `play_smol`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod play_cases;

use std::sync::Arc;

fn play_binary() -> std::path::PathBuf {
    play_cases::example_binary("play")
}

fn listener_runtime() -> Arc<dyn voice_driver::Runtime> {
    Arc::new(voice_tokio::TokioRuntime)
}
