//! Turning one HTTP request into one stored event (or one clear refusal).
//!
//! Order of checks: header size (431) → body size (413, before reading more than the limit) →
//! authentication (401, or 403 for a refused address) → the source's rate (429) → event name (404)
//! → content type (415) → body (400/422) → publish (503 if not stored in time) → 200.
//! A request that passed authentication but is refused for its content is dead-lettered first, so
//! nothing an authenticated caller sent is lost; if even that fails, the answer is 503 and the
//! provider will retry.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, header};
use bytes::Bytes;
use serde::Deserialize;
use switchboard_events::tolerant::{self, JsonError};
use switchboard_events::{EventKind, Subjects, event_to_subject};
use switchboard_runtime::dead_letter::{DeadLetter, DeadLetters};
use time::OffsetDateTime;

use crate::answer::{Accepted, Refusal};
use crate::auth::{AuthError, Authenticated, Authenticator, Presented, TrustedProxies};
use crate::convert::form_to_json;
use crate::publish::{Outgoing, PublishError, Publisher, RequestMeta};
use crate::rate::RateLimits;

/// Everything a request needs, shared by all requests.
#[derive(Debug)]
pub struct Gateway {
    pub authenticator: Authenticator,
    pub trusted_proxies: TrustedProxies,
    pub rate_limits: RateLimits,
    pub publisher: Publisher,
    pub dead_letters: DeadLetters,
    pub subjects: Subjects,
    pub limits: Limits,
    pub metrics: crate::metrics::GatewayMetrics,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_json_depth: usize,
    pub max_header_bytes: usize,
    pub retry_after: Duration,
}

/// One HTTP request as the gateway receives it.
#[derive(Debug)]
pub struct WebhookRequest {
    pub method: Method,
    /// The `{event}` of the URL, or `None` for `POST /v1/events`.
    pub path_event: Option<String>,
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// The TCP peer (absent only when the server was started without connection info).
    pub peer: Option<SocketAddr>,
    pub body: Body,
}

/// The outcome of one request, for the answer, the metrics and the log line.
#[derive(Debug)]
pub struct Outcome {
    pub event: Option<EventKind>,
    pub source: Option<String>,
    /// Bytes of body received.
    pub received_bytes: usize,
    pub result: Result<Accepted, Refusal>,
}

impl Gateway {
    /// Handles one delivery.
    pub async fn ingest(self: Arc<Self>, delivery: WebhookRequest, request_id: String) -> Outcome {
        let received_at = OffsetDateTime::now_utc();
        let mut outcome =
            Outcome { event: None, source: None, received_bytes: 0, result: Err(Refusal::Unauthorized) };
        let WebhookRequest { method, path_event, query, headers, peer, body } = delivery;
        let header_bytes: usize =
            headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum::<usize>()
                + query.as_ref().map_or(0, String::len);
        if header_bytes > self.limits.max_header_bytes {
            outcome.result = Err(Refusal::HeadersTooLarge(self.limits.max_header_bytes));
            return outcome;
        }
        let raw = match read_body(&headers, body, self.limits.max_body_bytes).await {
            Ok(raw) => raw,
            Err(refusal) => {
                outcome.result = Err(refusal);
                return outcome;
            }
        };
        outcome.received_bytes = raw.len();
        let client = peer.map(|peer| self.trusted_proxies.client_address(peer.ip(), &headers));
        let presented = Presented {
            headers: &headers,
            query: query.as_deref(),
            body: &raw,
            now: received_at.unix_timestamp(),
        };
        let authenticated = match self.authenticator.authenticate(&presented, client, raw.clone()) {
            Ok(authenticated) => authenticated,
            Err(error) => {
                let client = client.map(|address| address.to_string()).unwrap_or_default();
                tracing::info!(%request_id, %client, reason = %error, "request not authenticated");
                if error == AuthError::AddressRefused {
                    outcome.result = Err(Refusal::Forbidden);
                }
                return outcome;
            }
        };
        outcome.source = Some(authenticated.source().to_owned());
        if let Err(wait) = self.rate_limits.check(authenticated.source()) {
            outcome.result = Err(Refusal::TooManyRequests { retry_after: wait.max(Duration::from_secs(1)) });
            return outcome;
        }
        let meta = RequestMeta {
            request_id: request_id.clone(),
            received_at: switchboard_events::value::rfc3339_micros(received_at),
            traceparent: headers
                .get("traceparent")
                .and_then(|value| value.to_str().ok())
                .filter(|value| is_traceparent(value))
                .map(str::to_owned),
        };
        // A GET carries its event in the query string: that is what is kept if it is refused.
        let authenticated = if method == Method::GET {
            let parameters = self.authenticator.query_parameters();
            authenticated.map(|_| {
                Bytes::from(
                    query
                        .as_deref()
                        .and_then(|query| form_to_json(query.as_bytes(), parameters))
                        .unwrap_or_default(),
                )
            })
        } else {
            authenticated
        };
        let prepared =
            prepare(&self.limits, &method, path_event.as_deref(), &headers, authenticated.payload());
        outcome.result = match prepared {
            Ok(outgoing) => {
                outcome.event = Some(outgoing.kind);
                let event = authenticated.map(|_| outgoing);
                self.publish(&event, &meta).await
            }
            Err(rejection) => {
                outcome.event = rejection.event;
                Err(self.dead_letter(&authenticated, &meta, path_event.as_deref(), rejection).await)
            }
        };
        outcome
    }

    async fn publish(
        &self,
        event: &Authenticated<Outgoing>,
        meta: &RequestMeta,
    ) -> Result<Accepted, Refusal> {
        match self.publisher.publish(event, meta).await {
            Ok(stored) => Ok(Accepted {
                accepted: true,
                event: event.payload().kind.as_str(),
                seq: stored.sequence,
                duplicate: stored.duplicate,
                request_id: meta.request_id.clone(),
            }),
            Err(error) => {
                tracing::warn!(request_id = %meta.request_id, %error, "event not stored");
                let reason = match error {
                    PublishError::Timeout(_) => "the event store did not confirm in time",
                    PublishError::Refused(_) => "the event store refused the event",
                };
                Err(Refusal::Unavailable { reason: reason.to_owned(), retry_after: self.limits.retry_after })
            }
        }
    }

    /// Keeps an authenticated body that cannot be published, then returns the refusal to answer with.
    async fn dead_letter(
        &self,
        authenticated: &Authenticated<Bytes>,
        meta: &RequestMeta,
        path_event: Option<&str>,
        rejection: Rejection,
    ) -> Refusal {
        let intended = match (rejection.event, path_event) {
            (Some(kind), _) => kind.subject_suffix().to_owned(),
            // The caller chose this name: a long one would exceed NATS's subject limits.
            (None, Some(name)) => event_to_subject("", name)
                .ok()
                .filter(|subject| subject.len() <= MAX_INTENDED_SUBJECT_BYTES)
                .unwrap_or_else(|| "invalid".to_owned()),
            (None, None) => "unknown".to_owned(),
        };
        let mut header_map = async_nats::HeaderMap::new();
        header_map.insert(switchboard_events::headers::SOURCE, authenticated.source());
        header_map.insert(switchboard_events::headers::RECEIVED_AT, meta.received_at.as_str());
        header_map.insert(switchboard_events::headers::REQUEST_ID, meta.request_id.as_str());
        if let Some(kind) = rejection.event {
            header_map.insert(switchboard_events::headers::EVENT, kind.as_str());
        }
        let reason = rejection.refusal.message();
        let original_subject = format!("{}{intended}", self.subjects.prefix());
        let letter = DeadLetter {
            original_subject: &original_subject,
            original_sequence: None,
            original_headers: Some(&header_map),
            body: authenticated.payload().clone(),
            reason: &reason,
        };
        match self.dead_letters.store(letter).await {
            Ok(_) => rejection.refusal,
            Err(error) => {
                tracing::error!(request_id = %meta.request_id, %error, "cannot keep a refused body; asking the caller to retry");
                Refusal::Unavailable {
                    reason: "the request could not be processed or kept".to_owned(),
                    retry_after: self.limits.retry_after,
                }
            }
        }
    }
}

/// The longest subject suffix derived from an unknown event name for a dead letter.
const MAX_INTENDED_SUBJECT_BYTES: usize = 128;

/// Reads at most `limit` bytes; a declared or actual larger body is 413.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Refusal> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(Refusal::PayloadTooLarge(limit));
    }
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(bytes),
        Err(error) => {
            let too_large = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            if too_large {
                Err(Refusal::PayloadTooLarge(limit))
            } else {
                Err(Refusal::BadRequest("the body could not be read completely".to_owned()))
            }
        }
    }
}

/// A refusal of an authenticated request, with the event when it was known.
#[derive(Debug)]
pub struct Rejection {
    pub event: Option<EventKind>,
    pub refusal: Refusal,
}

impl Rejection {
    fn new(event: Option<EventKind>, refusal: Refusal) -> Rejection {
        Rejection { event, refusal }
    }
}

/// Only what the gateway reads of a body: the `event` field.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    event: Option<serde_json::Value>,
}

/// Checks an authenticated body and decides what to publish: the event (from the path, the body's
/// `event` field, or both when they agree) and the bytes, which are the body as received or, when it
/// had trailing commas, the body without them. Public so the fuzz targets can drive it.
pub fn prepare(
    limits: &Limits,
    method: &Method,
    path_event: Option<&str>,
    headers: &HeaderMap,
    raw: &Bytes,
) -> Result<Outgoing, Rejection> {
    let path_kind = match path_event {
        Some(name) => Some(
            EventKind::parse(name)
                .ok_or_else(|| Rejection::new(None, Refusal::UnknownEvent(name.to_owned())))?,
        ),
        None => None,
    };
    let converted = if method == Method::GET {
        if raw.is_empty() {
            return Err(Rejection::new(
                path_kind,
                Refusal::BadRequest("a GET delivery needs the event's fields in the query string".to_owned()),
            ));
        }
        Some((raw.clone(), "query"))
    } else {
        match body_kind(headers, raw).map_err(|refusal| Rejection::new(path_kind, refusal))? {
            BodyKind::Json => None,
            BodyKind::Form => match form_to_json(raw, &[]) {
                Some(json) => Some((Bytes::from(json), "form")),
                None => {
                    return Err(Rejection::new(
                        path_kind,
                        Refusal::BadRequest("the form body is empty".to_owned()),
                    ));
                }
            },
        }
    };
    let json: &[u8] = converted.as_ref().map_or(raw.as_ref(), |(json, _)| json.as_ref());
    // JSON is UTF-8; the probe below skips the fields it does not read without checking them.
    if std::str::from_utf8(json).is_err() {
        return Err(Rejection::new(path_kind, Refusal::Unprocessable("the body is not UTF-8".to_owned())));
    }
    let normalized = tolerant::normalize(json, limits.max_json_depth)
        .map_err(|error| Rejection::new(path_kind, Refusal::Unprocessable(error.to_string())))?;
    // The probe would read an array as a struct (its first element as `event`).
    let opens_object = normalized.body.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{');
    if !opens_object && !normalized.body.iter().all(u8::is_ascii_whitespace) {
        return Err(Rejection::new(
            path_kind,
            Refusal::Unprocessable("the body must be a JSON object".to_owned()),
        ));
    }
    let probe: Probe = tolerant::from_normalized(&normalized.body).map_err(|error| {
        let reason = match error {
            JsonError::Shape { .. } => "the body must be a JSON object".to_owned(),
            other => other.to_string(),
        };
        Rejection::new(path_kind, Refusal::Unprocessable(reason))
    })?;
    let body_event = match probe.event {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(name)) => Some(name),
        Some(_) => {
            return Err(Rejection::new(
                path_kind,
                Refusal::BadRequest("the body's `event` must be a string".to_owned()),
            ));
        }
    };
    let kind = match (path_kind, body_event) {
        (Some(kind), None) => kind,
        (Some(kind), Some(name)) => match EventKind::parse(&name) {
            Some(named) if named == kind => kind,
            _ => {
                return Err(Rejection::new(
                    Some(kind),
                    Refusal::BadRequest(format!(
                        "the body's event {name:?} contradicts the URL's {:?}",
                        kind.as_str()
                    )),
                ));
            }
        },
        (None, Some(name)) => {
            EventKind::parse(&name).ok_or_else(|| Rejection::new(None, Refusal::UnknownEvent(name)))?
        }
        (None, None) => {
            return Err(Rejection::new(
                None,
                Refusal::BadRequest(
                    "the body has no `event` field; post to /v1/events/{event} instead".to_owned(),
                ),
            ));
        }
    };
    let (body, normalized) = match converted {
        Some((json, how)) => (json, Some(how)),
        None if normalized.was_changed() => {
            (Bytes::from(normalized.body.into_owned()), Some("trailing-commas"))
        }
        // Byte for byte as received.
        None => (raw.clone(), None),
    };
    Ok(Outgoing { kind, body, normalized })
}

enum BodyKind {
    Json,
    Form,
}

/// JSON is accepted under its own type, `+json` types, `text/plain` and without a type at all;
/// `application/x-www-form-urlencoded` is converted. A body labelled as a form that is plainly JSON
/// (it starts with `{`, as `curl --data` sends it) is read as JSON: a form body cannot start that way.
fn body_kind(headers: &HeaderMap, body: &[u8]) -> Result<BodyKind, Refusal> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(BodyKind::Json);
    };
    let Ok(text) = value.to_str() else {
        return Err(Refusal::UnsupportedMediaType(String::from_utf8_lossy(value.as_bytes()).into_owned()));
    };
    let essence = text.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let json_type = essence == "application/json"
        || essence.ends_with("+json")
        || essence == "text/plain"
        || essence.is_empty();
    if json_type {
        return Ok(BodyKind::Json);
    }
    if essence == "application/x-www-form-urlencoded" {
        let json_as_form = body.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{');
        return Ok(if json_as_form { BodyKind::Json } else { BodyKind::Form });
    }
    Err(Refusal::UnsupportedMediaType(text.to_owned()))
}

/// A W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), so nothing else is copied into headers.
fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let lengths = [2, 32, 16, 2];
    parts.len() == 4
        && parts.iter().zip(lengths).all(|(part, length)| {
            part.len() == length
                && part.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
        })
}
