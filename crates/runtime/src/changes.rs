//! The change feed behind every `Watch` call.
//!
//! After a batch commits, the replica that committed it publishes each change (an encoded
//! `WatchResponse`) on the product's core-NATS changes subject. Every replica subscribes to that
//! subject and fans the changes out to its own watchers, so a watcher connected to any replica sees
//! every change. Core NATS is at-most-once: a watcher that falls behind or a replica that loses its
//! connection misses changes, and clients re-read state after reconnecting (documented in the API).
//!
//! Encoding and publishing happen on a task of their own, in the order batches committed, so the
//! consumer goes on to its next batch while the last one is announced; at most
//! [`PENDING_BATCHES`] committed batches wait to be announced before the consumer waits too.

use async_nats::Client;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// Changes buffered per watcher before it counts as too slow.
const WATCHER_BUFFER: usize = 4096;

/// Committed batches whose changes may wait to be encoded and published.
pub const PENDING_BATCHES: usize = 4;

/// One committed batch's changes, encoded when the publisher gets to them.
type Announcement = Box<dyn FnOnce() -> Vec<Bytes> + Send>;

#[derive(Debug, Clone)]
pub struct ChangeFeed {
    subject: String,
    sender: broadcast::Sender<Bytes>,
    announcements: mpsc::Sender<Announcement>,
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
        let (announcements, pending) = mpsc::channel(PENDING_BATCHES);
        tokio::spawn(publish_announcements(client, subject.clone(), pending));
        Ok(ChangeFeed { subject, sender, announcements })
    }

    /// Announces a committed batch's changes to the watchers of every replica: `changes` builds them
    /// (each a `WatchResponse`) on the publishing task, after the changes of every batch announced
    /// before. Waits only while [`PENDING_BATCHES`] batches are already waiting. Best effort: a
    /// failure is logged and never fails the batch, which is already committed.
    pub async fn announce<M, I>(&self, changes: impl FnOnce() -> I + Send + 'static)
    where
        M: prost::Message,
        I: IntoIterator<Item = M>,
    {
        let announcement: Announcement = Box::new(move || {
            changes().into_iter().map(|change| Bytes::from(change.encode_to_vec())).collect()
        });
        if self.announcements.send(announcement).await.is_err() {
            tracing::warn!(subject = %self.subject, "change publisher stopped; changes not announced");
        }
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

/// Encodes and publishes announcements in the order they were made, until every [`ChangeFeed`] is
/// gone.
async fn publish_announcements(client: Client, subject: String, mut pending: mpsc::Receiver<Announcement>) {
    while let Some(announcement) = pending.recv().await {
        for change in announcement() {
            if let Err(error) = client.publish(subject.clone(), change).await {
                tracing::warn!(%subject, %error, "cannot publish change to watchers");
                break;
            }
        }
    }
}
