//! The gateway fuzz target's checks on stable, on every test run: the committed seed corpus under
//! `fuzz/corpus-seed/gateway_body/`, mutations of it, and random bytes.

use std::path::PathBuf;

use proptest::prelude::*;
use switchboard_gateway::fuzzing::body_normalisation;

fn seeds() -> Vec<(String, Vec<u8>)> {
    let directory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus-seed/gateway_body");
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("seed corpus {}: {error}", directory.display()))
        .map(|entry| {
            let path = entry.expect("directory entry").path();
            let bytes = std::fs::read(&path).expect("seed readable");
            (path.display().to_string(), bytes)
        })
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 40, "the seed corpus for gateway_body is missing");
    seeds
}

#[test]
fn body_normalisation_survives_its_seed_corpus() {
    for (name, bytes) in seeds() {
        let outcome = std::panic::catch_unwind(|| body_normalisation(&bytes));
        assert!(outcome.is_ok(), "seed {name}");
    }
}

fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds();
    let count = seeds.len();
    (0..count, proptest::collection::vec((any::<usize>(), any::<u8>(), any::<bool>()), 1..6)).prop_map(
        move |(index, edits)| {
            let mut bytes = seeds[index].1.clone();
            for (position, byte, insert) in edits {
                let at = if bytes.is_empty() { 0 } else { position % bytes.len() };
                if insert || bytes.is_empty() {
                    bytes.insert(at, byte);
                } else {
                    bytes[at] = byte;
                }
            }
            bytes
        },
    )
}

proptest! {
    // Failures are printed shrunk; a real one is added to the seed corpus by hand.
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_break_nothing(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        body_normalisation(&data);
    }

    #[test]
    fn mutated_seeds_break_nothing(data in mutated()) {
        body_normalisation(&data);
    }
}
