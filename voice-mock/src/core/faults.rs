//! Faults to inject: scripted closes, websockets cut or stalled, withheld
//! heartbeat ACKs, refused resumes, unanswered IP discovery, loss / delay /
//! reordering of the datagrams the server sends, and DAVE faults (corrupt welcomes and commits, late or missed
//! executions).

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use voice_proto::wire::Snowflake;

use super::ConnId;

/// A fault to inject with [`crate::MockServer::inject`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Fault {
    /// Close the user's websocket(s) with `code`, now or `after` a delay.
    /// 4015 and codes below 4000 (and 4009) leave the session resumable;
    /// other codes end it.
    CloseUser {
        /// The user.
        user: Snowflake,
        /// The close code.
        code: u16,
        /// Delay before closing; `None` closes now.
        after: Option<Duration>,
    },
    /// Close every session once, `after` it identified, with `code`
    /// (the command line's `--fault close:CODE:AFTER_SECS`). Applies to
    /// sessions that identify from now on.
    CloseEach {
        /// The close code.
        code: u16,
        /// Time from Identify to the close.
        after: Duration,
    },
    /// Stop answering heartbeats (of one user, or of everyone when `None`).
    /// Heartbeats still keep the connection from timing out.
    StopHeartbeatAcks {
        /// The user, or all users.
        user: Option<Snowflake>,
    },
    /// Answer heartbeats again (one user, or everyone and clear all).
    ResumeHeartbeatAcks {
        /// The user, or all users.
        user: Option<Snowflake>,
    },
    /// Impair the media datagrams the server forwards: drop a share,
    /// hold back a share until the next packet to the same client has gone
    /// (reorder), and delay all by a fixed time. Zeroes turn it off.
    UdpLoss {
        /// Share dropped, 0.0..=1.0.
        drop: f64,
        /// Share reordered, 0.0..=1.0.
        reorder: f64,
        /// Added delay.
        delay: Duration,
    },
    /// Refuse every Resume with 4006 (`true`) or accept them again.
    RefuseResumes(bool),
    /// Flip a byte of the next DAVE Welcome (op 30) sent to `user`, or to
    /// anyone when `None`. The client cannot join and recovers (op 31, a
    /// new key package); the server removes and re-adds it.
    DaveCorruptWelcome {
        /// The receiver, or the first one.
        user: Option<Snowflake>,
    },
    /// Flip a byte of the next commit announced (op 29) to `user`, or to
    /// anyone when `None`.
    DaveCorruptCommit {
        /// The receiver, or the first one.
        user: Option<Snowflake>,
    },
    /// Send op 22 this long after a transition is ready (or timed out);
    /// zero turns it off.
    DaveDelayExecute(Duration),
    /// Ignore `user`'s op 23 (transition ready), so that its transitions
    /// run into the execute timeout.
    DaveDropTransitionReady {
        /// The member.
        user: Snowflake,
    },
    /// Drop the user's websocket(s) without a close frame, as a failing
    /// network does: the client sees an abnormal closure, and the session
    /// stays resumable.
    CutUser {
        /// The user.
        user: Snowflake,
    },
    /// The user's websocket(s) open now go silent both ways for
    /// `duration`, as a stalled TCP path does: frames from them are lost
    /// (heartbeats too, so the server may end them with 4009) and frames
    /// to them are not sent. Connections opened later are not affected.
    StallUser {
        /// The user.
        user: Snowflake,
        /// How long the connections stay silent.
        duration: Duration,
    },
    /// Answer none of the next `count` IP discovery requests, whoever sends
    /// them (`u32::MAX`: none at all; zero turns it off). They are counted
    /// in [`crate::ServerStats::discoveries_ignored`].
    IgnoreDiscovery {
        /// Requests to leave unanswered.
        count: u32,
    },
}

/// One-shot corruptions waiting, at most this many of each kind.
const MAX_CORRUPTIONS: usize = 64;

/// DAVE fault settings in force.
#[derive(Debug, Default)]
pub(crate) struct DaveFaults {
    corrupt_welcome: Vec<Option<Snowflake>>,
    corrupt_commit: Vec<Option<Snowflake>>,
    pub(crate) execute_delay: Duration,
    pub(crate) drop_ready: BTreeSet<Snowflake>,
}

impl DaveFaults {
    fn arm(list: &mut Vec<Option<Snowflake>>, user: Option<Snowflake>) {
        if list.len() < MAX_CORRUPTIONS {
            list.push(user);
        }
    }

    /// Whether the next op 29 (`commit`) or op 30 to `user` is corrupted
    /// (the fault is used up).
    pub(crate) fn take_corruption(&mut self, commit: bool, user: Snowflake) -> bool {
        let list = if commit { &mut self.corrupt_commit } else { &mut self.corrupt_welcome };
        match list.iter().position(|u| u.is_none_or(|u| u == user)) {
            Some(i) => {
                list.remove(i);
                true
            }
            None => false,
        }
    }

    /// Applies one of the DAVE faults (any other fault does nothing here).
    pub(crate) fn inject(&mut self, fault: Fault) {
        match fault {
            Fault::DaveCorruptWelcome { user } => Self::arm(&mut self.corrupt_welcome, user),
            Fault::DaveCorruptCommit { user } => Self::arm(&mut self.corrupt_commit, user),
            Fault::DaveDelayExecute(d) => self.execute_delay = d,
            Fault::DaveDropTransitionReady { user } => {
                self.drop_ready.insert(user);
            }
            _ => {}
        }
    }
}

/// Fault settings in force.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    pub(crate) acks_stopped_all: bool,
    pub(crate) acks_stopped: BTreeSet<Snowflake>,
    pub(crate) refuse_resumes: bool,
    pub(crate) close_each: Option<(u16, Duration)>,
    /// (when, user, code), kept sorted by insertion; scanned on timeouts.
    pub(crate) scheduled: Vec<(Instant, Snowflake, u16)>,
    pub(crate) udp: UdpImpairment,
    pub(crate) dave: DaveFaults,
    /// IP discovery requests still to leave unanswered.
    pub(crate) ignore_discovery: u32,
    /// Websockets silent until then (at most [`MAX_STALLED`]).
    pub(crate) stalled: Vec<(ConnId, Instant)>,
}

/// Stalled websockets remembered at once.
pub(crate) const MAX_STALLED: usize = 256;

impl FaultState {
    /// Whether `conn` is silent at `now`.
    pub(crate) fn stalled(&self, conn: ConnId, now: Instant) -> bool {
        self.stalled.iter().any(|&(c, until)| c == conn && now < until)
    }

    pub(crate) fn acks_stopped(&self, user: Snowflake) -> bool {
        self.acks_stopped_all || self.acks_stopped.contains(&user)
    }

    pub(crate) fn next_scheduled(&self) -> Option<Instant> {
        self.scheduled.iter().map(|s| s.0).min()
    }

    /// Removes and returns the closes due at `now`.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<(Snowflake, u16)> {
        let mut due = Vec::new();
        self.scheduled.retain(|&(at, user, code)| {
            if at <= now {
                due.push((user, code));
                false
            } else {
                true
            }
        });
        due
    }
}

/// What the impairment decided for one datagram.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Send these now (the datagram, possibly preceded or followed by one
    /// held back earlier).
    Send(Vec<(SocketAddr, Vec<u8>)>),
    /// Dropped.
    Dropped,
    /// Held (delayed or reordered): released by `release_due`.
    Held,
}

/// Seeded loss, delay and reordering of outgoing datagrams.
#[derive(Debug)]
pub(crate) struct UdpImpairment {
    drop: f64,
    reorder: f64,
    delay: Duration,
    rng: fastrand::Rng,
    /// Datagrams waiting for their delay, in release order.
    delayed: VecDeque<(Instant, SocketAddr, Vec<u8>)>,
    /// Per destination, one datagram held back to go after the next.
    held: Vec<(Instant, SocketAddr, Vec<u8>)>,
    cap: usize,
    pub(crate) dropped: u64,
    pub(crate) delayed_count: u64,
    pub(crate) reordered: u64,
    pub(crate) overflow: u64,
}

/// How long a reordered datagram waits for a successor before it goes alone.
const REORDER_HOLD: Duration = Duration::from_millis(100);

impl Default for UdpImpairment {
    fn default() -> Self {
        UdpImpairment::new(0, 4096)
    }
}

impl UdpImpairment {
    pub(crate) fn new(seed: u64, cap: usize) -> Self {
        UdpImpairment {
            drop: 0.0,
            reorder: 0.0,
            delay: Duration::ZERO,
            rng: fastrand::Rng::with_seed(seed ^ 0x0fau64.rotate_left(40)),
            delayed: VecDeque::new(),
            held: Vec::new(),
            cap,
            dropped: 0,
            delayed_count: 0,
            reordered: 0,
            overflow: 0,
        }
    }

    pub(crate) fn set(&mut self, drop: f64, reorder: f64, delay: Duration) {
        let clamp = |p: f64| if p.is_finite() { p.clamp(0.0, 1.0) } else { 0.0 };
        self.drop = clamp(drop);
        self.reorder = clamp(reorder);
        self.delay = delay;
    }

    pub(crate) fn is_active(&self) -> bool {
        self.drop > 0.0 || self.reorder > 0.0 || !self.delay.is_zero()
    }

    pub(crate) fn queued(&self) -> usize {
        self.delayed.len() + self.held.len()
    }

    /// Decides the fate of one datagram to `to`.
    pub(crate) fn process(&mut self, to: SocketAddr, bytes: Vec<u8>, now: Instant) -> Verdict {
        if !self.is_active() && self.queued() == 0 {
            return Verdict::Send(vec![(to, bytes)]);
        }
        // Draw both numbers always, so that counts depend only on the seed
        // and the number of datagrams.
        let (d, r) = (self.rng.f64(), self.rng.f64());
        if d < self.drop {
            self.dropped += 1;
            return Verdict::Dropped;
        }
        if self.queued() >= self.cap {
            self.overflow += 1;
            return Verdict::Dropped;
        }
        let previous = self.held.iter().position(|h| h.1 == to).map(|i| self.held.swap_remove(i));
        if previous.is_none() && r < self.reorder {
            self.reordered += 1;
            self.held.push((now + REORDER_HOLD, to, bytes));
            return Verdict::Held;
        }
        let mut out = vec![(to, bytes)];
        out.extend(previous.map(|(_, a, b)| (a, b)));
        if self.delay.is_zero() {
            return Verdict::Send(out);
        }
        self.delayed_count += out.len() as u64;
        for (a, b) in out {
            self.delayed.push_back((now + self.delay, a, b));
        }
        Verdict::Held
    }

    /// Datagrams whose time has come.
    pub(crate) fn release_due(&mut self, now: Instant) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].0 <= now {
                let (_, a, b) = self.held.swap_remove(i);
                if self.delay.is_zero() {
                    out.push((a, b));
                } else {
                    self.delayed.push_back((now + self.delay, a, b));
                }
            } else {
                i += 1;
            }
        }
        while self.delayed.front().is_some_and(|d| d.0 <= now) {
            if let Some((_, a, b)) = self.delayed.pop_front() {
                out.push((a, b));
            }
        }
        out
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let h = self.held.iter().map(|h| h.0).min();
        let d = self.delayed.front().map(|d| d.0);
        match (h, d) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    #[test]
    fn passes_through_when_off() {
        let mut u = UdpImpairment::new(1, 10);
        let now = Instant::now();
        assert_eq!(u.process(addr(1), vec![1], now), Verdict::Send(vec![(addr(1), vec![1])]));
    }

    #[test]
    fn drop_share_is_seeded() {
        let count = |seed| {
            let mut u = UdpImpairment::new(seed, 10);
            u.set(0.25, 0.0, Duration::ZERO);
            let now = Instant::now();
            (0..1000).filter(|_| u.process(addr(1), vec![0], now) == Verdict::Dropped).count()
        };
        let a = count(7);
        assert_eq!(a, count(7));
        assert!((180..320).contains(&a), "{a}");
    }

    #[test]
    fn reorder_swaps_with_next_and_delay_holds() {
        let mut u = UdpImpairment::new(3, 10);
        u.set(0.0, 1.0, Duration::ZERO);
        let now = Instant::now();
        assert_eq!(u.process(addr(1), vec![1], now), Verdict::Held);
        assert_eq!(u.process(addr(1), vec![2], now), Verdict::Send(vec![(addr(1), vec![2]), (addr(1), vec![1])]));
        u.set(0.0, 0.0, Duration::from_millis(50));
        assert_eq!(u.process(addr(1), vec![3], now), Verdict::Held);
        assert!(u.release_due(now).is_empty());
        assert_eq!(u.next_deadline(), Some(now + Duration::from_millis(50)));
        assert_eq!(u.release_due(now + Duration::from_millis(50)), vec![(addr(1), vec![3])]);
    }
}

/// A `--fault` argument that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad fault `{spec}`: {reason}")]
pub struct FaultParseError {
    /// The argument.
    pub spec: String,
    /// What was wrong.
    pub reason: &'static str,
}

impl Fault {
    /// Reads command-line fault specs (see the binary's `--help`) into
    /// faults; the `udp-*` specs combine into one [`Fault::UdpLoss`].
    ///
    /// * `close:CODE:AFTER_SECS`: close each session with CODE, AFTER_SECS
    ///   (fractional) after it identified.
    /// * `close-user:USER_ID:CODE[:AFTER_SECS]`: close one user.
    /// * `no-heartbeat-ack`: never answer heartbeats.
    /// * `udp-drop:P`, `udp-reorder:P` (shares 0..1), `udp-delay-ms:MS`.
    /// * `refuse-resume`: answer every Resume with 4006.
    /// * `cut-user:USER_ID`: drop that user's websockets without a close frame.
    /// * `stall-user:USER_ID:SECS`: that user's websockets go silent for SECS.
    /// * `ignore-discovery:N`: answer none of the next N IP discovery requests.
    /// * `dave-corrupt-welcome[:USER_ID]`, `dave-corrupt-commit[:USER_ID]`:
    ///   corrupt the next op 30 / op 29 (to that user).
    /// * `dave-delay-execute-ms:MS`: send op 22 MS after readiness.
    /// * `dave-drop-ready:USER_ID`: ignore that user's op 23.
    pub fn parse_specs<S: AsRef<str>>(specs: &[S]) -> Result<Vec<Fault>, FaultParseError> {
        let mut out = Vec::new();
        let (mut drop, mut reorder, mut delay, mut udp) = (0.0, 0.0, Duration::ZERO, false);
        for spec in specs {
            let spec = spec.as_ref();
            let err = |reason| FaultParseError { spec: spec.to_owned(), reason };
            let parts: Vec<&str> = spec.split(':').collect();
            let share = |s: &str| match s.parse::<f64>() {
                Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
                _ => Err(err("expected a share between 0 and 1")),
            };
            let secs = |s: &str| match s.parse::<f64>() {
                Ok(x) if x.is_finite() && (0.0..1.0e9).contains(&x) => Ok(Duration::from_secs_f64(x)),
                _ => Err(err("expected seconds")),
            };
            let code =
                |s: &str| s.parse::<u16>().ok().filter(|c| *c >= 1000).ok_or_else(|| err("expected a close code"));
            let millis = |s: &str| {
                s.parse::<u64>()
                    .ok()
                    .filter(|m| *m <= 60_000)
                    .map(Duration::from_millis)
                    .ok_or_else(|| err("expected milliseconds"))
            };
            match parts.as_slice() {
                ["close", c, after] => out.push(Fault::CloseEach { code: code(c)?, after: secs(after)? }),
                ["close-user", u, c] | ["close-user", u, c, ..] if parts.len() <= 4 => {
                    let user = u.parse().map_err(|_| err("expected a user id"))?;
                    let after = parts.get(3).map(|a| secs(a)).transpose()?;
                    out.push(Fault::CloseUser { user, code: code(c)?, after });
                }
                ["no-heartbeat-ack"] => out.push(Fault::StopHeartbeatAcks { user: None }),
                ["refuse-resume"] => out.push(Fault::RefuseResumes(true)),
                ["cut-user", u] => out.push(Fault::CutUser { user: u.parse().map_err(|_| err("expected a user id"))? }),
                ["stall-user", u, after] => {
                    let user = u.parse().map_err(|_| err("expected a user id"))?;
                    out.push(Fault::StallUser { user, duration: secs(after)? });
                }
                ["ignore-discovery", n] => {
                    let count = n.parse().map_err(|_| err("expected a number of requests"))?;
                    out.push(Fault::IgnoreDiscovery { count });
                }
                ["dave-corrupt-welcome", rest @ ..] | ["dave-corrupt-commit", rest @ ..] if rest.len() <= 1 => {
                    let user = rest.first().map(|u| u.parse().map_err(|_| err("expected a user id"))).transpose()?;
                    out.push(if parts[0] == "dave-corrupt-welcome" {
                        Fault::DaveCorruptWelcome { user }
                    } else {
                        Fault::DaveCorruptCommit { user }
                    });
                }
                ["dave-delay-execute-ms", ms] => out.push(Fault::DaveDelayExecute(millis(ms)?)),
                ["dave-drop-ready", u] => {
                    out.push(Fault::DaveDropTransitionReady { user: u.parse().map_err(|_| err("expected a user id"))? })
                }
                ["udp-drop", p] => (drop, udp) = (share(p)?, true),
                ["udp-reorder", p] => (reorder, udp) = (share(p)?, true),
                ["udp-delay-ms", ms] => (delay, udp) = (millis(ms)?, true),
                _ => return Err(err("unknown fault")),
            }
        }
        if udp {
            out.push(Fault::UdpLoss { drop, reorder, delay });
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod parse_tests {
    use super::*;

    #[test]
    fn parses_cli_specs() {
        let f =
            Fault::parse_specs(&["close:4015:2.5", "no-heartbeat-ack", "udp-drop:0.05", "udp-delay-ms:50"]).unwrap();
        assert_eq!(f[0], Fault::CloseEach { code: 4015, after: Duration::from_millis(2500) });
        assert_eq!(f[1], Fault::StopHeartbeatAcks { user: None });
        assert_eq!(f[2], Fault::UdpLoss { drop: 0.05, reorder: 0.0, delay: Duration::from_millis(50) });
        assert_eq!(
            Fault::parse_specs(&["close-user:7:4014"]).unwrap(),
            vec![Fault::CloseUser { user: Snowflake(7), code: 4014, after: None }]
        );
        assert!(Fault::parse_specs(&["udp-drop:2"]).is_err());
        assert!(Fault::parse_specs(&["bogus"]).is_err());
        assert!(Fault::parse_specs(&["close:12:1"]).is_err());
        assert_eq!(
            Fault::parse_specs(&[
                "dave-corrupt-welcome",
                "dave-corrupt-commit:9",
                "dave-delay-execute-ms:250",
                "dave-drop-ready:8"
            ])
            .unwrap(),
            vec![
                Fault::DaveCorruptWelcome { user: None },
                Fault::DaveCorruptCommit { user: Some(Snowflake(9)) },
                Fault::DaveDelayExecute(Duration::from_millis(250)),
                Fault::DaveDropTransitionReady { user: Snowflake(8) },
            ]
        );
        assert_eq!(Fault::parse_specs(&["ignore-discovery:3"]).unwrap(), vec![Fault::IgnoreDiscovery { count: 3 }]);
        assert!(Fault::parse_specs(&["ignore-discovery:-1"]).is_err());
        assert_eq!(
            Fault::parse_specs(&["cut-user:4", "stall-user:5:2.5"]).unwrap(),
            vec![
                Fault::CutUser { user: Snowflake(4) },
                Fault::StallUser { user: Snowflake(5), duration: Duration::from_millis(2500) }
            ]
        );
        assert!(Fault::parse_specs(&["dave-drop-ready"]).is_err());
        assert!(Fault::parse_specs(&["dave-corrupt-commit:x"]).is_err());
    }

    #[test]
    fn corruptions_are_one_shot_and_per_user() {
        let mut d = DaveFaults::default();
        d.inject(Fault::DaveCorruptWelcome { user: Some(Snowflake(2)) });
        d.inject(Fault::DaveCorruptCommit { user: None });
        assert!(!d.take_corruption(false, Snowflake(1)));
        assert!(d.take_corruption(false, Snowflake(2)));
        assert!(!d.take_corruption(false, Snowflake(2)));
        assert!(d.take_corruption(true, Snowflake(5)));
        assert!(!d.take_corruption(true, Snowflake(5)));
    }
}
