//! The gateway's body preparation (`switchboard_gateway::ingest::prepare`) for every path spelling
//! and content type.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_gateway::fuzzing::body_normalisation(data));
