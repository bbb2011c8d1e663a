//! Replaying the event stream into a service's projection, from the start, as `switchboard
//! rebuild` does: the same decoding and the same projection as the service, into another database.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use switchboard_events::{Product, Subjects};
use switchboard_runtime::consumer::{ApplyError, Projection, Rejection, StoredEvent};

/// How many reasons for skipped events a tally keeps.
const KEPT_REASONS: usize = 10;

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Events read from the stream.
    pub events: u64,
    /// Events applied.
    pub applied: u64,
    /// Events that could not be decoded (the service dead-letters these).
    pub undecodable: u64,
    /// Events the projection refused even alone.
    pub failed: u64,
    /// A few of the reasons, first ones first.
    pub reasons: Vec<String>,
    /// The last stream sequence read: every event up to it was read.
    pub last_sequence: u64,
}

impl Tally {
    fn skip(&mut self, sequence: u64, reason: String) {
        if self.reasons.len() < KEPT_REASONS {
            self.reasons.push(format!("#{sequence}: {reason}"));
        }
    }
}

/// How a replay reports its progress (a progress bar, or nothing).
pub trait ReplayProgress: Send + Sync {
    /// The number of events to read, once known.
    fn start(&self, total: u64);
    /// Events read so far.
    fn advance(&self, read: u64);
    fn finish(&self);
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl ReplayProgress for NoProgress {
    fn start(&self, _total: u64) {}
    fn advance(&self, _read: u64) {}
    fn finish(&self) {}
}

/// Reads a product's events from the start of the stream, up to the last one stored when it
/// starts, into a projection: what `switchboard rebuild` does with a service's own projection.
pub struct StreamReplay<'a> {
    pub jetstream: &'a jetstream::Context,
    pub subjects: &'a Subjects,
    pub stream: &'a str,
    pub product: Product,
    /// Events applied per transaction.
    pub batch: usize,
    pub progress: &'a dyn ReplayProgress,
}

impl std::fmt::Debug for StreamReplay<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("StreamReplay")
            .field("stream", &self.stream)
            .field("product", &self.product)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl StreamReplay<'_> {
    /// Reads every event of the product's subjects stored so far and applies them in batches: one
    /// ephemeral ordered consumer per subject root (the service's durable consumers are not
    /// touched), removed when done. Events that do not decode are counted and skipped; a batch the
    /// projection refuses is applied event by event, counting the ones that fail alone.
    pub async fn replay<P: Projection>(&self, projection: &P) -> anyhow::Result<Tally> {
        let batch = self.batch;
        let progress = self.progress;
        let stream = self
            .jetstream
            .get_stream(self.stream)
            .await
            .with_context(|| format!("no stream {} (has the gateway started?)", self.stream))?;
        // One consumer per subject root: a single filter subject works on every server version.
        let mut readers = Vec::new();
        let mut total = 0;
        for root in self.product.subject_roots() {
            let reader_name = format!("rebuild-{}-{}", self.product, uuid::Uuid::new_v4().simple());
            let mut reader = stream
                .create_consumer(consumer::pull::OrderedConfig {
                    name: Some(reader_name.clone()),
                    description: Some(format!("switchboard rebuild {}", self.product)),
                    filter_subject: self.subjects.root_filter(root),
                    deliver_policy: consumer::DeliverPolicy::All,
                    ..Default::default()
                })
                .await
                .context("creating the consumer that reads the stream")?;
            // Everything stored when the rebuild starts; later events are the durable consumer's.
            let pending = reader.info().await.context("reading the consumer's pending count")?.num_pending;
            total += pending;
            readers.push((reader, pending, reader_name));
        }
        progress.start(total);
        let mut tally = Tally::default();
        for (reader, pending, reader_name) in readers {
            if pending == 0 {
                let _ = stream.delete_consumer(&reader_name).await;
                continue;
            }
            let messages = reader.messages().await.context("reading the stream")?;
            let mut chunks =
                messages.take(usize::try_from(pending).unwrap_or(usize::MAX)).ready_chunks(batch.max(1));
            while let Some(chunk) = chunks.next().await {
                let mut items = Vec::with_capacity(chunk.len());
                let mut sequences = Vec::with_capacity(chunk.len());
                for message in chunk {
                    let message = message.map_err(|error| anyhow::anyhow!("reading the stream: {error}"))?;
                    let sequence = message.info().map(|info| info.stream_sequence).unwrap_or(0);
                    tally.events += 1;
                    tally.last_sequence = tally.last_sequence.max(sequence);
                    match self.delivery(&message, sequence).and_then(|delivery| projection.decode(&delivery))
                    {
                        Ok(item) => {
                            items.push(item);
                            sequences.push(sequence);
                        }
                        Err(rejection) => {
                            tally.undecodable += 1;
                            tally.skip(sequence, rejection.to_string());
                        }
                    }
                }
                apply(projection, &items, &sequences, &mut tally).await?;
                progress.advance(tally.events);
            }
            drop(chunks);
            // Removed now rather than after the server's inactivity threshold.
            let _ = stream.delete_consumer(&reader_name).await;
        }
        progress.finish();
        if tally.events < total {
            anyhow::bail!("the stream ended after {} of {total} events", tally.events);
        }
        Ok(tally)
    }

    fn delivery(&self, message: &jetstream::Message, sequence: u64) -> Result<StoredEvent, Rejection> {
        StoredEvent::read(self.subjects, message, sequence, 1)
    }
}

/// Applies a batch in one transaction; when that fails, event by event, counting the ones that fail
/// alone. An unavailable store is retried for a while, then the rebuild stops.
async fn apply<P: Projection>(
    projection: &P,
    items: &[P::Item],
    sequences: &[u64],
    tally: &mut Tally,
) -> anyhow::Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    match apply_retrying(projection, items).await {
        Ok(()) => {
            tally.applied += items.len() as u64;
            return Ok(());
        }
        Err(ApplyError::Unavailable(error)) => anyhow::bail!("the new database is unavailable: {error}"),
        Err(ApplyError::Failed(_)) => {}
    }
    for (item, &sequence) in items.iter().zip(sequences) {
        match apply_retrying(projection, std::slice::from_ref(item)).await {
            Ok(()) => tally.applied += 1,
            Err(ApplyError::Unavailable(error)) => anyhow::bail!("the new database is unavailable: {error}"),
            Err(ApplyError::Failed(reason)) => {
                tally.failed += 1;
                tally.skip(sequence, reason.to_string());
            }
        }
    }
    Ok(())
}

async fn apply_retrying<P: Projection>(projection: &P, items: &[P::Item]) -> Result<(), ApplyError> {
    // About 6 s in all, then the rebuild stops and says why.
    for delay in
        switchboard_runtime::retry::pauses(Duration::from_millis(100), Duration::from_secs(2)).take(6)
    {
        match projection.apply(items).await {
            Err(ApplyError::Unavailable(_)) => tokio::time::sleep(delay).await,
            outcome => return outcome,
        }
    }
    projection.apply(items).await
}
