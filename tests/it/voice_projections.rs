//! The voice projection against the real databases: any order of the same call records, with
//! redeliveries, copies of a body at a later sequence and batches of any size, gives the same stored
//! state (current call and history).

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use switchboard_events::{EventKind, TimeZoneSetting, decode_as};
use switchboard_store::{Database, PoolSettings};
use switchboard_tests::projection::{apply_in_batches, delivery, latest_changes};
use switchboard_tests::{TestBackend, TestDatabase};
use switchboard_voice::consumer::call_row;
use switchboard_voice::store::{self, CallRow, EventRow};

fn rows(events: &[(u64, String)]) -> Vec<CallRow> {
    events
        .iter()
        .map(|(sequence, body)| {
            let delivery = delivery(EventKind::VoiceMessageOut, *sequence, body, 1);
            let call = decode_as(EventKind::VoiceMessageOut, body.as_bytes()).expect("valid record");
            call_row(&call, &delivery, TimeZoneSetting::default())
        })
        .collect()
}

/// What a reader sees of a call: the current row and every version kept.
async fn state(database: &Database, mid: &str) -> (Option<CallRow>, Vec<EventRow>) {
    let call = store::get_call(database, mid).await.expect("get");
    let history = store::call_history(database, mid).await.expect("history");
    (call, history)
}

/// Two calls per case, so batches mix keys.
const CALLS_PER_CASE: usize = 2;

/// (status, end_at, duration): versions with later, equal, older and missing end times, and a
/// duration that disagrees with the times.
const VERSIONS: &[(&str, &str, &str)] = &[
    ("RECEIVED", "2021-04-09 16:27:55", "16"),
    ("ANSWER", "2021-04-09 16:30:00", "141"),
    ("COMPLETED", "2021-04-09 16:30:00", "140"),
    ("NOANSWER", "2021-04-09 16:20:00", "0"),
    ("RINGING", "", ""),
    ("BUSY", "not a time", "3"),
];

fn body(mid: &str, version: usize) -> String {
    let (status, end_at, duration) = VERSIONS[version];
    serde_json::json!({
        "mid": mid, "bridge": 918068281234u64, "from": "918919521234", "to": "918867131234", "source": "OBD",
        "flow_id": 123, "start_at": "2021-04-09 16:27:39", "end_at": end_at, "duration": duration,
        "status": status,
    })
    .to_string()
}

#[tokio::test]
async fn voice_state_is_a_function_of_the_set_of_records() {
    let backend = TestBackend::from_env();
    let mut runner = TestRunner::new(ProptestConfig { cases: 32, ..ProptestConfig::default() });
    let strategy = (
        proptest::collection::vec((0..CALLS_PER_CASE, 0..VERSIONS.len()), 1..8),
        proptest::collection::vec(0usize..8, 0..4),
        proptest::collection::vec(0usize..8, 0..3),
        any::<u64>(),
        proptest::collection::vec(1usize..4, 1..4),
    );
    // One pair of databases for all cases (creating PostgreSQL databases is slow); each case has
    // calls of its own.
    let sorted_database = TestDatabase::create(backend, "vsorted").await.expect("database");
    let shuffled_database = TestDatabase::create(backend, "vshuffled").await.expect("database");
    let sorted = Database::open(sorted_database.url().expose(), PoolSettings::default(), store::MIGRATIONS)
        .await
        .expect("open");
    let mixed = Database::open(shuffled_database.url().expose(), PoolSettings::default(), store::MIGRATIONS)
        .await
        .expect("open");
    let case = std::sync::atomic::AtomicU64::new(0);
    let runtime_handle = tokio::runtime::Handle::current();
    let (sorted_for_cases, mixed_for_cases) = (sorted.clone(), mixed.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        let (sorted, mixed) = (sorted_for_cases, mixed_for_cases);
        runner.run(&strategy, |(chosen, redelivered, copied, seed, batch_sizes)| {
            let case = case.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mids: Vec<String> = (0..CALLS_PER_CASE).map(|call| format!("case-{case}-{call}")).collect();
            runtime_handle.block_on(async {
                // Each chosen record published once, with its own sequence.
                let mut events: Vec<(u64, String)> = chosen
                    .iter()
                    .enumerate()
                    .map(|(index, (call, version))| (index as u64 + 1, body(&mids[*call], *version)))
                    .collect();
                let published = events.len();
                // Redeliveries: the same message (same sequence) again.
                for index in redelivered {
                    let event = events[index % published].clone();
                    events.push(event);
                }
                // Copies: the same body published again, at a later sequence.
                for (offset, index) in copied.into_iter().enumerate() {
                    let body = events[index % published].1.clone();
                    events.push((published as u64 + 1 + offset as u64, body));
                }
                let in_order = rows(&events);
                let mut shuffled = in_order.clone();
                let mut state_bits = seed | 1;
                for index in (1..shuffled.len()).rev() {
                    state_bits ^= state_bits << 13;
                    state_bits ^= state_bits >> 7;
                    state_bits ^= state_bits << 17;
                    shuffled.swap(index, (state_bits % (index as u64 + 1)) as usize);
                }
                let sorted_changes = apply_in_batches(&sorted, &in_order, &[1], store::write_calls).await;
                let mixed_changes = apply_in_batches(&mixed, &shuffled, &batch_sizes, store::write_calls).await;
                // What watchers were told last is what is stored.
                for changes in [sorted_changes, mixed_changes] {
                    for call in latest_changes(changes, |row| row.mid.clone()) {
                        let stored = store::get_call(&sorted, &call.mid).await.expect("get");
                        prop_assert_eq!(Some(&call), stored.as_ref());
                    }
                }
                let mut outcome = Ok(());
                for mid in &mids {
                    let expected = state(&sorted, mid).await;
                    let actual = state(&mixed, mid).await;
                    if actual != expected {
                        outcome = Err(TestCaseError::fail(format!(
                            "{mid}: shuffled {:?} in batches {batch_sizes:?} gave {actual:?}, expected {expected:?}",
                            shuffled.iter().map(|row| (&row.mid, &row.status, row.stream_sequence)).collect::<Vec<_>>(),
                        )));
                        break;
                    }
                    // The stored winner is the one the Rust rule picks …
                    let candidates: Vec<&CallRow> = in_order.iter().filter(|row| row.mid == **mid).collect();
                    let winner = candidates.iter().skip(1).fold(candidates.first().copied(), |current, next| {
                        match current {
                            Some(current) if !next.precedence().beats(&current.precedence()) => Some(current),
                            _ => Some(*next),
                        }
                    });
                    let stored = expected.0.as_ref().map(|row| (row.digest.clone(), row.stream_sequence));
                    let picked = winner.map(|row| (row.digest.clone(), row.stream_sequence));
                    if stored != picked {
                        outcome = Err(TestCaseError::fail(format!("{mid}: stored {stored:?}, rule picks {picked:?}")));
                        break;
                    }
                    // … and the history holds each distinct body once, at its first sequence.
                    let mut distinct: Vec<(String, i64)> = Vec::new();
                    for row in &candidates {
                        match distinct.iter_mut().find(|(digest, _)| *digest == row.digest) {
                            Some(kept) => kept.1 = kept.1.min(row.stream_sequence),
                            None => distinct.push((row.digest.clone(), row.stream_sequence)),
                        }
                    }
                    distinct.sort();
                    let mut kept: Vec<(String, i64)> =
                        expected.1.iter().map(|event| (event.digest.clone(), event.stream_sequence)).collect();
                    kept.sort();
                    if kept != distinct {
                        outcome = Err(TestCaseError::fail(format!("{mid}: history {kept:?}, expected {distinct:?}")));
                        break;
                    }
                }
                outcome
            })
        })
        // The failing case as text: the error itself carries the whole (large) input.
        .map_err(|error| error.to_string())
    })
    .await
    .expect("property test task");
    sorted.close().await;
    mixed.close().await;
    if let Err(error) = outcome {
        panic!("{error}");
    }
}
