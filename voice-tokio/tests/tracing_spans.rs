//! What a call logs: everything in a `voice_call` span (guild, user,
//! channel, session), each websocket attempt in a `voice_connect` span
//! (host, port, attempt, resume), and never the token or a key, whatever
//! the level.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing_subscriber::fmt::format::FmtSpan;
use voice_mock::Fault;
use voice_tokio::{DriverConfig, Snowflake};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_log_in_spans_that_name_the_call_and_never_the_token() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::NEW)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let mut rc = voice_mock::RunnerConfig::default();
    rc.server.heartbeat_interval_ms = 1000.0;
    let server = voice_mock::Server::start(rc).await.unwrap();
    let mut config = DriverConfig::default();
    config.trust_pem(server.cert_pem().as_bytes()).unwrap();
    let (guild, channel) = (Snowflake(5151), Snowflake(5252));
    let info = server.join_wss(guild, channel, Snowflake(53));
    let (token, session) = (info.token.expose().to_owned(), info.session_id.clone());
    let call = voice_tokio::connect(info, config).await.unwrap();
    // A resume: a second attempt, in a span of its own.
    server.inject(Fault::CloseUser { user: Snowflake(53), code: 4015, after: None });
    let mut events = call.take_events().unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = events.recv().await {
            if e == voice_tokio::Event::Resumed {
                break;
            }
        }
    })
    .await
    .expect("resumed");
    call.close().await.unwrap();
    drop(server);

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let call_span = format!("voice_call{{guild=5151 user=53 channel=5252 session={session}}}");
    assert!(text.contains(&call_span), "{call_span} in:\n{text}");
    assert!(text.contains("voice_connect{host=") && text.contains("attempt=1 resume=false"), "{text}");
    assert!(text.contains("attempt=2 resume=true"), "the resume is the second attempt:\n{text}");
    assert!(!text.contains(&token), "the token appears in the logs:\n{text}");
}
