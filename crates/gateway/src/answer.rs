//! Every answer the gateway gives: 200 once stored, otherwise a specific status with a JSON body
//! `{"error": <code>, "message": <for people>, "request_id": …}`.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The body of a 200.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Accepted {
    pub accepted: bool,
    pub event: &'static str,
    /// The event's sequence in the stream (for a duplicate: the original's).
    pub seq: u64,
    /// The same event and body were stored before, within the duplicate window; nothing new was stored.
    pub duplicate: bool,
    pub request_id: String,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Unauthorized,
    /// The credentials were right but the address is not in the source's list.
    Forbidden,
    /// No route for the path.
    NotFound,
    MethodNotAllowed,
    UnknownEvent(String),
    BadRequest(String),
    PayloadTooLarge(usize),
    UnsupportedMediaType(String),
    Unprocessable(String),
    /// The source's rate limit is reached.
    TooManyRequests {
        retry_after: Duration,
    },
    HeadersTooLarge(usize),
    /// NATS could not take the event in time, or the gateway is overloaded or stopping.
    Unavailable {
        reason: String,
        retry_after: Duration,
    },
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
            Refusal::Forbidden => StatusCode::FORBIDDEN,
            Refusal::NotFound | Refusal::UnknownEvent(_) => StatusCode::NOT_FOUND,
            Refusal::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Refusal::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Refusal::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Refusal::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Unauthorized => "unauthorized",
            Refusal::Forbidden => "forbidden",
            Refusal::NotFound => "not_found",
            Refusal::MethodNotAllowed => "method_not_allowed",
            Refusal::TooManyRequests { .. } => "too_many_requests",
            Refusal::HeadersTooLarge(_) => "headers_too_large",
            Refusal::UnknownEvent(_) => "unknown_event",
            Refusal::BadRequest(_) => "bad_request",
            Refusal::PayloadTooLarge(_) => "payload_too_large",
            Refusal::UnsupportedMediaType(_) => "unsupported_media_type",
            Refusal::Unprocessable(_) => "unprocessable",
            Refusal::Unavailable { .. } => "unavailable",
        }
    }

    pub fn message(&self) -> String {
        match self {
            // One message whatever failed: the caller learns nothing about which check it missed.
            Refusal::Unauthorized => "missing or invalid credentials".to_owned(),
            Refusal::Forbidden => "requests for this source are not accepted from this address".to_owned(),
            Refusal::NotFound => "no such path; post events to /v1/events/{event} or /v1/events".to_owned(),
            Refusal::MethodNotAllowed => {
                "method not allowed; use POST, PUT or GET on /v1/events/{event}, POST on /v1/events"
                    .to_owned()
            }
            Refusal::TooManyRequests { .. } => "too many requests from this source; retry later".to_owned(),
            Refusal::HeadersTooLarge(limit) => {
                format!("the headers and query string are larger than the limit of {limit} bytes")
            }
            Refusal::UnknownEvent(event) => {
                format!(
                    "unknown event {event:?}; expected one of the provider's event names, e.g. sms:message:status"
                )
            }
            Refusal::BadRequest(reason) => reason.clone(),
            Refusal::PayloadTooLarge(limit) => format!("the body is larger than the limit of {limit} bytes"),
            Refusal::UnsupportedMediaType(content_type) => {
                format!(
                    "content type {content_type:?} is not accepted; send application/json or application/x-www-form-urlencoded"
                )
            }
            Refusal::Unprocessable(reason) => format!("{reason}; the body was kept for inspection"),
            Refusal::Unavailable { reason, .. } => format!("{reason}; retry later"),
        }
    }

    pub fn into_response(self, request_id: &str) -> Response {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'static str,
            message: String,
            request_id: &'a str,
        }
        let status = self.status();
        let retry_after = match &self {
            Refusal::Unavailable { retry_after, .. } | Refusal::TooManyRequests { retry_after } => {
                Some(*retry_after)
            }
            _ => None,
        };
        let mut response =
            (status, Json(Body { error: self.code(), message: self.message(), request_id })).into_response();
        if let Some(retry_after) = retry_after {
            let whole_seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            let seconds = whole_seconds.max(1).to_string();
            if let Ok(value) = HeaderValue::from_str(&seconds) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        if status == StatusCode::METHOD_NOT_ALLOWED {
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, POST, PUT"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
