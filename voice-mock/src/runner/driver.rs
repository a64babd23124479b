//! The driver task: feeds the core one input at a time, drains its outputs
//! to the connection tasks and the UDP socket, and keeps its one timer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc, watch};

use super::log::Log;
use super::{ConnInput, Datagram, Out, Shared};
use crate::{ConnId, MockServer, ServerOutput};

/// Inputs handled per wake before the driver drains and yields.
const BUDGET: usize = 64;

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// What the periodic counts line shows.
fn counts(core: &MockServer) -> (crate::ServerStats, Vec<crate::DaveRoomInfo>) {
    (core.stats(), core.dave_rooms())
}

struct Route {
    tx: mpsc::Sender<Out>,
    kill: Arc<Notify>,
}

pub(crate) struct Driver {
    pub(crate) shared: Arc<Shared>,
    pub(crate) conn_rx: mpsc::Receiver<ConnInput>,
    pub(crate) udp_rx: mpsc::Receiver<Datagram>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) log: Option<Log>,
    routes: HashMap<ConnId, Route>,
}

impl Driver {
    pub(crate) fn new(
        shared: Arc<Shared>,
        conn_rx: mpsc::Receiver<ConnInput>,
        udp_rx: mpsc::Receiver<Datagram>,
        shutdown: watch::Receiver<bool>,
        log: Option<Log>,
    ) -> Self {
        Driver { shared, conn_rx, udp_rx, shutdown, log, routes: HashMap::new() }
    }

    pub(crate) async fn run(mut self) {
        loop {
            let mut deadline = self.drain();
            if let Some(log) = &mut self.log {
                log.flush();
                deadline = Some(deadline.map_or(log.next_counts, |d| d.min(log.next_counts)));
            }
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                    None => std::future::pending().await,
                }
            };
            let shared = self.shared.clone();
            tokio::select! {
                biased;
                _ = self.shutdown.changed() => break,
                input = self.conn_rx.recv() => match input {
                    Some(i) => {
                        self.conn_input(i);
                        for _ in 1..BUDGET {
                            match self.conn_rx.try_recv() {
                                Ok(i) => self.conn_input(i),
                                Err(_) => break,
                            }
                        }
                    }
                    None => break,
                },
                d = self.udp_rx.recv() => match d {
                    Some(d) => {
                        self.datagram(d);
                        for _ in 1..BUDGET {
                            match self.udp_rx.try_recv() {
                                Ok(d) => self.datagram(d),
                                Err(_) => break,
                            }
                        }
                    }
                    None => break,
                },
                _ = shared.notify.notified() => {}
                _ = sleep => {}
            }
            // Runtime timers may fire late or spuriously: compare with now.
            let now = now();
            if deadline.is_some_and(|d| d <= now) {
                self.shared.core().handle_timeout(now);
                if let Some(log) = &mut self.log
                    && log.next_counts <= now
                {
                    let (stats, rooms) = counts(&self.shared.core());
                    log.counts(now, &stats, &rooms);
                }
            }
        }
        self.drain();
        if let Some(log) = &mut self.log {
            let (stats, rooms) = counts(&self.shared.core());
            log.counts(now(), &stats, &rooms);
            log.flush();
        }
    }

    fn conn_input(&mut self, input: ConnInput) {
        let now = now();
        match input {
            ConnInput::Open { version, tx, kill, reply } => {
                let conn = self.shared.core().accept(version, now);
                self.routes.insert(conn, Route { tx, kill });
                let _ = reply.send(conn);
            }
            ConnInput::Frame { conn, frame } => {
                let user = {
                    let mut core = self.shared.core();
                    core.handle_ws_message(conn, frame.as_message(), now);
                    core.conn_user(conn)
                };
                if let Some(log) = &mut self.log {
                    log.frame(now, "in", conn, user, &frame);
                }
            }
            ConnInput::Closed { conn, code } => {
                self.routes.remove(&conn);
                self.shared.core().handle_ws_close(conn, code, now);
            }
        }
    }

    fn datagram(&mut self, d: Datagram) {
        self.shared.core().handle_datagram(d.from, &d.bytes, now());
    }

    fn track_queue(&self, tx: &mpsc::Sender<Out>) {
        let used = tx.max_capacity() - tx.capacity();
        self.shared.counters.conn_queue_peak.fetch_max(used, Ordering::Relaxed);
    }

    /// Routes every output; returns the core's next deadline.
    fn drain(&mut self) -> Option<Instant> {
        let shared = self.shared.clone();
        let mut core = shared.core();
        let now = now();
        if let Some(sink) = shared.sink.as_deref() {
            // Before the frames that tell a client its key go out.
            let routes = core.take_sink_routes();
            if !routes.is_empty() {
                let mut table = super::lock_sink(sink);
                for (ssrc, route) in routes {
                    table.apply(ssrc, route);
                }
            }
        }
        loop {
            match core.poll_output() {
                ServerOutput::Timeout(t) => return t,
                ServerOutput::WsSend { conn, frame } => {
                    if let Some(log) = &mut self.log {
                        log.frame(now, "out", conn, core.conn_user(conn), &frame);
                    }
                    let Some(route) = self.routes.get(&conn) else { continue };
                    match route.tx.try_send(Out::Ws(frame)) {
                        Ok(()) => self.track_queue(&route.tx),
                        Err(TrySendError::Full(_)) => {
                            // The client does not read: it loses its socket.
                            shared.counters.ws_queue_full.fetch_add(1, Ordering::Relaxed);
                            route.kill.notify_one();
                            self.routes.remove(&conn);
                            core.handle_ws_close(conn, Some(1008), now);
                        }
                        Err(TrySendError::Closed(_)) => {
                            self.routes.remove(&conn);
                        }
                    }
                }
                ServerOutput::WsClose { conn, code } => {
                    if let Some(log) = &mut self.log {
                        log.close(now, conn, code);
                    }
                    if let Some(route) = self.routes.remove(&conn)
                        && route.tx.try_send(Out::Close(code)).is_err()
                    {
                        route.kill.notify_one();
                    }
                }
                ServerOutput::WsCut { conn } => {
                    if let Some(log) = &mut self.log {
                        log.cut(now, conn);
                    }
                    // The connection task drops the socket, no close frame.
                    if let Some(route) = self.routes.remove(&conn) {
                        route.kill.notify_one();
                    }
                }
                ServerOutput::Transmit { to, bytes } => self.transmit(&core, to, bytes),
                ServerOutput::Event(e) => {
                    tracing::debug!(event = ?e, "voice-mock");
                    if let Some(log) = &mut self.log {
                        log.event(now, &e);
                    }
                }
            }
        }
    }

    fn transmit(&self, core: &MockServer, to: SocketAddr, bytes: Vec<u8>) {
        let counters = &self.shared.counters;
        if let Some(route) = core.conn_for_addr(to).and_then(|c| self.routes.get(&c)) {
            // In order behind the frames already queued for this client.
            match route.tx.try_send(Out::Udp(to, bytes)) {
                Ok(()) => self.track_queue(&route.tx),
                Err(_) => {
                    counters.udp_queue_drops.fetch_add(1, Ordering::Relaxed);
                }
            }
        } else if self.shared.udp.try_send_to(&bytes, to).is_err() {
            counters.udp_send_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}
