//! The fuzz targets' checks on stable, on every test run: the committed seed corpus under
//! `fuzz/corpus-seed/<target>/` (fixtures, the documented examples verbatim, hostile cases, and
//! every crash a fuzzer found), mutations of those seeds, and random bytes.

use std::path::PathBuf;

use proptest::prelude::*;
use switchboard_events::fuzzing::{decode_every_event, tolerant_json};

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let directory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus-seed").join(target);
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("seed corpus {}: {error}", directory.display()))
        .map(|entry| {
            let path = entry.expect("directory entry").path();
            let bytes = std::fs::read(&path).expect("seed readable");
            (path.display().to_string(), bytes)
        })
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 40, "the seed corpus for {target} is missing");
    seeds
}

#[test]
fn the_tolerant_reader_survives_its_seed_corpus() {
    for (name, bytes) in seeds("tolerant_json") {
        let outcome = std::panic::catch_unwind(|| tolerant_json(&bytes));
        assert!(outcome.is_ok(), "seed {name}");
    }
}

#[test]
fn every_decoder_survives_its_seed_corpus() {
    for (name, bytes) in seeds("decode_events") {
        let outcome = std::panic::catch_unwind(|| decode_every_event(&bytes));
        assert!(outcome.is_ok(), "seed {name}");
    }
}

/// A seed with a few bytes overwritten, inserted or removed.
fn mutated(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds(target);
    let count = seeds.len();
    (0..count, proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6)).prop_map(
        move |(index, edits)| {
            let mut bytes = seeds[index].1.clone();
            for (position, byte, operation) in edits {
                let at = if bytes.is_empty() { 0 } else { position % bytes.len() };
                match operation {
                    0 if !bytes.is_empty() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ if !bytes.is_empty() => {
                        bytes.remove(at);
                    }
                    _ => bytes.push(byte),
                }
            }
            bytes
        },
    )
}

/// Text made of JSON's punctuation and a few values: more likely to get deep into the parsers than
/// random bytes.
fn json_like() -> impl Strategy<Value = Vec<u8>> {
    proptest::string::string_regex(r#"([\[\]{}",:\\ ]|true|null|-?[0-9]{1,3}|"id"|"event"|"payload"|"sms:message:status"|"status"|[a-z]){0,80}"#)
        .expect("valid regex")
        .prop_map(String::into_bytes)
}

proptest! {
    // Failures are printed shrunk; a real one is added to the seed corpus by hand.
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_break_nothing(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        tolerant_json(&data);
        decode_every_event(&data);
    }

    #[test]
    fn json_like_text_breaks_nothing(data in json_like()) {
        tolerant_json(&data);
        decode_every_event(&data);
    }

    #[test]
    fn mutated_seeds_break_nothing(data in mutated("decode_events")) {
        tolerant_json(&data);
        decode_every_event(&data);
    }
}
