//! `play` under smol, on voice-async-std: the same example (voice-tokio's
//! `examples/play/app.rs`), flags, output and exit status. With no
//! arguments: an offline demo on the embedded voice server.

use std::sync::Arc;

#[path = "../../voice-tokio/examples/play/app.rs"]
mod app;

fn main() {
    app::init_logs();
    let runtime = voice_async_std::AsyncIoRuntime::with_spawner(|f| smol::spawn(f).detach());
    app::exit(smol::block_on(app::run(Arc::new(runtime))));
}
