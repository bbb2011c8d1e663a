//! The chat status projection against the real databases: any order of the same status events, with
//! duplicates and in batches of any size, gives the same stored message, milestones and history.

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use switchboard_chat::consumer::status_row;
use switchboard_chat::model::Milestones;
use switchboard_chat::store::{self, OutboundRow};
use switchboard_events::chat::ChatStatus;
use switchboard_events::{EventKind, TimeZoneSetting, decode_as};
use switchboard_store::{Database, PoolSettings, sqlx};
use switchboard_tests::projection::{apply_in_batches, delivery, latest_changes};
use switchboard_tests::{TestBackend, TestDatabase};

fn rows(events: &[(u64, String)]) -> Vec<OutboundRow> {
    events
        .iter()
        .map(|(sequence, body)| {
            let status: ChatStatus =
                decode_as(EventKind::WhatsappMessageStatus, body.as_bytes()).expect("valid status");
            status_row(
                "whatsapp",
                &status,
                &delivery(EventKind::WhatsappMessageStatus, *sequence, body, 1),
                TimeZoneSetting::default(),
            )
        })
        .collect()
}

/// What a reader sees: the stored message and its history.
async fn state(database: &Database) -> (Option<OutboundRow>, Vec<(String, i64)>) {
    match store::get_outbound(database, "whatsapp", "p").await.expect("get") {
        Some((row, history)) => {
            (Some(row), history.into_iter().map(|event| (event.status, event.stream_sequence)).collect())
        }
        None => (None, Vec::new()),
    }
}

/// Status events for one message: every rank, equal ranks at different and equal times, milestone
/// fields, an unknown status, and events without a timestamp.
const EVENTS: &[&str] = &[
    r#"{"status": "queued", "timestamp": "2021-06-18T10:00:00Z"}"#,
    r#"{"status": "sent", "timestamp": "2021-06-18T10:00:01Z", "processed_at": "2021-06-18T09:59:59Z"}"#,
    r#"{"status": "delivered", "timestamp": "2021-06-18T10:00:05Z"}"#,
    r#"{"status": "delivered", "timestamp": "2021-06-18T10:00:07Z", "delivered_at": "2021-06-18T10:00:03Z"}"#,
    r#"{"status": "delivered", "timestamp": "2021-06-18T10:00:07Z", "note": "same time, other body"}"#,
    r#"{"status": "read", "timestamp": "2021-06-18T10:02:00Z"}"#,
    r#"{"status": "read"}"#,
    r#"{"status": "failed", "timestamp": "2021-06-18T10:00:02Z"}"#,
    r#"{"status": "deleted", "timestamp": "2021-06-18T11:00:00Z", "read_at": "2021-06-18T10:01:00Z"}"#,
    r#"{"status": "sent|delivered|read|failed|deleted", "timestamp": "2021-06-18T12:00:00Z"}"#,
];

fn body(index: usize) -> String {
    let mut payload: serde_json::Value = serde_json::from_str(EVENTS[index]).expect("valid event");
    payload["id"] = "p".into();
    payload["to"] = "919000000001".into();
    serde_json::json!({"event": "whatsapp:message:status", "payload": payload}).to_string()
}

fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed | 1;
    for index in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(index, (state % (index as u64 + 1)) as usize);
    }
}

/// Empties the tables between cases (creating a database per case is slow on PostgreSQL).
async fn clear(database: &Database) {
    for table in ["chat_status_events", "chat_outbound"] {
        sqlx::query(&format!("DELETE FROM {table}")).execute(database.pool()).await.expect("clear");
    }
}

#[tokio::test]
async fn chat_status_state_is_a_function_of_the_set_of_events() {
    let backend = TestBackend::from_env();
    let sorted_database = TestDatabase::create(backend, "chat_sorted").await.expect("database");
    let shuffled_database = TestDatabase::create(backend, "chat_shuffled").await.expect("database");
    let sorted = Database::open(sorted_database.url().expose(), PoolSettings::default(), store::MIGRATIONS)
        .await
        .expect("open");
    let mixed = Database::open(shuffled_database.url().expose(), PoolSettings::default(), store::MIGRATIONS)
        .await
        .expect("open");
    let mut runner = TestRunner::new(ProptestConfig { cases: 48, ..ProptestConfig::default() });
    let strategy = (
        proptest::collection::vec(0..EVENTS.len(), 1..7),
        proptest::collection::vec(0usize..7, 0..4),
        any::<u64>(),
        proptest::collection::vec(1usize..4, 1..4),
    );
    let runtime_handle = tokio::runtime::Handle::current();
    let (sorted_for_cases, mixed_for_cases) = (sorted.clone(), mixed.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        runner.run(&strategy, |(chosen, duplicated, seed, batch_sizes)| {
            let (sorted, mixed) = (&sorted_for_cases, &mixed_for_cases);
            runtime_handle.block_on(async {
                // The events, each published once with its own sequence (the same body twice is
                // two deliveries of one event, as a provider retry outside the duplicate window).
                let mut events: Vec<(u64, String)> = chosen
                    .iter()
                    .enumerate()
                    .map(|(index, event)| (index as u64 + 1, body(*event)))
                    .collect();
                // Redeliveries: the same message (same sequence) again.
                for index in duplicated {
                    if let Some(event) = events.get(index % events.len()).cloned() {
                        events.push(event);
                    }
                }
                let in_order = rows(&events);
                let mut shuffled = in_order.clone();
                shuffle(&mut shuffled, seed);

                clear(sorted).await;
                clear(mixed).await;
                let sorted_changes = apply_in_batches(sorted, &in_order, &[1], store::write_statuses).await;
                let mixed_changes =
                    apply_in_batches(mixed, &shuffled, &batch_sizes, store::write_statuses).await;
                let expected = state(sorted).await;
                let actual = state(mixed).await;
                // What watchers were told last is what is stored.
                for changes in [sorted_changes, mixed_changes] {
                    let latest = latest_changes(changes, |row| (row.channel.clone(), row.id.clone()));
                    prop_assert_eq!(latest, Vec::from_iter(expected.0.clone()));
                }
                prop_assert_eq!(
                    &actual,
                    &expected,
                    "shuffled {:?} in batches {:?}",
                    shuffled.iter().map(|row| (&row.status, row.stream_sequence)).collect::<Vec<_>>(),
                    batch_sizes
                );

                // And the stored state is what the Rust rules say: the winner by precedence, the
                // earliest of every milestone and conversation time.
                let stored = expected.0.expect("a stored message");
                let winner = in_order.iter().skip(1).fold(in_order[0].clone(), |current, next| {
                    if next.precedence().beats(&current.precedence()) { next.clone() } else { current }
                });
                prop_assert_eq!(
                    (&stored.status, stored.stream_sequence),
                    (&winner.status, winner.stream_sequence)
                );
                let mut milestones = Milestones::default();
                for row in &in_order {
                    milestones.merge(&row.milestones);
                }
                prop_assert_eq!(stored.milestones, milestones);
                let earliest = in_order.iter().map(|row| row.conversation_at).min();
                prop_assert_eq!(Some(stored.conversation_at), earliest);
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
