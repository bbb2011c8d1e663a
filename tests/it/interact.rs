//! The interact service end to end: messages to virtual numbers in, gRPC out. Its projection against
//! the real database is property-tested in `projection`.

mod projection;

use std::time::Duration;

use futures::StreamExt;
use switchboard_events::{EventKind, ProviderTime, TimeZoneSetting, headers};
use switchboard_proto::common::TimeRange;
use switchboard_proto::interact::{
    GetKeywordCountsRequest, GetMessageRequest, KeywordCount, ListMessagesRequest, Message, WatchRequest,
    watch_response::Change,
};
use switchboard_service::grpc::timestamp;
use switchboard_tests::workload::vmn;
use switchboard_tests::{TestSystem, fixture, wait_until};
use tonic::Code;

const WAIT: Duration = Duration::from_secs(15);

/// A `vmn:message:in` body made from a WhatsApp inbound fixture: the same envelope and payload, the
/// event and channel named `vmn`, and its own id. Everything else stays byte for byte.
fn vmn_from_fixture(set: &str, name: &str, id: &str) -> String {
    let whatsapp = String::from_utf8(fixture(set, name)).expect("fixtures are UTF-8");
    let body = whatsapp
        .replace("\"whatsapp:message:in\"", "\"vmn:message:in\"")
        .replace("\"name\": \"whatsapp\"", "\"name\": \"vmn\"")
        .replace("\"our-message-id\"", &format!("\"{id}\""))
        .replace("\"our-media-message-id\"", &format!("\"{id}\""));
    assert!(
        body.contains("\"vmn:message:in\"") && body.contains("\"name\": \"vmn\"") && body.contains(id),
        "the fixture {set}/{name} no longer has the expected shape"
    );
    body
}

/// Waits until the message exists and satisfies `done`, then returns it.
async fn message_when(system: &TestSystem, id: &str, done: impl Fn(&Message) -> bool) -> Message {
    let client = system.interact().await;
    let done = &done;
    wait_until(&format!("message {id}"), WAIT, || {
        let mut client = client.clone();
        let request = GetMessageRequest { id: id.to_owned() };
        async move {
            client
                .get_message(request)
                .await
                .ok()
                .map(|response| response.into_inner())
                .filter(|message| done(message))
        }
    })
    .await
}

#[tokio::test]
async fn the_documented_inbound_shape_on_a_virtual_number_is_queryable_over_grpc() {
    let system = TestSystem::start().await.expect("system starts");
    let text_body = vmn_from_fixture("events", "whatsapp.message.in.incoming-text.json", "vmn-text");
    let media_body = vmn_from_fixture("events", "whatsapp.message.in.incoming-media.json", "vmn-media");
    let answer = system.post_ok("vmn:message:in", text_body.clone()).await;
    assert_eq!(answer["event"], "vmn:message:in");
    system.post_ok("vmn.message.in", media_body.clone()).await;

    let text = message_when(&system, "vmn-text", |_| true).await;
    assert_eq!(text.virtual_number, "919019120123", "channels[].to");
    assert_eq!(text.from, "919876543210");
    assert_eq!(text.r#type, "text");
    assert_eq!(text.text, "This is a simple text message from whatsapp channel");
    assert_eq!((text.keyword1.as_str(), text.keyword2.as_str()), ("this", "is"), "case-folded");
    let profile = text.profile.clone().expect("the sender's profile");
    assert_eq!(profile.id, "unique-user-id");
    assert_eq!(profile.username, "username");
    assert_eq!(
        (profile.first_name.as_str(), profile.last_name.as_str()),
        ("user first name", "user last name")
    );
    assert_eq!(profile.email, "", "null stays empty");
    assert_eq!(profile.phone, "user phone number");
    assert_eq!(profile.picture, "url-of-profile-picture");
    assert_eq!(profile.title, "user status or designation");
    let payload: serde_json::Value = serde_json::from_str(&text.payload_json).expect("payload JSON");
    assert_eq!(payload["text"], "This is a simple text message from whatsapp channel");
    assert_eq!(text.raw_json, text_body, "raw JSON is kept byte for byte");
    assert_eq!(text.stream_sequence, answer["seq"].as_u64().expect("seq"));
    assert!(text.received_at.is_some());
    assert!(text.message_timestamp.is_none(), "the fixture has no message.timestamp");

    let media = message_when(&system, "vmn-media", |_| true).await;
    assert_eq!(media.r#type, "image");
    assert_eq!(media.text, "some caption for image", "a caption is the text of a media message");
    assert_eq!((media.keyword1.as_str(), media.keyword2.as_str()), ("some", "caption"));
    let payload: serde_json::Value = serde_json::from_str(&media.payload_json).expect("payload JSON");
    assert_eq!(payload["url"], "https://domin-name.com/your_image_path.png");
    assert_eq!(media.raw_json, media_body);

    let mut client = system.interact().await;
    let missing = client.get_message(GetMessageRequest { id: "nope".into() }).await.expect_err("unknown id");
    assert_eq!(missing.code(), Code::NotFound);
    let empty = client.get_message(GetMessageRequest::default()).await.expect_err("id required");
    assert_eq!(empty.code(), Code::InvalidArgument);
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn the_documentation_verbatim_is_accepted() {
    let system = TestSystem::start().await.expect("system starts");
    let text_body =
        vmn_from_fixture("seed-verbatim", "whatsapp.message.in.incoming-text.json", "verbatim-text");
    let media_body =
        vmn_from_fixture("seed-verbatim", "whatsapp.message.in.incoming-media.json", "verbatim-media");
    system.post_ok("vmn:message:in", text_body.clone()).await;
    system.post_ok("vmn:message:in", media_body).await;
    let text = message_when(&system, "verbatim-text", |_| true).await;
    assert_eq!(text.virtual_number, "919019120xxx", "placeholders are kept as text");
    assert_eq!(text.from, "91XXXXXX");
    assert_eq!(text.keyword1, "this");
    assert_eq!(text.raw_json, text_body);
    let media = message_when(&system, "verbatim-media", |_| true).await;
    assert_eq!(media.keyword1, "some");
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_resent_id_keeps_the_earliest_delivery() {
    let system = TestSystem::start().await.expect("system starts");
    let first_body = vmn("resent", "919000000001", "919811111111", "JOIN first");
    let first = system.post_ok("vmn:message:in", first_body.clone()).await;
    let retry = system.post_ok("vmn:message:in", first_body.clone()).await;
    assert_eq!(retry["duplicate"], true, "JetStream dropped the provider's retry");
    // The same id with another body, and the first body again past the duplicate window.
    system.post_ok("vmn:message:in", vmn("resent", "919000000001", "919811111111", "STOP second")).await;
    system.publish_direct(EventKind::VmnMessageIn, first_body.clone(), None).await;
    system.post_ok("vmn:message:in", vmn("resent-marker", "919000000001", "919811111111", "later")).await;
    // One consumer applies in stream order: once the marker is in, so is everything before it.
    message_when(&system, "resent-marker", |_| true).await;

    let kept = message_when(&system, "resent", |_| true).await;
    assert_eq!(kept.text, "JOIN first");
    assert_eq!(kept.keyword1, "join");
    assert_eq!(kept.stream_sequence, first["seq"].as_u64().expect("seq"), "the earliest delivery stands");
    assert_eq!(kept.raw_json, first_body);
    let listed = system
        .interact()
        .await
        .list_messages(ListMessagesRequest { from: "+91 98111 11111".into(), ..Default::default() })
        .await
        .expect("lists")
        .into_inner();
    assert_eq!(listed.messages.len(), 2, "one row per id");
    system.stop().await.expect("clean stop");
}

/// Seven messages to two numbers over three days (UTC), published with chosen receive times.
const DAYS: &[(&str, &str, &str, &str, &str)] = &[
    ("m0", "919000000001", "919800000001", "JOIN offers", "2024-03-01T10:00:00Z"),
    ("m1", "919000000001", "919800000002", "join now", "2024-03-01T12:00:00Z"),
    ("m2", "919000000001", "919800000001", "STOP", "2024-03-01T20:00:00Z"),
    ("m3", "919000000002", "919800000001", "Join", "2024-03-02T08:00:00Z"),
    ("m4", "919000000002", "919800000003", "help me", "2024-03-02T09:00:00Z"),
    ("m5", "919000000001", "919800000003", "", "2024-03-02T10:00:00Z"),
    ("m6", "919000000001", "919800000002", "join!", "2024-03-03T01:00:00Z"),
];

fn micros(rfc3339: &str) -> i64 {
    ProviderTime::parse(rfc3339).unix_micros(TimeZoneSetting::default()).expect("a valid time")
}

fn ids(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|message| message.id.as_str()).collect()
}

fn counts(rows: &[KeywordCount]) -> Vec<(&str, &str, &str, i64)> {
    rows.iter()
        .map(|row| (row.day.as_str(), row.virtual_number.as_str(), row.keyword.as_str(), row.count))
        .collect()
}

#[tokio::test]
async fn lists_filter_and_page_and_keywords_are_counted_per_number_per_day() {
    let system = TestSystem::start().await.expect("system starts");
    for (id, to, from, text, received_at) in DAYS {
        let body = if text.is_empty() {
            // A picture without caption: no keyword.
            serde_json::json!({"event": "vmn:message:in", "payload": {
                "id": id, "channels": [{"name": "vmn", "to": to}], "recipient": {"from": from},
                "message": {"type": "image", "payload": {"url": "https://example.com/a.png"}},
            }})
            .to_string()
        } else {
            vmn(id, to, from, text)
        };
        system.publish_direct(EventKind::VmnMessageIn, body, Some(received_at)).await;
    }
    let mut client = system.interact().await;
    wait_until("all seven messages", WAIT, || {
        let mut client = client.clone();
        async move {
            let listed = client.list_messages(ListMessagesRequest::default()).await.ok()?.into_inner();
            (listed.messages.len() == DAYS.len()).then_some(())
        }
    })
    .await;

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_messages(ListMessagesRequest {
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        seen.extend(page.messages.iter().map(|message| message.id.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ["m6", "m5", "m4", "m3", "m2", "m1", "m0"], "newest first, every message once");
    let at_five = client.get_message(GetMessageRequest { id: "m5".into() }).await.expect("m5").into_inner();
    assert_eq!((at_five.keyword1.as_str(), at_five.text.as_str()), ("", ""));
    assert_eq!(
        at_five.received_at.map(|time| time.seconds),
        Some(micros("2024-03-02T10:00:00Z") / 1_000_000)
    );

    let list = |request: ListMessagesRequest| {
        let mut client = client.clone();
        async move { client.list_messages(request).await.expect("lists").into_inner().messages }
    };
    let by_keyword = list(ListMessagesRequest { keyword: "JOIN".into(), ..Default::default() }).await;
    assert_eq!(ids(&by_keyword), ["m6", "m3", "m1", "m0"], "keyword1, case-insensitively");
    let by_keyword_and_number = list(ListMessagesRequest {
        keyword: "Join".into(),
        virtual_number: "+91 90000 00001".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&by_keyword_and_number), ["m6", "m1", "m0"]);
    let by_second_word = list(ListMessagesRequest { keyword: "offers".into(), ..Default::default() }).await;
    assert!(by_second_word.is_empty(), "only the first keyword is matched");
    let by_sender = list(ListMessagesRequest { from: "919800000001".into(), ..Default::default() }).await;
    assert_eq!(ids(&by_sender), ["m3", "m2", "m0"]);
    let by_time = list(ListMessagesRequest {
        received: Some(TimeRange {
            start: Some(timestamp(micros("2024-03-01T11:00:00Z"))),
            end: Some(timestamp(micros("2024-03-02T08:30:00Z"))),
        }),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&by_time), ["m3", "m2", "m1"]);
    let bad_keyword =
        client.list_messages(ListMessagesRequest { keyword: "!!!".into(), ..Default::default() }).await;
    assert_eq!(bad_keyword.expect_err("no word").code(), Code::InvalidArgument);

    let in_utc = client
        .get_keyword_counts(GetKeywordCountsRequest { utc_offset: "UTC".into(), ..Default::default() })
        .await
        .expect("counts")
        .into_inner();
    assert_eq!(in_utc.utc_offset, "+00:00");
    assert_eq!(
        counts(&in_utc.rows),
        [
            ("2024-03-01", "919000000001", "join", 2),
            ("2024-03-01", "919000000001", "stop", 1),
            ("2024-03-02", "919000000002", "help", 1),
            ("2024-03-02", "919000000002", "join", 1),
            ("2024-03-03", "919000000001", "join", 1),
        ]
    );
    // 20:00 UTC on the 1st is 01:30 on the 2nd in the provider's zone.
    let in_provider_zone =
        client.get_keyword_counts(GetKeywordCountsRequest::default()).await.expect("counts").into_inner();
    assert_eq!(in_provider_zone.utc_offset, "+05:30");
    assert_eq!(
        counts(&in_provider_zone.rows),
        [
            ("2024-03-01", "919000000001", "join", 2),
            ("2024-03-02", "919000000001", "stop", 1),
            ("2024-03-02", "919000000002", "help", 1),
            ("2024-03-02", "919000000002", "join", 1),
            ("2024-03-03", "919000000001", "join", 1),
        ]
    );
    let one_number = client
        .get_keyword_counts(GetKeywordCountsRequest {
            virtual_number: "919000000002".into(),
            received: Some(TimeRange { start: Some(timestamp(micros("2024-03-02T08:30:00Z"))), end: None }),
            utc_offset: "-04:00".into(),
        })
        .await
        .expect("counts")
        .into_inner();
    assert_eq!(counts(&one_number.rows), [("2024-03-02", "919000000002", "help", 1)]);
    let bad_zone = client
        .get_keyword_counts(GetKeywordCountsRequest { utc_offset: "India".into(), ..Default::default() })
        .await;
    assert_eq!(bad_zone.expect_err("bad offset").code(), Code::InvalidArgument);
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn watchers_see_committed_messages_for_their_number_and_sender() {
    let system = TestSystem::start().await.expect("system starts");
    let mut client = system.interact().await;
    let mut by_number = client
        .watch(WatchRequest { virtual_number: "+91 90000 00077".into(), ..Default::default() })
        .await
        .expect("watch opens")
        .into_inner();
    let mut by_sender = client
        .watch(WatchRequest { from: "919855555555".into(), ..Default::default() })
        .await
        .expect("watch opens")
        .into_inner();
    system.post_ok("vmn:message:in", vmn("watch-other", "919000000099", "919844444444", "no")).await;
    system.post_ok("vmn:message:in", vmn("watch-1", "919000000077", "919855555555", "YES please")).await;
    for watch in [&mut by_number, &mut by_sender] {
        let change = tokio::time::timeout(WAIT, watch.next())
            .await
            .expect("a change in time")
            .expect("open")
            .expect("ok");
        match change.change {
            Some(Change::Message(message)) => {
                assert_eq!(message.id, "watch-1", "the other number's message is filtered out");
                assert_eq!(message.keyword1, "yes");
            }
            other => panic!("expected a message, got {other:?}"),
        }
    }
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_message_the_service_cannot_decode_is_dead_lettered_with_its_reason() {
    let system = TestSystem::start().await.expect("system starts");
    // JSON, so the gateway stores it; but without a sender the interact service cannot use it.
    let no_sender = serde_json::json!({"event": "vmn:message:in", "payload": {
        "id": "poison-1", "channels": [{"name": "vmn", "to": "919000000001"}],
        "message": {"type": "text", "payload": {"text": "hi"}},
    }});
    let no_message = serde_json::json!({"event": "vmn:message:in", "payload": {
        "id": "poison-2", "channels": [{"name": "vmn", "to": "919000000001"}],
        "recipient": {"from": "919800000001"},
    }});
    for (body, expected) in [(no_sender, "recipient"), (no_message, "message")] {
        let answer = system.post_ok("vmn:message:in", body.to_string()).await;
        let sequence = answer["seq"].as_u64().expect("seq");
        let letter = system.dead_letter_of(sequence).await;
        assert_eq!(letter.subject.as_str(), "dlq.interact.vmn.message.in");
        let header = |name: &str| letter.headers.get(name).map(|value| value.as_str().to_owned());
        let reason = header(headers::DLQ_REASON).unwrap_or_default();
        assert!(reason.contains(expected), "reason {reason:?} should name {expected}");
        assert_eq!(header(headers::DLQ_COMPONENT).as_deref(), Some("interact"));
        assert_eq!(header(headers::DLQ_ORIGINAL_SUBJECT).as_deref(), Some("vmn.message.in"));
        assert_eq!(header(headers::EVENT).as_deref(), Some("vmn:message:in"), "original headers are kept");
        assert_eq!(letter.payload.as_ref(), body.to_string().as_bytes(), "the body is kept");
    }
    // The consumer moved on.
    system.post_ok("vmn:message:in", vmn("after-poison", "919000000001", "919800000001", "ok")).await;
    message_when(&system, "after-poison", |_| true).await;
    let mut client = system.interact().await;
    let poisoned = client.get_message(GetMessageRequest { id: "poison-1".into() }).await;
    assert_eq!(poisoned.expect_err("not projected").code(), Code::NotFound);
    system.stop().await.expect("clean stop");
}
