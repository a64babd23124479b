//! [`Call`]: the application's handle on one guild's voice connection.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{oneshot, watch};
use voice_proto::wire::Snowflake;
use voice_proto::{DisconnectReason, Event, GatewayEvent, Mode, SpeakingFlags, State, Stats};

use crate::error::{CallError, ConnectFailure, JoinError, OggError, TrySendError};
use crate::queue;
use crate::runtime::{Runtime, timeout};
use crate::source::FrameSource;

/// A received Opus packet, attributed to its sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedAudio {
    /// The speaker.
    pub user_id: Snowflake,
    /// Their SSRC.
    pub ssrc: u32,
    /// RTP sequence number.
    pub sequence: u16,
    /// RTP timestamp (48 kHz).
    pub timestamp: u32,
    /// The Opus packet.
    pub opus: Bytes,
}

/// What the driver publishes about its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallState {
    /// The state machine's state.
    pub state: State,
    /// The channel the call is in or joining.
    pub channel: Option<Snowflake>,
    /// Times the session was established (first connect and reconnects).
    pub connects: u64,
    /// Times the connection went down for good (`Event::Disconnected`).
    pub disconnects: u64,
    /// Why it last disconnected, if it did.
    pub last_disconnect: Option<DisconnectReason>,
    /// The DAVE (end-to-end encryption) version audio is sent under: 0 is
    /// transport encryption only.
    pub dave_protocol_version: u16,
    /// The call's voice privacy code while end-to-end encrypted (equal at
    /// every member; users compare it to verify the call).
    pub privacy_code: Option<String>,
    /// Whether audio can be sent now; on a DAVE call, frames wait in the
    /// queue until the first transition executes.
    pub can_send_audio: bool,
    /// The transport encryption mode negotiated for the current session.
    pub mode: Option<Mode>,
    /// The bot's SSRC in the current session.
    pub ssrc: Option<u32>,
    /// Attempts to reach the voice server that failed (websocket not
    /// opened, or closed during the handshake).
    pub connect_failures: u64,
    /// The last of those failures.
    pub last_connect_failure: Option<ConnectFailure>,
}

impl Default for CallState {
    fn default() -> Self {
        CallState::new()
    }
}

impl CallState {
    /// The state before anything happened: idle, no channel.
    pub fn new() -> Self {
        CallState {
            state: State::Idle,
            channel: None,
            connects: 0,
            disconnects: 0,
            last_disconnect: None,
            dave_protocol_version: 0,
            privacy_code: None,
            can_send_audio: false,
            mode: None,
            ssrc: None,
            connect_failures: 0,
            last_connect_failure: None,
        }
    }
}

/// Counters of one call: the state machine's and the driver's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallStats {
    /// The state machine's counters.
    pub proto: Stats,
    /// Frames sent from the frame queue.
    pub frames_sent: u64,
    /// Frames dropped because the session was not established.
    pub frames_dropped_not_ready: u64,
    /// Queued frames skipped after a stall of more than three slots
    /// ([`crate::pacing::MAX_BEHIND`]), to keep latency from growing;
    /// frames less far behind are sent late, half a slot apart.
    pub frames_dropped_late: u64,
    /// Pacing slots skipped after stalls.
    pub slots_skipped: u64,
    /// Events dropped because the application did not read them.
    pub events_dropped: u64,
    /// Received packets dropped because the application did not read them.
    pub audio_dropped: u64,
    /// Datagrams that failed to send.
    pub udp_send_errors: u64,
    /// Websockets that failed to open.
    pub ws_connect_failures: u64,
    /// Times sending paused because end-to-end encryption was not ready
    /// yet (the frames waited in the queue, none was dropped).
    pub e2ee_waits: u64,
}

#[derive(Debug)]
pub(crate) enum Command {
    Join(Snowflake),
    Leave,
    MuteDeaf(bool, bool),
    /// Boxed: the event is the largest command, and the channel reserves
    /// room for 32 commands per call up front.
    Gateway(Box<GatewayEvent>),
    StopSpeaking,
    SpeakingFlags(SpeakingFlags),
    Play(Box<dyn FrameSource>),
    Stats(oneshot::Sender<CallStats>),
    Snapshot(oneshot::Sender<crate::snapshot::CallSnapshot>),
    VerificationCode(Snowflake, oneshot::Sender<Option<String>>),
    Flush(oneshot::Sender<()>),
    Close,
}

/// The sending half of a call's frame queue: Opus frames of 20 ms, sent
/// one per 20 ms on an absolute schedule. Bounded: `send` waits for room.
#[derive(Debug, Clone)]
pub struct FrameSink {
    tx: queue::Sender<Bytes>,
}

impl FrameSink {
    pub(crate) fn new(tx: queue::Sender<Bytes>) -> Self {
        FrameSink { tx }
    }

    /// Queues one 20 ms Opus frame, waiting while the queue is full.
    pub async fn send(&self, frame: impl Into<Bytes>) -> Result<(), CallError> {
        self.tx.send(frame.into()).await.map_err(|_| CallError::DriverGone)
    }

    /// Queues a frame if there is room, without waiting. On failure the
    /// frame comes back in the error, which tells a full queue (try later)
    /// from a stopped driver (give up).
    pub fn try_send(&self, frame: impl Into<Bytes>) -> Result<(), TrySendError> {
        self.tx.try_send(frame.into()).map_err(|e| match e {
            queue::TrySendError::Full(f) => TrySendError::Full(f),
            queue::TrySendError::Closed(f) => TrySendError::DriverGone(f),
        })
    }

    /// Frames that fit before `send` waits.
    pub fn capacity(&self) -> usize {
        self.tx.capacity()
    }

    /// Frames waiting in the queue.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Queues one frame from a thread that is not an async task (an
    /// encoder's thread, say), blocking while the queue is full. Not for
    /// an async runtime's task: it would block the runtime's worker.
    pub fn blocking_send(&self, frame: impl Into<Bytes>) -> Result<(), CallError> {
        self.tx.blocking_send(frame.into()).map_err(|_| CallError::DriverGone)
    }
}

/// A handle on one guild's voice connection. Cheap to clone; the
/// connection lives in its own task until [`Call::close`] or until every
/// handle is dropped.
#[derive(Debug, Clone)]
pub struct Call {
    pub(crate) runtime: Arc<dyn Runtime>,
    pub(crate) guild_id: Snowflake,
    pub(crate) commands: queue::Sender<Command>,
    pub(crate) state: watch::Receiver<CallState>,
    pub(crate) frames: FrameSink,
    pub(crate) events: Arc<Mutex<Option<queue::Receiver<Event>>>>,
    pub(crate) audio: Arc<crate::core::AudioOut>,
}

impl Call {
    /// The guild.
    pub fn guild_id(&self) -> Snowflake {
        self.guild_id
    }

    async fn command(&self, c: Command) -> Result<(), CallError> {
        self.commands.send(c).await.map_err(|_| CallError::DriverGone)
    }

    /// The current connection state.
    pub fn state(&self) -> CallState {
        self.state.borrow().clone()
    }

    /// Whether the driver still runs (the call was not closed).
    pub fn is_alive(&self) -> bool {
        !self.commands.is_closed() && self.state.borrow().state != State::Closed
    }

    /// Waits until the call is connected to `channel`, has given up, or
    /// `limit` passes. When the call is elsewhere (a move), only a new
    /// connection to `channel` counts.
    pub async fn wait_connected(&self, channel: Snowflake, limit: Duration) -> Result<(), JoinError> {
        let start = self.state.borrow().clone();
        if start.state == State::Connected && start.channel == Some(channel) {
            return Ok(());
        }
        // Only what happens from now on counts: an old disconnect may still
        // be showing while the join is on its way to the driver.
        let waited = self
            .wait_state(limit, |s| {
                if s.state == State::Connected && s.channel == Some(channel) && s.connects > start.connects {
                    return Some(Ok(()));
                }
                if s.disconnects > start.disconnects {
                    let reason = s.last_disconnect.unwrap_or(DisconnectReason::Requested);
                    return Some(Err(JoinError::Disconnected(reason)));
                }
                match &s.last_connect_failure {
                    Some(f) if s.connect_failures > start.connect_failures && f.is_permanent() => {
                        Some(Err(JoinError::Unreachable(f.clone())))
                    }
                    _ => None,
                }
            })
            .await;
        match waited {
            // Out of time after failed attempts: say why they failed.
            Err(JoinError::Timeout) => {
                let s = self.state.borrow();
                match &s.last_connect_failure {
                    Some(f) if s.connect_failures > start.connect_failures => Err(JoinError::Unreachable(f.clone())),
                    _ => Err(JoinError::Timeout),
                }
            }
            other => other,
        }
    }

    /// Waits until audio can be sent: the call is connected and, when it
    /// is end-to-end encrypted (DAVE), its first transition has executed.
    /// Frames queued before that wait in the queue; this tells when they
    /// start to flow. A bot alone in a DAVE call has no group to encrypt
    /// for, so this waits for someone to join.
    pub async fn wait_can_send(&self, limit: Duration) -> Result<(), JoinError> {
        self.wait_state(limit, |s| s.can_send_audio.then_some(Ok(()))).await
    }

    /// Waits until `verdict` gives an answer about the published state, the
    /// driver stops (`DriverGone`), or `limit` passes (`Timeout`).
    async fn wait_state(
        &self,
        limit: Duration,
        mut verdict: impl FnMut(&CallState) -> Option<Result<(), JoinError>>,
    ) -> Result<(), JoinError> {
        let mut rx = self.state.clone();
        let wait = async {
            loop {
                {
                    let s = rx.borrow_and_update();
                    if let Some(v) = verdict(&s) {
                        return v;
                    }
                    if s.state == State::Closed {
                        return Err(JoinError::DriverGone);
                    }
                }
                if rx.changed().await.is_err() {
                    return Err(JoinError::DriverGone);
                }
            }
        };
        timeout(&*self.runtime, limit, wait).await.map_err(|_| JoinError::Timeout)?
    }

    /// Asks to join (or move to) `channel`; op 4 goes out through the main
    /// gateway. Use [`Call::wait_connected`] or the manager's `join` to wait.
    pub async fn join(&self, channel: Snowflake) -> Result<(), CallError> {
        self.command(Command::Join(channel)).await
    }

    /// Moves to another channel of the guild.
    pub async fn move_to(&self, channel: Snowflake) -> Result<(), CallError> {
        self.join(channel).await
    }

    /// Leaves the channel (five silence frames first if audio was playing)
    /// and waits until the leave is done.
    pub async fn leave(&self) -> Result<(), CallError> {
        let mut rx = self.state.clone();
        rx.borrow_and_update();
        self.command(Command::Leave).await?;
        // A driver that stopped meanwhile has left too.
        let _ = rx.wait_for(|s| matches!(s.state, State::Idle | State::Disconnected | State::Closed)).await;
        Ok(())
    }

    /// Sets self-mute and self-deafen.
    pub async fn set_mute_deaf(&self, mute: bool, deaf: bool) -> Result<(), CallError> {
        self.command(Command::MuteDeaf(mute, deaf)).await
    }

    /// Feeds a main-gateway `VOICE_STATE_UPDATE` or `VOICE_SERVER_UPDATE`.
    pub async fn handle_gateway_event(&self, event: GatewayEvent) -> Result<(), CallError> {
        self.command(Command::Gateway(Box::new(event))).await
    }

    /// Sets the speaking flags op 5 announces: microphone (the default),
    /// soundshare, priority, or a combination. While audio flows the
    /// change is announced at once.
    pub async fn set_speaking_flags(&self, flags: SpeakingFlags) -> Result<(), CallError> {
        self.command(Command::SpeakingFlags(flags)).await
    }

    /// Stops speaking now (five silence frames), without waiting for the
    /// frame queue to run dry.
    pub async fn stop_speaking(&self) -> Result<(), CallError> {
        self.command(Command::StopSpeaking).await
    }

    /// The frame queue for sending audio.
    pub fn frame_sink(&self) -> FrameSink {
        self.frames.clone()
    }

    /// Waits until every queued frame has been sent (or dropped, counted,
    /// when the session was down). On an end-to-end encrypted call frames
    /// wait until a send key is installed ([`Call::wait_can_send`]): after
    /// the first transition, and, for a bot left alone, until someone joins
    /// again; bound the wait with a timeout where that matters.
    pub async fn flush(&self) -> Result<(), CallError> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Flush(tx)).await?;
        rx.await.map_err(|_| CallError::DriverGone)
    }

    /// Plays `frames` (20 ms Opus frames) through the paced queue and
    /// resolves when the last one has gone out; returns how many there were.
    pub async fn play<I>(&self, frames: I) -> Result<u64, CallError>
    where
        I: IntoIterator,
        I::Item: Into<Bytes>,
    {
        let mut n = 0;
        for f in frames {
            self.frames.send(f).await?;
            n += 1;
        }
        self.flush().await?;
        Ok(n)
    }

    /// Plays a stream of 20 ms Opus frames, resolving when the last one
    /// has gone out; returns how many there were.
    pub async fn play_stream<S>(&self, frames: S) -> Result<u64, CallError>
    where
        S: futures_util::Stream,
        S::Item: Into<Bytes>,
    {
        use futures_util::StreamExt;
        let mut frames = std::pin::pin!(frames);
        let mut n = 0;
        while let Some(f) = frames.next().await {
            self.frames.send(f).await?;
            n += 1;
        }
        self.flush().await?;
        Ok(n)
    }

    /// Hands `source` to the driver, which pulls one frame per slot from
    /// it (no task of the caller's in between), and resolves when it has
    /// ended and its last frame has gone out. Frames queued through the
    /// [`FrameSink`] wait until the source ends.
    pub async fn play_source(&self, source: impl FrameSource) -> Result<(), CallError> {
        self.start_source(source).await?;
        self.flush().await
    }

    /// Hands `source` to the driver and returns at once; it replaces any
    /// source playing. [`Call::stop_speaking`] stops it.
    pub async fn start_source(&self, source: impl FrameSource) -> Result<(), CallError> {
        self.command(Command::Play(Box::new(source))).await
    }

    /// Plays an Ogg Opus file (20 ms frames), resolving when it has been
    /// sent; returns the number of packets. The file is read whole first
    /// (on the caller's task).
    pub async fn play_ogg(&self, path: impl AsRef<std::path::Path>) -> Result<u64, PlayError> {
        let bytes = std::fs::read(path).map_err(OggError::from)?;
        let packets = crate::ogg::read_ogg_opus(&bytes)?;
        Ok(self.play(packets).await?)
    }

    /// Takes the event stream (once; later calls get `None`).
    pub fn take_events(&self) -> Option<queue::Receiver<Event>> {
        self.events.lock().ok()?.take()
    }

    /// Takes the stream of received audio (once; later calls get `None`).
    /// The stream starts here: audio that arrived before the first call is
    /// not kept (a call nobody listens to buffers none).
    pub fn take_audio(&self) -> Option<queue::Receiver<ReceivedAudio>> {
        self.audio.take_receiver()
    }

    /// Everything a dashboard shows, taken at once: state, mode, SSRC,
    /// DAVE version and privacy code, endpoint, heartbeat round trip,
    /// counters (RTCP included), loss and jitter per user, and the last
    /// reconnections with their reasons and outcomes.
    ///
    /// ```no_run
    /// # async fn show(call: voice_driver::Call) -> Result<(), voice_driver::CallError> {
    /// let s = call.snapshot().await?;
    /// println!("{:?} via {:?}, rtt {:?}", s.state.state, s.endpoint, s.heartbeat_rtt);
    /// for u in &s.users {
    ///     println!("user {}: {} packets, {} lost, jitter {:?}", u.user_id, u.received, u.lost, u.jitter);
    /// }
    /// if let Some(remote) = s.stats.proto.rtcp.remote {
    ///     println!("the server lost {}/256 of ours, round trip {:?}", remote.fraction_lost, remote.rtt);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn snapshot(&self) -> Result<crate::snapshot::CallSnapshot, CallError> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Snapshot(tx)).await?;
        rx.await.map_err(|_| CallError::DriverGone)
    }

    /// The call's counters.
    pub async fn stats(&self) -> Result<CallStats, CallError> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Stats(tx)).await?;
        rx.await.map_err(|_| CallError::DriverGone)
    }

    /// The 45-digit code that `user` and this bot compare out of band to
    /// verify each other on an end-to-end encrypted call; `None` when
    /// `user` is not in the current DAVE group.
    pub async fn verification_code(&self, user: Snowflake) -> Result<Option<String>, CallError> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::VerificationCode(user, tx)).await?;
        rx.await.map_err(|_| CallError::DriverGone)
    }

    /// Leaves if in a channel and stops the driver; waits until it is done.
    pub async fn close(&self) -> Result<(), CallError> {
        let mut rx = self.state.clone();
        self.command(Command::Close).await?;
        // A driver that stopped meanwhile is closed too.
        let _ = rx.wait_for(|s| s.state == State::Closed).await;
        Ok(())
    }
}

/// Why playing a file failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlayError {
    /// The file is unreadable or not Ogg Opus.
    #[error(transparent)]
    Ogg(#[from] OggError),
    /// The call is gone.
    #[error(transparent)]
    Call(#[from] CallError),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn try_send_tells_a_full_queue_from_a_stopped_driver() {
        let (tx, rx) = queue::bounded(1);
        let sink = FrameSink::new(tx);
        sink.try_send(vec![1u8]).unwrap();
        let full = sink.try_send(&b"\x02"[..]).unwrap_err();
        assert_eq!(full, TrySendError::Full(Bytes::from_static(b"\x02")));
        drop(rx);
        let gone = sink.try_send(Bytes::from_static(b"\x03")).unwrap_err();
        assert_eq!(gone.clone().into_frame(), Bytes::from_static(b"\x03"));
        assert!(matches!(gone, TrySendError::DriverGone(_)));
    }
}
