//! The task that carries out one [`CallCore`]'s IO on a [`Runtime`]: it
//! owns the websocket, the UDP socket and one timer, feeds one input at a
//! time and drains what the core asks for (DESIGN.md "Adapters").
//!
//! Cheap per wake: one timer, reset only when the earliest of the
//! machine's deadline, the frame slot and the websocket write limit moves;
//! the websocket is read only after its socket signalled (a gate on its
//! waker), so a wake for a frame slot costs no websocket read attempt;
//! datagrams go out with a non-blocking send on a connected socket.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::{self, Message};
use futures_util::{Sink, Stream};
use rustls::ClientConfig;
use voice_proto::wire::{WsFrame, WsMessage};

use crate::call::Command;
use crate::call_shared::{CallShared, Locked};
use crate::core::Io;
use crate::error::ConnectError;
use crate::gateway::MainGateway;
use crate::queue;
use crate::runtime::{AsyncTimer, BoxFuture, Runtime, timeout};
use crate::wheel::Wheel;
use crate::ws::{self, WsStream};

/// Longest datagram read (Discord's are under 1,500 bytes).
const RECV_LEN: usize = 2048;

thread_local! {
    /// Where a task reads its datagram, one buffer per thread instead of
    /// one per call: the datagram is read in `poll_wake` and handled in
    /// `handle` within the same poll of the same task, and nothing else
    /// runs on the thread in between.
    static RECV: std::cell::RefCell<[u8; RECV_LEN]> = const { std::cell::RefCell::new([0; RECV_LEN]) };
}

/// Longest a websocket write may wait before the socket is treated as dead.
const WS_SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The runtime's pieces one call's task uses.
pub(crate) struct TaskIo {
    pub(crate) runtime: Arc<dyn Runtime>,
    pub(crate) gateway: Arc<dyn MainGateway>,
    pub(crate) tls: Arc<ClientConfig>,
    pub(crate) connects: Arc<tokio::sync::Semaphore>,
    pub(crate) ws_timeout: Duration,
    /// Where the call's audio is sent from once it flows (`None`: from
    /// this task, a timer per frame).
    pub(crate) wheel: Option<Arc<Wheel>>,
}

pub(crate) struct CallTask {
    shared: Arc<CallShared>,
    io: TaskIo,
    commands: queue::Receiver<Command>,
    commands_open: bool,
    ws: Option<WsStream>,
    ws_out: VecDeque<Message>,
    ws_flushing: bool,
    ws_stall_at: Option<Instant>,
    ws_gate: Arc<Gate>,
    ws_waker: Option<Waker>,
    connecting: Option<BoxFuture<Result<WsStream, ConnectError>>>,
    timer: Pin<Box<dyn AsyncTimer>>,
    timer_at: Option<Instant>,
    slot: Option<Instant>,
    /// The wheel had this call at the last look: when it hands the call
    /// back, drain at once (flush callers, the next stream).
    was_in_wheel: bool,
    /// The first datagram of a stream, held until op 5 before it has been
    /// handed to the websocket.
    deferred: Vec<u8>,
    deferred_to: Option<SocketAddr>,
    /// The call's span, parent of each connection attempt's.
    span: tracing::Span,
    /// Websockets asked for so far.
    attempts: u64,
}

enum Input {
    Command(Option<Command>),
    Timer,
    WsOpened(Box<Result<WsStream, ConnectError>>),
    Ws(Option<Result<Message, tungstenite::Error>>),
    WsBroken,
    /// A datagram of this length from this address, in [`RECV`].
    Udp(std::io::Result<(usize, SocketAddr)>),
    /// Nothing to handle (a frame was taken from the queue, the wheel
    /// handed the call back, the core has outputs): drain.
    Drain,
}

impl CallTask {
    pub(crate) fn new(
        shared: Arc<CallShared>,
        io: TaskIo,
        commands: queue::Receiver<Command>,
        span: tracing::Span,
    ) -> Self {
        let now = io.runtime.now();
        let timer = io.runtime.new_timer(now + Duration::from_secs(3600));
        let ws_gate = Arc::new(Gate { ready: AtomicBool::new(false), call: shared.clone() });
        CallTask {
            shared,
            ws_gate,
            io,
            commands,
            commands_open: true,
            ws: None,
            ws_out: VecDeque::new(),
            ws_flushing: false,
            ws_stall_at: None,
            ws_waker: None,
            connecting: None,
            timer,
            timer_at: None,
            slot: None,
            was_in_wheel: false,
            deferred: Vec::new(),
            deferred_to: None,
            span,
            attempts: 0,
        }
    }

    pub(crate) async fn run(mut self) {
        let shared = self.shared.clone();
        loop {
            {
                let mut g = shared.lock();
                self.drain(&mut g);
                if g.core.is_closed() {
                    break;
                }
            }
            let wake = std::future::poll_fn(|cx| self.poll_wake(&mut shared.lock(), cx)).await;
            self.handle(&mut shared.lock(), wake);
        }
        if let Some(ws) = self.ws.take() {
            let queued = std::mem::take(&mut self.ws_out);
            close_in_background(&self.io.runtime, ws, queued, 1000);
        }
        tracing::debug!(guild = %shared.lock().core.connection().config().guild_id, "voice driver stopped");
    }

    /// Waits for one input, in a fixed priority: commands, then time (a
    /// flood of datagrams or frames cannot starve heartbeats or pacing),
    /// then sockets, then the frame queue.
    fn poll_wake(&mut self, g: &mut Locked, cx: &mut Context<'_>) -> Poll<Input> {
        if self.commands_open
            && let Poll::Ready(c) = self.commands.poll_recv(cx)
        {
            return Poll::Ready(Input::Command(c));
        }
        let now = self.io.runtime.now();
        self.shared.set_task(cx.waker());
        let in_wheel = self.shared.in_wheel();
        if (std::mem::replace(&mut self.was_in_wheel, in_wheel) && !in_wheel) || g.core.has_io() {
            return Poll::Ready(Input::Drain);
        }
        // While the wheel sends this call's audio, its slots are not ours;
        // a stream that flows (op 5 sent, the first datagram out) goes to
        // the wheel, while the wheel runs.
        self.slot = if in_wheel { None } else { g.core.next_slot(now) };
        if let (Some(slot), Some(wheel)) = (self.slot, &self.io.wheel)
            && g.core.connection().is_speaking()
            && self.deferred_to.is_none()
            && wheel.is_alive()
        {
            wheel.add(&self.shared, slot);
            self.was_in_wheel = self.shared.in_wheel();
            self.slot = None;
        }
        // While the wheel sends, each frame pushes "speaking stops" back:
        // no wake-up for it (the wheel wakes this task when the stream
        // stops or another deadline comes nearer).
        let deadline = if self.shared.in_wheel() { g.core.deadline_while_flowing() } else { g.core.deadline() };
        g.armed = deadline;
        let at = [deadline, self.slot, self.ws_stall_at].into_iter().flatten().min();
        if at != self.timer_at {
            self.timer_at = at;
            if let Some(at) = at {
                self.timer.as_mut().reset(at);
            }
        }
        if let Some(at) = at
            && (at <= now || self.timer.as_mut().poll(cx).is_ready())
        {
            return Poll::Ready(Input::Timer);
        }
        if let Some(f) = self.connecting.as_mut()
            && let Poll::Ready(r) = f.as_mut().poll(cx)
        {
            self.connecting = None;
            return Poll::Ready(Input::WsOpened(Box::new(r)));
        }
        if self.ws.is_some() {
            if self.poll_ws_write(cx).is_err() {
                return Poll::Ready(Input::WsBroken);
            }
            if let Some(m) = self.poll_ws_read() {
                return Poll::Ready(Input::Ws(m));
            }
        }
        self.send_deferred(g);
        // (A socket on no reactor is the wheel's to read.)
        if let Some(udp) = self.shared.udp.runtime()
            && let Poll::Ready(r) = RECV.with_borrow_mut(|buf| udp.poll_recv_from(cx, buf))
        {
            return Poll::Ready(Input::Udp(r));
        }
        if !self.shared.in_wheel() && g.core.wants_frame() && g.core.poll_frame(cx, now).is_ready() {
            return Poll::Ready(Input::Drain);
        }
        Poll::Pending
    }

    /// Reads the websocket if its socket signalled since the last read
    /// came up empty (or a message may still be buffered).
    /// (The gate wakes the waker `poll_wake` registered with the shared state.)
    fn poll_ws_read(&mut self) -> Option<Option<Result<Message, tungstenite::Error>>> {
        let ws = self.ws.as_mut()?;
        if !self.ws_gate.ready.swap(false, Ordering::AcqRel) {
            return None;
        }
        let waker = self.ws_waker.get_or_insert_with(|| Waker::from(self.ws_gate.clone()));
        let mut gated = Context::from_waker(waker);
        match Pin::new(ws).poll_next(&mut gated) {
            Poll::Ready(m) => {
                // More frames may already be buffered: read again next time.
                self.ws_gate.ready.store(true, Ordering::Release);
                Some(m)
            }
            Poll::Pending => None,
        }
    }

    /// Writes queued frames; `Err` when the socket broke.
    fn poll_ws_write(&mut self, cx: &mut Context<'_>) -> Result<(), ()> {
        let Some(ws) = self.ws.as_mut() else { return Ok(()) };
        while !self.ws_out.is_empty() {
            match Pin::new(&mut *ws).poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    let Some(m) = self.ws_out.pop_front() else { break };
                    Pin::new(&mut *ws).start_send(m).map_err(drop)?;
                    self.ws_flushing = true;
                }
                Poll::Ready(Err(_)) => return Err(()),
                Poll::Pending => return Ok(()),
            }
        }
        if self.ws_flushing {
            match Pin::new(&mut *ws).poll_flush(cx) {
                Poll::Ready(Ok(())) => {
                    self.ws_flushing = false;
                    self.ws_stall_at = None;
                }
                Poll::Ready(Err(_)) => return Err(()),
                Poll::Pending => {}
            }
        }
        Ok(())
    }

    fn handle(&mut self, g: &mut Locked, wake: Input) {
        let now = self.io.runtime.now();
        match wake {
            Input::Command(None) => {
                // Every handle is gone: shut down.
                self.commands_open = false;
                g.core.handles_dropped(now);
            }
            Input::Command(Some(c)) => g.core.command(c, now),
            Input::Timer => self.timer_fired(g, now),
            Input::WsOpened(r) => match *r {
                Ok(ws) => {
                    self.ws = Some(ws);
                    self.ws_gate.ready.store(true, Ordering::Release);
                    g.core.handle_ws_open(now);
                }
                Err(e) => {
                    tracing::info!(error = %e, "voice websocket did not open");
                    g.core.handle_ws_failed(e.failure(), now);
                }
            },
            Input::Ws(m) => {
                // Datagrams the wheel has not read yet came before this
                // message (a packet of a user who has just left, say):
                // handled first, in the order they came.
                self.shared.receive_waiting(&mut g.core, now);
                self.ws_message(g, m, now)
            }
            Input::WsBroken => {
                tracing::info!("voice websocket send failed or stalled");
                self.drop_ws();
                g.core.handle_ws_close(None, now);
            }
            Input::Udp(Ok((n, from))) => RECV.with_borrow_mut(|buf| g.core.handle_datagram(from, &mut buf[..n], now)),
            Input::Udp(Err(e)) => tracing::debug!(error = %e, "udp receive error"),
            Input::Drain => {}
        }
    }

    fn timer_fired(&mut self, g: &mut Locked, now: Instant) {
        let mut due = false;
        if self.ws_stall_at.is_some_and(|t| t <= now) {
            due = true;
            tracing::info!("voice websocket send stalled");
            self.drop_ws();
            g.core.handle_ws_close(None, now);
        }
        if g.core.deadline().is_some_and(|t| t <= now) {
            due = true;
            g.core.handle_timeout(now);
        }
        if self.slot.is_some_and(|t| t <= now) && !self.shared.in_wheel() {
            due = true;
            self.send_frame(g, now);
        }
        if !due {
            // Woken before time (a coarse timer): set it again.
            self.timer_at = None;
        }
    }

    fn send_frame(&mut self, g: &mut Locked, now: Instant) {
        let Some(to) = g.core.send_slot(now) else { return };
        // Speaking (op 5) goes out before the first datagram: if it is
        // still queued for the websocket, the datagram waits for it.
        self.drain(g);
        if self.ws.is_some() && (!self.ws_out.is_empty() || self.ws_flushing) {
            self.deferred.clear();
            self.deferred.extend_from_slice(g.core.datagram());
            self.deferred_to = Some(to);
            return;
        }
        let Locked { core, peer, .. } = g;
        if self.shared.transmit(peer, core.datagram(), to).is_err() {
            core.send_failed();
        }
    }

    /// Sends the held first datagram once the websocket took op 5 (or is
    /// gone).
    fn send_deferred(&mut self, g: &mut Locked) {
        let Some(to) = self.deferred_to else { return };
        if self.ws.is_some() && !self.ws_out.is_empty() {
            return;
        }
        self.deferred_to = None;
        if self.shared.transmit(&mut g.peer, &self.deferred, to).is_err() {
            g.core.send_failed();
        }
    }

    /// A connection attempt's span (endpoint, attempt number, resume or
    /// identify); the call's span learns the channel and session now.
    fn attempt_span(&self, g: &Locked, target: &voice_proto::WsTarget) -> tracing::Span {
        let conn = g.core.connection();
        if let Some(channel) = conn.channel() {
            self.span.record("channel", tracing::field::display(channel));
        }
        if let Some(session) = conn.session_id() {
            self.span.record("session", tracing::field::display(session));
        }
        tracing::info_span!(
            parent: &self.span,
            "voice_connect",
            host = %target.host,
            port = target.port,
            version = ?target.version,
            attempt = self.attempts,
            resume = conn.is_resuming(),
        )
    }

    /// Carries out everything the core asks for, up to its next deadline.
    fn drain(&mut self, g: &mut Locked) {
        while let Some(io) = g.core.poll_io() {
            match io {
                Io::Gateway(p) => self.io.gateway.update_voice_state(p),
                Io::ConnectWs(target) => {
                    let (rt, tls, limit) = (self.io.runtime.clone(), self.io.tls.clone(), self.io.ws_timeout);
                    let connects = self.io.connects.clone();
                    self.attempts += 1;
                    let attempt = self.attempt_span(g, &target);
                    let connect = async move {
                        // Bounded concurrency: no thundering herd of handshakes.
                        let _permit = connects.acquire_owned().await;
                        let opened = ws::connect(rt, target, tls, limit).await;
                        match &opened {
                            Ok(_) => tracing::debug!("voice websocket open"),
                            Err(e) => tracing::debug!(error = %e, "voice websocket failed"),
                        }
                        opened
                    };
                    self.connecting = Some(Box::pin(tracing::Instrument::instrument(connect, attempt)));
                }
                Io::WsSend(frame) => {
                    if self.ws.is_none() {
                        continue;
                    }
                    let msg = match frame {
                        WsFrame::Binary(b) => Message::Binary(b.into()),
                        other => Message::Text(other.as_text().unwrap_or_default().to_owned().into()),
                    };
                    self.ws_out.push_back(msg);
                    if self.ws_stall_at.is_none() {
                        self.ws_stall_at = Some(self.io.runtime.now() + WS_SEND_TIMEOUT);
                    }
                }
                Io::CloseWs(code) => {
                    self.connecting = None;
                    if let Some(ws) = self.ws.take() {
                        // Frames queued before the close (speaking off on a
                        // leave) still go, then the close frame.
                        let queued = std::mem::take(&mut self.ws_out);
                        close_in_background(&self.io.runtime, ws, queued, code);
                    }
                    self.drop_ws();
                }
                Io::Transmit { to, bytes } => {
                    if self.shared.transmit(&mut g.peer, &bytes, to).is_err() {
                        g.core.send_failed();
                    }
                }
            }
        }
    }

    fn drop_ws(&mut self) {
        self.ws = None;
        self.ws_out.clear();
        self.ws_flushing = false;
        self.ws_stall_at = None;
    }

    fn ws_message(&mut self, g: &mut Locked, m: Option<Result<Message, tungstenite::Error>>, now: Instant) {
        match m {
            Some(Ok(Message::Text(t))) => g.core.handle_ws_message(WsMessage::Text(t.as_str()), now),
            Some(Ok(Message::Binary(b))) => g.core.handle_ws_message(WsMessage::Binary(&b), now),
            Some(Ok(Message::Close(frame))) => {
                self.drop_ws();
                g.core.handle_ws_close(frame.map(|f| u16::from(f.code)), now);
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                tracing::info!(error = %e, "voice websocket error");
                self.drop_ws();
                g.core.handle_ws_close(None, now);
            }
            None => {
                self.drop_ws();
                g.core.handle_ws_close(None, now);
            }
        }
    }
}

impl Drop for CallTask {
    /// However the task ends (the call closed, or its runtime dropped it),
    /// the wheel stops watching the call's socket, before the socket
    /// closes, and forgets the task as a user.
    fn drop(&mut self) {
        if let Some(wheel) = &self.io.wheel {
            wheel.remove_receiver(&self.shared);
            wheel.release();
        }
    }
}

/// Sends what was queued and a close frame, and lets the socket go, without
/// holding up the driver.
fn close_in_background(runtime: &Arc<dyn Runtime>, mut ws: WsStream, queued: VecDeque<Message>, code: u16) {
    use futures_util::SinkExt;
    let rt = runtime.clone();
    runtime.spawn(Box::pin(async move {
        let frame = CloseFrame { code: code.into(), reason: "".into() };
        let _ = timeout(&*rt, Duration::from_secs(2), async {
            for m in queued {
                ws.feed(m).await?;
            }
            ws.close(Some(frame)).await?;
            // The websocket's close flushes only: TLS's close_notify and
            // TCP's FIN come from closing the stream itself.
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut **ws.get_mut()).poll_close(cx)).await?;
            Ok::<(), tungstenite::Error>(())
        })
        .await;
    }));
}

/// Records that the websocket's socket signalled, and wakes the call's
/// task through the waker it registered with the call's shared state.
#[derive(Debug)]
struct Gate {
    ready: AtomicBool,
    call: Arc<CallShared>,
}

impl Wake for Gate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.store(true, Ordering::Release);
        self.call.wake_task();
    }
}
