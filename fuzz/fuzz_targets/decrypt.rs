//! Open arbitrary datagrams under every mode; seal-then-open round-trips.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_rtp::fuzzing::open_and_round_trip(data));
