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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_with_a_timeout_leaves_once_the_file_has_played() {
    play_cases::file_with_a_timeout_leaves_once_the_file_has_played().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offline_demo_counts_the_same_things_on_both_sides() {
    play_cases::the_offline_demo_counts_the_same_things_on_both_sides().await;
}
