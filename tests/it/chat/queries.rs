//! Chat queries end to end: inbound media, lists, conversations, rates and opt-out checks.

use serde_json::json;
use switchboard_proto::chat::{
    ChannelRates, GetConversationRequest, GetRatesRequest, ListInboundMessagesRequest,
    ListOutboundMessagesRequest, conversation_item::Item,
};
use switchboard_proto::common::{CheckOptOutRequest, ListOptOutsRequest, TimeRange};
use switchboard_service::grpc::timestamp;
use switchboard_tests::{TestSystem, fixture, wait_until};
use tonic::Code;

use super::{WAIT, inbound_event, inbound_when, outbound_when, post_fixture, status_event};

/// Microseconds of an RFC 3339 time, for time ranges.
fn micros(rfc3339: &str) -> i64 {
    let parsed = switchboard_events::ProviderTime::parse(rfc3339);
    parsed.unix_micros(switchboard_events::TimeZoneSetting::default()).expect("a valid time")
}

fn range(start: &str, end: &str) -> Option<TimeRange> {
    Some(TimeRange { start: Some(timestamp(micros(start))), end: Some(timestamp(micros(end))) })
}

#[tokio::test]
async fn inbound_media_and_other_types_keep_their_payload() {
    let system = TestSystem::start().await.expect("system starts");
    for channel in ["whatsapp", "rcs"] {
        post_fixture(&system, "events", &format!("{channel}.message.in.incoming-media.json")).await;
        let image = inbound_when(&system, channel, "our-media-message-id", |_| true).await;
        assert_eq!(image.r#type, "image");
        assert_eq!(image.url, "https://domin-name.com/your_image_path.png");
        assert_eq!(image.caption, "some caption for image");
        assert_eq!((image.filename.as_str(), image.text.as_str()), ("", ""), "empty and absent are empty");
        let payload: serde_json::Value = serde_json::from_str(&image.payload_json).expect("payload JSON");
        assert_eq!(payload["url"], image.url);
        let body = fixture("events", &format!("{channel}.message.in.incoming-media.json"));
        assert_eq!(image.raw_json.as_bytes(), body.as_slice());
    }

    let document = json!({
        "type": "document", "id": "wamid.HBgM", "timestamp": "2021-06-18T14:48:06Z",
        "payload": {"url": "https://example.com/invoice.pdf", "filename": "invoice.pdf", "mime_type": "application/pdf"},
    });
    system.post_ok("whatsapp:message:in", inbound_event("whatsapp", "doc-1", "919000000040", document)).await;
    let location =
        json!({"type": "location", "payload": {"latitude": 12.97, "longitude": 77.59, "name": "Office"}});
    system.post_ok("whatsapp:message:in", inbound_event("whatsapp", "loc-1", "919000000040", location)).await;

    let pdf = inbound_when(&system, "whatsapp", "doc-1", |_| true).await;
    assert_eq!((pdf.r#type.as_str(), pdf.filename.as_str()), ("document", "invoice.pdf"));
    assert_eq!(
        (pdf.mime_type.as_str(), pdf.url.as_str()),
        ("application/pdf", "https://example.com/invoice.pdf")
    );
    assert_eq!(pdf.message_id, "wamid.HBgM");
    assert_eq!(pdf.message_timestamp.map(|time| time.seconds), Some(1_624_027_686));
    assert_eq!(pdf.profile, None, "no recipient.user, no profile");
    let place = inbound_when(&system, "whatsapp", "loc-1", |_| true).await;
    assert_eq!(place.r#type, "location");
    let payload: serde_json::Value = serde_json::from_str(&place.payload_json).expect("payload JSON");
    assert_eq!((payload["latitude"].as_f64(), payload["name"].as_str()), (Some(12.97), Some("Office")));
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn chat_lists_filter_and_page() {
    let system = TestSystem::start().await.expect("system starts");
    for index in 0..5 {
        let to = if index < 3 { "919000000060" } else { "919000000061" };
        let status = if index % 2 == 0 { "read" } else { "failed" };
        let time = format!("2021-06-1{index}T10:00:00Z");
        system
            .post_ok(
                "whatsapp:message:status",
                status_event("whatsapp", &format!("l-{index}"), to, status, &time, json!({})),
            )
            .await;
    }
    let tagged = status_event(
        "rcs",
        "l-5",
        "919000000060",
        "sent",
        "2021-06-15T10:00:00Z",
        json!({"foreign_id": "campaign-7"}),
    );
    system.post_ok("rcs:message:status", tagged).await;
    for (index, (channel, from, kind)) in [
        ("whatsapp", "919000000060", "text"),
        ("rcs", "919000000060", "image"),
        ("whatsapp", "919000000061", "image"),
    ]
    .into_iter()
    .enumerate()
    {
        let message = json!({"type": kind, "payload": {"text": "hi", "url": "https://example.com/a.png"}});
        system
            .post_ok(
                &format!("{channel}:message:in"),
                inbound_event(channel, &format!("in-{index}"), from, message),
            )
            .await;
    }
    let mut client = system.chat().await;
    wait_until("every message", WAIT, || {
        let mut client = client.clone();
        async move {
            let outbound =
                client.list_outbound_messages(ListOutboundMessagesRequest::default()).await.ok()?;
            let inbound = client.list_inbound_messages(ListInboundMessagesRequest::default()).await.ok()?;
            (outbound.into_inner().messages.len() == 6 && inbound.into_inner().messages.len() == 3)
                .then_some(())
        }
    })
    .await;

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let request =
            ListOutboundMessagesRequest { page_size: 2, page_token: token.clone(), ..Default::default() };
        let page = client.list_outbound_messages(request).await.expect("page").into_inner();
        seen.extend(page.messages.iter().map(|message| message.id.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ["l-5", "l-4", "l-3", "l-2", "l-1", "l-0"], "newest status first, each once");

    let outbound_ids = |request: ListOutboundMessagesRequest| {
        let mut client = client.clone();
        async move {
            let listed = client.list_outbound_messages(request).await.expect("listed").into_inner();
            listed.messages.into_iter().map(|message| message.id).collect::<Vec<_>>()
        }
    };
    let to_read = ListOutboundMessagesRequest {
        to: "+91 90000 00060".into(),
        status: "read".into(),
        ..Default::default()
    };
    assert_eq!(outbound_ids(to_read).await, ["l-2", "l-0"]);
    let rcs = ListOutboundMessagesRequest { channel: "rcs".into(), ..Default::default() };
    assert_eq!(outbound_ids(rcs).await, ["l-5"]);
    let tagged = ListOutboundMessagesRequest { foreign_id: "campaign-7".into(), ..Default::default() };
    assert_eq!(outbound_ids(tagged).await, ["l-5"]);
    let window = ListOutboundMessagesRequest {
        from: "919019120123".into(),
        time: range("2021-06-11T00:00:00Z", "2021-06-13T00:00:00Z"),
        ..Default::default()
    };
    assert_eq!(outbound_ids(window).await, ["l-2", "l-1"]);

    let inbound_ids = |request: ListInboundMessagesRequest| {
        let mut client = client.clone();
        async move {
            let listed = client.list_inbound_messages(request).await.expect("listed").into_inner();
            listed.messages.into_iter().map(|message| message.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        inbound_ids(ListInboundMessagesRequest::default()).await,
        ["in-2", "in-1", "in-0"],
        "newest first"
    );
    let images = ListInboundMessagesRequest { r#type: "image".into(), ..Default::default() };
    assert_eq!(inbound_ids(images).await, ["in-2", "in-1"]);
    let from = ListInboundMessagesRequest {
        from: "919000000060".into(),
        channel: "rcs".into(),
        ..Default::default()
    };
    assert_eq!(inbound_ids(from).await, ["in-1"]);
    let to = ListInboundMessagesRequest { to: "919019120123".into(), page_size: 2, ..Default::default() };
    assert_eq!(inbound_ids(to).await, ["in-2", "in-1"]);

    let bad_channel = client
        .list_outbound_messages(ListOutboundMessagesRequest { channel: "sms".into(), ..Default::default() })
        .await;
    assert_eq!(bad_channel.expect_err("unknown channel").code(), Code::InvalidArgument);
    let bad_token = client
        .list_inbound_messages(ListInboundMessagesRequest {
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(bad_token.expect_err("bad token").code(), Code::InvalidArgument);
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_conversation_interleaves_both_directions_in_time_order() {
    let system = TestSystem::start().await.expect("system starts");
    let user = "919000000050";
    let post_status = |id: &str, to: &str, status: &str, time: &str| {
        let body = status_event("whatsapp", id, to, status, time, json!({}));
        let system = &system;
        async move { system.post_ok("whatsapp:message:status", body).await }
    };
    let text = |body: &str, timestamp: Option<&str>| {
        let mut message = json!({"type": "text", "payload": {"text": body}});
        if let Some(timestamp) = timestamp {
            message["timestamp"] = json!(timestamp);
        }
        message
    };
    // Read receipt first: the message keeps its place at its earliest time, 10:00.
    post_status("o-1", user, "read", "2021-06-18T10:30:00Z").await;
    post_status("o-1", user, "sent", "2021-06-18T10:00:00Z").await;
    post_status("o-2", user, "delivered", "2021-06-18T10:20:00Z").await;
    post_status("other-user", "919000000051", "sent", "2021-06-18T10:05:00Z").await;
    let inbound = [
        ("whatsapp", "i-1", user, text("hello", Some("2021-06-18T10:10:00Z"))),
        ("rcs", "other-channel", user, text("elsewhere", Some("2021-06-18T10:15:00Z"))),
        // No message.timestamp: its place is when it was received (now, after everything else).
        ("whatsapp", "i-2", user, text("later", None)),
    ];
    for (channel, id, from, message) in inbound {
        system.post_ok(&format!("{channel}:message:in"), inbound_event(channel, id, from, message)).await;
    }
    outbound_when(&system, "whatsapp", "o-1", |message| message.history.len() == 2).await;

    let mut client = system.chat().await;
    let request = |page_size: i32, page_token: String| GetConversationRequest {
        channel: "whatsapp".into(),
        phone_number: "+91 90000 00050".into(),
        page_size,
        page_token,
        ..Default::default()
    };
    let describe = |item: &switchboard_proto::chat::ConversationItem| match &item.item {
        Some(Item::Outbound(message)) => format!("out:{}", message.id),
        Some(Item::Inbound(message)) => format!("in:{}", message.id),
        None => "none".to_owned(),
    };
    let whole = wait_until("the whole conversation", WAIT, || {
        let mut client = client.clone();
        async move {
            let answer = client.get_conversation(request(0, String::new())).await.ok()?.into_inner();
            (answer.items.len() == 4).then_some(answer)
        }
    })
    .await;
    let order: Vec<String> = whole.items.iter().map(describe).collect();
    assert_eq!(order, ["out:o-1", "in:i-1", "out:o-2", "in:i-2"]);
    assert_eq!(whole.items[0].time.map(|time| time.seconds), Some(1_624_010_400), "o-1 at its sent time");
    match &whole.items[0].item {
        Some(Item::Outbound(message)) => assert_eq!(message.status, "read"),
        other => panic!("expected o-1, got {other:?}"),
    }

    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = client.get_conversation(request(1, token.clone())).await.expect("page").into_inner();
        paged.extend(page.items.iter().map(describe));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(paged, order, "keyset pages give the same order, each item once");

    let mut window = request(0, String::new());
    window.time = range("2021-06-18T10:05:00Z", "2021-06-18T10:25:00Z");
    let windowed = client.get_conversation(window).await.expect("windowed").into_inner();
    assert_eq!(windowed.items.iter().map(describe).collect::<Vec<_>>(), ["in:i-1", "out:o-2"]);

    let mut no_phone = request(0, String::new());
    no_phone.phone_number = String::new();
    assert_eq!(client.get_conversation(no_phone).await.expect_err("phone").code(), Code::InvalidArgument);
    let mut no_channel = request(0, String::new());
    no_channel.channel = String::new();
    assert_eq!(client.get_conversation(no_channel).await.expect_err("channel").code(), Code::InvalidArgument);
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn rates_count_delivered_and_read_per_channel_per_day() {
    let system = TestSystem::start().await.expect("system starts");
    let statuses = [
        ("whatsapp", "r-1", "delivered", "2021-06-18T10:00:00Z"),
        ("whatsapp", "r-2", "read", "2021-06-18T11:00:00Z"),
        ("whatsapp", "r-3", "failed", "2021-06-18T12:00:00Z"),
        ("whatsapp", "r-4", "sent", "2021-06-18T13:00:00Z"),
        // Deleted after delivery counts as delivered; deleted without it does not.
        ("whatsapp", "r-5", "delivered", "2021-06-18T13:30:00Z"),
        ("whatsapp", "r-5", "deleted", "2021-06-18T14:00:00Z"),
        ("whatsapp", "r-6", "deleted", "2021-06-18T15:00:00Z"),
        ("whatsapp", "r-7", "read", "2021-06-19T01:00:00Z"),
        // 20:00 UTC is already the 19th at +05:30.
        ("rcs", "r-8", "delivered", "2021-06-18T20:00:00Z"),
    ];
    for (channel, id, status, time) in statuses {
        let body = status_event(channel, id, "919000000070", status, time, json!({}));
        system.post_ok(&format!("{channel}:message:status"), body).await;
    }
    outbound_when(&system, "whatsapp", "r-5", |message| message.history.len() == 2).await;
    let mut client = system.chat().await;
    let rates = |utc_offset: &str, channel: &str| GetRatesRequest {
        utc_offset: utc_offset.into(),
        channel: channel.into(),
        ..Default::default()
    };
    let utc = wait_until("every status", WAIT, || {
        let mut client = client.clone();
        let request = rates("UTC", "");
        async move {
            let answer = client.get_rates(request).await.ok()?.into_inner();
            (answer.rows.iter().map(|row| row.total).sum::<i64>() == 8).then_some(answer)
        }
    })
    .await;
    let summary = |row: &ChannelRates| {
        (row.day.clone(), row.channel.clone(), row.total, row.delivered, row.read, row.failed)
    };
    let day = |label: &str, channel: &str, counts: [i64; 4]| {
        (label.to_owned(), channel.to_owned(), counts[0], counts[1], counts[2], counts[3])
    };
    assert_eq!(utc.utc_offset, "+00:00");
    assert_eq!(
        utc.rows.iter().map(summary).collect::<Vec<_>>(),
        [
            day("2021-06-18", "rcs", [1, 1, 0, 0]),
            day("2021-06-18", "whatsapp", [6, 3, 1, 1]),
            day("2021-06-19", "whatsapp", [1, 1, 1, 0]),
        ],
        "by day, then channel"
    );
    let whatsapp_day = &utc.rows[1];
    assert!((whatsapp_day.delivery_rate - 0.5).abs() < 1e-9, "{}", whatsapp_day.delivery_rate);
    assert!((whatsapp_day.read_rate - 1.0 / 6.0).abs() < 1e-9, "{}", whatsapp_day.read_rate);

    let provider_zone = client.get_rates(rates("", "")).await.expect("rates").into_inner();
    assert_eq!(provider_zone.utc_offset, "+05:30", "the provider zone by default");
    assert_eq!(
        provider_zone.rows.iter().map(summary).collect::<Vec<_>>(),
        [
            day("2021-06-18", "whatsapp", [6, 3, 1, 1]),
            day("2021-06-19", "rcs", [1, 1, 0, 0]),
            day("2021-06-19", "whatsapp", [1, 1, 1, 0]),
        ]
    );
    let rcs_only = client.get_rates(rates("UTC", "rcs")).await.expect("rates").into_inner();
    assert_eq!(
        rcs_only.rows.iter().map(summary).collect::<Vec<_>>(),
        [day("2021-06-18", "rcs", [1, 1, 0, 0])]
    );
    let mut windowed = rates("UTC", "whatsapp");
    windowed.time = range("2021-06-18T11:00:00Z", "2021-06-18T14:00:00Z");
    let window = client.get_rates(windowed).await.expect("rates").into_inner();
    assert_eq!(
        window.rows.iter().map(summary).collect::<Vec<_>>(),
        [day("2021-06-18", "whatsapp", [3, 1, 1, 1])]
    );

    let bad_zone = client.get_rates(rates("India", "")).await.expect_err("bad offset");
    assert_eq!(bad_zone.code(), Code::InvalidArgument);
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn chat_opt_out_checks_honour_type_value_and_channel() {
    let system = TestSystem::start().await.expect("system starts");
    // From the documentation: whatsapp category WUC for …1234, rcs all/* for …8123.
    post_fixture(&system, "events", "whatsapp.unsubscription.json").await;
    post_fixture(&system, "events", "rcs.unsubscription.json").await;
    let optout = |id: i64, receiver: &str, kind: &str, value: &str| {
        json!({"id": id, "receiver": receiver, "type": kind, "value": value, "created_at": "2023-07-09T10:00:00.000000Z"})
            .to_string()
    };
    system.post_ok("whatsapp:unsubscription", optout(501, "917000000001", "sender", "*")).await;
    system.post_ok("whatsapp:unsubscription", optout(502, "917000000002", "sender", "BrandX")).await;
    let mut client = system.chat().await;
    wait_until("every opt-out", WAIT, || {
        let mut client = client.clone();
        async move {
            let listed = client.list_opt_outs(ListOptOutsRequest::default()).await.ok()?.into_inner();
            (listed.opt_outs.len() == 4).then_some(())
        }
    })
    .await;

    let cases: &[(&str, &str, &str, &str, bool, &str)] = &[
        // receiver, sender, category, channel, opted out, why
        ("+91 70020 81234", "", "wuc", "", true, "categories compare case-insensitively"),
        ("917002081234", "", "WUC", "whatsapp", true, "on its own channel"),
        ("917002081234", "", "WUC", "rcs", false, "not on the other channel"),
        ("917002081234", "", "", "", false, "without sender or category only `all` counts"),
        ("917002081234", "WUC", "", "", false, "a sender is not a category"),
        ("917002088123", "", "", "", true, "all/* covers everything"),
        ("917002088123", "ANY", "PROMO", "rcs", true, "all/* covers any sender and category"),
        ("917002088123", "", "", "whatsapp", false, "the all opt-out was made on rcs"),
        ("917000000001", "anyone", "", "", true, "sender/* covers every sender"),
        ("917000000001", "", "", "", false, "but only when a sender is named"),
        ("917000000002", "brandx", "", "", true, "sender ids compare case-insensitively"),
        ("917000000002", "Other", "", "", false, "another sender"),
        ("917000000099", "BrandX", "WUC", "", false, "nobody else"),
    ];
    for (receiver, sender, category, channel, opted_out, why) in cases {
        let request = CheckOptOutRequest {
            receiver: (*receiver).into(),
            sender: (*sender).into(),
            category: (*category).into(),
            channel: (*channel).into(),
        };
        let answer = client.check_opt_out(request).await.expect("answers").into_inner();
        assert_eq!(answer.opted_out, *opted_out, "{receiver} {sender:?} {category:?} {channel:?}: {why}");
        assert_eq!(answer.matches.is_empty(), !opted_out, "matches say why");
    }

    let rcs = client
        .list_opt_outs(ListOptOutsRequest { channel: "rcs".into(), ..Default::default() })
        .await
        .expect("lists")
        .into_inner();
    assert_eq!(rcs.opt_outs.iter().map(|optout| optout.id.as_str()).collect::<Vec<_>>(), ["73"]);
    let senders = client
        .list_opt_outs(ListOptOutsRequest { r#type: "sender".into(), page_size: 1, ..Default::default() })
        .await
        .expect("lists")
        .into_inner();
    assert_eq!(senders.opt_outs.len(), 1);
    assert!(!senders.next_page_token.is_empty(), "a second page");

    let sms =
        CheckOptOutRequest { receiver: "917002081234".into(), channel: "sms".into(), ..Default::default() };
    assert_eq!(client.check_opt_out(sms).await.expect_err("sms").code(), Code::InvalidArgument);
    let nobody = client.check_opt_out(CheckOptOutRequest::default()).await.expect_err("receiver required");
    assert_eq!(nobody.code(), Code::InvalidArgument);
    system.stop().await.expect("clean stop");
}
