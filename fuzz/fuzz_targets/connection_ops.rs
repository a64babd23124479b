//! The client connection driven by structured operations (frames, datagrams
//! sealed with the session key, commands, time), invariants after each.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_proto::fuzzing::connection_ops(data, std::time::Instant::now()));
