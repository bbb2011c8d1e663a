//! The chat service end to end: WhatsApp and RCS webhooks in, gRPC out.
//!
//! * here: the provider's documented payloads (clean and verbatim), milestones, watching and dead
//!   letters, plus the helpers the other chat suites share;
//! * [`queries`]: lists, conversations, rates and opt-out checks;
//! * [`projection`]: the status projection's order independence against the real database.

mod projection;
mod queries;

use std::time::Duration;

use futures::StreamExt;
use switchboard_events::EventKind;
use switchboard_proto::chat::{
    GetInboundMessageRequest, GetOutboundMessageRequest, InboundMessage, OutboundMessage, WatchRequest,
    watch_response::Change,
};
use switchboard_proto::common::CheckOptOutRequest;
use switchboard_tests::{TestSystem, fixture, wait_until};
use tonic::Code;

const WAIT: Duration = Duration::from_secs(15);

/// 2021-06-18T14:48:06.886358Z, the time in every documented chat status.
const DOCUMENTED_SECONDS: i64 = 1_624_027_686;
const DOCUMENTED_NANOS: i32 = 886_358_000;

/// Posts a fixture to the event its file name names (`whatsapp.message.in.incoming-text.json` →
/// `whatsapp.message.in`), asserting a 200; returns the gateway's answer.
async fn post_fixture(system: &TestSystem, set: &str, name: &str) -> serde_json::Value {
    let stem = name.trim_end_matches(".json");
    let event = match EventKind::parse(stem) {
        Some(kind) => kind,
        None => {
            stem.rsplit_once('.').and_then(|(event, _variant)| EventKind::parse(event)).expect("named event")
        }
    };
    system.post_ok(event.as_str(), fixture(set, name)).await
}

/// Waits until the outbound message exists and satisfies `done`, then returns it.
async fn outbound_when(
    system: &TestSystem,
    channel: &str,
    id: &str,
    done: impl Fn(&OutboundMessage) -> bool,
) -> OutboundMessage {
    let client = system.chat().await;
    let done = &done;
    wait_until(&format!("outbound {channel} message {id}"), WAIT, || {
        let mut client = client.clone();
        let request = GetOutboundMessageRequest { channel: channel.to_owned(), id: id.to_owned() };
        async move {
            client.get_outbound_message(request).await.ok().map(|response| response.into_inner()).filter(done)
        }
    })
    .await
}

async fn inbound_when(
    system: &TestSystem,
    channel: &str,
    id: &str,
    done: impl Fn(&InboundMessage) -> bool,
) -> InboundMessage {
    let client = system.chat().await;
    let done = &done;
    wait_until(&format!("inbound {channel} message {id}"), WAIT, || {
        let mut client = client.clone();
        let request = GetInboundMessageRequest { channel: channel.to_owned(), id: id.to_owned() };
        async move {
            client.get_inbound_message(request).await.ok().map(|response| response.into_inner()).filter(done)
        }
    })
    .await
}

/// An outbound status event in the provider's envelope; `extra` fields are added to the payload.
fn status_event(
    channel: &str,
    id: &str,
    to: &str,
    status: &str,
    timestamp: &str,
    extra: serde_json::Value,
) -> String {
    let mut payload = serde_json::json!({
        "id": id, "channel": channel, "from": "919019120123", "to": to, "status": status, "timestamp": timestamp,
    });
    if let (Some(payload), serde_json::Value::Object(extra)) = (payload.as_object_mut(), extra) {
        payload.extend(extra);
    }
    serde_json::json!({"event": format!("{channel}:message:status"), "payload": payload}).to_string()
}

/// An inbound message in the provider's envelope.
fn inbound_event(channel: &str, id: &str, from: &str, message: serde_json::Value) -> String {
    serde_json::json!({
        "event": format!("{channel}:message:in"),
        "payload": {
            "id": id,
            "channels": [{"name": channel, "to": "919019120123"}],
            "recipient": {"from": from},
            "message": message,
        },
    })
    .to_string()
}

fn seconds(time: &Option<prost_types::Timestamp>) -> Option<i64> {
    time.as_ref().map(|time| time.seconds)
}

fn is_documented_time(time: &Option<prost_types::Timestamp>) -> bool {
    time.as_ref().is_some_and(|time| (time.seconds, time.nanos) == (DOCUMENTED_SECONDS, DOCUMENTED_NANOS))
}

#[tokio::test]
async fn documented_chat_events_are_queryable_over_grpc() {
    let system = TestSystem::start().await.expect("system starts");
    for channel in ["whatsapp", "rcs"] {
        let status_answer = post_fixture(&system, "events", &format!("{channel}.message.status.json")).await;
        assert_eq!(status_answer["event"], format!("{channel}:message:status"));
        post_fixture(&system, "events", &format!("{channel}.message.in.incoming-text.json")).await;
        post_fixture(&system, "events", &format!("{channel}.unsubscription.json")).await;

        let outbound =
            outbound_when(&system, channel, "a418d672-9781-4d97-b517-a56f7d95ad8a", |_| true).await;
        assert_eq!(outbound.channel, channel);
        let expected_from = if channel == "rcs" { "700969ca-0cb2-11ec-a2c1234" } else { "919019120123" };
        assert_eq!(outbound.from, expected_from, "a business number or an RCS agent id");
        assert_eq!(outbound.to, "919019912345");
        assert_eq!(outbound.status, "delivered");
        assert_eq!(outbound.foreign_id, "your-business-identifier");
        for (name, time) in [
            ("processed_at", &outbound.processed_at),
            ("delivered_at", &outbound.delivered_at),
            ("read_at", &outbound.read_at),
            ("status_at", &outbound.status_at),
        ] {
            assert!(is_documented_time(time), "{name}: {time:?}");
        }
        assert_eq!((&outbound.sent_at, &outbound.failed_at, &outbound.deleted_at), (&None, &None, &None));
        let body = fixture("events", &format!("{channel}.message.status.json"));
        assert_eq!(outbound.raw_json.as_bytes(), body.as_slice(), "raw JSON is kept byte for byte");
        assert_eq!(outbound.stream_sequence, status_answer["seq"].as_u64().expect("seq"));
        assert_eq!(outbound.history.len(), 1);
        assert_eq!(outbound.history[0].status, "delivered");

        let inbound = inbound_when(&system, channel, "our-message-id", |_| true).await;
        assert_eq!((inbound.from.as_str(), inbound.to.as_str()), ("919876543210", "919019120123"));
        assert_eq!(inbound.r#type, "text");
        assert_eq!(inbound.text, "This is a simple text message from whatsapp channel");
        let payload: serde_json::Value = serde_json::from_str(&inbound.payload_json).expect("payload JSON");
        assert_eq!(payload["text"], inbound.text);
        let profile = inbound.profile.expect("the sender's profile");
        assert_eq!(profile.id, "unique-user-id");
        assert_eq!(
            (profile.first_name.as_str(), profile.last_name.as_str()),
            ("user first name", "user last name")
        );
        assert_eq!(profile.email, "", "null is empty");
        assert_eq!(profile.picture, "url-of-profile-picture");
        assert_eq!(profile.title, "user status or designation");
        assert_eq!((inbound.message_id.as_str(), inbound.message_timestamp), ("", None));
    }

    let mut client = system.chat().await;
    let check = |receiver: &str, category: &str| CheckOptOutRequest {
        receiver: receiver.into(),
        category: category.into(),
        ..Default::default()
    };
    // Each channel's opt-out is applied by that channel's own consumer: seeing one says nothing
    // about the other.
    let opted_out = async |receiver: &str, category: &str| {
        wait_until(&format!("{receiver} to be opted out"), WAIT, || {
            let mut client = client.clone();
            let request = check(receiver, category);
            async move {
                let answer = client.check_opt_out(request).await.ok()?.into_inner();
                answer.opted_out.then_some(answer)
            }
        })
        .await
    };
    let whatsapp = opted_out("917002081234", "WUC").await;
    assert_eq!((whatsapp.matches[0].channel.as_str(), whatsapp.matches[0].id.as_str()), ("whatsapp", "436"));
    let rcs = opted_out("917002088123", "").await;
    assert_eq!(rcs.matches[0].channel, "rcs", "type all, value * covers everything");

    // The same provider id on two channels is two messages.
    let missing = client
        .get_outbound_message(GetOutboundMessageRequest { channel: "whatsapp".into(), id: "nope".into() })
        .await
        .expect_err("unknown id");
    assert_eq!(missing.code(), Code::NotFound);
    let no_channel = client
        .get_outbound_message(GetOutboundMessageRequest {
            id: "a418d672-9781-4d97-b517-a56f7d95ad8a".into(),
            ..Default::default()
        })
        .await
        .expect_err("channel required");
    assert_eq!(no_channel.code(), Code::InvalidArgument);

    // Both durable consumers exist, one per subject root.
    let jetstream = system.jetstream().await.expect("jetstream");
    let stream = jetstream.get_stream("SWITCHBOARD").await.expect("stream");
    for (durable, filter) in [("chat-whatsapp", "whatsapp.>"), ("chat-rcs", "rcs.>")] {
        let mut consumer = stream
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(durable)
            .await
            .expect("consumer exists");
        assert_eq!(consumer.info().await.expect("info").config.filter_subject, filter);
    }
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn the_documentation_verbatim_is_accepted_and_unknown_statuses_rank_lowest() {
    let system = TestSystem::start().await.expect("system starts");
    let id = "a418d672-9781-4d97-b517-a56f7d95ad8a";
    for channel in ["whatsapp", "rcs"] {
        post_fixture(&system, "seed-verbatim", &format!("{channel}.message.status.json")).await;
        post_fixture(&system, "seed-verbatim", &format!("{channel}.unsubscription.json")).await;
    }
    post_fixture(&system, "seed-verbatim", "whatsapp.message.in.incoming-text.json").await;
    post_fixture(&system, "seed-verbatim", "rcs.message.in.incoming-media.json").await;

    for channel in ["whatsapp", "rcs"] {
        let outbound = outbound_when(&system, channel, id, |_| true).await;
        assert_eq!(
            outbound.status, "sent|delivered|read|failed|deleted",
            "an unknown status is stored as sent"
        );
        assert_eq!(outbound.to, "9190199xxxxx", "placeholders are kept as text");
        assert!(is_documented_time(&outbound.delivered_at) && is_documented_time(&outbound.read_at));
        assert_eq!(outbound.sent_at, None, "an unknown status names no milestone");
    }
    // Any known status beats the unknown one, even with an earlier timestamp.
    let sent =
        status_event("whatsapp", id, "9190199xxxxx", "sent", "2021-06-18T14:48:00Z", serde_json::json!({}));
    system.post_ok("whatsapp:message:status", sent).await;
    let outbound = outbound_when(&system, "whatsapp", id, |message| message.history.len() == 2).await;
    assert_eq!(outbound.status, "sent");
    assert_eq!(seconds(&outbound.sent_at), Some(1_624_027_680));
    assert!(is_documented_time(&outbound.delivered_at), "milestones from the unknown status stay");
    let unknown_first = outbound.history.iter().map(|event| event.status.as_str()).collect::<Vec<_>>();
    assert_eq!(unknown_first, ["sent", "sent|delivered|read|failed|deleted"], "history oldest first");

    let text = inbound_when(&system, "whatsapp", "our-message-id", |_| true).await;
    assert_eq!((text.from.as_str(), text.to.as_str()), ("91XXXXXX", "919019120xxx"));
    assert_eq!(text.r#type, "text");
    let media = inbound_when(&system, "rcs", "our-message-id", |_| true).await;
    assert_eq!((media.r#type.as_str(), media.caption.as_str()), ("image", "some caption for image"));

    // The other two verbatim messages reuse the documented id: a re-sent id keeps its first delivery.
    post_fixture(&system, "seed-verbatim", "whatsapp.message.in.incoming-media.json").await;
    post_fixture(&system, "seed-verbatim", "rcs.message.in.incoming-text.json").await;
    // Nothing changes visibly; a later event on each consumer shows that they were consumed.
    for channel in ["whatsapp", "rcs"] {
        let later =
            status_event(channel, "later", "91", "sent", "2021-06-18T15:00:00Z", serde_json::json!({}));
        system.post_ok(&format!("{channel}:message:status"), later).await;
        outbound_when(&system, channel, "later", |_| true).await;
    }
    let mut client = system.chat().await;
    for (channel, first) in [("whatsapp", &text), ("rcs", &media)] {
        let request = GetInboundMessageRequest { channel: channel.into(), id: "our-message-id".into() };
        let kept = client.get_inbound_message(request).await.expect("kept").into_inner();
        assert_eq!(&kept, first, "{channel}: the earliest delivery stands");
    }

    let opted_out = client
        .check_opt_out(CheckOptOutRequest { receiver: "917002088xxx".into(), ..Default::default() })
        .await
        .expect("answers")
        .into_inner();
    assert!(opted_out.opted_out, "the verbatim rcs opt-out is of type all");
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn milestones_keep_the_earliest_report_whatever_the_order() {
    let system = TestSystem::start().await.expect("system starts");
    let events = |id: &str| {
        vec![
            status_event(
                "whatsapp",
                id,
                "919000000001",
                "sent",
                "2021-06-18T10:00:00Z",
                serde_json::json!({"processed_at": "2021-06-18T09:59:59Z"}),
            ),
            status_event(
                "whatsapp",
                id,
                "919000000001",
                "delivered",
                "2021-06-18T10:00:05Z",
                serde_json::json!({}),
            ),
            status_event(
                "whatsapp",
                id,
                "919000000001",
                "read",
                "2021-06-18T10:01:00Z",
                serde_json::json!({"delivered_at": "2021-06-18T10:00:04Z"}),
            ),
            status_event(
                "whatsapp",
                id,
                "919000000001",
                "queued",
                "2021-06-18T10:05:00Z",
                serde_json::json!({}),
            ),
        ]
    };
    let orders: [[usize; 4]; 3] = [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]];
    for (index, order) in orders.iter().enumerate() {
        let bodies = events(&format!("order-{index}"));
        for position in order {
            system.post_ok("whatsapp:message:status", bodies[*position].clone()).await;
        }
    }
    let mut states = Vec::new();
    for index in 0..orders.len() {
        let message = outbound_when(&system, "whatsapp", &format!("order-{index}"), |message| {
            message.history.len() == 4
        })
        .await;
        let history: Vec<String> = message.history.iter().map(|event| event.status.clone()).collect();
        states.push((
            message.status.clone(),
            [&message.processed_at, &message.sent_at, &message.delivered_at, &message.read_at].map(seconds),
            message.status_at,
            history,
        ));
    }
    let (status, milestones, _, history) = &states[0];
    assert_eq!(status, "read", "read outranks a later queued");
    assert_eq!(
        *milestones,
        [Some(1_624_010_399), Some(1_624_010_400), Some(1_624_010_404), Some(1_624_010_460)],
        "processed, sent, delivered (the earlier delivered_at field), read"
    );
    assert_eq!(history, &["sent", "delivered", "read", "queued"], "oldest first by event time");
    assert!(states.iter().all(|state| *state == states[0]), "{states:?}");
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn watchers_see_committed_changes_for_their_number() {
    let system = TestSystem::start().await.expect("system starts");
    let mut client = system.chat().await;
    let mut watch = client
        .watch(WatchRequest {
            channel: "rcs".into(),
            phone_number: "+91 90000 00020".into(),
            ..Default::default()
        })
        .await
        .expect("watch opens")
        .into_inner();
    // Changes for another number and another channel first: they must be filtered out.
    let other_number =
        status_event("rcs", "w-1", "919000000099", "sent", "2021-06-18T10:00:00Z", serde_json::json!({}));
    system.post_ok("rcs:message:status", other_number).await;
    let other_channel = status_event(
        "whatsapp",
        "w-2",
        "919000000020",
        "sent",
        "2021-06-18T10:00:00Z",
        serde_json::json!({}),
    );
    system.post_ok("whatsapp:message:status", other_channel).await;
    let text = serde_json::json!({"type": "text", "payload": {"text": "hello"}});
    system.post_ok("rcs:message:in", inbound_event("rcs", "w-3", "919000000020", text)).await;
    let change = tokio::time::timeout(WAIT, watch.next())
        .await
        .expect("a change in time")
        .expect("stream open")
        .expect("ok");
    match change.change {
        Some(Change::Inbound(message)) => {
            assert_eq!((message.id.as_str(), message.text.as_str()), ("w-3", "hello"))
        }
        other => panic!("expected the inbound message, got {other:?}"),
    }
    let read =
        status_event("rcs", "w-4", "919000000020", "read", "2021-06-18T10:00:00Z", serde_json::json!({}));
    system.post_ok("rcs:message:status", read).await;
    let change = tokio::time::timeout(WAIT, watch.next()).await.expect("in time").expect("open").expect("ok");
    match change.change {
        Some(Change::Outbound(message)) => {
            assert_eq!((message.id.as_str(), message.status.as_str()), ("w-4", "read"))
        }
        other => panic!("expected the outbound message, got {other:?}"),
    }
    let bad = client.watch(WatchRequest { channel: "sms".into(), ..Default::default() }).await;
    assert_eq!(bad.expect_err("unknown channel").code(), Code::InvalidArgument);
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn chat_events_the_service_cannot_decode_are_dead_lettered_with_their_reason() {
    let system = TestSystem::start().await.expect("system starts");
    // Valid JSON, so the gateway stores them; but without the message id the service cannot use them.
    let no_id =
        r#"{"event": "whatsapp:message:status", "payload": {"to": "919000000030", "status": "read"}}"#;
    let status_answer = system.post_ok("whatsapp:message:status", no_id).await;
    let no_sender = r#"{"event": "rcs:message:in", "payload": {"id": "m-1", "message": {"type": "text"}}}"#;
    let inbound_answer = system.post_ok("rcs:message:in", no_sender).await;

    let jetstream = system.jetstream().await.expect("jetstream");
    let dead_letters = wait_until("both dead letters", WAIT, || {
        let jetstream = jetstream.clone();
        async move {
            let mut stream = jetstream.get_stream("SWITCHBOARD_DLQ").await.ok()?;
            let state = stream.info().await.ok()?.state.clone();
            if state.messages < 2 {
                return None;
            }
            let mut letters = Vec::new();
            for sequence in state.first_sequence..=state.last_sequence {
                letters.push(stream.get_raw_message(sequence).await.ok()?);
            }
            Some(letters)
        }
    })
    .await;
    for (subject, answer, reason_mentions) in
        [("whatsapp.message.status", &status_answer, "id"), ("rcs.message.in", &inbound_answer, "recipient")]
    {
        let letter = dead_letters
            .iter()
            .find(|letter| letter.subject.as_str() == format!("dlq.chat.{subject}"))
            .unwrap_or_else(|| panic!("a dead letter from {subject}"));
        let header = |name: &str| letter.headers.get(name).map(|value| value.as_str().to_owned());
        let reason = header("Switchboard-Dlq-Reason").unwrap_or_default();
        assert!(reason.contains(reason_mentions), "{subject}: {reason}");
        assert_eq!(header("Switchboard-Dlq-Component").as_deref(), Some("chat"));
        assert_eq!(header("Switchboard-Dlq-Subject").as_deref(), Some(subject));
        assert_eq!(header("Switchboard-Dlq-Sequence"), answer["seq"].as_u64().map(|seq| seq.to_string()));
        assert_eq!(header("Switchboard-Event"), Some(subject.replace('.', ":")), "original headers are kept");
    }

    // Both consumers moved on: the next good events are projected.
    let good = status_event(
        "whatsapp",
        "after-poison",
        "919000000030",
        "read",
        "2021-06-18T10:00:00Z",
        serde_json::json!({}),
    );
    system.post_ok("whatsapp:message:status", good).await;
    outbound_when(&system, "whatsapp", "after-poison", |_| true).await;
    let text = serde_json::json!({"type": "text", "payload": {"text": "still here"}});
    system.post_ok("rcs:message:in", inbound_event("rcs", "after-poison", "919000000030", text)).await;
    inbound_when(&system, "rcs", "after-poison", |_| true).await;
    system.stop().await.expect("clean stop");
}
