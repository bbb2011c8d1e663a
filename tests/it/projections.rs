//! Projection rules against the real databases: any order of the same events, with duplicates and
//! in batches of any size, gives the same stored state.

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use switchboard_events::{EventKind, TimeZoneSetting, decode_as};
use switchboard_sms::consumer::report_row;
use switchboard_sms::store::{self, MessageRow};
use switchboard_store::{Database, PoolSettings};
use switchboard_tests::projection::{apply_in_batches, delivery, latest_changes};
use switchboard_tests::{TestBackend, TestDatabase};

fn rows(events: &[(u64, String)]) -> Vec<MessageRow> {
    events
        .iter()
        .map(|(sequence, body)| {
            let delivery = delivery(EventKind::SmsMessageStatus, *sequence, body, 1);
            let status = decode_as(EventKind::SmsMessageStatus, body.as_bytes()).expect("valid report");
            report_row(&status, &delivery, TimeZoneSetting::default())
        })
        .collect()
}

/// What a reader sees: the current row (without receive bookkeeping that differs per delivery) and
/// the history.
async fn state(database: &Database, id: &str) -> (Option<MessageRow>, Vec<(String, i64)>) {
    match store::get_message(database, id).await.expect("get") {
        Some((row, history)) => {
            (Some(row), history.into_iter().map(|event| (event.status, event.stream_sequence)).collect())
        }
        None => (None, Vec::new()),
    }
}

const STATUSES: &[(&str, &str)] = &[
    ("AWAITING-DLR", "2021-04-09 16:27:36"),
    ("ENROUTE", "2021-04-09 20:00:00"),
    ("TIMEOUT-DLR", "2021-04-09 18:27:36"),
    ("DELIVRD", "2021-04-09 16:30:00"),
    ("UNDELIV", "2021-04-09 16:29:00"),
    ("UNDELIV", "2021-04-09 16:30:00"),
    ("REJECTD", ""),
];

#[tokio::test]
async fn sms_state_is_a_function_of_the_set_of_reports() {
    let backend = TestBackend::from_env();
    let mut runner = TestRunner::new(ProptestConfig { cases: 24, ..ProptestConfig::default() });
    let strategy = (
        proptest::collection::vec(0..STATUSES.len(), 1..6),
        proptest::collection::vec(0usize..6, 0..4),
        any::<u64>(),
        proptest::collection::vec(1usize..4, 1..4),
    );
    // One pair of databases for every case (creating databases is slow on PostgreSQL); each case
    // uses a message id of its own.
    let sorted_database = TestDatabase::create(backend, "sorted").await.expect("database");
    let shuffled_database = TestDatabase::create(backend, "shuffled").await.expect("database");
    let sorted = Database::open(sorted_database.url().expose(), PoolSettings::default(), store::MIGRATIONS)
        .await
        .expect("open");
    let mixed = Database::open(shuffled_database.url().expose(), PoolSettings::default(), store::MIGRATIONS)
        .await
        .expect("open");
    let case_counter = std::sync::atomic::AtomicUsize::new(0);
    let runtime_handle = tokio::runtime::Handle::current();
    let (sorted_for_cases, mixed_for_cases) = (sorted.clone(), mixed.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        let (sorted, mixed) = (sorted_for_cases, mixed_for_cases);
        runner.run(&strategy, |(chosen, duplicated, seed, batch_sizes)| {
            let id = format!("p{}:1", case_counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
            runtime_handle.block_on(async {
                // The distinct reports, each published once with its own sequence.
                let mut events: Vec<(u64, String)> = chosen
                    .iter()
                    .enumerate()
                    .map(|(index, status_index)| {
                        let (status, time) = STATUSES[*status_index];
                        let body = serde_json::json!({"id": id, "mobile": "9190", "status": status, "deliv_time": time}).to_string();
                        (index as u64 + 1, body)
                    })
                    .collect();
                // Redeliveries: the same message (same sequence) again.
                for index in duplicated {
                    if let Some(event) = events.get(index % events.len()).cloned() {
                        events.push(event);
                    }
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
                let sorted_changes = apply_in_batches(&sorted, &in_order, &[1], store::write_reports).await;
                let mixed_changes = apply_in_batches(&mixed, &shuffled, &batch_sizes, store::write_reports).await;
                let expected = state(&sorted, &id).await;
                let actual = state(&mixed, &id).await;
                // What watchers were told last is what is stored.
                for changes in [sorted_changes, mixed_changes] {
                    prop_assert_eq!(latest_changes(changes, |row| row.id.clone()), Vec::from_iter(expected.0.clone()));
                }
                prop_assert_eq!(&actual, &expected, "shuffled {:?} in batches {:?}", shuffled.iter().map(|row| (&row.status, row.stream_sequence)).collect::<Vec<_>>(), batch_sizes);
                // And the stored winner is the one the Rust rule picks.
                let winner = in_order.iter().skip(1).fold(in_order[0].clone(), |current, next| {
                    if next.precedence().beats(&current.precedence()) { next.clone() } else { current }
                });
                prop_assert_eq!(expected.0.map(|row| (row.status, row.stream_sequence)), Some((winner.status, winner.stream_sequence)));
                Ok(())
            })
        })
    })
    .await
    .expect("property test task");
    sorted.close().await;
    mixed.close().await;
    if let Err(error) = outcome {
        panic!("{error}");
    }
}
