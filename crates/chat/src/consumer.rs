//! `whatsapp.>` and `rcs.>` → the chat tables: decoding statuses, inbound messages and opt-outs,
//! applying a batch in one transaction, announcing what changed.
//!
//! One projection serves both durable consumers (`chat-whatsapp`, `chat-rcs`); the channel of every
//! row comes from the subject its event arrived on.

use switchboard_events::chat::{ChatStatus, InboundMessage};
use switchboard_events::sms::Unsubscription;
use switchboard_events::{
    EventKind, Product, ProviderTime, TimeZoneSetting, body_digest, decode_as, value::normalize_phone,
};
use switchboard_proto::chat::{WatchResponse, watch_response::Change};
use switchboard_runtime::changes::ChangeFeed;
use switchboard_runtime::consumer::{ApplyError, Projection, Rejection, StoredEvent};
use switchboard_service::optouts::{self, OptOutRow};
use switchboard_service::write_error;
use switchboard_store::Database;

use crate::api::convert::{inbound_to_proto, outbound_to_proto};
use crate::model::{EventTimes, Milestones, channel_of, conversation_time, status_rank};
use crate::store::{self, InboundRow, OutboundRow};

#[derive(Debug)]
pub struct ChatProjection {
    pub database: Database,
    pub changes: ChangeFeed,
    pub zone: TimeZoneSetting,
}

#[derive(Debug, Clone)]
pub enum Item {
    Status(OutboundRow),
    Inbound(InboundRow),
    OptOut(OptOutRow),
}

impl Projection for ChatProjection {
    type Item = Item;

    fn decode(&self, delivery: &StoredEvent) -> Result<Item, Rejection> {
        let Some(channel) = channel_of(delivery.kind) else {
            return Err(Rejection::NotServed { kind: delivery.kind, service: Product::Chat });
        };
        match delivery.kind {
            EventKind::WhatsappMessageStatus | EventKind::RcsMessageStatus => {
                let status: ChatStatus = decode_as(delivery.kind, &delivery.body)?;
                Ok(Item::Status(status_row(channel, &status, delivery, self.zone)))
            }
            EventKind::WhatsappMessageIn | EventKind::RcsMessageIn => {
                let message: InboundMessage = decode_as(delivery.kind, &delivery.body)?;
                inbound_row(channel, &message, delivery, self.zone).map(Item::Inbound)
            }
            EventKind::WhatsappUnsubscription | EventKind::RcsUnsubscription => {
                let optout: Unsubscription = decode_as(delivery.kind, &delivery.body)?;
                Ok(Item::OptOut(OptOutRow::new(channel, &optout, delivery, self.zone)))
            }
            other => Err(Rejection::NotServed { kind: other, service: Product::Chat }),
        }
    }

    async fn apply(&self, items: &[Item]) -> Result<(), ApplyError> {
        let mut statuses = Vec::new();
        let mut inbound = Vec::new();
        let mut optout_rows = Vec::new();
        for item in items {
            match item {
                Item::Status(row) => statuses.push(row),
                Item::Inbound(row) => inbound.push(row),
                Item::OptOut(row) => optout_rows.push(row),
            }
        }
        let mut transaction = self.database.begin_write().await.map_err(write_error)?;
        let changed_outbound =
            store::write_statuses(&mut transaction, &statuses).await.map_err(write_error)?;
        let changed_inbound = store::write_inbound(&mut transaction, &inbound).await.map_err(write_error)?;
        let changed_optouts = optouts::store(&mut transaction, &optout_rows).await.map_err(write_error)?;
        transaction.commit().await.map_err(write_error)?;

        self.changes
            .announce(move || {
                changed_outbound
                    .iter()
                    .map(|row| Change::Outbound(outbound_to_proto(row, Vec::new())))
                    .chain(changed_inbound.iter().map(|row| Change::Inbound(inbound_to_proto(row))))
                    .chain(changed_optouts.iter().map(|row| Change::OptOut(row.to_proto())))
                    .map(|change| WatchResponse { change: Some(change) })
                    .collect::<Vec<_>>()
            })
            .await;
        Ok(())
    }
}

fn micros(time: &Option<ProviderTime>, zone: TimeZoneSetting) -> Option<i64> {
    time.as_ref().and_then(|time| time.unix_micros(zone))
}

fn stream_sequence(delivery: &StoredEvent) -> i64 {
    i64::try_from(delivery.stream_sequence).unwrap_or(i64::MAX)
}

/// The outbound row a status event proposes.
pub fn status_row(
    channel: &str,
    status: &ChatStatus,
    delivery: &StoredEvent,
    zone: TimeZoneSetting,
) -> OutboundRow {
    let rank = status_rank(&status.status);
    let times = EventTimes {
        timestamp: micros(&status.timestamp, zone),
        processed_at: micros(&status.processed_at, zone),
        delivered_at: micros(&status.delivered_at, zone),
        read_at: micros(&status.read_at, zone),
    };
    OutboundRow {
        channel: channel.to_owned(),
        id: status.id.clone(),
        sender: status.from.as_deref().map(normalize_phone).unwrap_or_default(),
        recipient: status.to.as_deref().map(normalize_phone).unwrap_or_default(),
        status: status.status.trim().to_owned(),
        status_rank: rank,
        status_time_key: times.timestamp.unwrap_or(i64::MIN),
        digest: body_digest(&delivery.body),
        status_at: times.timestamp,
        foreign_id: status.foreign_id.clone(),
        milestones: Milestones::of_event(rank, times),
        listed_at: times.timestamp.unwrap_or(delivery.received_at),
        conversation_at: conversation_time(times, delivery.received_at),
        received_at: delivery.received_at,
        first_received_at: delivery.received_at,
        last_received_at: delivery.received_at,
        stream_sequence: stream_sequence(delivery),
        raw_json: String::from_utf8_lossy(&delivery.body).into_owned(),
    }
}

/// The inbound row a message proposes. Fails only if the message's parts cannot be re-encoded as
/// JSON, which cannot happen for values that were just decoded from JSON.
pub fn inbound_row(
    channel: &str,
    message: &InboundMessage,
    delivery: &StoredEvent,
    zone: TimeZoneSetting,
) -> Result<InboundRow, Rejection> {
    let content = &message.message;
    let payload_json = serde_json::to_string(&content.payload)
        .map_err(|source| Rejection::Encode { part: "message.payload", source })?;
    let profile_json = message
        .recipient
        .user
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|source| Rejection::Encode { part: "recipient.user", source })?;
    let message_at = micros(&content.timestamp, zone);
    Ok(InboundRow {
        channel: channel.to_owned(),
        id: message.id.clone(),
        sender: normalize_phone(&message.recipient.from),
        recipient: message.channel_number(channel).map(normalize_phone).unwrap_or_default(),
        kind: content.kind.as_deref().map(str::trim).unwrap_or_default().to_owned(),
        text: content.text(),
        url: content.url(),
        caption: content.caption(),
        filename: content.filename(),
        mime_type: content.mime_type(),
        profile_json,
        message_id: content.id.clone(),
        message_at,
        conversation_at: message_at.unwrap_or(delivery.received_at),
        received_at: delivery.received_at,
        stream_sequence: stream_sequence(delivery),
        payload_json,
        raw_json: String::from_utf8_lossy(&delivery.body).into_owned(),
    })
}
