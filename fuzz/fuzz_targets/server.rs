//! The voice-mock server core beside three honest clients, under abuse from
//! structured input; its limits and the clients' invariants after each step.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_tests::fuzzing::server(data));
