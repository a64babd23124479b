//! The `play_smol` example (smol, voice-async-std) as a user runs it: the
//! same cases as voice-tokio's `play`, with the same flags, output and exit
//! status.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../voice-tokio/tests/play_cases/mod.rs"]
mod play_cases;

use std::sync::Arc;

fn play_binary() -> std::path::PathBuf {
    play_cases::example_binary("play_smol")
}

fn listener_runtime() -> Arc<dyn voice_driver::Runtime> {
    Arc::new(voice_async_std::AsyncIoRuntime::new())
}
