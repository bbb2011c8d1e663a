//! The sms service end to end: webhook in, gRPC out.

use std::time::Duration;

use futures::StreamExt;
use switchboard_proto::common::{CheckOptOutRequest, ListOptOutsRequest};
use switchboard_proto::sms::{
    GetDeliveryReportRequest, GetMessageRequest, ListMessagesRequest, Message, StatusClass, WatchRequest,
    watch_response::Change,
};
use switchboard_tests::{TestSystem, fixture, wait_until};
use tonic::Code;

const WAIT: Duration = Duration::from_secs(15);

/// Waits until the message exists and satisfies `done`, then returns it.
async fn message_when(system: &TestSystem, id: &str, done: impl Fn(&Message) -> bool) -> Message {
    let client = system.sms().await;
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

fn report(id: &str, mobile: &str, status: &str, deliv_time: &str) -> String {
    serde_json::json!({
        "id": id, "mobile": mobile, "status": status, "credits": "1.0000", "units": 1,
        "deliv_time": deliv_time, "sent_time": "2021-04-09 16:27:35", "submit_time": "2021-04-09 16:27:30",
    })
    .to_string()
}

#[tokio::test]
async fn documented_sms_events_are_queryable_over_grpc() {
    let system = TestSystem::start().await.expect("system starts");
    let status_body = fixture("events", "sms.message.status.json");
    let answer = system.post_ok("sms:message:status", status_body.clone()).await;
    assert_eq!(answer["event"], "sms:message:status");
    assert_eq!(answer["duplicate"], false);
    let optout_answer =
        system.post_ok("sms.unsubscription", fixture("events", "sms.unsubscription.json")).await;
    assert_eq!(optout_answer["event"], "sms:unsubscription");

    let id = "b34e35ad-fe34-4a8b-977c-b21cd76cd7d6:1";
    let message = message_when(&system, id, |_| true).await;
    assert_eq!(message.request_id, "b34e35ad-fe34-4a8b-977c-b21cd76cd7d6");
    assert_eq!(message.recipient_index, Some(1));
    assert_eq!(message.mobile, "918921269123");
    assert_eq!(message.status, "DELIVRD");
    assert_eq!(message.status_class, StatusClass::Delivered as i32);
    assert_eq!(message.credits, "2.0000");
    assert_eq!(message.units, Some(2));
    assert_eq!(message.cid, "12344441234");
    assert_eq!(message.custom, "98821234");
    // "2021-04-09 16:27:51" at +05:30.
    assert_eq!(message.delivered_at.as_ref().map(|time| time.seconds), Some(1_617_965_871));
    assert_eq!(message.sent_at.as_ref().map(|time| time.seconds), Some(1_617_965_855));
    assert_eq!(message.submitted_at.as_ref().map(|time| time.seconds), Some(1_617_965_859));
    assert_eq!(message.raw_json.as_bytes(), status_body.as_slice(), "raw JSON is kept byte for byte");
    assert_eq!(message.stream_sequence, answer["seq"].as_u64().expect("seq"));
    assert_eq!(message.history.len(), 1);

    let mut client = system.sms().await;
    let check = |sender: &str| CheckOptOutRequest {
        receiver: "+91 700-208 8123".into(),
        sender: sender.into(),
        ..Default::default()
    };
    let opted_out = wait_until("the opt-out", WAIT, || {
        let mut client = client.clone();
        let request = check("DEMO12");
        async move { client.check_opt_out(request).await.ok().map(|r| r.into_inner()).filter(|r| r.opted_out) }
    })
    .await;
    assert_eq!(opted_out.matches[0].id, "d105a1ef-6728-4563-8b85-7f5356c8a123");
    assert_eq!(opted_out.matches[0].r#type, "sender");
    assert_eq!(opted_out.matches[0].value, "Demo12");
    assert!(!client.check_opt_out(check("OTHER")).await.expect("answers").into_inner().opted_out);
    assert!(
        !client.check_opt_out(check("")).await.expect("answers").into_inner().opted_out,
        "only `all` covers an unnamed sender"
    );
    let listed = client.list_opt_outs(ListOptOutsRequest::default()).await.expect("lists").into_inner();
    assert_eq!(listed.opt_outs.len(), 1);
    assert_eq!(listed.opt_outs[0].channel, "sms");

    let missing =
        client.get_message(GetMessageRequest { id: "nope:1".into() }).await.expect_err("unknown id");
    assert_eq!(missing.code(), Code::NotFound);
    let bad = client.check_opt_out(CheckOptOutRequest::default()).await.expect_err("receiver required");
    assert_eq!(bad.code(), Code::InvalidArgument);
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn the_documentation_verbatim_is_accepted_and_normalised() {
    let system = TestSystem::start().await.expect("system starts");
    let verbatim = fixture("seed-verbatim", "sms.message.status.json");
    assert!(
        serde_json::from_slice::<serde_json::Value>(&verbatim).is_err(),
        "the documented example is not strict JSON"
    );
    system.post_ok("sms:message:status", verbatim).await;
    system.post_ok("sms:unsubscription", fixture("seed-verbatim", "sms.unsubscription.json")).await;
    let message = message_when(&system, "b34e35ad-fe34-4a8b-977c-b21cd76cd7d6:1", |_| true).await;
    assert_eq!(message.mobile, "918921269xxx", "placeholders inside strings are kept as text");
    let stored: serde_json::Value =
        serde_json::from_str(&message.raw_json).expect("normalised to strict JSON");
    assert_eq!(stored["custom"], "9882XXXX");
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_redelivered_report_is_stored_once() {
    let system = TestSystem::start().await.expect("system starts");
    let body = report("dup-1:1", "919000000001", "DELIVRD", "2021-04-09 16:27:51");
    let first = system.post_ok("sms:message:status", body.clone()).await;
    let second = system.post_ok("sms:message:status", body.clone()).await;
    assert_eq!(first["duplicate"], false);
    assert_eq!(second["duplicate"], true, "JetStream dropped the provider's retry");
    assert_eq!(first["seq"], second["seq"]);
    let message = message_when(&system, "dup-1:1", |_| true).await;
    assert_eq!(message.history.len(), 1);
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn reports_arriving_in_any_order_converge() {
    let system = TestSystem::start().await.expect("system starts");
    let events = |id: &str| {
        vec![
            report(id, "919000000002", "AWAITING-DLR", "2021-04-09 16:27:36"),
            report(id, "919000000002", "TIMEOUT-DLR", "2021-04-09 18:27:36"),
            report(id, "919000000002", "DELIVRD", "2021-04-09 16:30:00"),
            report(id, "919000000002", "UNDELIV", "2021-04-09 16:29:00"),
            report(id, "919000000002", "ENROUTE", "2021-04-09 20:00:00"),
        ]
    };
    let orders: [[usize; 5]; 3] = [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 0, 4, 1, 3]];
    for (index, order) in orders.iter().enumerate() {
        let id = format!("order-{index}:1");
        let bodies = events(&id);
        for position in order {
            system.post_ok("sms:message:status", bodies[*position].clone()).await;
        }
        // Redeliver one, as the provider would after a timeout.
        system.post_ok("sms:message:status", bodies[order[0]].clone()).await;
    }
    let mut states = Vec::new();
    for index in 0..orders.len() {
        let message =
            message_when(&system, &format!("order-{index}:1"), |message| message.history.len() == 5).await;
        states.push((message.status.clone(), message.delivered_at, message.history.len()));
    }
    assert_eq!(
        states[0].0, "DELIVRD",
        "the latest final report wins over pending, timeout and earlier finals"
    );
    assert!(states.iter().all(|state| *state == states[0]), "{states:?}");
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn lists_filter_and_page() {
    let system = TestSystem::start().await.expect("system starts");
    for index in 0..7 {
        let status = if index % 2 == 0 { "DELIVRD" } else { "UNDELIV" };
        let mobile = if index < 4 { "919000000010" } else { "919000000011" };
        let body = serde_json::json!({
            "id": format!("list-{index}:1"), "mobile": mobile, "status": status,
            "sent_time": format!("2021-04-0{} 10:00:00", index + 1), "deliv_time": format!("2021-04-0{} 10:00:05", index + 1),
            "cid": if index == 3 { "campaign-3" } else { "campaign" },
        });
        system.post_ok("sms:message:status", body.to_string()).await;
    }
    let mut client = system.sms().await;
    wait_until("all seven messages", WAIT, || {
        let mut client = client.clone();
        async move {
            let listed = client
                .list_messages(ListMessagesRequest { page_size: 100, ..Default::default() })
                .await
                .ok()?;
            (listed.into_inner().messages.len() == 7).then_some(())
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
    let expected: Vec<String> = (0..7).rev().map(|index| format!("list-{index}:1")).collect();
    assert_eq!(seen, expected, "newest first, every message once");

    let by_mobile = client
        .list_messages(ListMessagesRequest {
            mobile: "+91 9000000010".into(),
            status: "UNDELIV".into(),
            ..Default::default()
        })
        .await
        .expect("filtered")
        .into_inner();
    let ids: Vec<_> = by_mobile.messages.iter().map(|message| message.id.as_str()).collect();
    assert_eq!(ids, ["list-3:1", "list-1:1"]);
    let by_class = client
        .list_messages(ListMessagesRequest {
            status_class: StatusClass::Delivered as i32,
            cid: "campaign".into(),
            ..Default::default()
        })
        .await
        .expect("filtered")
        .into_inner();
    assert_eq!(by_class.messages.len(), 4);
    let bad_token = client
        .list_messages(ListMessagesRequest { page_token: "garbage".into(), ..Default::default() })
        .await;
    assert_eq!(bad_token.expect_err("bad token").code(), Code::InvalidArgument);

    let report =
        client.get_delivery_report(GetDeliveryReportRequest::default()).await.expect("report").into_inner();
    assert_eq!(report.utc_offset, "+05:30");
    assert_eq!(report.days.len(), 7);
    assert_eq!(report.days[0].day, "2021-04-01");
    assert_eq!((report.days[0].delivered, report.days[1].failed), (1, 1));
    let total: i64 = report.rows.iter().map(|row| row.count).sum();
    assert_eq!(total, 7);
    system.stop().await.expect("clean stop");
}

/// A request's messages are found by the request part of their ids (before a final `:<index>`),
/// never by an id that merely starts the same way.
#[tokio::test]
async fn lists_the_messages_of_one_request() {
    let system = TestSystem::start().await.expect("system starts");
    // (id, request it belongs to)
    let messages = [
        ("req-a:1", "req-a"),
        ("req-a:2", "req-a"),
        ("req-a:10", "req-a"),
        ("req-a", "req-a"),
        ("req-a:x", "req-a:x"),
        ("req-a:1:2", "req-a:1"),
        ("req-ab:1", "req-ab"),
        ("req-a;1", "req-a;1"),
        ("req-:1", "req-"),
    ];
    for (index, (id, _)) in messages.iter().enumerate() {
        let body = serde_json::json!({
            "id": id, "mobile": "919000000030", "status": "DELIVRD",
            "sent_time": format!("2021-05-{:02} 10:00:00", index + 1),
        });
        system.post_ok("sms:message:status", body.to_string()).await;
    }
    let client = system.sms().await;
    let list = |request_id: &str| {
        let mut client = client.clone();
        let request =
            ListMessagesRequest { request_id: request_id.into(), page_size: 100, ..Default::default() };
        async move {
            let listed = client.list_messages(request).await.expect("listed").into_inner();
            listed.messages.into_iter().map(|message| (message.id, message.request_id)).collect::<Vec<_>>()
        }
    };
    wait_until("every message", WAIT, || {
        let list = &list;
        async move { (list("").await.len() == messages.len()).then_some(()) }
    })
    .await;
    for request in ["req-a", "req-a:x", "req-a:1", "req-ab", "req-a;1", "req-", "req", "req-a:"] {
        // Newest first: later in `messages` is a later sent time.
        let expected: Vec<(String, String)> = messages
            .iter()
            .rev()
            .filter(|(_, owner)| *owner == request)
            .map(|(id, owner)| (id.to_string(), owner.to_string()))
            .collect();
        assert_eq!(list(request).await, expected, "request {request:?}");
    }
    assert_eq!(list("req-a").await.len(), 4, "the test covers a request of several messages");
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn watchers_see_committed_changes() {
    let system = TestSystem::start().await.expect("system starts");
    let mut client = system.sms().await;
    let mut watch = client
        .watch(WatchRequest { mobile: "919000000020".into(), ..Default::default() })
        .await
        .expect("watch opens")
        .into_inner();
    // A change for another number first: it must be filtered out.
    system
        .post_ok(
            "sms:message:status",
            report("watch-other:1", "919000000099", "DELIVRD", "2021-04-09 16:27:51"),
        )
        .await;
    system
        .post_ok("sms:message:status", report("watch-1:1", "919000000020", "DELIVRD", "2021-04-09 16:27:51"))
        .await;
    let change = tokio::time::timeout(WAIT, watch.next())
        .await
        .expect("a change in time")
        .expect("stream open")
        .expect("ok");
    match change.change {
        Some(Change::Message(message)) => {
            assert_eq!(message.id, "watch-1:1");
            assert_eq!(message.status, "DELIVRD");
        }
        other => panic!("expected a message change, got {other:?}"),
    }
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_report_the_service_cannot_decode_is_dead_lettered_with_its_reason() {
    let system = TestSystem::start().await.expect("system starts");
    // Valid JSON, so the gateway stores it; but no id, so the sms service cannot use it.
    let answer =
        system.post_ok("sms:message:status", r#"{"mobile": "919000000030", "status": "DELIVRD"}"#).await;
    let sequence = answer["seq"].as_u64().expect("seq");
    let jetstream = system.jetstream().await.expect("jetstream");
    let dead_letter = wait_until("the dead letter", WAIT, || {
        let jetstream = jetstream.clone();
        async move {
            let mut stream = jetstream.get_stream("SWITCHBOARD_DLQ").await.ok()?;
            let state = stream.info().await.ok()?.state.clone();
            if state.messages == 0 {
                return None;
            }
            stream.get_raw_message(state.first_sequence).await.ok()
        }
    })
    .await;
    assert_eq!(dead_letter.subject.as_str(), "dlq.sms.sms.message.status");
    let headers = dead_letter.headers;
    let header = |name: &str| headers.get(name).map(|value| value.as_str().to_owned());
    assert!(
        header("Switchboard-Dlq-Reason").is_some_and(|reason| reason.contains("id")),
        "{:?}",
        header("Switchboard-Dlq-Reason")
    );
    assert_eq!(header("Switchboard-Dlq-Sequence"), Some(sequence.to_string()));
    assert_eq!(header("Switchboard-Dlq-Subject").as_deref(), Some("sms.message.status"));
    assert_eq!(
        header("Switchboard-Event").as_deref(),
        Some("sms:message:status"),
        "original headers are kept"
    );

    // The consumer moved on: the next good report is projected.
    system
        .post_ok(
            "sms:message:status",
            report("after-poison:1", "919000000030", "DELIVRD", "2021-04-09 16:27:51"),
        )
        .await;
    message_when(&system, "after-poison:1", |_| true).await;
    system.stop().await.expect("clean stop");
}

/// `nats.url` lists a cluster's servers with commas: a component connects through the list, even
/// when the first server named is down.
#[tokio::test]
async fn components_connect_through_a_comma_separated_list_of_servers() {
    let nats = switchboard_tests::NatsServer::start().expect("nats-server starts");
    let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let down = format!("nats://127.0.0.1:{}", unused.local_addr().expect("address").port());
    drop(unused);
    let system = TestSystem::builder()
        .components(&[
            switchboard::Component::Gateway,
            switchboard::Component::Service(switchboard_events::Product::Sms),
        ])
        .nats(format!("{down}, {}", nats.url()))
        .start()
        .await
        .expect("starts with a list of servers");
    let body = report("comma-list:1", "919000000001", "DELIVRD", "2021-04-09 16:27:51");
    system.post_ok("sms:message:status", body).await;
    let message = message_when(&system, "comma-list:1", |message| message.status == "DELIVRD").await;
    assert_eq!(message.mobile, "919000000001");
    system.stop().await.expect("stops");
}
