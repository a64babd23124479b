//! A NAT on loopback, for the matrix's rebind row: clients send to its
//! front address (which the server announces in Ready), and it forwards
//! each client's flow to the server from an outbound socket of that flow's
//! own, as a NAT maps a private address to a public port. A rebind gives a
//! flow a new outbound port: the server sees the client's datagrams come
//! from a new address, and what it still sends to the old one is lost.
//!
//! Plain blocking sockets on threads of their own, so it works beside any
//! runtime under test; each thread looks at a stop flag every 50 ms.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use voice_rtp::{DatagramKind, classify};

const POLL: Duration = Duration::from_millis(50);

/// One client's mapping.
struct Flow {
    client: SocketAddr,
    out: Arc<UdpSocket>,
    /// It has carried RTP: the client sends audio.
    sends_audio: bool,
}

struct Shared {
    front: UdpSocket,
    server: SocketAddr,
    flows: Mutex<Vec<Flow>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    stop: AtomicBool,
}

/// The NAT; stops its threads when dropped.
pub struct Nat {
    shared: Arc<Shared>,
}

impl Nat {
    /// A NAT in front of the server's UDP address `server`.
    pub fn start(server: SocketAddr) -> Nat {
        let front = UdpSocket::bind("127.0.0.1:0").expect("nat front");
        front.set_read_timeout(Some(POLL)).expect("timeout");
        let shared = Arc::new(Shared {
            front,
            server,
            flows: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let front_thread = std::thread::spawn(move || outbound(&s));
        shared.threads.lock().unwrap_or_else(PoisonError::into_inner).push(front_thread);
        Nat { shared }
    }

    /// Where clients send.
    pub fn addr(&self) -> SocketAddr {
        self.shared.front.local_addr().expect("nat address")
    }

    /// Gives every flow that carried audio a new outbound port; returns how
    /// many were rebound.
    pub fn rebind_senders(&self) -> usize {
        let mut flows = self.shared.flows.lock().unwrap_or_else(PoisonError::into_inner);
        let mut n = 0;
        for flow in flows.iter_mut().filter(|f| f.sends_audio) {
            flow.out = new_mapping(&self.shared, flow.client);
            n += 1;
        }
        n
    }
}

impl Drop for Nat {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let threads = std::mem::take(&mut *self.shared.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Client to server: each client's datagrams leave from its flow's socket.
fn outbound(s: &Arc<Shared>) {
    let mut buf = [0u8; 2048];
    while !s.stop.load(Ordering::Relaxed) {
        let Ok((n, client)) = s.front.recv_from(&mut buf) else { continue };
        let out = {
            let mut flows = s.flows.lock().unwrap_or_else(PoisonError::into_inner);
            let i = match flows.iter().position(|f| f.client == client) {
                Some(i) => i,
                None => {
                    let out = new_mapping(s, client);
                    flows.push(Flow { client, out, sends_audio: false });
                    flows.len() - 1
                }
            };
            flows[i].sends_audio |= classify(&buf[..n]) == DatagramKind::Rtp;
            flows[i].out.clone()
        };
        let _ = out.send_to(&buf[..n], s.server);
    }
}

/// A new outbound socket for `client`, with the thread that hands what the
/// server sends to it back to the client, for as long as it is the flow's.
fn new_mapping(s: &Arc<Shared>, client: SocketAddr) -> Arc<UdpSocket> {
    let out = UdpSocket::bind("127.0.0.1:0").expect("nat mapping");
    out.set_read_timeout(Some(POLL)).expect("timeout");
    let out = Arc::new(out);
    let (shared, mine) = (s.clone(), out.clone());
    let thread = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !shared.stop.load(Ordering::Relaxed) {
            let current = {
                let flows = shared.flows.lock().unwrap_or_else(PoisonError::into_inner);
                // Not yet listed (the first datagram is on its way) counts.
                flows.iter().find(|f| f.client == client).is_none_or(|f| Arc::ptr_eq(&f.out, &mine))
            };
            let Ok(n) = mine.recv(&mut buf) else {
                if current {
                    continue;
                }
                // Replaced and drained: the mapping is gone.
                return;
            };
            if current {
                let _ = shared.front.send_to(&buf[..n], client);
            }
        }
    });
    s.threads.lock().unwrap_or_else(PoisonError::into_inner).push(thread);
    out
}
