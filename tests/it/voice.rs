//! The voice service end to end: webhook in, gRPC out.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use switchboard::Component;
use switchboard_events::{Product, body_digest};
use switchboard_proto::common::{CheckOptOutRequest, ListOptOutsRequest, TimeRange};
use switchboard_proto::voice::{
    Call, GetCallRequest, GetCallStatsRequest, ListCallsRequest, WatchRequest, WatchResponse,
    watch_response::Change,
};
use switchboard_service::grpc::timestamp;
use switchboard_store::{Database, PoolSettings};
use switchboard_tests::{TestSystem, fixture, wait_until};
use switchboard_voice::store;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(15);

/// The gateway and the voice service, with their own NATS and database.
async fn start() -> TestSystem {
    TestSystem::builder()
        .components(&[Component::Gateway, Component::Service(Product::Voice)])
        .start()
        .await
        .expect("system starts")
}

/// Waits until the call exists and satisfies `done`, then returns it.
async fn call_when(system: &TestSystem, mid: &str, done: impl Fn(&Call) -> bool) -> Call {
    let client = system.voice().await;
    let done = &done;
    wait_until(&format!("call {mid}"), WAIT, || {
        let mut client = client.clone();
        let request = GetCallRequest { mid: mid.to_owned() };
        async move {
            client
                .get_call(request)
                .await
                .ok()
                .map(|response| response.into_inner())
                .filter(|call| done(call))
        }
    })
    .await
}

/// Waits until the `voice` consumer has acknowledged everything up to `sequence`.
async fn wait_consumed(system: &TestSystem, sequence: u64) {
    let jetstream = system.jetstream().await.expect("jetstream");
    wait_until(&format!("the voice consumer to pass sequence {sequence}"), WAIT, || {
        let jetstream = jetstream.clone();
        async move {
            let stream = jetstream.get_stream("SWITCHBOARD").await.ok()?;
            let mut consumer: async_nats::jetstream::consumer::PullConsumer =
                stream.get_consumer("voice").await.ok()?;
            let info = consumer.info().await.ok()?;
            (info.ack_floor.stream_sequence >= sequence).then_some(())
        }
    })
    .await
}

/// The voice database the system writes, opened beside it (for what the API does not expose).
async fn voice_database(system: &TestSystem) -> Database {
    let url = system.config.service(Product::Voice).database_url.clone().expect("the test set a database");
    Database::connect(url.expose(), PoolSettings::default()).await.expect("database opens")
}

fn record(mid: &str, from: &str, status: &str, start_at: &str, end_at: &str, duration: &str) -> String {
    serde_json::json!({
        "bridge": "918068281234", "from": from, "to": "918867131234", "source": "OBD", "mid": mid,
        "flow_id": "123", "start_at": start_at, "end_at": end_at, "duration": duration, "status": status,
        "recording_url": "https://example.test/rec.mp3",
    })
    .to_string()
}

/// Seconds since the epoch of a provider wall-clock time on 2021-04-09 at +05:30.
fn april_9_ist(hour: i64, minute: i64, second: i64) -> i64 {
    1_617_906_600 + hour * 3600 + minute * 60 + second
}

#[tokio::test]
async fn documented_voice_events_are_queryable_over_grpc() {
    let system = start().await;
    let body = fixture("events", "voice.message.out.json");
    let answer = system.post_ok("voice:message:out", body.clone()).await;
    assert_eq!(answer["event"], "voice:message:out");
    system.post_ok("voice.unsubscription", fixture("events", "voice.unsubscription.json")).await;

    let call = call_when(&system, "1234-1333-12345", |_| true).await;
    assert_eq!(call.bridge, "918068281234", "JSON numbers come back as text");
    assert_eq!(call.from, "918919521234");
    assert_eq!(call.to, "918867131234");
    assert_eq!(call.source, "OBD");
    assert_eq!(call.flow_id, "123");
    // "2021-04-09 16:27:39" and "16:27:55" read at +05:30.
    assert_eq!(call.start_at.as_ref().map(|time| time.seconds), Some(april_9_ist(16, 27, 39)));
    assert_eq!(call.start_at.as_ref().map(|time| time.seconds), Some(1_617_965_859));
    assert_eq!(call.end_at.as_ref().map(|time| time.seconds), Some(1_617_965_875));
    assert_eq!(call.duration_seconds, Some(23), "the duration as sent, not the 16 s between start and end");
    assert_eq!(call.status, "ANSWER");
    assert_eq!(call.recording_url, "https://youraudiofilelocation/");
    assert_eq!((call.status1.as_str(), call.hangup_by.as_str(), call.unixtime), ("", "", None));
    assert_eq!(call.raw_json.as_bytes(), body.as_slice(), "raw JSON is kept byte for byte");
    assert_eq!(call.stream_sequence, answer["seq"].as_u64().expect("seq"));
    assert_eq!(call.first_received_at, call.last_received_at);

    let mut client = system.voice().await;
    let check = |sender: &str| CheckOptOutRequest {
        receiver: "+91 700-208 8123".into(),
        sender: sender.into(),
        ..Default::default()
    };
    let opted_out = wait_until("the opt-out", WAIT, || {
        let mut client = client.clone();
        let request = check("");
        async move { client.check_opt_out(request).await.ok().map(|r| r.into_inner()).filter(|r| r.opted_out) }
    })
    .await;
    assert_eq!(opted_out.matches[0].id, "69ff18e3-4a34-4994-bb67-32c393f8e123");
    assert_eq!((opted_out.matches[0].r#type.as_str(), opted_out.matches[0].value.as_str()), ("all", "*"));
    assert_eq!(opted_out.matches[0].channel, "voice");
    assert_eq!(opted_out.matches[0].created_at.as_ref().map(|time| time.seconds), Some(1_688_821_141));
    assert!(
        client.check_opt_out(check("ANY-SENDER")).await.expect("answers").into_inner().opted_out,
        "type all, value * covers every sender"
    );
    let other = CheckOptOutRequest { receiver: "917002088999".into(), ..Default::default() };
    assert!(!client.check_opt_out(other).await.expect("answers").into_inner().opted_out);
    let listed = client.list_opt_outs(ListOptOutsRequest::default()).await.expect("lists").into_inner();
    assert_eq!(listed.opt_outs.len(), 1);
    let wrong_channel = CheckOptOutRequest { channel: "sms".into(), ..check("") };
    assert_eq!(
        client.check_opt_out(wrong_channel).await.expect_err("voice only").code(),
        Code::InvalidArgument
    );

    let missing = client.get_call(GetCallRequest { mid: "nope".into() }).await.expect_err("unknown mid");
    assert_eq!(missing.code(), Code::NotFound);
    let empty = client.get_call(GetCallRequest::default()).await.expect_err("mid required");
    assert_eq!(empty.code(), Code::InvalidArgument);
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn the_documentation_verbatim_record_is_refused_and_kept_and_its_opt_out_works() {
    let system = start().await;
    let verbatim = fixture("seed-verbatim", "voice.message.out.json");
    let refused = system.post("voice:message:out", verbatim.clone()).await;
    assert_eq!(refused.status(), 422, "91806828XXXX stands where a number belongs: not JSON");
    let answer: serde_json::Value = refused.json().await.expect("a JSON answer");
    assert!(answer["message"].as_str().is_some_and(|message| message.contains("91806828XXXX")), "{answer}");

    let jetstream = system.jetstream().await.expect("jetstream");
    let mut dead_letters = jetstream.get_stream("SWITCHBOARD_DLQ").await.expect("dlq stream");
    let state = dead_letters.info().await.expect("info").state.clone();
    assert_eq!(state.messages, 1);
    let letter = dead_letters.get_raw_message(state.first_sequence).await.expect("the dead letter");
    assert_eq!(letter.subject.as_str(), "dlq.gateway.voice.message.out");
    assert_eq!(letter.payload.as_ref(), verbatim.as_slice(), "kept byte for byte");
    assert!(letter.headers.get("Switchboard-Dlq-Reason").is_some());

    let accepted =
        system.post_ok("voice:unsubscription", fixture("seed-verbatim", "voice.unsubscription.json")).await;
    let mut events = jetstream.get_stream("SWITCHBOARD").await.expect("stream");
    assert_eq!(events.info().await.expect("info").state.messages, 1, "only the opt-out was published");
    wait_consumed(&system, accepted["seq"].as_u64().expect("seq")).await;
    let mut client = system.voice().await;
    let check = CheckOptOutRequest { receiver: "917002088xxx".into(), ..Default::default() };
    let answer = client.check_opt_out(check).await.expect("answers").into_inner();
    assert!(answer.opted_out, "the placeholder receiver is kept as text and matched");
    let listed = client.list_calls(ListCallsRequest::default()).await.expect("lists").into_inner();
    assert!(listed.calls.is_empty(), "the refused record was not projected");
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn click_to_call_extras_unknown_statuses_and_fields_are_kept() {
    let system = start().await;
    let body = serde_json::json!({
        "mid": "c2c-1", "bridge": "+91 80682 81234", "from": 918919521234u64, "to": "918867131234",
        "source": "C2C", "flow_id": 77, "start_at": "2021-04-09 10:00:00", "end_at": "2021-04-09 10:01:00",
        "duration": 61, "status": "COMPLETED", "recording_url": "",
        "status1": "ANSWER", "status2": "NOANSWER", "billing": "1.50", "hangup_by": "caller",
        "date": "2021-04-09", "unixtime": "1617942600", "region": "south",
    })
    .to_string();
    system.post_ok("voice:message:out", body.clone()).await;
    let unknown = record("odd-1", "919000000001", "SOMETHING-NEW", "2021-04-09 11:00:00", "", "");
    system.post_ok("voice:message:out", unknown).await;

    let call = call_when(&system, "c2c-1", |_| true).await;
    assert_eq!(call.bridge, "918068281234", "numbers are stored as digits");
    assert_eq!(call.from, "918919521234");
    assert_eq!((call.source.as_str(), call.flow_id.as_str()), ("C2C", "77"));
    assert_eq!(call.duration_seconds, Some(61));
    assert_eq!(call.status, "COMPLETED");
    assert_eq!(call.recording_url, "");
    assert_eq!((call.status1.as_str(), call.status2.as_str()), ("ANSWER", "NOANSWER"));
    assert_eq!(
        (call.billing.as_str(), call.hangup_by.as_str(), call.date.as_str()),
        ("1.50", "caller", "2021-04-09")
    );
    assert_eq!(call.unixtime, Some(1_617_942_600));
    let stored: serde_json::Value = serde_json::from_str(&call.raw_json).expect("JSON");
    assert_eq!(stored["region"], "south", "undocumented fields stay in the raw JSON");

    let odd = call_when(&system, "odd-1", |_| true).await;
    assert_eq!(odd.status, "SOMETHING-NEW", "unknown statuses are stored, not rejected");
    assert_eq!((odd.end_at, odd.duration_seconds), (None, None), "empty end and duration are absent");
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn records_arriving_in_any_order_and_twice_converge() {
    let system = start().await;
    // Versions of one call: a first record, a later one, another with the same end time (the body
    // digest decides between those two), an older one, and one without an end time.
    let versions = |mid: &str| {
        vec![
            record(mid, "919000000002", "RECEIVED", "2021-04-09 16:27:39", "2021-04-09 16:27:55", "16"),
            record(mid, "919000000002", "ANSWER", "2021-04-09 16:27:39", "2021-04-09 16:30:00", "141"),
            record(mid, "919000000002", "COMPLETED", "2021-04-09 16:27:39", "2021-04-09 16:30:00", "140"),
            record(mid, "919000000002", "NOANSWER", "2021-04-09 16:27:39", "2021-04-09 16:20:00", "0"),
            record(mid, "919000000002", "RINGING", "2021-04-09 16:27:39", "", ""),
        ]
    };
    let orders: [[usize; 5]; 3] = [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 0, 4, 1, 3]];
    let jetstream = system.jetstream().await.expect("jetstream");
    let mut last_sequence = 0;
    // (mid, body) → the sequence of its first delivery.
    let mut first_sequence: HashMap<(String, String), u64> = HashMap::new();
    for (index, order) in orders.iter().enumerate() {
        let mid = format!("order-{index}");
        let bodies = versions(&mid);
        for position in order {
            let answer = system.post_ok("voice:message:out", bodies[*position].clone()).await;
            let sequence = answer["seq"].as_u64().expect("seq");
            first_sequence.insert((mid.clone(), bodies[*position].clone()), sequence);
            last_sequence = last_sequence.max(sequence);
        }
        // The provider's retry of the same body is dropped by JetStream …
        let retry = system.post_ok("voice:message:out", bodies[order[0]].clone()).await;
        assert_eq!(retry["duplicate"], true);
        // … and copies that reach the stream again (outside the duplicate window) are applied again.
        for position in [1, 2] {
            let copy = jetstream
                .publish("voice.message.out", bodies[position].clone().into())
                .await
                .expect("publish")
                .await
                .expect("stored");
            last_sequence = last_sequence.max(copy.sequence);
        }
    }
    wait_consumed(&system, last_sequence).await;

    let database = voice_database(&system).await;
    let mut client = system.voice().await;
    for index in 0..orders.len() {
        let mid = format!("order-{index}");
        let bodies = versions(&mid);
        // The rule: the latest end time, then the larger body digest.
        let expected = [&bodies[1], &bodies[2]]
            .into_iter()
            .max_by_key(|body| body_digest(body.as_bytes()))
            .expect("two candidates");
        let call = client.get_call(GetCallRequest { mid: mid.clone() }).await.expect("stored").into_inner();
        assert_eq!(&call.raw_json, expected, "{mid}: the latest end time wins whatever the order");
        assert!(call.status == "ANSWER" || call.status == "COMPLETED", "{}", call.status);
        assert_eq!(
            call.stream_sequence,
            first_sequence[&(mid.clone(), expected.clone())],
            "{mid}: a body delivered twice keeps its first delivery"
        );
        let history = store::call_history(&database, &mid).await.expect("history");
        assert_eq!(history.len(), 5, "{mid}: every distinct version is kept once");
        for event in &history {
            assert_eq!(
                u64::try_from(event.stream_sequence).ok(),
                first_sequence.get(&(mid.clone(), event.raw_json.clone())).copied(),
                "{mid}: history keeps each version's first delivery"
            );
        }
    }
    database.close().await;

    // A newer record after the older one, and the older one again later: the newer stands.
    let newer =
        record("late-old", "919000000003", "ANSWER", "2021-04-09 09:00:00", "2021-04-09 09:05:00", "300");
    let older = record("late-old", "919000000003", "BUSY", "2021-04-09 09:00:00", "2021-04-09 09:00:10", "0");
    system.post_ok("voice:message:out", newer.clone()).await;
    let answer = system.post_ok("voice:message:out", older).await;
    wait_consumed(&system, answer["seq"].as_u64().expect("seq")).await;
    let call = client.get_call(GetCallRequest { mid: "late-old".into() }).await.expect("stored").into_inner();
    assert_eq!((call.status.as_str(), call.raw_json), ("ANSWER", newer));
    let (first, last) = (call.first_received_at.expect("set"), call.last_received_at.expect("set"));
    assert!((last.seconds, last.nanos) > (first.seconds, first.nanos), "both receipts are counted");
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn lists_filter_and_page_newest_first() {
    let system = start().await;
    for index in 0..7 {
        let status = if index % 2 == 0 { "ANSWER" } else { "NOANSWER" };
        let from = if index < 4 { "919000000010" } else { "919000000011" };
        let mut body: serde_json::Value = serde_json::from_str(&record(
            &format!("list-{index}"),
            from,
            status,
            &format!("2021-04-0{} 10:00:00", index + 1),
            &format!("2021-04-0{} 10:00:30", index + 1),
            "30",
        ))
        .expect("JSON");
        if index == 5 {
            body["source"] = "C2C".into();
            body["flow_id"] = "9".into();
        }
        system.post_ok("voice:message:out", body.to_string()).await;
    }
    let mut client = system.voice().await;
    wait_until("all seven calls", WAIT, || {
        let mut client = client.clone();
        async move {
            let listed =
                client.list_calls(ListCallsRequest { page_size: 100, ..Default::default() }).await.ok()?;
            (listed.into_inner().calls.len() == 7).then_some(())
        }
    })
    .await;

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_calls(ListCallsRequest { page_size: 3, page_token: token.clone(), ..Default::default() })
            .await
            .expect("page")
            .into_inner();
        seen.extend(page.calls.iter().map(|call| call.mid.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let expected: Vec<String> = (0..7).rev().map(|index| format!("list-{index}")).collect();
    assert_eq!(seen, expected, "newest first by start time, every call once");

    let mids = |calls: &[Call]| calls.iter().map(|call| call.mid.clone()).collect::<Vec<_>>();
    let by_caller = client
        .list_calls(ListCallsRequest {
            number: "+91 9000000010".into(),
            status: "noanswer".into(),
            ..Default::default()
        })
        .await
        .expect("filtered")
        .into_inner();
    assert_eq!(mids(&by_caller.calls), ["list-3", "list-1"], "caller number, status in any case");
    let by_bridge = client
        .list_calls(ListCallsRequest { number: "918068281234".into(), ..Default::default() })
        .await
        .expect("filtered")
        .into_inner();
    assert_eq!(by_bridge.calls.len(), 7, "the bridge number matches too");
    let by_callee = client
        .list_calls(ListCallsRequest { number: "918867131234".into(), page_size: 1, ..Default::default() })
        .await
        .expect("filtered")
        .into_inner();
    assert_eq!(mids(&by_callee.calls), ["list-6"]);
    let by_source = client
        .list_calls(ListCallsRequest { source: "c2c".into(), flow_id: "9".into(), ..Default::default() })
        .await
        .expect("filtered")
        .into_inner();
    assert_eq!(mids(&by_source.calls), ["list-5"]);
    let started = TimeRange {
        start: Some(timestamp(1_617_253_200_000_000)), // 2021-04-01 10:30 +05:30
        end: Some(timestamp(1_617_426_000_000_000)),   // 2021-04-03 10:30 +05:30
    };
    let by_time = client
        .list_calls(ListCallsRequest { started: Some(started), ..Default::default() })
        .await
        .expect("filtered")
        .into_inner();
    assert_eq!(mids(&by_time.calls), ["list-2", "list-1"], "half-open range on the start time");

    let bad_token =
        client.list_calls(ListCallsRequest { page_token: "garbage".into(), ..Default::default() }).await;
    assert_eq!(bad_token.expect_err("bad token").code(), Code::InvalidArgument);
    let backwards = TimeRange { start: Some(timestamp(10)), end: Some(timestamp(5)) };
    let bad_range =
        client.list_calls(ListCallsRequest { started: Some(backwards), ..Default::default() }).await;
    assert_eq!(bad_range.expect_err("bad range").code(), Code::InvalidArgument);
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn call_stats_count_answers_and_durations_per_day_and_source() {
    let system = start().await;
    let calls = [
        // mid, source, status, start (+05:30), duration
        ("s-1", "OBD", "ANSWER", "2021-04-09 10:00:00", "30"),
        ("s-2", "OBD", "answered", "2021-04-09 11:00:00", "50"),
        ("s-3", "OBD", "NOANSWER", "2021-04-09 12:00:00", "0"),
        ("s-4", "OBD", "BUSY", "2021-04-09 13:00:00", ""),
        ("s-5", "C2C", "Completed", "2021-04-09 14:00:00", "100"),
        // 02:00 on the 10th at +05:30 is 20:30 on the 9th in UTC.
        ("s-6", "OBD", "ANSWER", "2021-04-10 02:00:00", "20"),
    ];
    let mut last = 0;
    for (mid, source, status, start_at, duration) in calls {
        let mut body: serde_json::Value =
            serde_json::from_str(&record(mid, "919000000040", status, start_at, "", duration)).expect("JSON");
        body["source"] = source.into();
        let answer = system.post_ok("voice:message:out", body.to_string()).await;
        last = answer["seq"].as_u64().expect("seq");
    }
    wait_consumed(&system, last).await;
    let mut client = system.voice().await;

    let stats = client.get_call_stats(GetCallStatsRequest::default()).await.expect("stats").into_inner();
    assert_eq!(stats.utc_offset, "+05:30");
    let summary: Vec<_> = stats
        .rows
        .iter()
        .map(|row| {
            (row.day.as_str(), row.source.as_str(), row.calls, row.answered, row.total_duration_seconds)
        })
        .collect();
    assert_eq!(
        summary,
        [("2021-04-09", "C2C", 1, 1, 100), ("2021-04-09", "OBD", 4, 2, 80), ("2021-04-10", "OBD", 1, 1, 20)]
    );
    let obd = &stats.rows[1];
    assert!((obd.answer_rate - 0.5).abs() < 1e-9, "{}", obd.answer_rate);
    assert!(
        (obd.average_duration_seconds - 80.0 / 3.0).abs() < 1e-9,
        "averaged over the calls that report a duration: {}",
        obd.average_duration_seconds
    );

    let in_utc = client
        .get_call_stats(GetCallStatsRequest {
            utc_offset: "UTC".into(),
            source: "obd".into(),
            ..Default::default()
        })
        .await
        .expect("stats")
        .into_inner();
    assert_eq!(in_utc.utc_offset, "+00:00");
    let summary: Vec<_> =
        in_utc.rows.iter().map(|row| (row.day.as_str(), row.source.as_str(), row.calls)).collect();
    assert_eq!(summary, [("2021-04-09", "OBD", 5)], "the source filter, and days in the requested zone");
    let bad_zone =
        client.get_call_stats(GetCallStatsRequest { utc_offset: "India".into(), ..Default::default() }).await;
    assert_eq!(bad_zone.expect_err("bad offset").code(), Code::InvalidArgument);
    system.stop().await.expect("clean stop");
}

async fn next_change(stream: &mut tonic::Streaming<WatchResponse>) -> WatchResponse {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("a change in time")
        .expect("stream open")
        .expect("ok")
}

#[tokio::test]
async fn watchers_see_committed_changes_for_their_number_or_mid() {
    let system = start().await;
    let mut client = system.voice().await;
    let mut by_number = client
        .watch(WatchRequest { number: "+91 80682 00020".into(), ..Default::default() })
        .await
        .expect("watch opens")
        .into_inner();
    let mut by_mid = client
        .watch(WatchRequest { mid: "watch-2".into(), ..Default::default() })
        .await
        .expect("watch opens")
        .into_inner();
    let with_bridge = |mid: &str, bridge: &str| {
        let mut body: serde_json::Value = serde_json::from_str(&record(
            mid,
            "919000000099",
            "ANSWER",
            "2021-04-09 16:27:39",
            "2021-04-09 16:28:00",
            "21",
        ))
        .expect("JSON");
        body["bridge"] = bridge.into();
        body.to_string()
    };
    // Changes for other numbers and mids first: they must be filtered out.
    system.post_ok("voice:message:out", with_bridge("watch-other", "918068200099")).await;
    system.post_ok("voice:message:out", with_bridge("watch-1", "918068200020")).await;
    system.post_ok("voice:message:out", with_bridge("watch-2", "918068200099")).await;
    let optout = serde_json::json!({"id": "w-1", "receiver": "918068200020", "type": "all", "value": "*"});
    system.post_ok("voice:unsubscription", optout.to_string()).await;

    match next_change(&mut by_number).await.change {
        Some(Change::Call(call)) => {
            assert_eq!((call.mid.as_str(), call.bridge.as_str()), ("watch-1", "918068200020"))
        }
        other => panic!("expected a call change, got {other:?}"),
    }
    match next_change(&mut by_number).await.change {
        Some(Change::OptOut(optout)) => assert_eq!(optout.id, "w-1"),
        other => panic!("expected an opt-out change, got {other:?}"),
    }
    match next_change(&mut by_mid).await.change {
        Some(Change::Call(call)) => {
            assert_eq!((call.mid.as_str(), call.duration_seconds), ("watch-2", Some(21)))
        }
        other => panic!("expected a call change, got {other:?}"),
    }
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_record_the_service_cannot_decode_is_dead_lettered_with_its_reason() {
    let system = start().await;
    // Valid JSON, so the gateway stores it; but no mid, so the voice service cannot key it.
    let answer = system.post_ok("voice:message:out", r#"{"from": "919000000030", "status": "ANSWER"}"#).await;
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
    assert_eq!(dead_letter.subject.as_str(), "dlq.voice.voice.message.out");
    let headers = dead_letter.headers;
    let header = |name: &str| headers.get(name).map(|value| value.as_str().to_owned());
    assert!(
        header("Switchboard-Dlq-Reason").is_some_and(|reason| reason.contains("mid")),
        "{:?}",
        header("Switchboard-Dlq-Reason")
    );
    assert_eq!(header("Switchboard-Dlq-Component").as_deref(), Some("voice"));
    assert_eq!(header("Switchboard-Dlq-Sequence"), Some(sequence.to_string()));
    assert_eq!(header("Switchboard-Dlq-Subject").as_deref(), Some("voice.message.out"));

    // The consumer moved on: the next good record is projected.
    system
        .post_ok(
            "voice:message:out",
            record(
                "after-poison",
                "919000000030",
                "ANSWER",
                "2021-04-09 16:27:39",
                "2021-04-09 16:28:00",
                "21",
            ),
        )
        .await;
    call_when(&system, "after-poison", |_| true).await;
    system.stop().await.expect("clean stop");
}
