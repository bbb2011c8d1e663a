//! The contacts projection against the real database: any order of the same versions, with
//! redeliveries and in batches of any size, gives the same contacts, versions and attribute rows.

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use switchboard_contacts::consumer::version_row;
use switchboard_contacts::store::{self, ContactFilter, ContactRow};
use switchboard_events::{EventKind, TimeZoneSetting, decode_as};
use switchboard_store::{Database, PoolSettings, sqlx};
use switchboard_tests::projection::{apply_in_batches, delivery, latest_changes};
use switchboard_tests::{TestBackend, TestDatabase};

use super::contact;

fn rows(events: &[(u64, String)]) -> Vec<ContactRow> {
    events
        .iter()
        .map(|(sequence, body)| {
            let contact =
                decode_as(EventKind::ContactsSubscriberSubscription, body.as_bytes()).expect("valid contact");
            version_row(
                &contact,
                &delivery(EventKind::ContactsSubscriberSubscription, *sequence, body, 1),
                TimeZoneSetting::default(),
            )
        })
        .collect()
}

type State = (Vec<ContactRow>, Vec<Vec<ContactRow>>, Vec<(String, String, String)>);

/// What a reader sees: every contact, every contact's versions, and the attribute rows filters use.
async fn state(database: &Database) -> State {
    let contacts = store::list_contacts(database, &ContactFilter::default(), None, 1000).await.expect("list");
    let mut versions = Vec::new();
    for id in ["1", "2"] {
        versions.push(store::list_versions(database, id, None, 1000).await.expect("versions"));
    }
    let attribute_rows = sqlx::query_as::<_, (String, String, String)>(
        "SELECT contact_id, key, value FROM contact_attributes ORDER BY contact_id, key",
    )
    .fetch_all(database.pool())
    .await
    .expect("attributes");
    (contacts, versions, attribute_rows)
}

/// Versions of two contacts: later and earlier updates, a tie on updated_at, one without it.
const VERSIONS: &[(u64, &str, &str, &str)] = &[
    (1, "2024-01-01T00:00:00Z", "Asha", r#"{"a": "1"}"#),
    (1, "2024-01-02T00:00:00Z", "Asha K", r#"{"a": "2", "b": "x"}"#),
    (1, "2024-01-02T00:00:00Z", "Asha R", r#"{}"#),
    (1, "", "Undated", r#"{"c": "y"}"#),
    (2, "2024-01-01T00:00:00Z", "Bala", r#"{"a": "1"}"#),
    (2, "2023-01-01T00:00:00Z", "Bala Old", r#"{"a": "0", "z": 9}"#),
];

#[tokio::test]
async fn contacts_state_is_a_function_of_the_set_of_versions() {
    let backend = TestBackend::from_env();
    let mut runner = TestRunner::new(ProptestConfig { cases: 24, ..ProptestConfig::default() });
    let strategy = (
        proptest::collection::vec(0..VERSIONS.len(), 1..7),
        proptest::collection::vec((0usize..7, any::<bool>()), 0..4),
        proptest::collection::vec(1usize..4, 1..4),
    )
        .prop_flat_map(|(chosen, duplicated, batch_sizes)| {
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
    let sorted_database = TestDatabase::create(backend, "contacts_sorted").await.expect("database");
    let shuffled_database = TestDatabase::create(backend, "contacts_shuffled").await.expect("database");
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
                    .map(|(index, version_index)| {
                        let (id, updated_at, first_name, attributes) = VERSIONS[*version_index];
                        let attributes: serde_json::Value = serde_json::from_str(attributes).expect("JSON");
                        let body =
                            contact(id, "p@example.com", [first_name, "", "P"], attributes, updated_at);
                        (index as u64 + 1, body)
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
                let shuffled: Vec<ContactRow> = order.iter().map(|index| in_order[*index].clone()).collect();
                for database in [sorted, mixed] {
                    for table in ["contacts", "contact_versions", "contact_attributes"] {
                        sqlx::query(&format!("DELETE FROM {table}"))
                            .execute(database.pool())
                            .await
                            .expect("emptied");
                    }
                }
                let sorted_changes = apply_in_batches(sorted, &in_order, &[1], store::write_versions).await;
                let mixed_changes =
                    apply_in_batches(mixed, &shuffled, &batch_sizes, store::write_versions).await;
                let expected = state(sorted).await;
                let actual = state(mixed).await;
                // What watchers were told last is what is stored.
                let mut stored = expected.0.clone();
                stored.sort_by(|left, right| left.id.cmp(&right.id));
                for changes in [sorted_changes, mixed_changes] {
                    prop_assert_eq!(&latest_changes(changes, |row| row.id.clone()), &stored);
                }
                prop_assert_eq!(&actual, &expected, "order {:?} in batches {:?}", order, batch_sizes);
                // The stored contact is the version the Rust rule picks, and its attributes are the
                // filter rows.
                for stored in &expected.0 {
                    let candidates: Vec<&ContactRow> =
                        in_order.iter().filter(|row| row.id == stored.id).collect();
                    let winner = candidates.iter().skip(1).fold(candidates[0], |current, next| {
                        if next.precedence().beats(&current.precedence()) { next } else { current }
                    });
                    prop_assert_eq!(
                        (&stored.digest, stored.stream_sequence),
                        (&winner.digest, winner.stream_sequence)
                    );
                    let filter_rows: Vec<(String, String)> = expected
                        .2
                        .iter()
                        .filter(|(contact_id, _, _)| *contact_id == stored.id)
                        .map(|(_, key, value)| (key.clone(), value.clone()))
                        .collect();
                    let current: Vec<(String, String)> =
                        stored.attributes.iter().map(|(key, value)| (key.clone(), value.clone())).collect();
                    prop_assert_eq!(filter_rows, current);
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
