//! Drive a `VoiceConnection` with fuzzed operations and time; check its invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_proto::fuzzing::connection(data, std::time::Instant::now()));
