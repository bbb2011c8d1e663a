//! Synthetic events shaped like the provider's, for every product: many messages, each with several
//! reports, duplicates and reordering, as real traffic has. The benchmarks replay them, and the tests
//! use them to fill batches of the largest allowed size.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng as _, SeedableRng};
use serde_json::json;
use switchboard_events::{EventKind, Product};

/// The order in which a workload's events arrive. Both are drawn with a fixed seed, so every run
/// replays the same sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// As the provider sends them: messages in the order they were sent, each event moved by up to
    /// `window` places, so a message's reports arrive close together but out of order.
    Local { window: usize },
    /// Every event anywhere in the run: the worst case, where each batch touches rows (and index
    /// pages) spread over the whole table.
    Shuffled,
}

/// `count` events for `product`, arriving in the given order.
pub fn events(product: Product, count: usize, arrival: Arrival) -> Vec<(EventKind, Vec<u8>)> {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let events = (0..count).map(|index| event(product, index));
    match arrival {
        Arrival::Shuffled => {
            let mut events: Vec<_> = events.collect();
            events.shuffle(&mut rng);
            events
        }
        Arrival::Local { window } => {
            let mut keyed: Vec<_> = events
                .enumerate()
                .map(|(index, event)| (index + rng.random_range(0..=window), event))
                .collect();
            keyed.sort_by_key(|(position, _)| *position);
            keyed.into_iter().map(|(_, event)| event).collect()
        }
    }
}

/// A UUID-shaped id for the `n`th message of a workload, spread like the provider's random ids (so
/// that an index on them is written at random places, as in production).
pub fn message_uuid(n: usize) -> String {
    let mut state = n as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let (high, low) = (next(), next());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0x0fff,
        0x8000 | (low >> 48) & 0x3fff,
        low & 0xffff_ffff_ffff
    )
}

/// The `index`th event of `product`'s workload.
pub fn event(product: Product, index: usize) -> (EventKind, Vec<u8>) {
    match product {
        Product::Sms => (EventKind::SmsMessageStatus, sms_status(index / 2, SMS_STATUSES[index % 2])),
        Product::Chat => {
            let statuses = ["sent", "delivered", "read"];
            let body = json!({
                "event": "whatsapp:message:status",
                "payload": {
                    "id": message_uuid(index / 3),
                    "channel": "whatsapp",
                    "from": "919019120123",
                    "to": format!("9190{:08}", (index / 3) % 10_000),
                    "status": statuses[index % 3],
                    "delivered_at": "2021-06-18T14:48:06.886358Z",
                    "processed_at": "2021-06-18T14:48:05.000000Z",
                    "timestamp": format!("2021-06-18T14:48:{:02}.000000Z", index % 3),
                    "foreign_id": format!("order-{}", index / 3),
                }
            });
            (EventKind::WhatsappMessageStatus, body.to_string().into_bytes())
        }
        Product::Voice => {
            // One call in ten is reported twice.
            let call = index - index / 10;
            let body = json!({
                "bridge": 918068281234u64,
                "from": 918919521234u64,
                "to": 918867000000u64 + (call % 10_000) as u64,
                "source": if call % 3 == 0 { "C2C" } else { "OBD" },
                "mid": format!("{call}-1333-12345"),
                "flow_id": 123,
                "start_at": "2021-04-09 16:27:39",
                "end_at": "2021-04-09 16:27:55",
                "duration": "23",
                "status": if call % 4 == 0 { "NOANSWER" } else { "ANSWER" },
                "recording_url": "https://recordings.example/call.mp3",
            });
            (EventKind::VoiceMessageOut, body.to_string().into_bytes())
        }
        Product::Interact => {
            let keywords = ["OFFER", "STOP", "BALANCE", "HELP"];
            let body = json!({
                "event": "vmn:message:in",
                "payload": {
                    "id": format!("vmn-{index}"),
                    "channels": [{ "name": "vmn", "to": format!("9190191{:05}", index % 20) }],
                    "recipient": { "from": format!("9198{:08}", index % 50_000), "user": { "phone": "user phone" } },
                    "message": {
                        "type": "text",
                        "payload": { "text": format!("{} please {}", keywords[index % 4], index) }
                    }
                }
            });
            (EventKind::VmnMessageIn, body.to_string().into_bytes())
        }
        Product::Contacts => {
            // Two versions of every contact.
            let contact = index / 2;
            let body = json!({
                "id": contact,
                "identity": format!("person{contact}@example.com"),
                "first_name": "Demo",
                "middle_name": null,
                "last_name": format!("Person{contact}"),
                "gender": "female",
                "birth_date": "1996-07-16",
                "company": null,
                "attributes": { "membership": if index % 2 == 0 { "gold" } else { "platinum" } },
                "created_at": "2023-07-17T11:45:34.000000Z",
                "updated_at": format!("2023-07-17T11:46:{:02}.000000Z", index % 2),
                "status": "Subscriber updated successfully",
            });
            (EventKind::ContactsSubscriberSubscription, body.to_string().into_bytes())
        }
    }
}

const SMS_STATUSES: [&str; 2] = ["SENT", "DELIVRD"];

/// An sms delivery report for message number `message`.
pub fn sms_status(message: usize, status: &str) -> Vec<u8> {
    json!({
        "id": sms_id(message),
        "mobile": format!("9189{:08}", message % 100),
        "status": status,
        "credits": "1.0000",
        "units": 1,
        "deliv_time": "2021-04-09 16:27:51",
        "sent_time": "2021-04-09 16:27:35",
        "submit_time": "2021-04-09 16:27:39",
        "cid": "12344441234",
        "custom": format!("{message}"),
    })
    .to_string()
    .into_bytes()
}

pub fn sms_id(message: usize) -> String {
    format!("{}:1", message_uuid(message))
}

/// A `vmn:message:in` body: `text` from `from` to the virtual number `to`.
pub fn vmn(id: &str, to: &str, from: &str, text: &str) -> String {
    json!({
        "event": "vmn:message:in",
        "payload": {
            "id": id,
            "channels": [{"name": "vmn", "to": to}],
            "recipient": {"from": from, "user": {"id": format!("user-{from}"), "first_name": "Asha"}},
            "message": {"type": "text", "payload": {"text": text}},
        },
    })
    .to_string()
}

/// A gateway and an sms service in this process, on their own nats-server and database.
pub async fn sms_system() -> anyhow::Result<crate::TestSystem> {
    crate::TestSystem::builder()
        .components(&[switchboard::Component::Gateway, switchboard::Component::Service(Product::Sms)])
        .configure(unlimited)
        .start()
        .await
}

/// Keeps the gateway's per-source rate limit (its check still runs) but above what the benchmark
/// sends: the benchmarks measure throughput, not the limiter refusing it.
fn unlimited(config: &mut switchboard_runtime::Config) {
    config.gateway.rate_limit = 10_000_000;
    config.gateway.rate_burst = 10_000_000;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_product_workload_decodes_as_its_event() {
        for product in Product::ALL {
            for (kind, body) in events(product, 30, Arrival::Shuffled) {
                assert_eq!(kind.product(), product);
                if let Err(error) = switchboard_events::decode(kind, &body) {
                    panic!("{kind} does not decode: {error}");
                }
            }
        }
    }

    #[test]
    fn local_arrival_moves_each_event_at_most_the_window() {
        let in_order = events(Product::Sms, 400, Arrival::Local { window: 0 });
        let expected: Vec<_> = (0..400).map(|index| event(Product::Sms, index)).collect();
        assert_eq!(in_order, expected);
        let moved = events(Product::Sms, 400, Arrival::Local { window: 10 });
        assert_ne!(moved, expected, "a window of 10 reorders 400 events");
        for (position, event) in moved.iter().enumerate() {
            let original = expected.iter().position(|candidate| candidate == event).expect("same events");
            assert!(position.abs_diff(original) <= 10, "event {original} arrived at {position}");
        }
    }

    #[test]
    fn message_ids_are_distinct_uuids() {
        let ids: std::collections::BTreeSet<String> = (0..10_000).map(message_uuid).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            let groups: Vec<usize> = id.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
            assert!(id.bytes().all(|byte| byte == b'-' || byte.is_ascii_hexdigit()), "{id}");
            assert_eq!(&id[14..15], "4", "version 4: {id}");
            assert!("89ab".contains(&id[19..20]), "RFC 4122 variant: {id}");
        }
    }
}
