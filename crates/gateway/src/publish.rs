//! Storing an authenticated event in JetStream, within a deadline.

use std::time::{Duration, Instant};

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::{self, message::PublishMessage};
use async_nats::{HeaderMap, HeaderName, Subject};
use bytes::Bytes;
use metrics::Histogram;
use switchboard_events::{EventKind, Subjects, headers};

use crate::auth::Authenticated;

/// An event ready to publish: the body as it will be stored.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub kind: EventKind,
    pub body: Bytes,
    /// How the body was changed from what was received, if it was (`trailing-commas`, …).
    pub normalized: Option<&'static str>,
}

/// What the gateway knows about the request, for the message headers.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub request_id: String,
    /// RFC 3339, microseconds, UTC.
    pub received_at: String,
    pub traceparent: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub sequence: u64,
    pub duplicate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("JetStream did not acknowledge within {0:?}")]
    Timeout(Duration),
    #[error("JetStream refused the event: {0}")]
    Refused(String),
}

/// The header names, built once: a name made from a `&str` is validated and copied per message.
const EVENT: HeaderName = HeaderName::from_static(headers::EVENT);
const SOURCE: HeaderName = HeaderName::from_static(headers::SOURCE);
const RECEIVED_AT: HeaderName = HeaderName::from_static(headers::RECEIVED_AT);
const REQUEST_ID: HeaderName = HeaderName::from_static(headers::REQUEST_ID);
const NORMALIZED: HeaderName = HeaderName::from_static(headers::NORMALIZED);
const TRACEPARENT: HeaderName = HeaderName::from_static(headers::TRACEPARENT);

/// Pauses between attempts at a refused publish: a JetStream stream elects a new leader within a
/// few seconds of losing one, and the provider waits 3 s for an answer.
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(25);
const LAST_RETRY_PAUSE: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct Publisher {
    /// Its publish acknowledgements time out after `timeout`.
    jetstream: jetstream::Context,
    subjects: Subjects,
    timeout: Duration,
    /// `switchboard_gateway_publish_seconds`.
    ack_seconds: Histogram,
}

impl Publisher {
    /// Publishes through `client`, waiting at most `timeout` for each event's acknowledgement.
    pub fn new(
        client: async_nats::Client,
        subjects: Subjects,
        timeout: Duration,
        ack_seconds: Histogram,
    ) -> Publisher {
        let jetstream = switchboard_runtime::nats::jetstream_with_timeout(client, timeout);
        Publisher { jetstream, subjects, timeout, ack_seconds }
    }

    /// Publishes and waits for the stream's acknowledgement. Only an acknowledged event is `Ok`.
    pub async fn publish(
        &self,
        event: &Authenticated<Outgoing>,
        meta: &RequestMeta,
    ) -> Result<Stored, PublishError> {
        let outgoing = event.payload();
        let subject: Subject = self.subjects.event(outgoing.kind).into();
        // Built again for a retry only: the first attempt costs what a single publish does.
        let message = || {
            let mut header_map = HeaderMap::new();
            let message_id = headers::message_id(outgoing.kind.as_str(), &outgoing.body);
            header_map.insert(EVENT, outgoing.kind.as_str());
            header_map.insert(SOURCE, event.source());
            header_map.insert(RECEIVED_AT, meta.received_at.as_str());
            header_map.insert(REQUEST_ID, meta.request_id.as_str());
            if let Some(normalized) = outgoing.normalized {
                header_map.insert(NORMALIZED, normalized);
            }
            if let Some(traceparent) = &meta.traceparent {
                header_map.insert(TRACEPARENT, traceparent.as_str());
            }
            PublishMessage::build().payload(outgoing.body.clone()).headers(header_map).message_id(message_id)
        };
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started) + self.timeout;
        let mut pauses = switchboard_runtime::retry::pauses(FIRST_RETRY_PAUSE, LAST_RETRY_PAUSE);
        let mut pause = pauses.next().unwrap_or(LAST_RETRY_PAUSE);
        let attempt = async || {
            let ack_future = self
                .jetstream
                .send_publish(subject.clone(), message())
                .await
                .map_err(|error| PublishError::Refused(error.to_string()))?;
            ack_future.await.map_err(|error| match error.kind() {
                PublishErrorKind::TimedOut => PublishError::Timeout(self.timeout),
                _ => PublishError::Refused(error.to_string()),
            })
        };
        // The first attempt is bounded by the context's ack timeout, which is `timeout`: one timer
        // per request rather than two (each costs a turn at the runtime's timer wheel). Retries
        // start later, so the deadline bounds them.
        let mut outcome = attempt().await;
        // A refusal is most often a moment without a stream leader (a server restarting, an
        // election): try again with the same message id, which JetStream stores at most once,
        // while the deadline allows.
        while let Err(PublishError::Refused(error)) = &outcome {
            if tokio::time::Instant::now() + pause >= deadline {
                break;
            }
            tracing::debug!(%error, retry_in = ?pause, "publish refused; retrying");
            tokio::time::sleep(pause).await;
            pause = pauses.next().unwrap_or(LAST_RETRY_PAUSE);
            outcome = tokio::time::timeout_at(deadline, attempt())
                .await
                .unwrap_or(Err(PublishError::Timeout(self.timeout)));
        }
        let outcome = outcome.map(|ack| Stored { sequence: ack.sequence, duplicate: ack.duplicate });
        self.ack_seconds.record(started.elapsed().as_secs_f64());
        outcome
    }
}
