//! RTP, RTCP, IP discovery and header-extension views: never panic, lengths add up.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_rtp::fuzzing::packet_views(data));
