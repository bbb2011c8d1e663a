//! `voice:message:out`: a call detail record.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::value::{ProviderTime, lenient_i64, lenient_string, required_string};

/// One call detail record, keyed by `mid`. Numbers arrive as JSON numbers or strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoiceCall {
    #[serde(deserialize_with = "required_string")]
    pub mid: String,
    /// The virtual number (DID) that bridged the call.
    #[serde(default, deserialize_with = "lenient_string")]
    pub bridge: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub from: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub to: Option<String>,
    /// `OBD`, `C2C`, …
    #[serde(default, deserialize_with = "lenient_string")]
    pub source: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub flow_id: Option<String>,
    #[serde(default)]
    pub start_at: Option<ProviderTime>,
    #[serde(default)]
    pub end_at: Option<ProviderTime>,
    /// Seconds, as the provider counted them; never derived from the timestamps (they can disagree).
    #[serde(default, deserialize_with = "lenient_i64")]
    pub duration: Option<i64>,
    /// `ANSWER`, `COMPLETED`, `RECEIVED`, … as sent.
    #[serde(default, deserialize_with = "lenient_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub recording_url: Option<String>,
    // Click-to-call extras, present on some accounts.
    #[serde(default, deserialize_with = "lenient_string")]
    pub status1: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub status2: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub billing: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub hangup_by: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub date: Option<String>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub unixtime: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
