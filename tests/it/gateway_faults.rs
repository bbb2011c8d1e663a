//! The gateway under faults: NATS going away and coming back while deliveries flow, and secrets
//! staying out of every log line while credentials are tried.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use switchboard_runtime::Secret;
use switchboard_runtime::config::{BasicCredential, SourceConfig};
use switchboard_tests::{TEST_TOKEN, TestSystem, fixture};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_200_without_a_stored_event_while_nats_restarts() {
    let mut system = TestSystem::builder()
        .components(&[switchboard::Component::Gateway])
        .start()
        .await
        .expect("system starts");
    let system_url = system.gateway_url.clone();
    let http = system.http.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Four callers deliver distinct bodies for as long as the test runs.
    let mut callers = Vec::new();
    for caller in 0..4 {
        let (http, url, stop) = (http.clone(), system_url.clone(), stop.clone());
        callers.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            let mut index = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let body = format!("{{\"id\":\"flow-{caller}-{index}:1\",\"status\":\"DELIVRD\"}}");
                index += 1;
                let started = Instant::now();
                let response = http
                    .post(format!("{url}/v1/events/sms:message:status"))
                    .bearer_auth(TEST_TOKEN)
                    .body(body.clone())
                    .send()
                    .await
                    .expect("the gateway answers");
                let elapsed = started.elapsed();
                let status = response.status().as_u16();
                let answer: serde_json::Value = response.json().await.expect("json");
                answers.push((body, status, answer["seq"].as_u64(), elapsed));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            answers
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    tokio::task::block_in_place(|| system.nats_server.as_mut().expect("own nats").kill());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tokio::task::block_in_place(|| system.nats_server.as_mut().expect("own nats").restart())
        .expect("restarts");
    // Let deliveries succeed again for a while, without restarting the gateway.
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut answers = Vec::new();
    for caller in callers {
        answers.extend(caller.await.expect("caller"));
    }

    let statuses: std::collections::BTreeSet<u16> = answers.iter().map(|(_, status, _, _)| *status).collect();
    assert!(statuses.iter().all(|status| [200, 503].contains(status)), "{statuses:?}");
    assert!(statuses.contains(&503), "NATS was away for 1.5 s");
    let last_of_each_caller_ok =
        answers.iter().rev().take(8).filter(|(_, status, _, _)| *status == 200).count();
    assert!(last_of_each_caller_ok >= 4, "the gateway recovered without a restart");
    let slowest = answers.iter().map(|(_, _, _, elapsed)| *elapsed).max().unwrap_or_default();
    assert!(slowest < Duration::from_millis(2900), "every answer within the provider's timeout: {slowest:?}");

    let jetstream = system.jetstream().await.expect("jetstream");
    let stream = jetstream.get_stream("SWITCHBOARD").await.expect("stream");
    let mut confirmed = 0;
    for (body, status, seq, _) in &answers {
        if *status != 200 {
            continue;
        }
        let seq = seq.expect("a 200 names its sequence");
        let message = stream.get_raw_message(seq).await.expect("every 200 is in the stream");
        assert_eq!(message.payload.as_ref(), body.as_bytes(), "seq {seq} holds what was confirmed");
        confirmed += 1;
    }
    assert!(confirmed > 10, "{confirmed} confirmed deliveries");
    system.stop().await.expect("clean stop");
}

/// Log output, shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_appears_in_any_log_line() {
    let configured = [
        "bearer-token-7a1f",
        "previous-token-9c2e",
        "query-token-3b8d",
        "basic-password-5e0a",
        "signature-webhook-id-44d1",
        "signature-secret-c7f3",
    ];
    let whsec_key = b"standard-webhooks-key-material-01";
    let whsec = format!("whsec_{}", BASE64.encode(whsec_key));
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("debug,switchboard=trace,switchboard_gateway=trace,switchboard_runtime=trace")
        .json()
        .with_writer(move || writer.clone())
        .finish();
    // The test runs on one thread (current-thread runtime), so every component logs through this.
    let _guard = tracing::subscriber::set_default(subscriber);

    let whsec_for_config = whsec.clone();
    let system = TestSystem::builder()
        .components(&[switchboard::Component::Gateway])
        .configure(move |config| {
            let mut source = SourceConfig::with_tokens(
                "everything",
                vec![Secret::new(configured[0]), Secret::new(configured[1])],
            );
            let mut query = SourceConfig { name: "query".into(), ..SourceConfig::default() };
            query.query_tokens = vec![Secret::new(configured[2])];
            let mut basic = SourceConfig { name: "basic".into(), ..SourceConfig::default() };
            basic.basic =
                vec![BasicCredential { user: "provider".into(), password: Secret::new(configured[3]) }];
            let mut signed = SourceConfig { name: "signed".into(), ..SourceConfig::default() };
            signed.signature_keys = vec![Secret::new(configured[4]), Secret::new(configured[5])];
            let mut standard = SourceConfig { name: "standard".into(), ..SourceConfig::default() };
            standard.standard_webhooks_secrets = vec![Secret::new(whsec_for_config)];
            source.rate_limit = Some(0);
            config.gateway.sources = vec![source, query, basic, signed, standard];
            tracing::info!(?config, "configuration");
        })
        .start()
        .await
        .expect("system starts");
    let url = format!("{}/v1/events/sms:message:status", system.gateway_url);
    let body = fixture("events", "sms.message.status.json");
    let post = || system.http.post(&url).body(body.clone());
    let signature = |key: &str, body: &[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key");
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    };
    let attempts = [
        post().bearer_auth(configured[0]),
        post().bearer_auth(format!("{}x", configured[1])),
        system.http.post(format!("{url}?token={}", configured[2])).body(body.clone()),
        system.http.post(format!("{url}?token={}-wrong", configured[2])).body(body.clone()),
        post().basic_auth("provider", Some(configured[3])),
        post().basic_auth("provider", Some("wrong")),
        post().header("signature", signature(configured[4], &body)),
        post().header("signature", signature(configured[5], b"other")),
        post()
            .header("webhook-id", "msg_1")
            .header("webhook-timestamp", "1")
            .header("webhook-signature", "v1,AAAA"),
        post()
            .header("x-request-id", "trace-me")
            .header("content-type", "application/xml")
            .bearer_auth(configured[0]),
    ];
    for attempt in attempts {
        let response = attempt.send().await.expect("answer");
        assert!(response.status().as_u16() < 500, "{}", response.status());
    }
    system.stop().await.expect("clean stop");

    let logs = String::from_utf8(captured.0.lock().expect("not poisoned").clone()).expect("utf-8 logs");
    assert!(logs.contains("request not authenticated"), "the refusals were logged:\n{logs}");
    assert!(logs.contains("trace-me"), "request ids are in the logs");
    for secret in
        configured.iter().map(|secret| secret.to_string()).chain([whsec.clone(), BASE64.encode(whsec_key)])
    {
        assert!(!logs.contains(&secret), "{secret} appears in the logs");
    }
}
