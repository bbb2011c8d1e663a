//! WhatsApp and RCS statuses and inbound messages; `vmn:message:in` shares the inbound shape.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::value::{ProviderTime, lenient_string, required_string};

/// An outbound message's status (`whatsapp:message:status`, `rcs:message:status`): the `payload` of
/// the envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatStatus {
    #[serde(deserialize_with = "required_string")]
    pub id: String,
    /// `whatsapp` or `rcs`; the subject is authoritative when this is missing.
    #[serde(default, deserialize_with = "lenient_string")]
    pub channel: Option<String>,
    /// The business number, or the RCS agent id.
    #[serde(default, deserialize_with = "lenient_string")]
    pub from: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub to: Option<String>,
    /// `queued`, `dispatched`, `sent`, `failed`, `delivered`, `read`, `deleted`; unknown values are kept.
    #[serde(deserialize_with = "required_string")]
    pub status: String,
    #[serde(default)]
    pub delivered_at: Option<ProviderTime>,
    #[serde(default)]
    pub read_at: Option<ProviderTime>,
    #[serde(default)]
    pub processed_at: Option<ProviderTime>,
    #[serde(default)]
    pub timestamp: Option<ProviderTime>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub foreign_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A message a user sent to one of the company's numbers (`*:message:in`): the `payload` of the
/// envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    #[serde(deserialize_with = "required_string")]
    pub id: String,
    /// The channel(s) and the company number the message came to.
    #[serde(default)]
    pub channels: Vec<InboundChannel>,
    pub recipient: Sender,
    pub message: MessageContent,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl InboundMessage {
    /// The company number the message came to on `channel`, or on the first channel listed.
    pub fn channel_number(&self, channel: &str) -> Option<&str> {
        self.channels
            .iter()
            .find(|entry| entry.name.as_deref() == Some(channel))
            .or_else(|| self.channels.first())
            .and_then(|entry| entry.to.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundChannel {
    #[serde(default, deserialize_with = "lenient_string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub to: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Who sent an inbound message (`recipient` in the provider's words).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sender {
    #[serde(deserialize_with = "required_string")]
    pub from: String,
    #[serde(default)]
    pub user: Option<UserProfile>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UserProfile {
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub username: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub first_name: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub last_name: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub phone: Option<String>,
    #[serde(default)]
    pub user_info: Option<UserInfo>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UserInfo {
    #[serde(default, deserialize_with = "lenient_string")]
    pub picture: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub gender: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub title: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The message itself: its type and the type-specific payload, kept whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageContent {
    /// `text`, `image`, `video`, `audio`, `document`, `location`, … as sent.
    #[serde(rename = "type", default, deserialize_with = "lenient_string")]
    pub kind: Option<String>,
    #[serde(default)]
    pub payload: Value,
    /// The provider's own message id, sent by newer accounts.
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(default)]
    pub timestamp: Option<ProviderTime>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MessageContent {
    fn payload_text(&self, key: &str) -> Option<String> {
        match self.payload.get(key)? {
            Value::String(text) if !text.is_empty() => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        }
    }

    /// The text of a text message (or of a button reply / interactive answer that carries one).
    pub fn text(&self) -> Option<String> {
        self.payload_text("text").or_else(|| self.payload_text("body"))
    }

    pub fn url(&self) -> Option<String> {
        self.payload_text("url").or_else(|| self.payload_text("link"))
    }

    pub fn caption(&self) -> Option<String> {
        self.payload_text("caption")
    }

    pub fn filename(&self) -> Option<String> {
        self.payload_text("filename")
    }

    pub fn mime_type(&self) -> Option<String> {
        self.payload_text("mime_type")
            .or_else(|| self.payload_text("mimetype"))
            .or_else(|| self.payload_text("content_type"))
    }
}
