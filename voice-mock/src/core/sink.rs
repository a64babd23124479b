//! What the runner's UDP sink needs from the core: for each session's SSRC,
//! the cipher that opens its packets and whether its room has anyone to
//! forward them to. The core only remembers which SSRCs changed; the
//! runner asks for their routes after each input.

use std::collections::BTreeSet;

use voice_rtp::Cipher;

use super::MockServer;
use super::session::SessionKey;

/// How the sink treats one SSRC's RTP.
#[derive(Debug)]
pub(crate) struct SinkRoute {
    /// Opens the session's packets; `None` before Select Protocol (its
    /// packets go to the core, which counts them as before the session).
    pub(crate) cipher: Option<Cipher>,
    /// Whether another session shares the room: then the packets go on to
    /// the core to be forwarded.
    pub(crate) forward: bool,
}

impl MockServer {
    /// Starts remembering which SSRCs' routes change.
    pub(crate) fn track_sink_routes(&mut self) {
        self.sink_dirty.get_or_insert_with(BTreeSet::new);
    }

    /// The route of `ssrc` may have changed.
    pub(crate) fn sink_touch(&mut self, ssrc: u32) {
        if let Some(dirty) = &mut self.sink_dirty {
            dirty.insert(ssrc);
        }
    }

    /// The route of `key`'s SSRC may have changed.
    pub(crate) fn sink_touch_session(&mut self, key: SessionKey) {
        if let Some(ssrc) = self.sink_dirty.as_ref().and_then(|_| self.sessions.get(&key)).map(|s| s.ssrc) {
            self.sink_touch(ssrc);
        }
    }

    /// The current route of every SSRC touched since the last call; `None`
    /// for an SSRC that no longer has a session.
    pub(crate) fn take_sink_routes(&mut self) -> Vec<(u32, Option<SinkRoute>)> {
        let Some(dirty) = self.sink_dirty.as_mut().filter(|d| !d.is_empty()) else { return Vec::new() };
        let dirty = std::mem::take(dirty);
        dirty
            .into_iter()
            .map(|ssrc| {
                let route = self.by_ssrc.get(&ssrc).and_then(|k| self.sessions.get(k)).map(|s| SinkRoute {
                    cipher: s.mode.map(|mode| Cipher::new(mode, &s.secret)),
                    forward: self.rooms.members((s.guild, s.channel)).nth(1).is_some(),
                });
                (ssrc, route)
            })
            .collect()
    }
}
