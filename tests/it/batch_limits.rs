//! The largest batch the configuration allows is written in one transaction by every service: the
//! multi-row statements it is split into stay within the database's limit on bound parameters
//! (SQLite's is 32,766; the widest table has 26 columns, so 10,000 rows in one statement would not).

use std::time::Duration;

use switchboard_events::Product;
use switchboard_runtime::changes::ChangeFeed;
use switchboard_runtime::config::MAX_BATCH_SIZE;
use switchboard_runtime::consumer::StoredEvent;
use switchboard_runtime::tokio_util::sync::CancellationToken;
use switchboard_store::{PoolSettings, sqlx};
use switchboard_tests::projection::{ServiceProjection, delivery};
use switchboard_tests::{NatsServer, TestBackend, TestDatabase, workload};

/// Applies the first `MAX_BATCH_SIZE` workload events of `product` as one batch, twice (the second
/// time as a redelivery), and returns the rows of `table`, the service's current state.
async fn apply_largest_batch(product: Product, table: &str, changes: ChangeFeed) -> i64 {
    let database = TestDatabase::create(TestBackend::from_env(), product.name()).await.expect("database");
    let pool = PoolSettings {
        max_connections: 2,
        acquire_timeout: Duration::from_secs(30),
        ..PoolSettings::default()
    };
    let projection =
        ServiceProjection::open(product, &database.url(), pool, changes).await.expect("projection");
    let batch: Vec<StoredEvent> = workload::events(product, MAX_BATCH_SIZE, workload::Arrival::Shuffled)
        .into_iter()
        .enumerate()
        .map(|(index, (kind, body))| {
            delivery(kind, index as u64 + 1, &String::from_utf8(body).expect("JSON is UTF-8"), 1)
        })
        .collect();
    for attempt in ["first delivery", "redelivery"] {
        if let Err(error) = projection.apply(&batch).await {
            panic!("{product}: a batch of {MAX_BATCH_SIZE} failed on the {attempt}: {error:#}");
        }
    }
    let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(projection.database().pool())
        .await
        .expect("count");
    projection.database().close().await;
    count
}

#[tokio::test]
async fn every_service_writes_the_largest_batch_in_one_transaction() {
    let nats = NatsServer::start().expect("nats-server");
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let stop = CancellationToken::new();
    // Distinct keys among the first MAX_BATCH_SIZE (10,000) workload events: two sms reports per
    // message, three chat statuses per message, one voice call in ten reported twice, one inbound
    // message per event, two versions per contact.
    assert_eq!(MAX_BATCH_SIZE, 10_000, "the expected counts below are for 10,000 events");
    let expected = [
        (Product::Sms, "sms_messages", 5000),
        (Product::Chat, "chat_outbound", 3334),
        (Product::Voice, "voice_calls", 9001),
        (Product::Interact, "vmn_messages", 10_000),
        (Product::Contacts, "contacts", 5000),
    ];
    for (product, table, rows) in expected {
        let changes = ChangeFeed::start(client.clone(), format!("test.changes.{product}"), stop.clone())
            .await
            .expect("change feed");
        assert_eq!(
            apply_largest_batch(product, table, changes).await,
            rows,
            "{product}: rows after the batch"
        );
    }
    stop.cancel();
}
