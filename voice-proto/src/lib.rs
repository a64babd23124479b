//! The sans-IO Discord voice connection state machine.

pub mod wire;
