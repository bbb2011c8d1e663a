//! `contacts:subscriber:subscription`: a contact created or updated.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::value::{ProviderTime, lenient_string, required_string};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// The provider's integer id, kept as text like every other id.
    #[serde(deserialize_with = "required_string")]
    pub id: String,
    /// The contact's identity: an e-mail address or a phone number.
    #[serde(default, deserialize_with = "lenient_string")]
    pub identity: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub first_name: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub middle_name: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub last_name: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub gender: Option<String>,
    /// A calendar date (`1996-07-16`), kept as text.
    #[serde(default, deserialize_with = "lenient_string")]
    pub birth_date: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub company: Option<String>,
    /// Free-form attributes; values are usually strings but any JSON is kept.
    #[serde(default, deserialize_with = "attributes")]
    pub attributes: Map<String, Value>,
    #[serde(default)]
    pub created_at: Option<ProviderTime>,
    #[serde(default)]
    pub updated_at: Option<ProviderTime>,
    /// `Subscriber created successfully` / `Subscriber updated successfully`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub status: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `null` and `[]` (PHP's empty map) both mean "no attributes".
fn attributes<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Map<String, Value>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(Map::new()),
        Value::Array(items) if items.is_empty() => Ok(Map::new()),
        Value::Object(map) => Ok(map),
        other => Err(serde::de::Error::custom(format!("attributes must be an object, found {other}"))),
    }
}

impl Contact {
    /// An attribute's value as text: strings as they are, anything else as JSON.
    pub fn attribute_text(value: &Value) -> String {
        match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        }
    }
}
