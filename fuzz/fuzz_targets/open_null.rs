//! Every transport mode's framing opened with the null cipher (any tag
//! opens): nonce, clear header, extension and padding rules past
//! authentication; what opens seals again and opens the same.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_rtp::fuzzing::open_null(data));
