//! `voice.>` → the voice tables: decoding call records and opt-outs, applying a batch in one
//! transaction, announcing what changed.

use switchboard_events::sms::Unsubscription;
use switchboard_events::voice::VoiceCall;
use switchboard_events::{
    EventKind, Product, ProviderTime, TimeZoneSetting, body_digest, decode_as, value::normalize_phone,
};
use switchboard_proto::voice::{WatchResponse, watch_response::Change};
use switchboard_runtime::changes::ChangeFeed;
use switchboard_runtime::consumer::{ApplyError, Projection, Rejection, StoredEvent};
use switchboard_service::optouts::{self, OptOutRow};
use switchboard_service::write_error;
use switchboard_store::Database;

use crate::api::call_to_proto;
use crate::model::is_answered;
use crate::store::{self, CallRow};

/// The channel name of voice opt-outs.
pub const CHANNEL: &str = "voice";

#[derive(Debug)]
pub struct VoiceProjection {
    pub database: Database,
    pub changes: ChangeFeed,
    pub zone: TimeZoneSetting,
}

#[derive(Debug, Clone)]
pub enum Item {
    /// Boxed: a call row is more than twice the size of an opt-out.
    Call(Box<CallRow>),
    OptOut(OptOutRow),
}

impl Projection for VoiceProjection {
    type Item = Item;

    fn decode(&self, delivery: &StoredEvent) -> Result<Item, Rejection> {
        match delivery.kind {
            EventKind::VoiceMessageOut => {
                let call: VoiceCall = decode_as(delivery.kind, &delivery.body)?;
                Ok(Item::Call(Box::new(call_row(&call, delivery, self.zone))))
            }
            EventKind::VoiceUnsubscription => {
                let optout: Unsubscription = decode_as(delivery.kind, &delivery.body)?;
                Ok(Item::OptOut(OptOutRow::new(CHANNEL, &optout, delivery, self.zone)))
            }
            other => Err(Rejection::NotServed { kind: other, service: Product::Voice }),
        }
    }

    async fn apply(&self, items: &[Item]) -> Result<(), ApplyError> {
        let mut calls = Vec::new();
        let mut optout_rows = Vec::new();
        for item in items {
            match item {
                Item::Call(row) => calls.push(row.as_ref()),
                Item::OptOut(row) => optout_rows.push(row),
            }
        }
        let mut transaction = self.database.begin_write().await.map_err(write_error)?;
        let changed_calls = store::write_calls(&mut transaction, &calls).await.map_err(write_error)?;
        let changed_optouts = optouts::store(&mut transaction, &optout_rows).await.map_err(write_error)?;
        transaction.commit().await.map_err(write_error)?;

        self.changes
            .announce(move || {
                let calls = changed_calls.iter().map(|row| Change::Call(call_to_proto(row)));
                let optouts = changed_optouts.iter().map(|row| Change::OptOut(row.to_proto()));
                calls.chain(optouts).map(|change| WatchResponse { change: Some(change) }).collect::<Vec<_>>()
            })
            .await;
        Ok(())
    }
}

/// Text fields: surrounding spaces trimmed, empty as absent.
fn text(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|trimmed| !trimmed.is_empty()).map(str::to_owned)
}

/// Phone numbers: digits only (as every stored number), empty as absent.
fn number(value: &Option<String>) -> Option<String> {
    value.as_deref().map(normalize_phone).filter(|digits| !digits.is_empty())
}

/// The call row a record proposes. Duration and status are taken as sent: the provider's duration
/// can disagree with its own start and end times, and unknown statuses are kept.
pub fn call_row(call: &VoiceCall, delivery: &StoredEvent, zone: TimeZoneSetting) -> CallRow {
    let micros = |time: &Option<ProviderTime>| time.as_ref().and_then(|time| time.unix_micros(zone));
    let start_at = micros(&call.start_at);
    let end_at = micros(&call.end_at);
    let status = text(&call.status);
    CallRow {
        mid: call.mid.trim().to_owned(),
        bridge: number(&call.bridge),
        from_number: number(&call.from),
        to_number: number(&call.to),
        source: text(&call.source),
        flow_id: text(&call.flow_id),
        start_at,
        end_at,
        duration_seconds: call.duration,
        answered: i64::from(status.as_deref().is_some_and(is_answered)),
        status,
        recording_url: text(&call.recording_url),
        status1: text(&call.status1),
        status2: text(&call.status2),
        billing: text(&call.billing),
        hangup_by: text(&call.hangup_by),
        call_date: text(&call.date),
        unixtime: call.unixtime,
        end_time_key: end_at.unwrap_or(i64::MIN),
        digest: body_digest(&delivery.body),
        listed_at: start_at.or(end_at).unwrap_or(delivery.received_at),
        received_at: delivery.received_at,
        first_received_at: delivery.received_at,
        last_received_at: delivery.received_at,
        stream_sequence: i64::try_from(delivery.stream_sequence).unwrap_or(i64::MAX),
        raw_json: String::from_utf8_lossy(&delivery.body).into_owned(),
    }
}
