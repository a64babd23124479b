//! The UDP port: every datagram goes to the driver over a bounded channel,
//! except, in sink mode, the RTP that the sink counts and drops itself.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::arrival::Arrivals;
use super::sink::{SinkTable, Verdict};
use super::{Counters, Datagram, lock_sink};

/// Datagrams read per wake-up before the loop looks at shutdown again.
const BURST: usize = 256;

/// Receives datagrams until shutdown. When the driver falls behind the
/// channel fills and datagrams are dropped (and counted) here, so a flood
/// costs bounded memory. Each wake-up reads what the socket holds (up to
/// [`BURST`]) in a row: a burst of a thousand calls' packets costs one
/// wake-up, not one each.
pub(crate) async fn recv_loop(
    udp: Arc<UdpSocket>,
    tx: mpsc::Sender<Datagram>,
    counters: Arc<Counters>,
    mut shutdown: watch::Receiver<bool>,
    max_len: usize,
    sink: Option<Arc<Mutex<SinkTable>>>,
) {
    let mut buf = vec![0u8; max_len + 1];
    // The sink's gaps are timed by the kernel's arrival stamps.
    let arrivals = sink.as_ref().map(|_| Arrivals::new(&udp));
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            r = udp.readable() => if let Err(e) = r {
                // The reactor is gone: so is the runtime.
                tracing::debug!(error = %e, "udp readiness error");
                return;
            },
        }
        for _ in 0..BURST {
            let read = match &arrivals {
                Some(a) => a.try_recv(&udp, &mut buf).map(|(n, from, at)| (n, from, Some(at))),
                None => udp.try_recv_from(&mut buf).map(|(n, from)| (n, from, None)),
            };
            let (n, from, arrived) = match read {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // ICMP errors surface here on some systems; keep serving.
                Err(e) => {
                    tracing::trace!(error = %e, "udp receive error");
                    continue;
                }
            };
            if let Some(sink) = &sink {
                let now = arrived.unwrap_or_else(|| tokio::time::Instant::now().into_std());
                if lock_sink(sink).receive(&buf[..n], now) == Verdict::Done {
                    continue;
                }
            }
            let d = Datagram { from, bytes: buf[..n].to_vec() };
            match tx.try_send(d) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    counters.datagrams_dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    }
}
