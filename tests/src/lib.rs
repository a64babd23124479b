//! Deterministic simulations of the voice workspace: client state machines
//! ([`voice_proto::VoiceConnection`]) against the server core
//! ([`voice_mock::MockServer`]) over a simulated network ([`netem`]) under
//! fake time ([`sim::Sim`]). No sockets, no sleeps, no threads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod dave;
pub mod fuzzing;
pub mod matrix;
pub mod netem;
pub mod sim;
