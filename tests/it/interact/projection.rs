//! The interact projection against the real database: any order of the same deliveries, with
//! redeliveries and in batches of any size, gives the same stored messages and keyword counts.

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use switchboard_events::{EventKind, TimeZoneSetting, decode_as};
use switchboard_interact::consumer::message_row;
use switchboard_interact::store::{self, KeywordCell, MessageRow};
use switchboard_store::{Conditions, Database, PoolSettings, sqlx};
use switchboard_tests::projection::{apply_in_batches, delivery, latest_changes};
use switchboard_tests::{TestBackend, TestDatabase};

use super::vmn;

fn rows(events: &[(u64, String)]) -> Vec<MessageRow> {
    events
        .iter()
        .map(|(sequence, body)| {
            let message = decode_as(EventKind::VmnMessageIn, body.as_bytes()).expect("valid message");
            message_row(
                &message,
                &delivery(EventKind::VmnMessageIn, *sequence, body, 40_000_000_000),
                TimeZoneSetting::default(),
            )
        })
        .collect()
}

/// What a reader sees: every message, and the keyword counts.
async fn state(database: &Database) -> (Vec<MessageRow>, Vec<KeywordCell>) {
    let messages = store::list_messages(database, Conditions::new(), None, 1000).await.expect("list");
    let counts = store::keyword_counts(database, Conditions::new(), 0).await.expect("counts");
    (messages, counts)
}

const BODIES: &[(&str, &str, &str)] = &[
    ("a", "919000000001", "JOIN now"),
    ("a", "919000000001", "stop"),
    ("b", "919000000001", "join"),
    ("b", "919000000002", "Help me"),
    ("c", "919000000002", "JOIN again"),
];

#[tokio::test]
async fn interact_state_is_a_function_of_the_set_of_deliveries() {
    let backend = TestBackend::from_env();
    let mut runner = TestRunner::new(ProptestConfig { cases: 24, ..ProptestConfig::default() });
    let strategy = (
        proptest::collection::vec(0..BODIES.len(), 1..7),
        proptest::collection::vec((0usize..7, any::<bool>()), 0..4),
        proptest::collection::vec(1usize..4, 1..4),
    )
        .prop_flat_map(|(chosen, duplicated, batch_sizes)| {
            // Every delivery is listed once here and shuffled below.
            let count = chosen.len() + duplicated.len();
            (
                Just(chosen),
                Just(duplicated),
                Just(batch_sizes),
                Just((0..count).collect::<Vec<_>>()).prop_shuffle(),
            )
        });
    // Two databases for the whole run, emptied before each case (creating databases per case is slow
    // on PostgreSQL).
    let sorted_database = TestDatabase::create(backend, "vmn_sorted").await.expect("database");
    let shuffled_database = TestDatabase::create(backend, "vmn_shuffled").await.expect("database");
    let sorted = Database::open(sorted_database.url().expose(), PoolSettings::default(), store::MIGRATIONS)
        .await
        .expect("open");
    let mixed = Database::open(shuffled_database.url().expose(), PoolSettings::default(), store::MIGRATIONS)
        .await
        .expect("open");
    let (sorted_handle, mixed_handle) = (sorted.clone(), mixed.clone());
    let runtime_handle = tokio::runtime::Handle::current();
    let outcome = tokio::task::spawn_blocking(move || {
        runner.run(&strategy, |(chosen, duplicated, batch_sizes, order)| {
            runtime_handle.block_on(async {
                let (sorted, mixed) = (&sorted_handle, &mixed_handle);
                let mut events: Vec<(u64, String)> = chosen
                    .iter()
                    .enumerate()
                    .map(|(index, body_index)| {
                        let (id, to, text) = BODIES[*body_index];
                        (index as u64 + 1, vmn(id, to, "919800000001", text))
                    })
                    .collect();
                let distinct = events.len();
                for (index, same_sequence) in duplicated {
                    let (sequence, body) = events[index % distinct].clone();
                    // A redelivery (same sequence) or the same body stored again (a new sequence).
                    let sequence = if same_sequence { sequence } else { (events.len() + 1) as u64 };
                    events.push((sequence, body));
                }
                let in_order = rows(&events);
                let shuffled: Vec<MessageRow> = order.iter().map(|index| in_order[*index].clone()).collect();
                for database in [sorted, mixed] {
                    sqlx::query("DELETE FROM vmn_messages").execute(database.pool()).await.expect("emptied");
                }
                let sorted_changes = apply_in_batches(sorted, &in_order, &[1], store::write_messages).await;
                let mixed_changes =
                    apply_in_batches(mixed, &shuffled, &batch_sizes, store::write_messages).await;
                let expected = state(sorted).await;
                let actual = state(mixed).await;
                // What watchers were told last is what is stored.
                let mut stored = expected.0.clone();
                stored.sort_by(|left, right| left.id.cmp(&right.id));
                for changes in [sorted_changes, mixed_changes] {
                    prop_assert_eq!(&latest_changes(changes, |row| row.id.clone()), &stored);
                }
                prop_assert_eq!(&actual, &expected, "order {:?} in batches {:?}", order, batch_sizes);
                // And each stored message is the earliest delivery of its id.
                for message in &expected.0 {
                    let earliest = in_order
                        .iter()
                        .filter(|row| row.id == message.id)
                        .map(|row| row.stream_sequence)
                        .min();
                    prop_assert_eq!(Some(message.stream_sequence), earliest);
                }
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
