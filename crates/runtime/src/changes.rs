//! The change feed behind every `Watch` call.
//!
//! After a batch commits, the replica that committed it publishes each change (an encoded
//! `WatchResponse`) on the product's core-NATS changes subject. Every replica subscribes to that
//! subject and fans the changes out to its own watchers, so a watcher connected to any replica sees
//! every change. Core NATS is at-most-once: a watcher that falls behind or a replica that loses its
//! connection misses changes, and clients re-read state after reconnecting (documented in the API).

use async_nats::Client;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Changes buffered per watcher before it counts as too slow.
const WATCHER_BUFFER: usize = 4096;

#[derive(Debug, Clone)]
pub struct ChangeFeed {
    client: Client,
    subject: String,
    sender: broadcast::Sender<Bytes>,
}

impl ChangeFeed {
    /// Subscribes to `subject` and starts fanning changes out until `shutdown`.
    pub async fn start(
        client: Client,
        subject: String,
        shutdown: CancellationToken,
    ) -> Result<ChangeFeed, async_nats::Error> {
        let (sender, _) = broadcast::channel(WATCHER_BUFFER);
        let mut subscription = client.subscribe(subject.clone()).await?;
        let fan_out = sender.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    next = subscription.next() => match next {
                        Some(message) => {
                            // No watcher connected is the normal case, not an error.
                            let _ = fan_out.send(message.payload);
                        }
                        None => break,
                    },
                }
            }
        });
        Ok(ChangeFeed { client, subject, sender })
    }

    /// Announces committed changes to the watchers of every replica. Best effort: a failure is
    /// logged and never fails the batch, which is already committed.
    pub async fn publish(&self, changes: impl IntoIterator<Item = Bytes>) {
        for change in changes {
            if let Err(error) = self.client.publish(self.subject.clone(), change).await {
                tracing::warn!(subject = %self.subject, %error, "cannot publish change to watchers");
                return;
            }
        }
    }

    /// [`ChangeFeed::publish`] for changes still to be encoded (each a `WatchResponse`).
    pub async fn publish_messages<M: prost::Message>(&self, changes: impl IntoIterator<Item = M>) {
        let encoded: Vec<Bytes> =
            changes.into_iter().map(|change| Bytes::from(change.encode_to_vec())).collect();
        self.publish(encoded).await;
    }

    /// A new watcher's receiver: every change published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Bytes> {
        self.sender.subscribe()
    }

    /// Whether anybody on this replica is watching (lets a service skip building changes nobody reads
    /// when it runs alone; with replicas, others may watch, so services publish regardless).
    pub fn watchers(&self) -> usize {
        self.sender.receiver_count()
    }
}
