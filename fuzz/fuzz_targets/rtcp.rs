//! Compound RTCP: every sender and receiver report parsed builds again and
//! parses back to the same fields.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_rtp::fuzzing::rtcp_reports(data));
