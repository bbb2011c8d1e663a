//! `sms:message:status` and the shared opt-out payload.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::value::{ProviderTime, lenient_i64, lenient_string, required_string};

/// A delivery report for one recipient of an SMS request (`sms:message:status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmsStatus {
    /// `<request uuid>:<recipient index>`; an id without `:` is kept whole.
    #[serde(deserialize_with = "required_string")]
    pub id: String,
    #[serde(deserialize_with = "required_string")]
    pub mobile: String,
    /// `DELIVRD`, `UNDELIV`, `AWAITING-DLR`, … as sent; unknown codes are kept.
    #[serde(deserialize_with = "required_string")]
    pub status: String,
    /// Credits charged, a decimal the provider sends as text (`"2.0000"`); kept as text to stay exact.
    #[serde(default, deserialize_with = "lenient_string")]
    pub credits: Option<String>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub units: Option<i64>,
    #[serde(default)]
    pub deliv_time: Option<ProviderTime>,
    #[serde(default)]
    pub sent_time: Option<ProviderTime>,
    #[serde(default)]
    pub submit_time: Option<ProviderTime>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub cid: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub custom: Option<String>,
    /// Fields the catalogue does not document (`custom1`, `provider`, `sender`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl SmsStatus {
    /// The request part of the id (before the last `:`).
    pub fn request_id(&self) -> &str {
        match self.id.rsplit_once(':') {
            Some((request, index)) if index.parse::<u32>().is_ok() => request,
            _ => &self.id,
        }
    }

    /// The recipient's index within its request (after the last `:`), when the id carries one.
    pub fn recipient_index(&self) -> Option<i64> {
        let (_, index) = self.id.rsplit_once(':')?;
        index.parse().ok()
    }

    /// The sender id, which the documented payload lacks but some accounts receive as `sender`.
    pub fn sender(&self) -> Option<String> {
        ["sender", "sender_id", "senderid"].iter().find_map(|key| match self.extra.get(*key)? {
            Value::String(text) if !text.is_empty() => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        })
    }
}

/// An opt-out (`sms:`, `whatsapp:`, `rcs:` and `voice:unsubscription` share this shape). The id is a
/// uuid string for SMS and voice and an integer for WhatsApp and RCS; both are kept as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unsubscription {
    #[serde(deserialize_with = "required_string")]
    pub id: String,
    #[serde(deserialize_with = "required_string")]
    pub receiver: String,
    /// `sender`, `category`, `all`, …
    #[serde(rename = "type", default, deserialize_with = "lenient_string")]
    pub scope: Option<String>,
    /// The sender id, the category (`WUC`) or `*`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub value: Option<String>,
    #[serde(default)]
    pub created_at: Option<ProviderTime>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub status: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_with_id(id: &str) -> SmsStatus {
        serde_json::from_value(serde_json::json!({"id": id, "mobile": 1, "status": "DELIVRD"}))
            .expect("minimal status decodes")
    }

    #[test]
    fn id_splits_into_request_and_index() {
        let status = status_with_id("b34e35ad-fe34-4a8b-977c-b21cd76cd7d6:1");
        assert_eq!(status.request_id(), "b34e35ad-fe34-4a8b-977c-b21cd76cd7d6");
        assert_eq!(status.recipient_index(), Some(1));
        let plain = status_with_id("b34e35ad");
        assert_eq!(plain.request_id(), "b34e35ad");
        assert_eq!(plain.recipient_index(), None);
    }

    #[test]
    fn sender_comes_from_undocumented_fields() {
        let mut status = status_with_id("a:1");
        assert_eq!(status.sender(), None);
        status.extra.insert("sender".into(), Value::String("DEMO12".into()));
        assert_eq!(status.sender().as_deref(), Some("DEMO12"));
    }
}
