//! Decoding a message body into its typed payload.

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::EventKind;
use crate::chat::{ChatStatus, InboundMessage};
use crate::contacts::Contact;
use crate::sms::{SmsStatus, Unsubscription};
use crate::tolerant::{self, DEFAULT_MAX_DEPTH, JsonError};
use crate::voice::VoiceCall;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error(transparent)]
    Json(#[from] JsonError),
    #[error("the body says it is a {found:?} event but arrived as {expected:?}")]
    EventMismatch { expected: &'static str, found: String },
    #[error("the body is JSON but not an object")]
    NotAnObject,
}

/// A decoded payload. The [`EventKind`] it was decoded as says which product and channel it is for.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    SmsStatus(SmsStatus),
    /// Any of the four `*:unsubscription` events.
    Unsubscription(Unsubscription),
    /// `whatsapp:message:status` or `rcs:message:status`.
    ChatStatus(ChatStatus),
    /// `whatsapp:message:in`, `rcs:message:in` or `vmn:message:in`.
    Inbound(InboundMessage),
    VoiceCall(VoiceCall),
    Contact(Contact),
}

/// Decodes a body as `kind`: tolerant JSON, either envelope shape, the typed payload.
pub fn decode(kind: EventKind, body: &[u8]) -> Result<Event, DecodeError> {
    Ok(match kind {
        EventKind::SmsMessageStatus => {
            let mut status: SmsStatus = decode_as(kind, body)?;
            // Only when some `"credits"` key holds a number: the provider sends a string, and the
            // body is then not parsed a second time for every report.
            if status.credits.is_some()
                && holds_a_number(body, "credits")
                && let Some(text) = number_text(body, "credits")
            {
                // A JSON number's own text: `2.0` stays "2.0", not the float's "2".
                status.credits = Some(text);
            }
            Event::SmsStatus(status)
        }
        EventKind::SmsUnsubscription
        | EventKind::WhatsappUnsubscription
        | EventKind::RcsUnsubscription
        | EventKind::VoiceUnsubscription => Event::Unsubscription(decode_as(kind, body)?),
        EventKind::WhatsappMessageStatus | EventKind::RcsMessageStatus => {
            Event::ChatStatus(decode_as(kind, body)?)
        }
        EventKind::WhatsappMessageIn | EventKind::RcsMessageIn | EventKind::VmnMessageIn => {
            Event::Inbound(decode_as(kind, body)?)
        }
        EventKind::VoiceMessageOut => Event::VoiceCall(decode_as(kind, body)?),
        EventKind::ContactsSubscriberSubscription => Event::Contact(decode_as(kind, body)?),
    })
}

/// Decodes a body into `T`, unwrapping a `{"event", "payload"}` envelope when there is one.
///
/// The provider wraps chat and VMN events and sends the others flat; both shapes are accepted for
/// every event, and an envelope naming a different event is refused.
pub fn decode_as<T: DeserializeOwned>(kind: EventKind, body: &[u8]) -> Result<T, DecodeError> {
    let value: Value = tolerant::parse(body, DEFAULT_MAX_DEPTH)?;
    let Value::Object(mut object) = value else {
        return Err(DecodeError::NotAnObject);
    };
    let is_envelope = matches!(object.get("payload"), Some(Value::Object(_)))
        && matches!(object.get("event"), Some(Value::String(_)) | None)
        && !object.contains_key("id");
    let payload = if is_envelope {
        if let Some(Value::String(found)) = object.get("event")
            && EventKind::parse(found) != Some(kind)
        {
            return Err(DecodeError::EventMismatch { expected: kind.as_str(), found: found.clone() });
        }
        object.remove("payload").unwrap_or(Value::Null)
    } else {
        Value::Object(object)
    };
    serde_json::from_value(payload)
        .map_err(|error| DecodeError::Json(JsonError::Shape { message: error.to_string() }))
}

/// Whether some `"key"` in the body is followed by `:` and a number: a cheap test that never
/// misses a member holding a number (it may match a key elsewhere; [`number_text`] decides).
fn holds_a_number(body: &[u8], key: &str) -> bool {
    let quoted = format!("\"{key}\"");
    let quoted = quoted.as_bytes();
    // A substring search, not a comparison at every offset (which was a quarter of decoding an sms
    // report).
    memchr::memmem::find_iter(body, quoted).any(|start| {
        let mut rest = body[start + quoted.len()..].iter().skip_while(|byte| byte.is_ascii_whitespace());
        rest.next() == Some(&b':')
            && rest
                .find(|byte| !byte.is_ascii_whitespace())
                .is_some_and(|byte| *byte == b'-' || byte.is_ascii_digit())
    })
}

/// The text of the member `key` of the event's payload when it is a JSON number, exactly as it
/// appears in the body (a decimal parsed as a float would lose its trailing zeros).
fn number_text(body: &[u8], key: &str) -> Option<String> {
    type Members<'a> = std::collections::BTreeMap<std::borrow::Cow<'a, str>, &'a RawValue>;
    let normalized = tolerant::normalize(body, DEFAULT_MAX_DEPTH).ok()?;
    let members: Members<'_> = serde_json::from_slice(&normalized.body).ok()?;
    let member = match members.get("payload") {
        Some(payload) if !members.contains_key("id") && payload.get().starts_with('{') => {
            let payload: Members<'_> = serde_json::from_str(payload.get()).ok()?;
            payload.get(key).copied()
        }
        _ => members.get(key).copied(),
    }?;
    let text = member.get();
    text.starts_with(|character: char| character == '-' || character.is_ascii_digit())
        .then(|| text.to_owned())
}

/// The SHA-256 of a body, hex: identifies an event's content independently of when or how often it
/// was delivered (history rows are unique by it).
pub fn body_digest(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_and_flat_shapes_both_decode() {
        let flat = br#"{"id": "m1", "status": "read", "to": 919}"#;
        let wrapped =
            br#"{"event": "whatsapp:message:status", "payload": {"id": "m1", "status": "read", "to": 919}}"#;
        let from_flat: ChatStatus = decode_as(EventKind::WhatsappMessageStatus, flat).expect("flat decodes");
        let from_wrapped: ChatStatus =
            decode_as(EventKind::WhatsappMessageStatus, wrapped).expect("wrapped decodes");
        assert_eq!(from_flat, from_wrapped);
        assert_eq!(from_flat.to.as_deref(), Some("919"));
    }

    #[test]
    fn an_envelope_for_another_event_is_refused() {
        let wrapped = br#"{"event": "rcs:message:status", "payload": {"id": "m1", "status": "read"}}"#;
        assert_eq!(
            decode(EventKind::WhatsappMessageStatus, wrapped),
            Err(DecodeError::EventMismatch {
                expected: "whatsapp:message:status",
                found: "rcs:message:status".into()
            })
        );
    }

    #[test]
    fn shape_errors_name_the_field() {
        let missing = br#"{"mobile": "91", "status": "DELIVRD"}"#;
        match decode(EventKind::SmsMessageStatus, missing) {
            Err(DecodeError::Json(JsonError::Shape { message })) => {
                assert!(message.contains("id"), "{message}")
            }
            other => panic!("expected a shape error, got {other:?}"),
        }
        assert_eq!(decode(EventKind::SmsMessageStatus, b"[1]"), Err(DecodeError::NotAnObject));
    }

    #[test]
    fn a_decimal_sent_as_a_number_keeps_its_text() {
        for (credits, expected) in
            [("2.0", "2.0"), ("2.50", "2.50"), ("\"2.0000\"", "2.0000"), ("3", "3"), ("1e3", "1e3")]
        {
            let body =
                format!(r#"{{"id": "r:1", "mobile": "91", "status": "DELIVRD", "credits": {credits},}}"#);
            let Ok(Event::SmsStatus(status)) = decode(EventKind::SmsMessageStatus, body.as_bytes()) else {
                panic!("{body} decodes");
            };
            assert_eq!(status.credits.as_deref(), Some(expected), "{body}");
        }
        let wrapped = br#"{"event": "sms:message:status", "payload": {"id": "r:1", "mobile": "91", "status": "DELIVRD", "credits": 0.50}}"#;
        let Ok(Event::SmsStatus(status)) = decode(EventKind::SmsMessageStatus, wrapped) else {
            panic!("the envelope decodes");
        };
        assert_eq!(status.credits.as_deref(), Some("0.50"));
    }

    #[test]
    fn only_a_number_after_the_key_asks_for_a_second_parse() {
        assert!(holds_a_number(br#"{"credits": 2.0}"#, "credits"));
        assert!(holds_a_number(br#"{"credits" :-1}"#, "credits"));
        assert!(holds_a_number(br#"{"x": "credits", "credits": 3}"#, "credits"));
        assert!(!holds_a_number(br#"{"credits": "2.0000"}"#, "credits"));
        assert!(!holds_a_number(br#"{"x": "credits"}"#, "credits"));
        assert!(!holds_a_number(br#"{"credits": null}"#, "credits"));
    }

    #[test]
    fn digest_is_stable_hex() {
        assert_eq!(body_digest(b"abc").len(), 64);
        assert_eq!(body_digest(b"abc"), body_digest(b"abc"));
        assert_ne!(body_digest(b"abc"), body_digest(b"abd"));
    }
}
