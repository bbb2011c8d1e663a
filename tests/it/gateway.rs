//! The gateway's answers, first version: authentication, event names, content checks, and storing
//! before answering.

use std::time::{Duration, Instant};

use switchboard_tests::{TestSystem, fixture, wait_until};

async fn dead_letters(system: &TestSystem) -> Vec<async_nats::jetstream::message::StreamMessage> {
    let jetstream = system.jetstream().await.expect("jetstream");
    let mut stream = jetstream.get_stream("SWITCHBOARD_DLQ").await.expect("dlq stream");
    let info = stream.info().await.expect("info").clone();
    let mut letters = Vec::new();
    for sequence in info.state.first_sequence..=info.state.last_sequence {
        if info.state.messages == 0 {
            break;
        }
        if let Ok(message) = stream.get_raw_message(sequence).await {
            letters.push(message);
        }
    }
    letters
}

#[tokio::test]
async fn answers_are_specific_and_uniform_for_authentication() {
    let system = TestSystem::builder()
        .components(&[switchboard::Component::Gateway])
        .configure(|config| config.gateway.max_body_bytes = 4096)
        .start()
        .await
        .expect("system starts");
    let url = |path: &str| format!("{}{path}", system.gateway_url);
    let body = fixture("events", "sms.message.status.json");

    let missing = system
        .http
        .post(url("/v1/events/sms:message:status"))
        .body(body.clone())
        .send()
        .await
        .expect("answer");
    assert_eq!(missing.status(), 401);
    let missing_body: serde_json::Value = missing.json().await.expect("json");
    let wrong = system
        .http
        .post(url("/v1/events/sms:message:status"))
        .bearer_auth("wrong-token")
        .body(body.clone())
        .send()
        .await
        .expect("answer");
    assert_eq!(wrong.status(), 401);
    let wrong_body: serde_json::Value = wrong.json().await.expect("json");
    assert_eq!(missing_body["message"], wrong_body["message"], "one message whatever failed");
    assert_eq!(missing_body["error"], "unauthorized");

    let unknown = system.post("sms:message:nope", body.clone()).await;
    assert_eq!(unknown.status(), 404);
    let too_large = system.post("sms:message:status", vec![b' '; 5000]).await;
    assert_eq!(too_large.status(), 413);
    let xml = system
        .http
        .post(url("/v1/events/sms:message:status"))
        .bearer_auth(switchboard_tests::system_token())
        .header("content-type", "application/xml")
        .body("<status/>")
        .send()
        .await
        .expect("answer");
    assert_eq!(xml.status(), 415);
    let not_json = system.post("sms:message:status", "id=1&status=DELIVRD").await;
    assert_eq!(not_json.status(), 422);
    let not_json_body: serde_json::Value = not_json.json().await.expect("json");
    assert!(
        not_json_body["message"].as_str().is_some_and(|message| message.contains("kept")),
        "{not_json_body}"
    );
    let array = system.post("sms:message:status", "[1, 2]").await;
    assert_eq!(array.status(), 422);
    let deep = system.post("sms:message:status", format!("{}{}", "[".repeat(40), "]".repeat(40))).await;
    assert_eq!(deep.status(), 422);

    // Everything authenticated that was refused for its content was kept.
    let letters = dead_letters(&system).await;
    let subjects: Vec<&str> = letters.iter().map(|letter| letter.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "dlq.gateway.sms.message.nope",
            "dlq.gateway.sms.message.status",
            "dlq.gateway.sms.message.status",
            "dlq.gateway.sms.message.status",
            "dlq.gateway.sms.message.status"
        ]
    );
    assert_eq!(letters[2].payload.as_ref(), b"id=1&status=DELIVRD", "kept byte for byte");
    assert!(letters[2].headers.get("Switchboard-Dlq-Reason").is_some());
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn events_are_published_to_their_subject_with_headers() {
    let system = TestSystem::builder()
        .components(&[switchboard::Component::Gateway])
        .start()
        .await
        .expect("system starts");
    // Both spellings, and the event taken from the body.
    let first =
        system.post_ok("whatsapp:message:status", fixture("events", "whatsapp.message.status.json")).await;
    let second = system.post_ok("rcs.message.status", fixture("events", "rcs.message.status.json")).await;
    let from_body = system
        .http
        .post(format!("{}/v1/events", system.gateway_url))
        .bearer_auth(switchboard_tests::system_token())
        .body(fixture("events", "whatsapp.message.in.incoming-text.json"))
        .send()
        .await
        .expect("answer");
    assert_eq!(from_body.status(), 200);
    let contradiction = system.post("sms:message:status", fixture("events", "rcs.message.status.json")).await;
    assert_eq!(contradiction.status(), 400);
    let no_event = system
        .http
        .post(format!("{}/v1/events", system.gateway_url))
        .bearer_auth(switchboard_tests::system_token())
        .body(fixture("events", "sms.message.status.json"))
        .send()
        .await
        .expect("answer");
    assert_eq!(no_event.status(), 400);

    let jetstream = system.jetstream().await.expect("jetstream");
    let stream = jetstream.get_stream("SWITCHBOARD").await.expect("stream");
    let message = stream.get_raw_message(first["seq"].as_u64().expect("seq")).await.expect("stored");
    assert_eq!(message.subject.as_str(), "whatsapp.message.status");
    assert_eq!(message.payload.as_ref(), fixture("events", "whatsapp.message.status.json").as_slice());
    let header = |name: &str| message.headers.get(name).map(|value| value.as_str().to_owned());
    assert_eq!(header("Switchboard-Event").as_deref(), Some("whatsapp:message:status"));
    assert_eq!(header("Switchboard-Source").as_deref(), Some("provider"));
    assert!(header("Switchboard-Received-At").is_some());
    assert!(header("Switchboard-Request-Id").is_some());
    assert_eq!(header("Nats-Msg-Id").map(|id| id.len()), Some(64));
    let second_message = stream.get_raw_message(second["seq"].as_u64().expect("seq")).await.expect("stored");
    assert_eq!(second_message.subject.as_str(), "rcs.message.status");

    // Trailing commas are normalised and marked.
    let tolerant =
        system.post_ok("voice:unsubscription", fixture("seed-verbatim", "voice.unsubscription.json")).await;
    let stored = stream.get_raw_message(tolerant["seq"].as_u64().expect("seq")).await.expect("stored");
    assert!(serde_json::from_slice::<serde_json::Value>(&stored.payload).is_ok());
    let verbatim_sms =
        system.post_ok("sms:message:status", fixture("seed-verbatim", "sms.message.status.json")).await;
    let normalised =
        stream.get_raw_message(verbatim_sms["seq"].as_u64().expect("seq")).await.expect("stored");
    assert_eq!(
        normalised.headers.get("Switchboard-Normalized").map(|value| value.as_str()),
        Some("trailing-commas")
    );
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn without_nats_the_gateway_answers_503_in_time_and_recovers() {
    let mut system = TestSystem::builder()
        .components(&[switchboard::Component::Gateway])
        .start()
        .await
        .expect("system starts");
    let body = fixture("events", "sms.message.status.json");
    system.nats_server.as_mut().expect("own nats").kill();
    let started = Instant::now();
    let refused = system.post("sms:message:status", body.clone()).await;
    let waited = started.elapsed();
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    assert!(waited < Duration::from_millis(2900), "answered within the provider's timeout: {waited:?}");
    // The publish waited its whole `publish_timeout` for an acknowledgement, and says so.
    let publish_timeout = switchboard_runtime::config::GatewayConfig::default().publish_timeout;
    assert!(waited >= publish_timeout, "waited {waited:?}, less than publish_timeout");
    let answer: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(answer["error"], "unavailable", "{answer}");
    assert!(
        answer["message"].as_str().is_some_and(|message| message.contains("did not confirm in time")),
        "{answer}"
    );

    system.nats_server.as_mut().expect("own nats").restart().expect("nats restarts");
    wait_until("the gateway to store again", Duration::from_secs(20), || {
        let system = &system;
        let body = body.clone();
        async move {
            let response = system.post("sms:message:status", body).await;
            (response.status() == 200).then_some(())
        }
    })
    .await;
    system.stop().await.expect("clean stop");
}
