//! [`CallSnapshot`]: everything a dashboard shows about one call, taken at
//! once by [`Call::snapshot`](crate::Call::snapshot).

use std::collections::VecDeque;
use std::time::Duration;

use voice_proto::wire::Snowflake;
use voice_proto::{Event, ReconnectReason, SourceStats};

use crate::call::{CallState, CallStats};

/// Reconnections kept in the history.
const HISTORY: usize = 16;

/// One call, as a dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallSnapshot {
    /// The guild.
    pub guild_id: Snowflake,
    /// State, channel, mode, SSRC, DAVE version and privacy code, connect
    /// failures.
    pub state: CallState,
    /// The voice server (`host:port`) of the session, or the one being
    /// reached.
    pub endpoint: Option<String>,
    /// Round trip of the last acknowledged voice gateway heartbeat.
    pub heartbeat_rtt: Option<Duration>,
    /// Counters: packets and bytes sent and received, drops, DAVE, and
    /// RTCP (reports sent and read, with the server's view of our stream:
    /// loss, jitter, round trip) in `stats.proto.rtcp`.
    pub stats: CallStats,
    /// Every remote user of this session named by the server or heard:
    /// packets, RFC 3550 loss and jitter (zero for one not heard yet).
    pub users: Vec<SourceStats>,
    /// The last reconnections (at most 16), oldest first.
    pub reconnections: Vec<Reconnection>,
}

/// A reconnection: why the connection dropped, and how it came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reconnection {
    /// Why the connection dropped.
    pub reason: ReconnectReason,
    /// Attempts made to come back (1 when the first succeeded).
    pub attempts: u32,
    /// How it ended.
    pub outcome: ReconnectOutcome,
}

/// How a reconnection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReconnectOutcome {
    /// Still under way.
    Pending,
    /// The session was resumed (same keys, no loss beyond the outage).
    Resumed,
    /// A fresh session was established.
    Fresh,
    /// The connection went down for good.
    GaveUp,
}

/// The reconnection history a call keeps, from its events.
#[derive(Debug, Default)]
pub(crate) struct History {
    entries: VecDeque<Reconnection>,
}

impl History {
    pub(crate) fn on_event(&mut self, e: &Event) {
        let outcome = match e {
            Event::Reconnecting { reason } => {
                // A failed attempt of the reconnection under way: one more try.
                if let Some(last) = self.entries.back_mut().filter(|r| r.outcome == ReconnectOutcome::Pending) {
                    last.attempts += 1;
                    return;
                }
                if self.entries.len() == HISTORY {
                    self.entries.pop_front();
                }
                let entry = Reconnection { reason: *reason, attempts: 1, outcome: ReconnectOutcome::Pending };
                self.entries.push_back(entry);
                return;
            }
            Event::Resumed => ReconnectOutcome::Resumed,
            Event::Connected { .. } => ReconnectOutcome::Fresh,
            Event::Disconnected { .. } => ReconnectOutcome::GaveUp,
            _ => return,
        };
        if let Some(last) = self.entries.back_mut().filter(|r| r.outcome == ReconnectOutcome::Pending) {
            last.outcome = outcome;
        }
    }

    pub(crate) fn to_vec(&self) -> Vec<Reconnection> {
        self.entries.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reconnection_ends_with_how_it_came_back_and_the_history_is_bounded() {
        let mut h = History::default();
        h.on_event(&Event::Resumed);
        assert!(h.to_vec().is_empty(), "nothing pending: nothing to settle");
        h.on_event(&Event::Reconnecting { reason: ReconnectReason::Closed(Some(4015)) });
        h.on_event(&Event::Resumed);
        // A zombie connection, then two failed attempts before giving up.
        for _ in 0..3 {
            h.on_event(&Event::Reconnecting { reason: ReconnectReason::ZombieConnection });
        }
        let v = h.to_vec();
        let resumed = Reconnection {
            reason: ReconnectReason::Closed(Some(4015)),
            attempts: 1,
            outcome: ReconnectOutcome::Resumed,
        };
        assert_eq!(v[0], resumed);
        assert_eq!((v.len(), v[1].attempts, v[1].outcome), (2, 3, ReconnectOutcome::Pending));
        h.on_event(&Event::Disconnected { reason: voice_proto::DisconnectReason::ReconnectFailed });
        assert_eq!(h.to_vec()[1].outcome, ReconnectOutcome::GaveUp);
        for _ in 0..40 {
            h.on_event(&Event::Reconnecting { reason: ReconnectReason::DiscoveryTimeout });
            h.on_event(&Event::Resumed);
        }
        assert_eq!(h.to_vec().len(), HISTORY);
    }
}
