//! NATS message headers: set by the gateway on every event, read by services, kept on dead letters.
//!
//! Header names are case-sensitive in NATS; these are the exact spellings.

use sha2::{Digest, Sha256};

/// JetStream's de-duplication id: [`message_id`] of the event and body, so a provider retry of the
/// same body within the stream's duplicate window is stored once.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// The provider's event string, e.g. `sms:message:status`.
pub const EVENT: &str = "Switchboard-Event";
/// The name of the configured source that authenticated the request.
pub const SOURCE: &str = "Switchboard-Source";
/// When the gateway received the request, RFC 3339 UTC with microseconds.
pub const RECEIVED_AT: &str = "Switchboard-Received-At";
/// The request id the gateway answered with (`x-request-id`), for following one delivery in logs.
pub const REQUEST_ID: &str = "Switchboard-Request-Id";
/// How the gateway turned the request into the JSON body, when it was not published as received:
/// `trailing-commas` (tolerant JSON normalised), `form` or `query` (converted to a JSON object).
pub const NORMALIZED: &str = "Switchboard-Normalized";
/// W3C trace context, when tracing is on.
pub const TRACEPARENT: &str = "traceparent";

/// On a dead letter: why it could not be processed.
pub const DLQ_REASON: &str = "Switchboard-Dlq-Reason";
/// On a dead letter: the subject it was published on (or, for gateway dead letters, was meant for).
pub const DLQ_ORIGINAL_SUBJECT: &str = "Switchboard-Dlq-Subject";
/// On a dead letter: its sequence in the main stream (absent for gateway dead letters).
pub const DLQ_ORIGINAL_SEQUENCE: &str = "Switchboard-Dlq-Sequence";
/// On a dead letter: the component that gave up on it (`gateway`, `sms`, `chat`, …).
pub const DLQ_COMPONENT: &str = "Switchboard-Dlq-Component";
/// On a dead letter: when it was dead-lettered.
pub const DLQ_AT: &str = "Switchboard-Dlq-At";
/// On a replayed event: the dead letter's sequence in the dead-letter stream.
pub const REPLAYED_FROM: &str = "Switchboard-Replayed-From";

/// The de-duplication id of an event: SHA-256 over the event string and the published body.
pub fn message_id(event: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(event.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    hex::encode(hasher.finalize())
}
