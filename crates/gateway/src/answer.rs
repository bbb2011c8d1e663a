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
    UnknownEvent(String),
    BadRequest(String),
    PayloadTooLarge(usize),
    UnsupportedMediaType(String),
    Unprocessable(String),
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
            Refusal::UnknownEvent(_) => StatusCode::NOT_FOUND,
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
            Refusal::UnknownEvent(event) => {
                format!(
                    "unknown event {event:?}; expected one of the provider's event names, e.g. sms:message:status"
                )
            }
            Refusal::BadRequest(reason) => reason.clone(),
            Refusal::PayloadTooLarge(limit) => format!("the body is larger than the limit of {limit} bytes"),
            Refusal::UnsupportedMediaType(content_type) => {
                format!("content type {content_type:?} is not accepted; send application/json")
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
            Refusal::Unavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        let mut response =
            (status, Json(Body { error: self.code(), message: self.message(), request_id })).into_response();
        if let Some(retry_after) = retry_after {
            let seconds = retry_after.as_secs().max(1).to_string();
            if let Ok(value) = HeaderValue::from_str(&seconds) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
