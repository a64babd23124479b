//! End-to-end encryption as the connection sees it: what the DAVE machine
//! asks for goes out as websocket frames, events and late voice; the hold
//! buffer's deadline is a timer; the getters an application verifies a
//! call with.

use std::time::Instant;

use super::{OwnedVoicePacket, VoiceConnection};
use crate::dave::DaveOutput;
use crate::output::{Event, Output};
use crate::timer::Timer;
use crate::wire::{Snowflake, WsFrame};

impl VoiceConnection {
    /// Carries out what the DAVE machine queued, then delivers held frames
    /// whose key arrived. Called after every input that reaches it.
    pub(crate) fn drain_dave(&mut self, now: Instant) {
        while let Some(o) = self.transform.dave_mut().poll() {
            match o {
                DaveOutput::Json(m) => self.send_message(&m),
                DaveOutput::Binary(frame) => self.push(Output::WsSend(WsFrame::Binary(frame))),
                DaveOutput::PrivacyCode(privacy_code) => {
                    let dave_protocol_version = self.transform.dave().version();
                    self.event(Event::PrivacyCodeChanged { privacy_code, dave_protocol_version });
                }
                DaveOutput::Failed(reason) => return self.disconnect(reason),
            }
        }
        // Retried only when keys changed: a frame that still fails costs a
        // decryption attempt (and a davey warning) per retry.
        let released = if self.transform.dave_mut().take_keys_changed() {
            self.transform.retry_held(&mut self.stats.dave)
        } else {
            Vec::new()
        };
        for r in released {
            self.stats.packets_received += 1;
            let m = r.meta;
            let packet = OwnedVoicePacket {
                ssrc: m.ssrc,
                user_id: m.user,
                sequence: m.sequence,
                timestamp: m.timestamp,
                opus: r.opus,
            };
            self.push(Output::Voice(packet));
        }
        self.expire_held(now);
    }

    /// A new voice session: DAVE starts over.
    pub(crate) fn reset_dave(&mut self) {
        self.transform.reset(&self.config);
        self.stats.dave.protocol_version = 0;
        self.stats.dave.epoch = None;
        self.timers.stop(Timer::DaveHold);
    }

    /// Drops held frames past their age and re-arms the hold timer.
    pub(crate) fn expire_held(&mut self, now: Instant) {
        self.transform.expire_held(now, &mut self.stats.dave);
        self.arm_hold_timer();
    }

    pub(crate) fn arm_hold_timer(&mut self) {
        self.timers.set_or_stop(Timer::DaveHold, self.transform.hold_deadline());
    }

    /// The DAVE version audio is sent under: 0 means transport encryption
    /// only (no DAVE negotiated, or a downgrade executed).
    pub fn dave_protocol_version(&self) -> u16 {
        self.transform.dave().version()
    }

    /// Whether [`send_opus`](Self::send_opus) would send a frame now: the
    /// session is established and, on a DAVE call, a send key is installed
    /// (the first transition has executed).
    pub fn can_send_audio(&self) -> bool {
        self.is_ready() && !self.leaving && self.transform.can_send()
    }

    /// Whether a leave is under way (the silence trailer, then op 4): audio
    /// is refused as not ready, not held for encryption.
    pub fn is_leaving(&self) -> bool {
        self.leaving
    }

    /// The call's voice privacy code (30 digits), equal at every member of
    /// the current MLS epoch; `None` without a DAVE group.
    pub fn voice_privacy_code(&self) -> Option<&str> {
        if self.transform.dave().version() == 0 {
            return None;
        }
        self.transform.dave().privacy_code()
    }

    /// The 45-digit code that `user` and this bot compare out of band to
    /// verify each other; `None` when `user` is not in the current group.
    pub fn verification_code(&self, user: Snowflake) -> Option<String> {
        self.transform.dave().verification_code(user)
    }

    /// The DAVE group's MLS epoch, once there is a group.
    pub fn dave_epoch(&self) -> Option<u64> {
        self.transform.dave().epoch()
    }

    /// The DAVE group's members (this bot included), in leaf order.
    pub fn dave_members(&self) -> Option<Vec<Snowflake>> {
        self.transform.dave().members()
    }

    /// The MLS epoch authenticator of the group: equal at every member of
    /// an epoch (what the privacy code is derived from).
    pub fn dave_epoch_authenticator(&self) -> Option<Vec<u8>> {
        self.transform.dave().epoch_authenticator()
    }
}
