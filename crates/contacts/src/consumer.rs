//! `contacts.>` → the contacts tables: decoding versions, applying a batch in one transaction,
//! announcing what changed.

use switchboard_events::contacts::Contact;
use switchboard_events::{EventKind, Product, TimeZoneSetting, body_digest, decode_as};
use switchboard_proto::contacts::{WatchResponse, watch_response::Change};
use switchboard_runtime::changes::ChangeFeed;
use switchboard_runtime::consumer::{ApplyError, Projection, Rejection, StoredEvent};
use switchboard_service::write_error;
use switchboard_store::Database;

use crate::api::contact_to_proto;
use crate::store::{self, ContactRow};

#[derive(Debug)]
pub struct ContactsProjection {
    pub database: Database,
    pub changes: ChangeFeed,
    pub zone: TimeZoneSetting,
}

impl Projection for ContactsProjection {
    type Item = ContactRow;

    fn decode(&self, delivery: &StoredEvent) -> Result<ContactRow, Rejection> {
        match delivery.kind {
            EventKind::ContactsSubscriberSubscription => {
                let contact: Contact = decode_as(delivery.kind, &delivery.body)?;
                Ok(version_row(&contact, delivery, self.zone))
            }
            other => Err(Rejection::NotServed { kind: other, service: Product::Contacts }),
        }
    }

    async fn apply(&self, items: &[ContactRow]) -> Result<(), ApplyError> {
        let mut transaction = self.database.begin_write().await.map_err(write_error)?;
        let changed = store::write_versions(&mut transaction, items).await.map_err(write_error)?;
        transaction.commit().await.map_err(write_error)?;
        self.changes
            .announce(move || {
                changed
                    .iter()
                    .map(|row| WatchResponse { change: Some(Change::Contact(contact_to_proto(row))) })
                    .collect::<Vec<_>>()
            })
            .await;
        Ok(())
    }
}

/// The version row a `contacts:subscriber:subscription` delivery proposes.
pub fn version_row(contact: &Contact, delivery: &StoredEvent, zone: TimeZoneSetting) -> ContactRow {
    let micros = |time: &Option<switchboard_events::ProviderTime>| {
        time.as_ref().and_then(|time| time.unix_micros(zone))
    };
    let updated_at = micros(&contact.updated_at);
    ContactRow {
        id: contact.id.trim().to_owned(),
        identity: contact.identity.clone(),
        first_name: contact.first_name.clone(),
        middle_name: contact.middle_name.clone(),
        last_name: contact.last_name.clone(),
        gender: contact.gender.clone(),
        birth_date: contact.birth_date.clone(),
        company: contact.company.clone(),
        attributes: contact
            .attributes
            .iter()
            .map(|(key, value)| (key.clone(), Contact::attribute_text(value)))
            .collect(),
        created_at: micros(&contact.created_at),
        updated_at,
        updated_key: updated_at.unwrap_or(i64::MIN),
        digest: body_digest(&delivery.body),
        status: contact.status.clone(),
        listed_at: updated_at.unwrap_or(delivery.received_at),
        received_at: delivery.received_at,
        first_received_at: delivery.received_at,
        last_received_at: delivery.received_at,
        stream_sequence: i64::try_from(delivery.stream_sequence).unwrap_or(i64::MAX),
        raw_json: String::from_utf8_lossy(&delivery.body).into_owned(),
    }
}
