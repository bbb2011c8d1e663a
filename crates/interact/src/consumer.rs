//! `vmn.>` → the interact table: decoding inbound messages, applying a batch in one transaction,
//! announcing what changed.

use switchboard_events::chat::InboundMessage;
use switchboard_events::value::normalize_phone;
use switchboard_events::{EventKind, Product, TimeZoneSetting, decode_as};
use switchboard_proto::interact::{WatchResponse, watch_response::Change};
use switchboard_runtime::changes::ChangeFeed;
use switchboard_runtime::consumer::{ApplyError, Projection, Rejection, StoredEvent};
use switchboard_service::write_error;
use switchboard_store::Database;

use crate::api::message_to_proto;
use crate::model::keywords;
use crate::store::{self, MessageRow, ProfileRow};

/// The channel name of virtual-number messages in `channels[]`.
pub const CHANNEL: &str = "vmn";

#[derive(Debug)]
pub struct InteractProjection {
    pub database: Database,
    pub changes: ChangeFeed,
    pub zone: TimeZoneSetting,
}

impl Projection for InteractProjection {
    type Item = MessageRow;

    fn decode(&self, delivery: &StoredEvent) -> Result<MessageRow, Rejection> {
        match delivery.kind {
            EventKind::VmnMessageIn => {
                let message: InboundMessage = decode_as(delivery.kind, &delivery.body)?;
                Ok(message_row(&message, delivery, self.zone))
            }
            other => Err(Rejection::NotServed { kind: other, service: Product::Interact }),
        }
    }

    async fn apply(&self, items: &[MessageRow]) -> Result<(), ApplyError> {
        let mut transaction = self.database.begin_write().await.map_err(write_error)?;
        let changed = store::write_messages(&mut transaction, items).await.map_err(write_error)?;
        transaction.commit().await.map_err(write_error)?;
        self.changes
            .announce(move || {
                changed
                    .iter()
                    .map(|row| WatchResponse { change: Some(Change::Message(message_to_proto(row))) })
                    .collect::<Vec<_>>()
            })
            .await;
        Ok(())
    }
}

/// The row a `vmn:message:in` delivery proposes.
pub fn message_row(message: &InboundMessage, delivery: &StoredEvent, zone: TimeZoneSetting) -> MessageRow {
    let content = &message.message;
    // A media message's caption is what its sender wrote, so it is where keywords come from.
    let text = content.text().or_else(|| content.caption());
    let (keyword1, keyword2) = text.as_deref().map(keywords).unwrap_or_default();
    let profile = message
        .recipient
        .user
        .as_ref()
        .map(|user| {
            let info = user.user_info.clone().unwrap_or_default();
            ProfileRow {
                id: user.id.clone(),
                username: user.username.clone(),
                first_name: user.first_name.clone(),
                last_name: user.last_name.clone(),
                email: user.email.clone(),
                phone: user.phone.clone(),
                picture: info.picture,
                gender: info.gender,
                title: info.title,
            }
        })
        .unwrap_or_default();
    let payload_json = if content.payload.is_null() { String::new() } else { content.payload.to_string() };
    MessageRow {
        id: message.id.clone(),
        virtual_number: message.channel_number(CHANNEL).map(normalize_phone).unwrap_or_default(),
        sender: normalize_phone(&message.recipient.from),
        message_type: content.kind.clone(),
        text,
        keyword1,
        keyword2,
        profile,
        message_id: content.id.clone(),
        message_at: content.timestamp.as_ref().and_then(|time| time.unix_micros(zone)),
        payload_json,
        received_at: delivery.received_at,
        stream_sequence: i64::try_from(delivery.stream_sequence).unwrap_or(i64::MAX),
        raw_json: String::from_utf8_lossy(&delivery.body).into_owned(),
    }
}
