//! The voice websocket session as the connection tracks it: whether a
//! socket is opening or open (and for a resume or an identify), its
//! heartbeat, and the last sequence number seen (what Resume and each
//! heartbeat acknowledge, PROTOCOL.md §2.6).
//!
//! Inputs: the socket's lifecycle (`open`, `opened`, `close`), the
//! sequence numbers of received frames, Hello, heartbeat ACKs and the
//! heartbeat timer. Outputs: verdicts the connection acts on (send a beat,
//! the socket is a zombie, the next deadline).

use std::time::{Duration, Instant};

use crate::heartbeat::{Beat, Heartbeat};

/// How the websocket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ws {
    Closed,
    Opening { resume: bool },
    Open { resume: bool },
}

/// What the heartbeat timer asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeartbeatDue {
    /// Send a heartbeat with this nonce and sequence acknowledgement; the
    /// next deadline is `next`.
    Send { nonce: u64, seq_ack: Option<i64>, next: Instant },
    /// The last heartbeat went unacknowledged: the socket is dead.
    Zombie,
    /// Nothing yet; look again at `next`.
    Wait { next: Instant },
}

/// The websocket session.
#[derive(Debug)]
pub(crate) struct Session {
    ws: Ws,
    heartbeat: Option<Heartbeat>,
    last_seq: Option<i64>,
}

impl Session {
    pub(crate) fn new() -> Self {
        Session { ws: Ws::Closed, heartbeat: None, last_seq: None }
    }

    /// No socket is opening or open.
    pub(crate) fn is_closed(&self) -> bool {
        self.ws == Ws::Closed
    }

    /// A socket is open (messages may be read from it).
    pub(crate) fn is_open(&self) -> bool {
        matches!(self.ws, Ws::Open { .. })
    }

    /// The socket being opened, or open, resumes rather than identifies.
    pub(crate) fn is_resuming(&self) -> bool {
        matches!(self.ws, Ws::Opening { resume: true } | Ws::Open { resume: true })
    }

    /// A socket was asked for.
    pub(crate) fn open(&mut self, resume: bool) {
        self.ws = Ws::Opening { resume };
    }

    /// The socket asked for opened: whether it resumes, or `None` when no
    /// socket was being opened (nothing to do).
    pub(crate) fn opened(&mut self) -> Option<bool> {
        let Ws::Opening { resume } = self.ws else { return None };
        self.ws = Ws::Open { resume };
        Some(resume)
    }

    /// The socket is gone (closed by either side) and its heartbeat with
    /// it; returns whether there was one.
    pub(crate) fn close(&mut self) -> bool {
        self.heartbeat = None;
        std::mem::replace(&mut self.ws, Ws::Closed) != Ws::Closed
    }

    /// The sequence number to acknowledge (Resume, heartbeats).
    pub(crate) fn seq_ack(&self) -> Option<i64> {
        self.last_seq
    }

    /// A JSON frame carried `seq`.
    pub(crate) fn on_seq(&mut self, seq: i64) {
        self.last_seq = Some(seq);
    }

    /// A binary frame carried the low 16 bits of its sequence number.
    pub(crate) fn on_binary_seq(&mut self, low: u16) {
        self.last_seq = Some(extend_seq(self.last_seq, low));
    }

    /// A new session numbers its frames afresh.
    pub(crate) fn forget_seq(&mut self) {
        self.last_seq = None;
    }

    /// Hello: the heartbeat starts; returns its first deadline.
    pub(crate) fn on_hello(&mut self, interval_ms: f64, now: Instant) -> Instant {
        let hb = Heartbeat::new(interval_ms, now);
        let at = hb.deadline();
        self.heartbeat = Some(hb);
        at
    }

    /// Whether Hello started the heartbeat on this socket.
    pub(crate) fn has_heartbeat(&self) -> bool {
        self.heartbeat.is_some()
    }

    /// A heartbeat ACK: `Some(rtt)` when it acknowledged the beat in
    /// flight, `None` for a stray one.
    pub(crate) fn on_ack(&mut self, nonce: u64, now: Instant) -> Option<Option<Duration>> {
        let hb = self.heartbeat.as_mut()?;
        hb.on_ack(nonce, now).then(|| hb.rtt())
    }

    /// The heartbeat timer fired; `nonce_base` is the wall clock in
    /// milliseconds. `None` without a heartbeat.
    pub(crate) fn on_heartbeat_timer(&mut self, now: Instant, nonce_base: u64) -> Option<HeartbeatDue> {
        let hb = self.heartbeat.as_mut()?;
        Some(match hb.on_timeout(now, nonce_base) {
            Some(Beat::Send(nonce)) => HeartbeatDue::Send { nonce, seq_ack: self.last_seq, next: hb.deadline() },
            Some(Beat::Zombie) => HeartbeatDue::Zombie,
            None => HeartbeatDue::Wait { next: hb.deadline() },
        })
    }
}

/// The full sequence number of a binary frame from its 16-bit prefix: the
/// value nearest the last one seen with those low bits. The server numbers
/// JSON and binary frames from one counter (PROTOCOL.md §2.6; the binary
/// prefix being its low 16 bits is UNCERTAIN, and below 65536 the two
/// readings agree), and messages arrive in order, so the nearest is right.
fn extend_seq(last: Option<i64>, low: u16) -> i64 {
    // A JSON `seq` near the top of i64 leaves no room to extend: keep the
    // nearest value that fits.
    let Some(last) = last.filter(|&l| (0..i64::MAX - 0x2_0000).contains(&l)) else { return i64::from(low) };
    let candidate = (last & !0xFFFF) | i64::from(low);
    if candidate + 0x8000 < last {
        candidate + 0x1_0000
    } else if candidate > last + 0x8000 && candidate >= 0x1_0000 {
        candidate - 0x1_0000
    } else {
        candidate
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests pick an arbitrary start instant
mod tests {
    use super::*;

    #[test]
    fn binary_sequence_numbers_extend_from_the_last_one() {
        assert_eq!(extend_seq(None, 7), 7);
        assert_eq!(extend_seq(Some(6), 7), 7);
        assert_eq!(extend_seq(Some(65_535), 0), 65_536);
        assert_eq!(extend_seq(Some(65_536 + 10), 11), 65_547);
        assert_eq!(extend_seq(Some(65_536 + 2), 65_535), 65_535, "one message late stays below");
        assert_eq!(extend_seq(Some(-1), 3), 3);
        assert_eq!(extend_seq(Some(i64::MAX), 3), 3, "no overflow near the top");
    }

    #[test]
    fn a_socket_opens_once_and_closing_forgets_its_heartbeat() {
        let now = std::time::Instant::now();
        let mut s = Session::new();
        assert_eq!(s.opened(), None, "nothing was asked for");
        s.open(true);
        assert!(s.is_resuming() && !s.is_open());
        assert_eq!(s.opened(), Some(true));
        assert_eq!(s.opened(), None, "already open");
        s.on_hello(1000.0, now);
        assert!(s.has_heartbeat());
        assert!(s.close());
        assert!(!s.has_heartbeat() && s.is_closed());
        assert!(!s.close(), "nothing left to close");
    }
}
