//! What the scenarios run on: [`Rt`], the runtime under test behind the
//! driver layer's seam (sleep, timeout and spawn go through it, never
//! through tokio's clock); [`Mock`], a voice-mock server on a thread of its
//! own; and bots whose main gateway is simulated.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use voice_driver::runtime::Elapsed;
use voice_driver::{Call, CallStats, DriverConfig, GatewayEvent, Manager, ReceivedAudio, Runtime, UpdateVoiceState};
use voice_mock::{RunnerConfig, Server};
use voice_proto::VoiceStateUpdate;
use voice_proto::wire::Snowflake;

pub const GUILD: Snowflake = Snowflake(1);
pub const CHANNEL: Snowflake = Snowflake(2);

/// Longest a scenario may run before it counts as hung: every test stops
/// by itself.
const SCENARIO_LIMIT: Duration = Duration::from_secs(60);

/// Scenarios that run alongside others hold it shared; those that run
/// alone hold it exclusively.
static SCHEDULE: RwLock<()> = RwLock::new(());

/// Runs `test` alongside other scenarios of the suite.
pub fn together(test: impl FnOnce()) {
    let _shared = SCHEDULE.read().unwrap_or_else(PoisonError::into_inner);
    test();
}

/// Runs `test` while no other scenario of the suite runs.
pub fn alone(test: impl FnOnce()) {
    let _exclusive = SCHEDULE.write().unwrap_or_else(PoisonError::into_inner);
    test();
}

/// Runs `scenario` on a multi-thread tokio runtime, calls on
/// `TokioRuntime` (`tokio::spawn`).
pub fn on_tokio<F: Future<Output = ()>>(scenario: impl FnOnce(Rt) -> F) {
    let tokio =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    let rt = Rt::tokio();
    tokio.block_on(rt.clone().guard(scenario(rt)));
}

/// Runs `scenario` in `async_std::task::block_on`, calls spawned on
/// async-std's executor.
pub fn on_async_std<F: Future<Output = ()>>(scenario: impl FnOnce(Rt) -> F) {
    let runtime = voice_async_std::AsyncIoRuntime::with_spawner(|f| {
        async_std::task::spawn(f);
    });
    let rt = Rt { runtime: Arc::new(runtime), task_receive: false };
    async_std::task::block_on(rt.clone().guard(scenario(rt)));
}

/// Runs `scenario` in `smol::block_on`, calls spawned on smol's global
/// executor (run by its own threads, not by `block_on`).
pub fn on_smol<F: Future<Output = ()>>(scenario: impl FnOnce(Rt) -> F) {
    let runtime = voice_async_std::AsyncIoRuntime::with_spawner(|f| smol::spawn(f).detach());
    // Under smol the calls receive from their own tasks (the wheel's
    // receive off), so that both receive paths run every scenario.
    let rt = Rt { runtime: Arc::new(runtime), task_receive: true };
    smol::block_on(rt.clone().guard(scenario(rt)));
}

/// The runtime under test, as the scenarios use it.
#[derive(Debug, Clone)]
pub struct Rt {
    runtime: Arc<dyn Runtime>,
    /// Bots' calls receive from their tasks (`DriverConfig::wheel_receive` off).
    task_receive: bool,
}

impl Rt {
    /// Calls on `TokioRuntime`, from inside a tokio runtime (the scenarios
    /// under a time limit; the soak bench without one).
    pub fn tokio() -> Rt {
        Rt { runtime: Arc::new(voice_tokio::TokioRuntime), task_receive: false }
    }

    /// The seam, for `Manager::new` and `connect`.
    pub fn runtime(&self) -> Arc<dyn Runtime> {
        self.runtime.clone()
    }

    /// The runtime's clock.
    pub fn now(&self) -> Instant {
        self.runtime.now()
    }

    /// Sleeps `d` on the runtime's timer.
    pub async fn sleep(&self, d: Duration) {
        voice_driver::runtime::sleep(&*self.runtime, d).await;
    }

    /// Runs `future`, or gives up after `d` on the runtime's timer.
    pub async fn timeout<F: Future>(&self, d: Duration, future: F) -> Result<F::Output, Elapsed> {
        voice_driver::runtime::timeout(&*self.runtime, d, future).await
    }

    /// Runs `future` in the background on the runtime; await the handle
    /// for its output (a panic in it is raised again there). Dropping the
    /// handle detaches the task.
    pub fn spawn<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> Task<T> {
        let (tx, rx) = oneshot::channel();
        let (mut future, mut tx) = (Box::pin(future), Some(tx));
        self.runtime.spawn(Box::pin(std::future::poll_fn(move |cx| {
            let out = match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
                Ok(Poll::Pending) => return Poll::Pending,
                Ok(Poll::Ready(v)) => Ok(v),
                Err(panic) => Err(panic),
            };
            if let Some(tx) = tx.take() {
                let _ = tx.send(out);
            }
            Poll::Ready(())
        })));
        Task(rx)
    }

    /// Runs a scenario, failing it if it does not end within the limit.
    async fn guard(self, scenario: impl Future<Output = ()>) {
        self.timeout(SCENARIO_LIMIT, scenario).await.expect("the scenario hung");
    }
}

/// A task spawned with [`Rt::spawn`]; resolves to its output.
#[derive(Debug)]
pub struct Task<T>(oneshot::Receiver<Result<T, Box<dyn Any + Send>>>);

impl<T> Future for Task<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(&mut self.0).poll(cx).map(|r| match r.expect("the runtime dropped the task") {
            Ok(v) => v,
            Err(panic) => resume_unwind(panic),
        })
    }
}

/// A voice-mock server on a thread of its own, with its own multi-thread
/// tokio runtime (the runner is tokio-based), whatever runtime the
/// scenario runs on. Scenarios use its synchronous API only. Dropping it
/// stops that runtime, which closes every socket of the server.
#[derive(Debug)]
pub struct Mock {
    server: Arc<Server>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Mock {
    /// Starts a server (heartbeats every second, wss with a self-signed
    /// certificate, everything on 127.0.0.1).
    pub async fn start() -> Mock {
        Mock::start_keeping(voice_mock::Limits::default().received_frames).await
    }

    /// Like [`Mock::start`], keeping at most `frames` of each user's
    /// frames for inspection (the soak keeps few: it runs in the same
    /// process whose memory it watches).
    pub async fn start_keeping(frames: usize) -> Mock {
        Mock::start_with(move |c| c.server.limits.received_frames = frames).await
    }

    /// Like [`Mock::start`], with `tweak` applied to the configuration.
    pub async fn start_with(tweak: impl FnOnce(&mut RunnerConfig) + Send + 'static) -> Mock {
        let (started_tx, started_rx) = oneshot::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("voice-mock".into())
            .spawn(move || {
                let tokio = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("the mock's tokio runtime");
                tokio.block_on(async {
                    let mut config = RunnerConfig::default();
                    config.server.heartbeat_interval_ms = 1000.0;
                    tweak(&mut config);
                    let server = Server::start(config).await.expect("mock server");
                    if started_tx.send(Arc::new(server)).is_ok() {
                        let _ = stop_rx.await;
                    }
                });
            })
            .expect("the mock's thread");
        let server = started_rx.await.expect("mock server started");
        Mock { server, stop: Some(stop), thread: Some(thread) }
    }

    /// The server, for the bots' simulated main gateways.
    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }
}

impl std::ops::Deref for Mock {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A driver configuration that trusts the mock's certificate.
pub fn driver_config(server: &Server) -> DriverConfig {
    let mut c = DriverConfig::default();
    c.trust_pem(server.cert_pem().as_bytes()).expect("cert");
    c.join_timeout = Duration::from_secs(10);
    c
}

/// One bot: its manager and every op 4 it sent.
pub struct Bot {
    pub manager: Arc<Manager>,
    pub op4: Arc<Mutex<Vec<UpdateVoiceState>>>,
}

/// A bot on `rt` whose main gateway is simulated: op 4 with a channel gets
/// a voice state and a voice server update from the mock (wss endpoint);
/// op 4 with no channel gets a null-channel state.
pub fn bot(rt: &Rt, server: &Mock, user: u64) -> Bot {
    bot_with(rt, server, user, |_| {})
}

/// Like [`bot`], with `tweak` applied to the driver configuration.
pub fn bot_with(rt: &Rt, server: &Mock, user: u64, tweak: impl FnOnce(&mut DriverConfig)) -> Bot {
    let user = Snowflake(user);
    let (tx, mut rx) = mpsc::unbounded_channel::<UpdateVoiceState>();
    let mut config = driver_config(server);
    config.wheel_receive = !rt.task_receive;
    tweak(&mut config);
    let manager = Arc::new(Manager::new(rt.runtime(), user, tx, config).expect("manager"));
    let op4 = Arc::new(Mutex::new(Vec::new()));
    let (m, s, log, clock) = (Arc::downgrade(&manager), server.server().clone(), op4.clone(), rt.clone());
    // Detached: it ends when the manager (the sender's owner) is dropped.
    drop(rt.spawn(async move {
        while let Some(p) = rx.recv().await {
            log.lock().unwrap().push(p.clone());
            let Some(manager) = m.upgrade() else { break };
            match p.channel_id {
                Some(channel) => {
                    for event in s.join_wss(p.guild_id, channel, user).gateway_events() {
                        manager.handle_gateway_event(event).await;
                    }
                }
                None => {
                    // The voice server hears of the leave from the main
                    // gateway, a moment after the last datagram.
                    clock.sleep(Duration::from_millis(50)).await;
                    s.leave(p.guild_id, user);
                    let state = VoiceStateUpdate {
                        guild_id: Some(p.guild_id),
                        channel_id: None,
                        user_id: user,
                        session_id: "x".into(),
                    };
                    manager.handle_gateway_event(GatewayEvent::VoiceStateUpdate(state)).await;
                }
            }
        }
    }));
    Bot { manager, op4 }
}

/// Distinct test frames that look like Opus (CELT FB 20 ms TOC).
pub fn frames(tag: u8, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut f = vec![0xFC, tag, (i >> 8) as u8, i as u8];
            f.extend((0..(i % 50 + 10)).map(|j| (i * 13 + j * 7) as u8));
            f
        })
        .collect()
}

fn is_silence(p: &ReceivedAudio) -> bool {
    p.opus.as_ref() == voice_rtp::OPUS_SILENCE
}

/// Collects received audio until `n` non-silence packets or `timeout` (on
/// the runtime's timer).
pub async fn collect(
    rt: &Rt,
    rx: &mut voice_driver::queue::Receiver<ReceivedAudio>,
    n: usize,
    timeout: Duration,
) -> Vec<ReceivedAudio> {
    let mut got = Vec::new();
    let _ = rt
        .timeout(timeout, async {
            while let Some(p) = rx.recv().await {
                let silence = is_silence(&p);
                got.push(p);
                if !silence && got.iter().filter(|p| !is_silence(p)).count() >= n {
                    break;
                }
            }
        })
        .await;
    got
}

/// The received packets that are not silence, as bytes.
pub fn voice_only(got: &[ReceivedAudio]) -> Vec<Vec<u8>> {
    got.iter().filter(|p| !is_silence(p)).map(|p| p.opus.to_vec()).collect()
}

/// The number of silence frames among `got`.
pub fn silence_count(got: &[ReceivedAudio]) -> usize {
    got.iter().filter(|p| is_silence(p)).count()
}

/// The counters that tell where frames went, for failure messages.
pub fn sender_counters(s: &CallStats) -> String {
    format!(
        "sent {}, dropped not ready {}, dropped late {}, slots skipped {}, udp send errors {}",
        s.frames_sent, s.frames_dropped_not_ready, s.frames_dropped_late, s.slots_skipped, s.udp_send_errors
    )
}

/// The counters that tell where received packets went, for failure messages.
pub fn receiver_counters(s: &CallStats) -> String {
    let p = &s.proto;
    format!(
        "received {}, audio dropped {}, decrypt failures {}, unknown ssrc {}, not ready {}, dave {:?}",
        p.packets_received, s.audio_dropped, p.decrypt_failures, p.unknown_ssrc_drops, p.not_ready_drops, p.dave
    )
}

/// The server's counters that tell where datagrams went, for failure messages.
pub fn server_counters(server: &Server) -> String {
    let s = server.stats();
    format!(
        "datagrams in {}, junk {}, decrypt failures {}, rtp before session {}, forwarded {}; runner {:?}",
        s.datagrams_in,
        s.junk_datagrams,
        s.decrypt_failures,
        s.rtp_before_session,
        s.rtp_forwarded,
        server.runner_stats()
    )
}

/// Which of `sent` are missing from `got` (indices), for failure messages.
pub fn missing(got: &[Vec<u8>], sent: &[Vec<u8>]) -> Vec<usize> {
    sent.iter().enumerate().filter(|(_, s)| !got.contains(s)).map(|(i, _)| i).collect()
}

/// `bot` joins `channel` of [`GUILD`] through its manager.
pub async fn joined(bot: &Bot, channel: Snowflake) -> Call {
    bot.manager.join(GUILD, channel).await.expect("join")
}
