//! After a fault: is every accepted event in the stream and in its projection exactly once, and is
//! the services' state what a clean replay of the stream gives?

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_nats::jetstream;
use futures::TryStreamExt;
use switchboard_events::{EventKind, Product, Subjects};
use switchboard_proto::chat::chat_service_client::ChatServiceClient;
use switchboard_proto::chat::{GetOutboundMessageRequest, ListOutboundMessagesRequest};
use switchboard_proto::common::ListOptOutsRequest;
use switchboard_proto::contacts::contacts_service_client::ContactsServiceClient;
use switchboard_proto::contacts::{
    Contact, GetContactRequest, ListContactVersionsRequest, get_contact_request,
};
use switchboard_proto::interact::interact_service_client::InteractServiceClient;
use switchboard_proto::interact::{
    GetMessageRequest as GetVmnRequest, ListMessagesRequest as ListVmnRequest,
};
use switchboard_proto::sms::sms_service_client::SmsServiceClient;
use switchboard_proto::sms::{GetMessageRequest, ListMessagesRequest};
use switchboard_proto::voice::voice_service_client::VoiceServiceClient;
use switchboard_proto::voice::{GetCallRequest, ListCallsRequest};
use tonic::transport::Channel;

use super::load::Finished;
use crate::{TestSystem, wait_until};

const STREAM: &str = "SWITCHBOARD";
const PAGE: i32 = 1000;

/// Where each product's query API answers: one address when the services share a process, one per
/// product when each runs in a process of its own.
#[derive(Debug, Clone)]
pub struct Services {
    urls: BTreeMap<Product, String>,
}

impl Services {
    /// Every product at `url`.
    pub fn at(url: &str) -> Services {
        Services { urls: Product::ALL.iter().map(|product| (*product, url.to_owned())).collect() }
    }

    /// Each product at its own address.
    pub fn each_at(urls: impl IntoIterator<Item = (Product, String)>) -> Services {
        let urls: BTreeMap<Product, String> = urls.into_iter().collect();
        assert!(
            Product::ALL.iter().all(|product| urls.contains_key(product)),
            "an address for every product"
        );
        Services { urls }
    }

    fn url(&self, product: Product) -> String {
        self.urls[&product].clone()
    }

    pub async fn sms(&self) -> SmsServiceClient<Channel> {
        SmsServiceClient::connect(self.url(Product::Sms)).await.expect("grpc connects")
    }

    pub async fn chat(&self) -> ChatServiceClient<Channel> {
        ChatServiceClient::connect(self.url(Product::Chat)).await.expect("grpc connects")
    }

    pub async fn voice(&self) -> VoiceServiceClient<Channel> {
        VoiceServiceClient::connect(self.url(Product::Voice)).await.expect("grpc connects")
    }

    pub async fn interact(&self) -> InteractServiceClient<Channel> {
        InteractServiceClient::connect(self.url(Product::Interact)).await.expect("grpc connects")
    }

    pub async fn contacts(&self) -> ContactsServiceClient<Channel> {
        ContactsServiceClient::connect(self.url(Product::Contacts)).await.expect("grpc connects")
    }
}

impl From<&TestSystem> for Services {
    fn from(system: &TestSystem) -> Services {
        Services::at(&system.grpc_url)
    }
}

/// The numbers of one scenario.
#[derive(Debug, Default)]
pub struct Summary {
    pub scenario: &'static str,
    /// Deliveries planned (duplicates included).
    pub sent: usize,
    pub attempts: usize,
    /// Attempts answered with something other than a 2xx (or not at all): retried later.
    pub refused: usize,
    /// The slowest attempt the provider made, answered or not.
    pub worst_latency: Duration,
    /// Deliveries that got a 2xx.
    pub accepted: usize,
    /// Distinct events among the accepted deliveries.
    pub distinct: usize,
    /// Distinct accepted events found in the stream, byte for byte, on their subject.
    pub stored: usize,
    /// Distinct accepted events found exactly once in their projection.
    pub projected: usize,
    /// Accepted events found more than once in their projection.
    pub duplicated: usize,
    /// Accepted events missing from the stream or from their projection.
    pub lost: usize,
}

impl Summary {
    pub fn print(&self) {
        eprintln!(
            "{:<28} {:>5} {:>8} {:>7} {:>8} {:>5} {:>8} {:>6} {:>9} {:>10} {:>4}\n{:<28} {:>5} {:>8} {:>7} {:>8} {:>5} {:>8} {:>6} {:>9} {:>10} {:>4}",
            "scenario",
            "sent",
            "attempts",
            "non-2xx",
            "worst ms",
            "2xx",
            "distinct",
            "stored",
            "projected",
            "duplicated",
            "lost",
            self.scenario,
            self.sent,
            self.attempts,
            self.refused,
            self.worst_latency.as_millis(),
            self.accepted,
            self.distinct,
            self.stored,
            self.projected,
            self.duplicated,
            self.lost,
        );
    }
}

/// Waits until every consumer of the events stream has nothing pending and nothing unacknowledged.
pub async fn wait_drained(jetstream: &jetstream::Context) {
    // Drained three times in a row, a second apart: after a NATS server restart a consumer's leader
    // may change between two looks, and one look that found nothing pending proves little.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut drained_in_a_row = 0;
    while drained_in_a_row < 3 {
        if consumers_drained(jetstream).await {
            drained_in_a_row += 1;
        } else {
            drained_in_a_row = 0;
        }
        assert!(std::time::Instant::now() < deadline, "the consumers did not drain within 60 s");
        if drained_in_a_row < 3 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Every consumer of the events stream has nothing pending, nothing unacknowledged, and has
/// acknowledged everything it delivered.
async fn consumers_drained(jetstream: &jetstream::Context) -> bool {
    let Ok(stream) = jetstream.get_stream(STREAM).await else { return false };
    let Ok(names) = stream.consumer_names().try_collect::<Vec<String>>().await else { return false };
    if names.is_empty() {
        return false;
    }
    for name in names {
        let Ok(mut consumer) = stream.get_consumer::<jetstream::consumer::pull::Config>(&name).await else {
            return false;
        };
        let Ok(info) = consumer.info().await else { return false };
        if info.num_pending > 0
            || info.num_ack_pending > 0
            || info.ack_floor.consumer_sequence < info.delivered.consumer_sequence
        {
            return false;
        }
    }
    true
}

/// A JetStream API read that must succeed, asked again for up to 30 s while it fails: right after
/// a server restart a cluster can time out requests until its leaders are elected again.
async fn retried<T, E: std::fmt::Debug, F, Fut>(what: &str, mut read: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match read().await {
            Ok(value) => return value,
            Err(error) if std::time::Instant::now() >= deadline => panic!("{what}: {error:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Deletes every consumer of the events stream, so that services started afresh read it from the
/// start. On a cluster a deletion can time out while the consumer's replicas catch up after a
/// restart: it is tried again until the consumer is gone.
pub async fn delete_consumers(jetstream: &jetstream::Context) {
    let stream = jetstream.get_stream(STREAM).await.expect("the events stream");
    let names: Vec<String> = stream.consumer_names().try_collect().await.expect("consumer names");
    for name in names {
        wait_until(&format!("consumer {name} to be deleted"), Duration::from_secs(30), || async {
            if stream.delete_consumer(&name).await.is_ok() {
                return Some(());
            }
            let remaining: Vec<String> = stream.consumer_names().try_collect().await.ok()?;
            (!remaining.contains(&name)).then_some(())
        })
        .await;
    }
}

/// The key an event is projected under (what its query looks up).
fn key_of(kind: EventKind, body: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body).expect("the workload is strict JSON");
    let key = match kind {
        EventKind::WhatsappMessageStatus | EventKind::VmnMessageIn => &value["payload"]["id"],
        EventKind::VoiceMessageOut => &value["mid"],
        EventKind::SmsUnsubscription => return String::new(),
        _ => &value["id"],
    };
    match key {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// What a query of `client` answers: `None` when the service holds nothing under the key
/// (`NOT_FOUND`). Any other error says nothing about what the service holds (a service busy or
/// reconnecting), so it must not count as a lost event: it is asked again for up to 30 s, then
/// fails the check with the error.
async fn held<C, T, F, Fut>(what: &str, client: &C, mut query: F) -> Option<T>
where
    C: Clone,
    F: FnMut(C) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    retried(what, || {
        let answer = query(client.clone());
        async move {
            match answer.await {
                Ok(response) => Ok(Some(response.into_inner())),
                Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
                Err(status) => Err(status),
            }
        }
    })
    .await
}

/// The raw JSON of every event the services hold for `kind` and `key`.
async fn projected_bodies(services: &Services, kind: EventKind, key: &str) -> Vec<String> {
    let what = format!("the {kind:?} projection of {key}");
    let id = || key.to_owned();
    match kind {
        EventKind::SmsMessageStatus => held(&what, &services.sms().await, |mut client| async move {
            client.get_message(GetMessageRequest { id: id() }).await
        })
        .await
        .map(|message| message.history.into_iter().map(|event| event.raw_json).collect())
        .unwrap_or_default(),
        EventKind::WhatsappMessageStatus => held(&what, &services.chat().await, |mut client| async move {
            let request = GetOutboundMessageRequest { channel: "whatsapp".into(), id: id() };
            client.get_outbound_message(request).await
        })
        .await
        .map(|message| message.history.into_iter().map(|event| event.raw_json).collect())
        .unwrap_or_default(),
        EventKind::VoiceMessageOut => held(&what, &services.voice().await, |mut client| async move {
            client.get_call(GetCallRequest { mid: id() }).await
        })
        .await
        .map(|call| vec![call.raw_json])
        .unwrap_or_default(),
        EventKind::VmnMessageIn => held(&what, &services.interact().await, |mut client| async move {
            client.get_message(GetVmnRequest { id: id() }).await
        })
        .await
        .map(|message| vec![message.raw_json])
        .unwrap_or_default(),
        EventKind::ContactsSubscriberSubscription => {
            held(&what, &services.contacts().await, |mut client| async move {
                let request = ListContactVersionsRequest { id: id(), page_size: PAGE, ..Default::default() };
                client.list_contact_versions(request).await
            })
            .await
            .map(|versions| versions.versions.into_iter().map(|version| version.raw_json).collect())
            .unwrap_or_default()
        }
        EventKind::SmsUnsubscription => {
            let request = ListOptOutsRequest { page_size: PAGE, ..Default::default() };
            let listed =
                services.sms().await.list_opt_outs(request).await.expect("opt-outs list").into_inner();
            listed.opt_outs.into_iter().map(|opt_out| opt_out.raw_json).collect()
        }
        other => panic!("the workload has no {other:?} events"),
    }
}

/// Checks every accepted event against the stream and the projections, and fills in the summary.
pub async fn verify(
    scenario: &'static str,
    finished: &Finished,
    services: &Services,
    jetstream: &jetstream::Context,
) -> Summary {
    let counters = &finished.counters;
    let mut summary = Summary {
        scenario,
        sent: finished.planned.len(),
        attempts: counters.attempts.load(std::sync::atomic::Ordering::Relaxed),
        refused: counters.refused.load(std::sync::atomic::Ordering::Relaxed),
        worst_latency: Duration::from_micros(
            counters.worst_latency_micros.load(std::sync::atomic::Ordering::Relaxed),
        ),
        ..Summary::default()
    };
    // Distinct accepted events, with every sequence the gateway answered for each.
    let mut accepted: BTreeMap<(EventKind, &str), BTreeSet<u64>> = BTreeMap::new();
    for (delivery, receipt) in finished.planned.iter().zip(&finished.receipts) {
        let Some(receipt) = receipt else { continue };
        summary.accepted += 1;
        accepted.entry((delivery.kind, delivery.body.as_str())).or_default().insert(receipt.sequence);
        debug_assert!(receipt.sequence > 0 || receipt.duplicate);
    }
    summary.distinct = accepted.len();

    let subjects = Subjects::new("").expect("no prefix");
    let stream = retried("the events stream", || jetstream.get_stream(STREAM)).await;
    let mut lost = BTreeSet::new();
    for ((kind, body), sequences) in &accepted {
        assert_eq!(sequences.len(), 1, "one event answered with several sequences: {sequences:?} for {body}");
        let sequence = *sequences.first().expect("one sequence");
        // A message that is not there stays not there; a request that times out while a restarted
        // server's replicas catch up is asked again (for a while) before counting as lost.
        let mut read = stream.get_raw_message(sequence).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while read.is_err() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            read = stream.get_raw_message(sequence).await;
        }
        match read {
            Ok(message)
                if message.subject.as_str() == subjects.event(*kind)
                    && message.payload == body.as_bytes() =>
            {
                summary.stored += 1;
            }
            other => {
                eprintln!("{scenario}: sequence {sequence} does not hold {body}: {other:?}");
                lost.insert((*kind, *body));
            }
        }
    }
    let stored_in_stream = retried("the events stream's info", || stream.get_info()).await.state.messages;
    assert_eq!(
        stored_in_stream as usize, summary.distinct,
        "{scenario}: the stream holds exactly the distinct accepted events, each once"
    );

    let mut by_key: BTreeMap<(EventKind, String), Vec<&str>> = BTreeMap::new();
    for (kind, body) in accepted.keys() {
        by_key.entry((*kind, key_of(*kind, body))).or_default().push(body);
    }
    for ((kind, key), bodies) in &by_key {
        let projected = projected_bodies(services, *kind, key).await;
        for body in bodies {
            match projected.iter().filter(|raw| raw.as_str() == *body).count() {
                1 => summary.projected += 1,
                0 => {
                    eprintln!("{scenario}: {kind:?} {key} is missing {body}");
                    lost.insert((*kind, *body));
                }
                _ => summary.duplicated += 1,
            }
        }
    }
    summary.lost = lost.len();

    let dead_letters = retried("the dead-letter stream", || jetstream.get_stream("SWITCHBOARD_DLQ")).await;
    let dead = retried("the dead-letter stream's info", || dead_letters.get_info()).await.state.messages;
    assert_eq!(dead, 0, "{scenario}: no accepted event is a dead letter");
    summary
}

/// Every query answer the workload's keys and the list calls give, by name, as text: two systems
/// with the same state give the same snapshot.
pub async fn snapshot(services: &Services, finished: &Finished) -> BTreeMap<String, String> {
    let mut answers = BTreeMap::new();
    let keys: BTreeSet<(EventKind, String)> = finished
        .planned
        .iter()
        .map(|delivery| (delivery.kind, key_of(delivery.kind, &delivery.body)))
        .collect();
    for (kind, key) in keys {
        let answer =
            match kind {
                EventKind::SmsMessageStatus => {
                    format!(
                        "{:?}",
                        services
                            .sms()
                            .await
                            .get_message(GetMessageRequest { id: key.clone() })
                            .await
                            .map(|r| r.into_inner())
                    )
                }
                EventKind::WhatsappMessageStatus => format!(
                    "{:?}",
                    services
                        .chat()
                        .await
                        .get_outbound_message(GetOutboundMessageRequest {
                            channel: "whatsapp".into(),
                            id: key.clone()
                        })
                        .await
                        .map(|r| r.into_inner())
                ),
                EventKind::VoiceMessageOut => {
                    format!(
                        "{:?}",
                        services
                            .voice()
                            .await
                            .get_call(GetCallRequest { mid: key.clone() })
                            .await
                            .map(|r| r.into_inner())
                    )
                }
                EventKind::VmnMessageIn => {
                    format!(
                        "{:?}",
                        services
                            .interact()
                            .await
                            .get_message(GetVmnRequest { id: key.clone() })
                            .await
                            .map(|r| r.into_inner())
                    )
                }
                EventKind::ContactsSubscriberSubscription => {
                    let lookup = Some(get_contact_request::Lookup::Id(key.clone()));
                    let contact = services
                        .contacts()
                        .await
                        .get_contact(GetContactRequest { lookup })
                        .await
                        .map(|r| contact_text(r.into_inner()));
                    let request =
                        ListContactVersionsRequest { id: key.clone(), page_size: PAGE, ..Default::default() };
                    let versions =
                        services.contacts().await.list_contact_versions(request).await.map(|r| {
                            r.into_inner().versions.into_iter().map(contact_text).collect::<Vec<_>>()
                        });
                    format!("{contact:?} {versions:?}")
                }
                _ => continue,
            };
        answers.insert(format!("{kind:?} {key}"), strip_status_details(answer));
    }
    let sms = services
        .sms()
        .await
        .list_messages(ListMessagesRequest { page_size: PAGE, ..Default::default() })
        .await
        .map(|r| r.into_inner());
    answers.insert("sms list".into(), format!("{sms:?}"));
    let opt_outs = services
        .sms()
        .await
        .list_opt_outs(ListOptOutsRequest { page_size: PAGE, ..Default::default() })
        .await
        .map(|r| r.into_inner());
    answers.insert("sms opt-outs".into(), format!("{opt_outs:?}"));
    let chat = services
        .chat()
        .await
        .list_outbound_messages(ListOutboundMessagesRequest { page_size: PAGE, ..Default::default() })
        .await
        .map(|r| r.into_inner());
    answers.insert("chat list".into(), format!("{chat:?}"));
    let calls = services
        .voice()
        .await
        .list_calls(ListCallsRequest { page_size: PAGE, ..Default::default() })
        .await
        .map(|r| r.into_inner());
    answers.insert("voice list".into(), format!("{calls:?}"));
    let vmn = services
        .interact()
        .await
        .list_messages(ListVmnRequest { page_size: PAGE, ..Default::default() })
        .await
        .map(|r| r.into_inner());
    answers.insert("interact list".into(), format!("{vmn:?}"));
    answers
}

/// A contact as text with its attributes in key order (a protobuf map has no order of its own).
fn contact_text(mut contact: Contact) -> String {
    let attributes: BTreeMap<String, String> = contact.attributes.drain().collect();
    format!("{contact:?} attributes {attributes:?}")
}

/// A refused query's text carries transport details that differ between two servers; the code and
/// message are what matter.
fn strip_status_details(answer: String) -> String {
    match answer.find("metadata:") {
        Some(position) => answer[..position].to_owned(),
        None => answer,
    }
}

/// A clean replay: the durable consumers are deleted, fresh services on fresh databases (`services`,
/// a builder with the NATS and settings to use) read the same stream from the start, and must
/// answer exactly as the services did after the fault (`faulted`).
pub async fn assert_replay_matches(
    scenario: &str,
    jetstream: &jetstream::Context,
    services: crate::TestSystemBuilder,
    faulted: &BTreeMap<String, String>,
    finished: &Finished,
) {
    delete_consumers(jetstream).await;
    let components: Vec<switchboard::Component> =
        Product::ALL.iter().map(|product| switchboard::Component::Service(*product)).collect();
    let replay = services.components(&components).start().await.expect("replay services start");
    wait_drained(jetstream).await;
    let replayed = snapshot(&Services::from(&replay), finished).await;
    assert_same_state(scenario, faulted, &replayed);
    replay.stop().await.expect("a clean stop");
}

/// Compares two snapshots, naming the answers that differ.
pub fn assert_same_state(
    scenario: &str,
    faulted: &BTreeMap<String, String>,
    replayed: &BTreeMap<String, String>,
) {
    let differing: Vec<&String> = faulted
        .keys()
        .chain(replayed.keys())
        .filter(|name| faulted.get(*name) != replayed.get(*name))
        .collect();
    if let Some(first) = differing.first() {
        panic!(
            "{scenario}: {} answers differ from a clean replay, e.g. {first}:\n  after the fault: {:?}\n  clean replay:    {:?}",
            differing.len(),
            faulted.get(*first),
            replayed.get(*first)
        );
    }
}
