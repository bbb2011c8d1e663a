//! The tolerant JSON reader (`switchboard_events::tolerant`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_events::fuzzing::tolerant_json(data));
