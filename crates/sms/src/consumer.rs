//! `sms.>` → the sms tables: decoding reports and opt-outs, applying a batch in one transaction,
//! announcing what changed.

use switchboard_events::sms::{SmsStatus, Unsubscription};
use switchboard_events::{
    EventKind, Product, TimeZoneSetting, body_digest, decode_as, value::normalize_phone,
};
use switchboard_proto::sms::{WatchResponse, watch_response::Change};
use switchboard_runtime::changes::ChangeFeed;
use switchboard_runtime::consumer::{ApplyError, Projection, Rejection, StoredEvent};
use switchboard_service::optouts::{self, OptOutRow};
use switchboard_service::write_error;
use switchboard_store::Database;

use crate::api::message_to_proto;
use crate::model::{classify, rank};
use crate::store::{self, MessageRow};

/// The channel name of SMS opt-outs.
pub const CHANNEL: &str = "sms";

#[derive(Debug)]
pub struct SmsProjection {
    pub database: Database,
    pub changes: ChangeFeed,
    pub zone: TimeZoneSetting,
}

#[derive(Debug, Clone)]
pub enum Item {
    Report(MessageRow),
    OptOut(OptOutRow),
}

impl Projection for SmsProjection {
    type Item = Item;

    fn decode(&self, delivery: &StoredEvent) -> Result<Item, Rejection> {
        match delivery.kind {
            EventKind::SmsMessageStatus => {
                let status: SmsStatus = decode_as(delivery.kind, &delivery.body)?;
                Ok(Item::Report(report_row(&status, delivery, self.zone)))
            }
            EventKind::SmsUnsubscription => {
                let optout: Unsubscription = decode_as(delivery.kind, &delivery.body)?;
                Ok(Item::OptOut(OptOutRow::new(CHANNEL, &optout, delivery, self.zone)))
            }
            other => Err(Rejection::NotServed { kind: other, service: Product::Sms }),
        }
    }

    async fn apply(&self, items: &[Item]) -> Result<(), ApplyError> {
        let mut reports = Vec::with_capacity(items.len());
        let mut optout_rows = Vec::new();
        for item in items {
            match item {
                Item::Report(row) => reports.push(row),
                Item::OptOut(row) => optout_rows.push(row),
            }
        }
        let mut transaction = self.database.begin_write().await.map_err(write_error)?;
        let changed_messages = store::write_reports(&mut transaction, &reports).await.map_err(write_error)?;
        let changed_optouts = optouts::store(&mut transaction, &optout_rows).await.map_err(write_error)?;
        transaction.commit().await.map_err(write_error)?;

        self.changes
            .announce(move || {
                let messages =
                    changed_messages.iter().map(|row| Change::Message(message_to_proto(row, Vec::new())));
                let optouts = changed_optouts.iter().map(|row| Change::OptOut(row.to_proto()));
                messages
                    .chain(optouts)
                    .map(|change| WatchResponse { change: Some(change) })
                    .collect::<Vec<_>>()
            })
            .await;
        Ok(())
    }
}

/// The message row a report proposes.
pub fn report_row(status: &SmsStatus, delivery: &StoredEvent, zone: TimeZoneSetting) -> MessageRow {
    let class = classify(&status.status);
    let micros = |time: &Option<switchboard_events::ProviderTime>| {
        time.as_ref().and_then(|time| time.unix_micros(zone))
    };
    let delivered_at = micros(&status.deliv_time);
    let sent_at = micros(&status.sent_time);
    let submitted_at = micros(&status.submit_time);
    MessageRow {
        id: status.id.clone(),
        request_id: status.request_id().to_owned(),
        recipient_index: status.recipient_index(),
        mobile: normalize_phone(&status.mobile),
        status: status.status.trim().to_owned(),
        status_class: class as i64,
        status_rank: rank(class),
        status_time_key: delivered_at.unwrap_or(i64::MIN),
        digest: body_digest(&delivery.body),
        credits: status.credits.clone(),
        units: status.units,
        submitted_at,
        sent_at,
        delivered_at,
        cid: status.cid.clone(),
        custom: status.custom.clone(),
        sender: status.sender(),
        listed_at: sent_at.or(submitted_at).unwrap_or(delivery.received_at),
        received_at: delivery.received_at,
        first_received_at: delivery.received_at,
        last_received_at: delivery.received_at,
        stream_sequence: i64::try_from(delivery.stream_sequence).unwrap_or(i64::MAX),
        raw_json: String::from_utf8_lossy(&delivery.body).into_owned(),
    }
}
