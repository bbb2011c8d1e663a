//! Arbitrary bytes decoded as each of the twelve events.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_events::fuzzing::decode_every_event(data));
