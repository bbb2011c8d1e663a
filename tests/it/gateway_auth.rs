//! Every way a source can authenticate, accepted and refused, against the running gateway: the
//! stored event names its source, and every failure gets the same 401.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use reqwest::{RequestBuilder, Response, StatusCode};
use sha2::{Digest, Sha256};
use switchboard_runtime::Secret;
use switchboard_runtime::config::{BasicCredential, SourceConfig};
use switchboard_tests::{TestSystem, fixture};

const WEBHOOK_ID: &str = "wh_8f1c2d";
const WEBHOOK_SECRET: &str = "provider-webhook-secret";
const WHSEC_KEY: &[u8] = b"standard webhooks key material";
const RETIRED_WHSEC_KEY: &[u8] = b"a key that was rotated out";

fn sources() -> Vec<SourceConfig> {
    let hashed_token = format!("sha256:{}", hex::encode(Sha256::digest(b"bearer-previous")));
    let mut api_key = SourceConfig::with_tokens("api-key", vec![Secret::new("api-key-value")]);
    api_key.token_header = "X-Api-Key".into();
    let mut query = SourceConfig { name: "query".into(), ..SourceConfig::default() };
    query.query_tokens = vec![Secret::new("query-token-value")];
    let mut basic = SourceConfig { name: "basic".into(), ..SourceConfig::default() };
    basic.basic = vec![BasicCredential {
        user: "mobtexting".into(),
        password: Secret::new(format!("sha256:{}", hex::encode(Sha256::digest(b"basic-password")))),
    }];
    let mut signed = SourceConfig { name: "signed".into(), ..SourceConfig::default() };
    signed.signature_keys = vec![Secret::new(WEBHOOK_ID), Secret::new(WEBHOOK_SECRET)];
    let mut standard = SourceConfig { name: "standard".into(), ..SourceConfig::default() };
    standard.standard_webhooks_secrets = vec![Secret::new(format!("whsec_{}", BASE64.encode(WHSEC_KEY)))];
    let mut allowlisted = SourceConfig::with_tokens("allowlisted", vec![Secret::new("allowlisted-token")]);
    allowlisted.allow_ips = vec!["192.0.2.0/24".into()];
    vec![
        SourceConfig::with_tokens("bearer", vec![Secret::new("bearer-current"), Secret::new(hashed_token)]),
        api_key,
        query,
        basic,
        signed,
        standard,
        allowlisted,
    ]
}

async fn start() -> TestSystem {
    TestSystem::builder()
        .components(&[switchboard::Component::Gateway])
        .configure(|config| {
            config.gateway.sources = sources();
            // The test client connects from loopback, standing in for the ingress.
            config.gateway.trusted_proxies = vec!["127.0.0.1".into()];
        })
        .start()
        .await
        .expect("system starts")
}

fn hex_signature(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn standard_headers(key: &[u8], timestamp: i64, body: &[u8]) -> [(&'static str, String); 3] {
    let id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let signature = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    [
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
    ]
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

struct Caller<'a> {
    system: &'a TestSystem,
    body: Vec<u8>,
}

impl Caller<'_> {
    fn post(&self, query: &str) -> RequestBuilder {
        self.system
            .http
            .post(format!("{}/v1/events/sms:message:status{query}", self.system.gateway_url))
            .header("content-type", "application/json")
            .body(self.body.clone())
    }

    async fn accepted_from(&self, request: RequestBuilder, source: &str) {
        let response = request.send().await.expect("answer");
        let status = response.status();
        let answer: serde_json::Value = response.json().await.expect("json");
        assert_eq!(status, StatusCode::OK, "{source}: {answer}");
        let jetstream = self.system.jetstream().await.expect("jetstream");
        let stream = jetstream.get_stream("SWITCHBOARD").await.expect("stream");
        let stored = stream.get_raw_message(answer["seq"].as_u64().expect("seq")).await.expect("stored");
        assert_eq!(stored.payload.as_ref(), self.body.as_slice());
        let stored_source = stored.headers.get("Switchboard-Source").map(|value| value.as_str().to_owned());
        if answer["duplicate"] == false {
            assert_eq!(stored_source.as_deref(), Some(source));
        }
    }
}

async fn refusal(request: RequestBuilder) -> (StatusCode, serde_json::Value) {
    let response: Response = request.send().await.expect("answer");
    let status = response.status();
    (status, response.json().await.expect("json"))
}

#[tokio::test]
async fn every_method_accepts_its_credentials_and_refuses_all_else_uniformly() {
    let system = start().await;
    // A distinct body per source, so each is stored anew rather than recognised as a duplicate.
    let caller_for = |marker: &str| {
        let body = String::from_utf8(fixture("events", "sms.message.status.json")).expect("utf-8");
        Caller {
            system: &system,
            body: body.replacen("{", &format!("{{\"test\":\"{marker}\","), 1).into_bytes(),
        }
    };

    let bearer = caller_for("bearer");
    bearer.accepted_from(bearer.post("").bearer_auth("bearer-current"), "bearer").await;
    bearer.accepted_from(bearer.post("").bearer_auth("bearer-previous"), "bearer").await;
    let api_key = caller_for("api-key");
    api_key.accepted_from(api_key.post("").header("x-api-key", "api-key-value"), "api-key").await;
    let query = caller_for("query");
    query.accepted_from(query.post("?token=query-token-value"), "query").await;
    let basic = caller_for("basic");
    basic.accepted_from(basic.post("").basic_auth("mobtexting", Some("basic-password")), "basic").await;
    let signed = caller_for("signed");
    for key in [WEBHOOK_ID, WEBHOOK_SECRET] {
        let signature = hex_signature(key, &signed.body);
        signed.accepted_from(signed.post("").header("signature", signature), "signed").await;
    }
    let standard = caller_for("standard");
    let mut request = standard.post("");
    for (name, value) in standard_headers(WHSEC_KEY, now(), &standard.body) {
        request = request.header(name, value);
    }
    standard.accepted_from(request, "standard").await;
    let allowlisted = caller_for("allowlisted");
    allowlisted
        .accepted_from(
            allowlisted.post("").bearer_auth("allowlisted-token").header("x-forwarded-for", "192.0.2.44"),
            "allowlisted",
        )
        .await;

    // Every way to fail: missing, wrong, rotated out, tampered, expired, incomplete.
    let victim = caller_for("refused");
    let tampered_body = b"{\"id\":\"tampered\"}".to_vec();
    let mut failures: Vec<(&str, RequestBuilder)> = vec![
        ("nothing", victim.post("")),
        ("wrong bearer", victim.post("").bearer_auth("bearer-wrong")),
        ("retired bearer", victim.post("").bearer_auth("bearer-retired")),
        ("the hash as a token", victim.post("").bearer_auth(hex::encode(Sha256::digest(b"bearer-previous")))),
        ("wrong api key", victim.post("").header("x-api-key", "nope")),
        ("api key in the wrong header", victim.post("").header("x-other", "api-key-value")),
        ("wrong query token", victim.post("?token=nope")),
        ("query token in another parameter", victim.post("?key=query-token-value")),
        ("wrong basic password", victim.post("").basic_auth("mobtexting", Some("nope"))),
        ("wrong basic user", victim.post("").basic_auth("someone", Some("basic-password"))),
        (
            "signature with another key",
            victim.post("").header("signature", hex_signature("nope", &victim.body)),
        ),
        (
            "signature of another body",
            victim.post("").header("signature", hex_signature(WEBHOOK_SECRET, &tampered_body)),
        ),
        ("empty signature", victim.post("").header("signature", "")),
    ];
    let standard_failures = [
        ("expired timestamp", standard_headers(WHSEC_KEY, now() - 600, &victim.body)),
        ("future timestamp", standard_headers(WHSEC_KEY, now() + 600, &victim.body)),
        ("tampered body", standard_headers(WHSEC_KEY, now(), &tampered_body)),
        ("rotated-out secret", standard_headers(RETIRED_WHSEC_KEY, now(), &victim.body)),
    ];
    for (what, headers) in standard_failures {
        let mut request = victim.post("");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        failures.push((what, request));
    }
    let mut empty_signature = victim.post("");
    for (name, value) in standard_headers(WHSEC_KEY, now(), &victim.body) {
        let value = if name == "webhook-signature" { "v1,".to_owned() } else { value };
        empty_signature = empty_signature.header(name, value);
    }
    failures.push(("empty v1 signature", empty_signature));
    failures.push(("only a webhook-id", victim.post("").header("webhook-id", "msg_1")));

    let mut messages = std::collections::BTreeSet::new();
    for (what, request) in failures {
        let (status, body) = refusal(request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(body["error"], "unauthorized", "{what}");
        messages.insert(body["message"].as_str().expect("message").to_owned());
    }
    assert_eq!(messages.len(), 1, "one message whatever failed: {messages:?}");

    // Right credentials from the wrong address: 403, also when the client forges X-Forwarded-For
    // behind an untrusted hop.
    let (status, body) =
        refusal(victim.post("").bearer_auth("allowlisted-token").header("x-forwarded-for", "198.51.100.7"))
            .await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let (status, _) = refusal(victim.post("").bearer_auth("allowlisted-token")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "loopback itself is not in the list");

    // Nothing refused was stored: only the accepted deliveries are in the stream.
    let jetstream = system.jetstream().await.expect("jetstream");
    let mut stream = jetstream.get_stream("SWITCHBOARD").await.expect("stream");
    let stored = stream.info().await.expect("info").state.messages;
    // One per source: the second bearer and signed deliveries repeat their body, so they are duplicates.
    assert_eq!(stored, 7);
    system.stop().await.expect("clean stop");
}
