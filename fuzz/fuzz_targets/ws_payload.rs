//! Voice gateway frames, JSON text and DAVE binary: parse and re-encode without panicking.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_proto::fuzzing::ws_payload(data));
