//! The consumer loop every product service runs: fetch a batch → decode → apply in one transaction →
//! acknowledge.
//!
//! * Batches are applied and acknowledged on tasks of their own, at most
//!   [`ConsumerLoop::concurrent_writes`] at once, while the next is fetched and decoded; a decoded
//!   batch waits for the oldest to finish once that many are being written. With one (SQLite, whose
//!   writes take turns anyway) batches are applied one after the other, in the order they were
//!   fetched; with two (PostgreSQL) two transactions are open at once, which projections allow:
//!   they are independent of order, as replicas sharing a database already require.
//! * A message that cannot be decoded (or arrived on a subject that is not an event) is dead-lettered
//!   with the reason, then acknowledged. If the dead letter cannot be stored, the message is retried.
//! * When the store is unavailable ([`ApplyError::Unavailable`]) the whole batch is negatively
//!   acknowledged with back-off and retried for as long as it takes: never dead-lettered.
//! * When a batch fails for another reason ([`ApplyError::Failed`]), its events are applied one by
//!   one so that the good ones go through; an event that fails alone is retried with back-off and
//!   dead-lettered after `max_attempts` deliveries.
//! * Shutdown waits for the batches in hand to be applied and acknowledged, and hands the messages
//!   already fetched but not started back to the server at once.
//! * The message stream is recreated (and the consumer with it) when it ends or keeps failing, e.g.
//!   after the consumer was deleted or the server lost it.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::pull::{MessagesError, MessagesErrorKind};
use async_nats::jetstream::{self, AckKind};
use bytes::Bytes;
use futures::StreamExt;
use switchboard_events::{DecodeError, EventKind, Product, Subjects, headers};
use thiserror::Error;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::ConsumerConfig;
use crate::dead_letter::{DeadLetter, DeadLetters};
use crate::nats::{ConsumerSpec, ensure_consumer};

/// An event the stream stored, as a projection sees it (one JetStream message with its metadata).
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub kind: EventKind,
    pub stream_sequence: u64,
    /// How many times the server has delivered it, this time included.
    pub delivered: i64,
    /// When the gateway received it (microseconds since the epoch); the time of processing when the
    /// publisher did not say.
    pub received_at: i64,
    /// The body as stored (shared with the message, not copied). Its subject and headers stay on
    /// the message: a projection reads neither, and copying them cost allocations per event.
    pub body: Bytes,
}

impl StoredEvent {
    /// Reads a stored event as a projection sees it: its event from the subject, and when the gateway
    /// received it from its header (the time of reading when the publisher did not say).
    pub fn read(
        subjects: &Subjects,
        message: &jetstream::Message,
        stream_sequence: u64,
        delivered: i64,
    ) -> Result<StoredEvent, Rejection> {
        let received_at = received_at(message.headers.as_ref());
        StoredEvent::received(subjects, message, received_at, stream_sequence, delivered)
    }

    /// [`StoredEvent::read`] for a message whose receive time was already read from its headers.
    fn received(
        subjects: &Subjects,
        message: &jetstream::Message,
        received_at: Option<i64>,
        stream_sequence: u64,
        delivered: i64,
    ) -> Result<StoredEvent, Rejection> {
        let subject = message.subject.as_str();
        let kind = subjects
            .event_kind(subject)
            .ok_or_else(|| Rejection::NotAnEvent(format!("{subject} is not the subject of a known event")))?;
        let received_at =
            received_at.unwrap_or_else(|| switchboard_events::value::unix_micros(OffsetDateTime::now_utc()));
        Ok(StoredEvent { kind, stream_sequence, delivered, received_at, body: message.payload.clone() })
    }
}

/// When the gateway received a message (microseconds since the epoch), from its header.
fn received_at(header_map: Option<&HeaderMap>) -> Option<i64> {
    header_map
        .and_then(|header_map| header_map.get(headers::RECEIVED_AT))
        .and_then(|value| OffsetDateTime::parse(value.as_str(), &Rfc3339).ok())
        .map(switchboard_events::value::unix_micros)
}

/// A fetched message as the consumer keeps it until it is acknowledged. The client hands over its
/// headers as a hash map of owned names and values, three or four allocations per header and a
/// table per message, for ten thousand and more messages in hand under a backlog (one batch read
/// ahead, one decoded, one being written). Only a dead letter needs them again, so they are packed
/// into one string (`Name: value` lines) as the message is read, after its receive time is taken.
struct Fetched {
    /// The message without its headers: it acknowledges itself through its reply subject.
    message: jetstream::Message,
    received_at: Option<i64>,
    headers: PackedHeaders,
}

impl Fetched {
    fn new(mut message: jetstream::Message) -> Fetched {
        let header_map = message.message.headers.take();
        // The body is a slice of the client's read buffer, which stays allocated whole (64 KiB at
        // a time, headers and protocol lines included) until every slice of it is dropped; a copy
        // of the body alone lets the buffer go (docs/benchmarks.md: medians 5 MiB lower).
        message.message.payload = Bytes::copy_from_slice(&message.message.payload);
        Fetched {
            received_at: received_at(header_map.as_ref()),
            headers: PackedHeaders::pack(header_map.as_ref()),
            message,
        }
    }
}

/// Headers packed into one string, a `Name: value` line per value (NATS header names hold no `:`,
/// and neither names nor values hold line breaks).
#[derive(Debug, Default)]
struct PackedHeaders(Box<str>);

impl PackedHeaders {
    fn pack(header_map: Option<&HeaderMap>) -> PackedHeaders {
        let Some(header_map) = header_map else { return PackedHeaders::default() };
        let mut packed = String::new();
        for (name, values) in header_map.iter() {
            for value in values {
                packed.push_str(name.as_ref());
                packed.push_str(": ");
                packed.push_str(value.as_str());
                packed.push('\n');
            }
        }
        PackedHeaders(packed.into_boxed_str())
    }

    /// The headers again; `None` when the message had none.
    fn unpack(&self) -> Option<HeaderMap> {
        if self.0.is_empty() {
            return None;
        }
        let mut header_map = HeaderMap::new();
        for line in self.0.lines() {
            if let Some((name, value)) = line.split_once(": ") {
                header_map.append(name, value);
            }
        }
        Some(header_map)
    }
}

/// Why a stored message cannot be applied. It is permanent: the message is dead-lettered with this
/// as its reason (the same message would be refused again).
#[derive(Debug, Error)]
pub enum Rejection {
    /// The message is not a stored event: not a JetStream message, or on a subject no event has.
    #[error("{0}")]
    NotAnEvent(String),
    /// An event of another service (its consumer's filter let it through).
    #[error("{kind} is not an event of the {service} service")]
    NotServed { kind: EventKind, service: Product },
    /// The body is not the event its subject names (not JSON, the wrong shape, another event).
    #[error(transparent)]
    Body(#[from] DecodeError),
    /// A part of the event could not be encoded again for storage.
    #[error("cannot store {part} as JSON: {source}")]
    Encode { part: &'static str, source: serde_json::Error },
}

/// An error kept with its type (a `sqlx::Error`, …) for whoever handles it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a batch could not be applied: the decision the consumer acts on (retry everything, or
/// apply one by one and dead-letter), with the error that led to it, typed.
#[derive(Debug, Error)]
pub enum ApplyError {
    /// The store cannot be reached or is overloaded: retry later, however long it takes.
    #[error("store unavailable: {0}")]
    Unavailable(BoxError),
    /// Anything else: possibly caused by one event of the batch.
    #[error("{0}")]
    Failed(BoxError),
}

impl ApplyError {
    /// The error behind the decision.
    pub fn cause(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        match self {
            ApplyError::Unavailable(error) | ApplyError::Failed(error) => error.as_ref(),
        }
    }
}

/// What a product service plugs into the loop.
pub trait Projection: Send + Sync + 'static {
    /// A decoded event, ready to apply.
    type Item: Send + Sync + 'static;

    /// Decodes one delivery. A rejection is permanent: the message is dead-lettered with it as reason.
    fn decode(&self, delivery: &StoredEvent) -> Result<Self::Item, Rejection>;

    /// Applies items in one transaction. Must be idempotent and independent of order: the same events
    /// applied again, or in another order, leave the same state.
    fn apply<'a>(
        &'a self,
        items: &'a [Self::Item],
    ) -> impl Future<Output = Result<(), ApplyError>> + Send + 'a;
}

/// Whether a consumer loop can do its job, read by readiness: it has a working message stream, and
/// its last batch was not refused by an unavailable store (a full disk, a read-only or unreachable
/// database). While the store is unavailable the consumer acknowledges nothing and the process is
/// not ready; the first batch written clears it.
#[derive(Debug, Clone, Default)]
pub struct ConsumerHealth {
    running: Arc<AtomicBool>,
    /// Why the store refused the last batch, while it does.
    store_unavailable: Arc<Mutex<Option<String>>>,
}

impl ConsumerHealth {
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// `Ok` when the consumer is consuming and its store takes its batches; otherwise what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if !self.is_running() {
            return Err("not consuming".to_owned());
        }
        match &*self.store_unavailable.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(reason) => Err(format!("cannot write its batches, retrying: {reason}")),
            None => Ok(()),
        }
    }

    fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::SeqCst);
    }

    /// Records the outcome of writing a batch; returns whether the store's state changed.
    fn set_store_unavailable(&self, reason: Option<&str>) -> bool {
        let mut current = self.store_unavailable.lock().unwrap_or_else(PoisonError::into_inner);
        let changed = current.is_some() != reason.is_some();
        *current = reason.map(str::to_owned);
        changed
    }
}

/// One durable consumer and the projection it feeds.
#[derive(Debug)]
pub struct ConsumerLoop<P> {
    pub jetstream: jetstream::Context,
    pub subjects: Subjects,
    pub spec: ConsumerSpec,
    pub settings: ConsumerConfig,
    pub dead_letters: DeadLetters,
    pub projection: Arc<P>,
    pub health: ConsumerHealth,
    /// Batches applied at once, each in its own transaction (at least one). Two keep the database
    /// server busy while the service binds the next batch's statements, where they run side by
    /// side (PostgreSQL: a drain 1.02–1.27 times as fast, docs/benchmarks.md); each costs another
    /// batch held in memory.
    pub concurrent_writes: usize,
}

/// The server sends an idle heartbeat at this interval while a pull request of ours waits there;
/// two missed in a row end the message stream, which is then reopened (see the loop).
const HEARTBEAT: Duration = Duration::from_secs(2);
const PULL_EXPIRES: Duration = Duration::from_secs(30);
/// Payload bytes a batch takes at most, and each pull request asks for. `batch_size` alone would
/// let a run of bodies near the gateway's limit fill memory: two batches of 5,000 events of 256 KiB
/// are 2.5 GiB. Typical events (under 1 KiB) fill `batch_size` long before this.
pub const BATCH_MAX_BYTES: usize = 8 * 1024 * 1024;

/// A fetched batch, decoded: the messages to acknowledge once its items are applied.
struct Decoded<I> {
    started: Instant,
    accepted: Vec<(Fetched, StoredEvent)>,
    items: Vec<I>,
}

/// A batch being applied, on a task of its own.
type Writing = tokio::task::JoinHandle<()>;

impl<P: Projection> ConsumerLoop<P> {
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let mut writing = VecDeque::new();
        this.consume(&mut writing, &shutdown).await;
        while let Some(batch) = writing.pop_front() {
            finish(batch).await;
        }
        this.health.set_running(false);
        tracing::info!(consumer = %this.spec.durable_name, "consumer stopped");
    }

    async fn consume(self: &Arc<Self>, writing: &mut VecDeque<Writing>, shutdown: &CancellationToken) {
        let consumer_name = self.spec.durable_name.clone();
        let batch_size = self.batch_size();
        let opening_pauses = || crate::retry::pauses(Duration::from_millis(250), Duration::from_secs(10));
        let mut pauses = opening_pauses();
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let mut messages = match self.open_stream().await {
                Ok(messages) => ReadAhead::start(messages, batch_size),
                Err(error) => {
                    let retry_delay = pauses.next().unwrap_or(Duration::from_secs(10));
                    tracing::warn!(consumer = %consumer_name, %error, retry_in = ?retry_delay, "cannot open consumer");
                    if sleep_or_shutdown(retry_delay, shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            pauses = opening_pauses();
            self.health.set_running(true);
            tracing::info!(consumer = %consumer_name, filter = %self.spec.filter_subject, "consuming");
            let mut consecutive_errors = 0u32;
            loop {
                let next = tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => {
                        release_buffered(&mut messages, batch_size).await;
                        return;
                    }
                    next = messages.next() => next,
                };
                match next {
                    None => {
                        tracing::warn!(consumer = %consumer_name, "message stream ended; reopening");
                        break;
                    }
                    Some(Err(error)) => {
                        consecutive_errors += 1;
                        // A missed heartbeat means no pull request of ours waits on the server, and
                        // the client will not send another: its count of the messages still owed
                        // to it can run ahead of the server's (it counts a request's messages only
                        // once the request's own publish is confirmed to it, so messages that
                        // arrive first are lost from the count), and it asks again only when that
                        // count falls to half a batch. The consumer then stalled with events
                        // pending (`num_waiting` 0, seen in the consumer tests) until the request's
                        // expiry, 35 s later. A new message stream starts with a fresh count.
                        let fatal = matches!(
                            error.kind(),
                            MessagesErrorKind::ConsumerDeleted
                                | MessagesErrorKind::NoResponders
                                | MessagesErrorKind::PushBasedConsumer
                                | MessagesErrorKind::RequestLimitExceeded
                                | MessagesErrorKind::MissingHeartbeat
                        );
                        tracing::warn!(consumer = %consumer_name, %error, consecutive_errors, "message stream error");
                        if fatal || consecutive_errors >= 3 {
                            break;
                        }
                    }
                    Some(Ok(first)) => {
                        consecutive_errors = 0;
                        let mut batch = Vec::with_capacity(batch_size);
                        let mut bytes = first.message.payload.len();
                        batch.push(first);
                        // Take what has already arrived, without waiting: big batches under load,
                        // no added latency when idle.
                        while batch.len() < batch_size && bytes < BATCH_MAX_BYTES {
                            match messages.ready() {
                                Some(Ok(fetched)) => {
                                    bytes += fetched.message.payload.len();
                                    batch.push(fetched);
                                }
                                _ => break,
                            }
                        }
                        let decoded = self.decode(batch).await;
                        // The oldest batch being written is applied and acknowledged before this
                        // one starts, once `concurrent_writes` are.
                        while writing.len() >= self.concurrent_writes.max(1)
                            && let Some(oldest) = writing.pop_front()
                        {
                            finish(oldest).await;
                        }
                        if let Some(decoded) = decoded {
                            let this = Arc::clone(self);
                            let shutdown = shutdown.clone();
                            writing
                                .push_back(tokio::spawn(async move { this.write(decoded, &shutdown).await }));
                        }
                    }
                }
            }
            self.health.set_running(false);
            let retry_delay = pauses.next().unwrap_or(Duration::from_secs(10));
            if sleep_or_shutdown(retry_delay, shutdown).await {
                break;
            }
        }
    }

    /// Events a batch takes at most.
    fn batch_size(&self) -> usize {
        self.settings.batch_size(self.concurrent_writes)
    }

    async fn open_stream(&self) -> Result<jetstream::consumer::pull::Stream, String> {
        let consumer =
            ensure_consumer(&self.jetstream, &self.spec).await.map_err(|error| error.to_string())?;
        consumer
            .stream()
            .max_messages_per_batch(self.batch_size())
            .max_bytes_per_batch(BATCH_MAX_BYTES)
            .heartbeat(HEARTBEAT)
            .expires(PULL_EXPIRES)
            .messages()
            .await
            .map_err(|error| error.to_string())
    }

    /// Decodes a fetched batch, dead-lettering what cannot be decoded; `None` when nothing is left.
    async fn decode(&self, batch: Vec<Fetched>) -> Option<Decoded<P::Item>> {
        let started = Instant::now();
        let mut accepted: Vec<(Fetched, StoredEvent)> = Vec::with_capacity(batch.len());
        let mut items = Vec::with_capacity(batch.len());
        for fetched in batch {
            let delivery = match self.delivery(&fetched) {
                Ok(delivery) => delivery,
                Err(rejection) => {
                    self.dead_letter(&fetched, None, &rejection.to_string()).await;
                    continue;
                }
            };
            match self.projection.decode(&delivery) {
                Ok(item) => {
                    items.push(item);
                    accepted.push((fetched, delivery));
                }
                Err(rejection) => self.dead_letter(&fetched, Some(&delivery), &rejection.to_string()).await,
            }
        }
        (!items.is_empty()).then_some(Decoded { started, accepted, items })
    }

    /// Applies a decoded batch and acknowledges its messages.
    async fn write(
        &self,
        Decoded { started, accepted, items }: Decoded<P::Item>,
        shutdown: &CancellationToken,
    ) {
        let consumer = self.spec.durable_name.clone();
        let outcome = self.apply_bounded(&items).await;
        self.record_store_state(&outcome);
        match outcome {
            Ok(()) => {
                for (fetched, _) in &accepted {
                    acknowledge(&fetched.message, AckKind::Ack).await;
                }
                metrics::counter!("switchboard_consumer_events_total", "consumer" => consumer.clone(), "outcome" => "applied")
                    .increment(accepted.len() as u64);
            }
            Err(ApplyError::Unavailable(reason)) => {
                tracing::warn!(consumer = %consumer, events = accepted.len(), %reason, "store unavailable; batch will be retried");
                let mut most_deliveries = 1;
                for (fetched, delivery) in &accepted {
                    acknowledge(&fetched.message, AckKind::Nak(Some(self.backoff(delivery.delivered)))).await;
                    most_deliveries = most_deliveries.max(delivery.delivered);
                }
                metrics::counter!("switchboard_consumer_events_total", "consumer" => consumer.clone(), "outcome" => "retried")
                    .increment(accepted.len() as u64);
                // The next batch is not tried at once: it would most likely fail the same way, and
                // the backlog would be fetched, tried and handed back as fast as the store refuses
                // it. A quarter of the ack wait at most, so the next batch (already fetched) is
                // still written well before the server would redeliver it.
                let pause = self.backoff(most_deliveries).min(self.settings.ack_wait / 4);
                sleep_or_shutdown(pause, shutdown).await;
            }
            Err(ApplyError::Failed(reason)) => {
                tracing::warn!(consumer = %consumer, events = accepted.len(), %reason, "batch failed; applying its events one by one");
                for ((message, delivery), item) in accepted.iter().zip(&items) {
                    self.apply_alone(message, delivery, item).await;
                }
            }
        }
        metrics::histogram!("switchboard_consumer_batch_seconds", "consumer" => consumer.clone())
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!("switchboard_consumer_batch_size", "consumer" => consumer)
            .record(items.len() as f64);
    }

    async fn apply_alone(&self, fetched: &Fetched, delivery: &StoredEvent, item: &P::Item) {
        let message = &fetched.message;
        let consumer = self.spec.durable_name.clone();
        let outcome = self.apply_bounded(std::slice::from_ref(item)).await;
        self.record_store_state(&outcome);
        match outcome {
            Ok(()) => {
                acknowledge(message, AckKind::Ack).await;
                metrics::counter!("switchboard_consumer_events_total", "consumer" => consumer, "outcome" => "applied")
                    .increment(1);
            }
            Err(ApplyError::Unavailable(_)) => {
                acknowledge(message, AckKind::Nak(Some(self.backoff(delivery.delivered)))).await;
                metrics::counter!("switchboard_consumer_events_total", "consumer" => consumer, "outcome" => "retried")
                    .increment(1);
            }
            Err(ApplyError::Failed(reason)) if delivery.delivered >= self.settings.max_attempts => {
                let reason = format!("failed {} times: {reason}", delivery.delivered);
                self.dead_letter(fetched, Some(delivery), &reason).await;
            }
            Err(ApplyError::Failed(reason)) => {
                tracing::warn!(
                    consumer = %consumer,
                    sequence = delivery.stream_sequence,
                    delivered = delivery.delivered,
                    %reason,
                    "event failed; will retry"
                );
                acknowledge(message, AckKind::Nak(Some(self.backoff(delivery.delivered)))).await;
                metrics::counter!("switchboard_consumer_events_total", "consumer" => consumer, "outcome" => "retried")
                    .increment(1);
            }
        }
    }

    /// Keeps readiness and the `switchboard_consumer_store_unavailable` gauge in step with the
    /// store: unavailable from a batch it refused as unavailable until a batch is written.
    fn record_store_state(&self, outcome: &Result<(), ApplyError>) {
        let consumer = &self.spec.durable_name;
        let reason = match outcome {
            Err(ApplyError::Unavailable(reason)) => Some(reason.to_string()),
            Ok(()) => None,
            // A batch that failed because of its rows says nothing about the store.
            Err(ApplyError::Failed(_)) => return,
        };
        if self.health.set_store_unavailable(reason.as_deref()) {
            match &reason {
                Some(reason) => tracing::error!(
                    consumer = %consumer,
                    %reason,
                    "store unavailable: acknowledging nothing and retrying until it takes writes again"
                ),
                None => tracing::info!(consumer = %consumer, "store available again; consuming"),
            }
        }
        metrics::gauge!("switchboard_consumer_store_unavailable", "consumer" => consumer.clone())
            .set(if reason.is_some() { 1.0 } else { 0.0 });
    }

    /// Applies with a deadline well inside the ack wait, so the server never redelivers a batch that
    /// is still being written (a timed-out batch is retried like an unavailable store).
    async fn apply_bounded(&self, items: &[P::Item]) -> Result<(), ApplyError> {
        let deadline = self.settings.ack_wait.mul_f64(0.75);
        match tokio::time::timeout(deadline, self.projection.apply(items)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(ApplyError::Unavailable(format!("batch not applied within {deadline:?}").into())),
        }
    }

    fn backoff(&self, delivered: i64) -> Duration {
        let exponent = u32::try_from(delivered.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
        self.settings.retry_initial.saturating_mul(2u32.saturating_pow(exponent)).min(self.settings.retry_max)
    }

    fn delivery(&self, fetched: &Fetched) -> Result<StoredEvent, Rejection> {
        let message = &fetched.message;
        let info = message
            .info()
            .map_err(|error| Rejection::NotAnEvent(format!("not a JetStream message: {error}")))?;
        StoredEvent::received(
            &self.subjects,
            message,
            fetched.received_at,
            info.stream_sequence,
            info.delivered,
        )
    }

    async fn dead_letter(&self, fetched: &Fetched, delivery: Option<&StoredEvent>, reason: &str) {
        let message = &fetched.message;
        let sequence = delivery
            .map(|delivery| delivery.stream_sequence)
            .or_else(|| message.info().ok().map(|info| info.stream_sequence));
        let original_headers = fetched.headers.unpack();
        let letter = DeadLetter {
            original_subject: message.subject.as_str(),
            original_sequence: sequence,
            original_headers: original_headers.as_ref(),
            body: message.payload.clone(),
            reason,
        };
        match self.dead_letters.store(letter).await {
            Ok(_) => {
                acknowledge(message, AckKind::Ack).await;
                metrics::counter!("switchboard_consumer_events_total", "consumer" => self.spec.durable_name.clone(), "outcome" => "dead_lettered")
                    .increment(1);
            }
            Err(error) => {
                let delivered = delivery.map(|delivery| delivery.delivered).unwrap_or(1);
                tracing::error!(consumer = %self.spec.durable_name, %error, "cannot store dead letter; will retry the event");
                acknowledge(message, AckKind::Nak(Some(self.backoff(delivered)))).await;
            }
        }
    }
}

/// Waits for a batch being applied.
async fn finish(writing: Writing) {
    if let Err(error) = writing.await {
        // Its messages were not acknowledged: the server redelivers them after the ack wait.
        tracing::error!(%error, "applying a batch failed unexpectedly");
    }
}

async fn acknowledge(message: &jetstream::Message, kind: AckKind) {
    if let Err(error) = message.ack_with(kind).await {
        // The server redelivers after the ack wait; projections are idempotent.
        tracing::warn!(subject = %message.subject, %error, "cannot acknowledge; the event will be redelivered");
    }
}

/// The message stream, read on a task of its own so that it keeps asking the server for messages
/// while a batch is decoded and written: the stream sends its next pull request only when it is
/// polled, so a loop that polls it only between batches waits a round trip for every batch and
/// takes whatever little has arrived by then. What is read ahead is bounded by `capacity` messages
/// and [`BATCH_MAX_BYTES`] of bodies; the reader waits when either is reached.
struct ReadAhead {
    receiver: mpsc::Receiver<Result<Fetched, MessagesError>>,
    /// Body bytes the reader may still hand over.
    bytes: Arc<Semaphore>,
    reader: tokio::task::JoinHandle<()>,
}

impl ReadAhead {
    fn start(mut messages: jetstream::consumer::pull::Stream, capacity: usize) -> ReadAhead {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let bytes = Arc::new(Semaphore::new(BATCH_MAX_BYTES));
        let budget = Arc::clone(&bytes);
        let reader = tokio::spawn(async move {
            while let Some(next) = messages.next().await {
                let next = next.map(Fetched::new);
                let Ok(permit) = budget.acquire_many(ReadAhead::size(&next)).await else {
                    break;
                };
                permit.forget();
                if sender.send(next).await.is_err() {
                    break;
                }
            }
        });
        ReadAhead { receiver, bytes, reader }
    }

    /// The bytes a message counts for (a body larger than the bound counts as the bound).
    fn size(next: &Result<Fetched, MessagesError>) -> u32 {
        let length = next.as_ref().map_or(0, |fetched| fetched.message.payload.len()).min(BATCH_MAX_BYTES);
        u32::try_from(length).unwrap_or(u32::MAX)
    }

    fn taken(&self, next: Result<Fetched, MessagesError>) -> Result<Fetched, MessagesError> {
        self.bytes.add_permits(ReadAhead::size(&next) as usize);
        next
    }

    /// The next message, waiting for it; `None` when the stream ended.
    async fn next(&mut self) -> Option<Result<Fetched, MessagesError>> {
        let next = self.receiver.recv().await?;
        Some(self.taken(next))
    }

    /// The next message if one has already arrived.
    fn ready(&mut self) -> Option<Result<Fetched, MessagesError>> {
        let next = self.receiver.try_recv().ok()?;
        Some(self.taken(next))
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Hands back, for immediate redelivery elsewhere, the messages that were fetched but not started.
/// Messages still on their way for a pull request already made are redelivered after the ack wait.
async fn release_buffered(messages: &mut ReadAhead, limit: usize) {
    let mut released = 0usize;
    while released < limit {
        match messages.ready() {
            Some(Ok(fetched)) => {
                acknowledge(&fetched.message, AckKind::Nak(None)).await;
                released += 1;
            }
            _ => break,
        }
    }
    if released > 0 {
        tracing::info!(released, "returned fetched events to the server for redelivery");
    }
}

/// Sleeps, or returns `true` at once when shutdown begins.
async fn sleep_or_shutdown(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(duration) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_headers_unpack_to_the_same_names_and_values() {
        assert_eq!(PackedHeaders::pack(None).unpack(), None, "no headers stay none");
        let mut header_map = HeaderMap::new();
        header_map.insert(headers::RECEIVED_AT, "2021-04-09T10:57:51.123456Z");
        header_map.insert("Nats-Msg-Id", "sms.message.status:0123abcd");
        header_map.append("X-Twice", "first value: with a colon");
        header_map.append("X-Twice", "second");
        header_map.insert("X-Empty", "");
        let unpacked = PackedHeaders::pack(Some(&header_map)).unpack().expect("headers");
        let values = |map: &HeaderMap| {
            let mut values: Vec<(String, Vec<String>)> = map
                .iter()
                .map(|(name, values)| {
                    (name.to_string(), values.iter().map(|value| value.as_str().to_owned()).collect())
                })
                .collect();
            values.sort();
            values
        };
        assert_eq!(values(&unpacked), values(&header_map));
        assert_eq!(values(&unpacked).len(), 4);
        assert_eq!(
            received_at(Some(&unpacked)),
            Some(switchboard_events::value::unix_micros(
                OffsetDateTime::parse("2021-04-09T10:57:51.123456Z", &Rfc3339).expect("a valid time")
            ))
        );
    }

    #[test]
    fn a_rejection_says_why_in_the_words_a_dead_letter_keeps() {
        let body =
            switchboard_events::decode(EventKind::SmsMessageStatus, b"[1]").expect_err("not an object");
        assert_eq!(
            Rejection::from(body.clone()).to_string(),
            body.to_string(),
            "a body error is kept as it is"
        );
        let other = Rejection::NotServed { kind: EventKind::VoiceMessageOut, service: Product::Sms };
        assert_eq!(other.to_string(), "voice:message:out is not an event of the sms service");
        let encode = serde_json::from_str::<u8>("x").expect_err("not JSON");
        let reason = Rejection::Encode { part: "recipient.user", source: encode }.to_string();
        assert!(reason.starts_with("cannot store recipient.user as JSON: "), "{reason}");
    }
}
