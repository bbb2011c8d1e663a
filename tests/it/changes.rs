//! Changes are announced from a task of their own: every replica's watchers still get every
//! committed batch's changes, in the order the batches were announced.

use std::time::Duration;

use prost::Message as _;
use switchboard_runtime::changes::{ChangeFeed, PENDING_BATCHES};
use switchboard_runtime::tokio_util::sync::CancellationToken;
use switchboard_tests::NatsServer;

#[tokio::test]
async fn announcements_reach_watchers_in_commit_order() {
    let nats = NatsServer::start().expect("nats-server");
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let stop = CancellationToken::new();
    let feed = ChangeFeed::start(client.clone(), "test.changes.order".to_owned(), stop.clone())
        .await
        .expect("change feed");
    // Another replica's feed on the same subject: its watchers see this replica's changes.
    let other_replica =
        ChangeFeed::start(client, "test.changes.order".to_owned(), stop.clone()).await.expect("change feed");
    let mut watcher = other_replica.subscribe();

    let (batches, per_batch) = (PENDING_BATCHES as i64 * 10, 25);
    for batch in 0..batches {
        feed.announce(move || {
            (0..per_batch)
                .map(move |index| prost_types::Timestamp { seconds: batch * per_batch + index, nanos: 0 })
        })
        .await;
    }
    for expected in 0..batches * per_batch {
        let change = tokio::time::timeout(Duration::from_secs(10), watcher.recv())
            .await
            .expect("every change arrives")
            .expect("the watcher kept up");
        let change = prost_types::Timestamp::decode(change).expect("a change as announced");
        assert_eq!(change.seconds, expected);
    }
    stop.cancel();
}
