//! [`MainGateway`]: how a call reaches the application's main gateway
//! (op 4 "Update Voice State").

use tokio::sync::mpsc;
use voice_proto::UpdateVoiceState;

/// The application's main gateway, as far as voice needs it: a way to send
/// op 4 "Update Voice State".
pub trait MainGateway: Send + Sync + 'static {
    /// Sends `payload` (serialise it with [`UpdateVoiceState::to_json`]) on
    /// the shard that serves its guild.
    fn update_voice_state(&self, payload: UpdateVoiceState);
}

impl<F: Fn(UpdateVoiceState) + Send + Sync + 'static> MainGateway for F {
    fn update_voice_state(&self, payload: UpdateVoiceState) {
        self(payload)
    }
}

impl MainGateway for mpsc::UnboundedSender<UpdateVoiceState> {
    fn update_voice_state(&self, payload: UpdateVoiceState) {
        if self.send(payload).is_err() {
            tracing::warn!("main gateway channel closed; op 4 not sent");
        }
    }
}

/// A gateway that sends nothing, for driver-only calls.
pub(crate) struct NoGateway;

impl MainGateway for NoGateway {
    fn update_voice_state(&self, payload: UpdateVoiceState) {
        tracing::debug!(channel = ?payload.channel_id, "driver-only call: op 4 not sent anywhere");
    }
}
