//! Routes, conversions and limits of the gateway: GET/PUT deliveries, form and query bodies
//! becoming JSON objects, duplicates, and every refusal code with its headers.

use std::time::Duration;

use reqwest::StatusCode;
use switchboard_tests::{TEST_TOKEN, TestSystem, fixture};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn gateway_only(
    edit: impl FnOnce(&mut switchboard_runtime::config::Config) + Send + 'static,
) -> TestSystem {
    TestSystem::builder()
        .components(&[switchboard::Component::Gateway])
        .configure(edit)
        .start()
        .await
        .expect("system starts")
}

async fn stored(
    system: &TestSystem,
    answer: &serde_json::Value,
) -> async_nats::jetstream::message::StreamMessage {
    let jetstream = system.jetstream().await.expect("jetstream");
    let stream = jetstream.get_stream("SWITCHBOARD").await.expect("stream");
    stream.get_raw_message(answer["seq"].as_u64().expect("seq")).await.expect("stored")
}

async fn json_answer(response: reqwest::Response) -> (StatusCode, serde_json::Value) {
    let status = response.status();
    (status, response.json().await.expect("a JSON answer"))
}

#[tokio::test]
async fn form_and_query_deliveries_become_json_objects() {
    let system = gateway_only(|config| {
        let mut query_source =
            switchboard_runtime::config::SourceConfig { name: "query".into(), ..Default::default() };
        query_source.query_tokens = vec![switchboard_runtime::Secret::new("in-the-url")];
        config.gateway.sources.push(query_source);
    })
    .await;
    let url = |path: &str| format!("{}{path}", system.gateway_url);

    // A form POST: values stay strings, a repeated key becomes an array.
    let form = "id=b34e35ad%3A1&status=DELIVRD&mobile=919876543210&custom=a&custom=b&text=hello+world";
    let (status, answer) = json_answer(
        system
            .http
            .post(url("/v1/events/sms.message.status"))
            .bearer_auth(TEST_TOKEN)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .expect("answer"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let message = stored(&system, &answer).await;
    let body: serde_json::Value = serde_json::from_slice(&message.payload).expect("a JSON object");
    assert_eq!(
        body,
        serde_json::json!({
            "id": "b34e35ad:1", "status": "DELIVRD", "mobile": "919876543210",
            "custom": ["a", "b"], "text": "hello world"
        })
    );
    assert_eq!(message.headers.get("Switchboard-Normalized").map(|value| value.as_str()), Some("form"));

    // A GET with the event in the query string; the token parameter is not part of the event.
    let (status, answer) = json_answer(
        system
            .http
            .get(url("/v1/events/sms:unsubscription?token=in-the-url&id=9f0c&mobile=919876543210"))
            .send()
            .await
            .expect("answer"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let message = stored(&system, &answer).await;
    let body: serde_json::Value = serde_json::from_slice(&message.payload).expect("a JSON object");
    assert_eq!(body, serde_json::json!({"id": "9f0c", "mobile": "919876543210"}));
    assert_eq!(message.headers.get("Switchboard-Normalized").map(|value| value.as_str()), Some("query"));
    assert_eq!(message.headers.get("Switchboard-Source").map(|value| value.as_str()), Some("query"));

    // PUT is a POST; a form on /v1/events names its event in a field.
    let (status, answer) = json_answer(
        system
            .http
            .put(url("/v1/events/sms:message:status"))
            .bearer_auth(TEST_TOKEN)
            .body(fixture("events", "sms.message.status.json"))
            .send()
            .await
            .expect("answer"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = json_answer(
        system
            .http
            .post(url("/v1/events"))
            .bearer_auth(TEST_TOKEN)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("event=voice%3Aunsubscription&id=7")
            .send()
            .await
            .expect("answer"),
    )
    .await;
    assert_eq!((status, answer["event"].as_str()), (StatusCode::OK, Some("voice:unsubscription")));

    // A GET with nothing but the token has no event data: 400, and the (empty) delivery is kept.
    let (status, answer) = json_answer(
        system.http.get(url("/v1/events/sms:unsubscription?token=in-the-url")).send().await.expect("answer"),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request")),
        "{answer}"
    );
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn duplicates_are_answered_200_and_stored_once() {
    let system = gateway_only(|_| {}).await;
    let body = fixture("events", "whatsapp.message.status.json");
    let first = system.post_ok("whatsapp:message:status", body.clone()).await;
    let again = system.post_ok("whatsapp.message.status", body).await;
    assert_eq!(first["duplicate"], false);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["seq"], first["seq"], "the original's sequence");
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn every_refusal_has_its_code_and_headers() {
    let system = gateway_only(|config| {
        config.gateway.max_header_bytes = 2048;
        config.gateway.rate_limit = 1;
        config.gateway.rate_burst = 3;
    })
    .await;
    let url = |path: &str| format!("{}{path}", system.gateway_url);
    let body = fixture("events", "sms.message.status.json");

    // 405 with Allow, for a known path and a wrong method; 404 for an unknown path.
    let (status, answer) =
        json_answer(system.http.delete(url("/v1/events/sms:message:status")).send().await.expect("answer"))
            .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
    let response = system.http.get(url("/v1/events")).send().await.expect("answer");
    assert_eq!(response.status(), 405);
    assert!(response.headers().contains_key("allow"));
    let (status, answer) =
        json_answer(system.http.post(url("/v2/elsewhere")).send().await.expect("answer")).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));

    // 431: headers beyond the limit, before anything else is looked at.
    let response = system
        .http
        .post(url("/v1/events/sms:message:status"))
        .bearer_auth(TEST_TOKEN)
        .header("x-padding", "p".repeat(4096))
        .body(body.clone())
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);

    // 429 once the source's burst is spent, with Retry-After; other callers are not affected
    // (an unauthenticated one still gets 401, not 429).
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for index in 0..6 {
        let response = system.post("sms:message:status", format!("{{\"id\":\"{index}\"}}")).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after =
                response.headers().get("retry-after").map(|value| value.to_str().expect("ascii").to_owned());
        }
        statuses.push(response.status().as_u16());
    }
    assert_eq!(&statuses[..3], [200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    assert!(retry_after.is_some_and(|seconds| seconds.parse::<u64>().is_ok_and(|seconds| seconds >= 1)));
    let anonymous =
        system.http.post(url("/v1/events/sms:message:status")).body(body).send().await.expect("answer");
    assert_eq!(anonymous.status(), 401);

    // Every outcome is counted by source and outcome, with the bytes received.
    let metrics = system
        .http
        .get(format!("{}/metrics", system.admin_url))
        .send()
        .await
        .expect("admin answers")
        .text()
        .await
        .expect("text");
    for expected in [
        r#"outcome="too_many_requests""#,
        r#"outcome="stored""#,
        r#"outcome="unauthorized""#,
        r#"outcome="headers_too_large""#,
        "switchboard_gateway_received_bytes_total{source=\"provider\"}",
        "switchboard_gateway_in_flight",
        "switchboard_gateway_publish_seconds_bucket",
    ] {
        assert!(metrics.contains(expected), "{expected} missing from:\n{metrics}");
    }
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn slow_requests_are_shed_and_timed_out_with_retry_after() {
    let system = gateway_only(|config| {
        config.gateway.max_concurrency = 1;
        config.gateway.request_timeout = Duration::from_millis(800);
        config.gateway.publish_timeout = Duration::from_millis(500);
    })
    .await;
    // A caller that announces a body and sends only part of it holds the only permit.
    let address = system.gateway_url.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&address).await.expect("connects");
    let head = format!(
        "POST /v1/events/sms:message:status HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {TEST_TOKEN}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"id\":"
    );
    slow.write_all(head.as_bytes()).await.expect("writes");
    tokio::time::sleep(Duration::from_millis(150)).await;

    let shed = system.post("sms:message:status", fixture("events", "sms.message.status.json")).await;
    assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE, "load is shed at once");
    assert!(shed.headers().contains_key("retry-after"));

    // The slow request itself is answered 503 at the request timeout, not left hanging.
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "answered in time");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after:"), "{answer}");
    system.stop().await.expect("clean stop");
}
