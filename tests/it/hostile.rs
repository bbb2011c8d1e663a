//! A hostile-input corpus for the gateway: malformed and truncated JSON, wrong shapes and types,
//! deep nesting, huge bodies and headers, bad bytes, wrong methods, content types and paths,
//! garbled, replayed and tampered credentials, and slow clients. Every case is one raw HTTP/1.1
//! request (so nothing is normalised on the way) with its expected status and what must have been
//! kept: stored, answered as a duplicate, dead-lettered, or nothing. One test runs the whole table
//! against one gateway, reports every mismatch at once, then checks that the event stream and the
//! dead-letter stream hold exactly the requests the table says they should.
//!
//! Adding a case: append it to [`cases::corpus`]; see `docs/testing.md`.

mod cases;
mod wire;

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use switchboard_runtime::Secret;
use switchboard_runtime::config::SourceConfig;
use switchboard_tests::{TEST_TOKEN, TestSystem};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use self::cases::{Case, Kept};
use self::wire::Answer;

/// Keys of the sources the corpus signs for.
const SIGNATURE_KEY: &str = "provider-webhook-secret";
const WHSEC_KEY: &[u8] = b"standard webhooks key material";
/// Short, so the slow clients are answered quickly.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(1200);

async fn start() -> TestSystem {
    TestSystem::builder()
        .components(&[switchboard::Component::Gateway])
        .configure(|config| {
            let mut signed = SourceConfig { name: "signed".into(), ..SourceConfig::default() };
            signed.signature_keys = vec![Secret::new(SIGNATURE_KEY)];
            let mut standard = SourceConfig { name: "standard".into(), ..SourceConfig::default() };
            standard.standard_webhooks_secrets =
                vec![Secret::new(format!("whsec_{}", BASE64.encode(WHSEC_KEY)))];
            config.gateway.sources.push(signed);
            config.gateway.sources.push(standard);
            config.gateway.request_timeout = REQUEST_TIMEOUT;
            config.gateway.publish_timeout = Duration::from_millis(900);
        })
        .start()
        .await
        .expect("system starts")
}

#[tokio::test]
async fn hostile_corpus_gets_its_expected_answers_and_nothing_else_is_kept() {
    let system = start().await;
    let address = system.gateway_url.trim_start_matches("http://").to_owned();
    let corpus = cases::corpus();
    assert!(corpus.len() >= 50, "the corpus has {} cases", corpus.len());
    let names: BTreeSet<&str> = corpus.iter().map(|case| case.name).collect();
    assert_eq!(names.len(), corpus.len(), "case names are unique");

    // Slow clients hold connections while the corpus runs: they must not stop anyone else.
    let slow_body = stalled_body(&address);
    let slow_headers = stalled_headers(&address);

    let mut mismatches = Vec::new();
    let mut stored = BTreeSet::new();
    let mut dead_lettered = BTreeSet::new();
    for (index, case) in corpus.iter().enumerate() {
        let request_id = format!("hostile-{index:03}");
        let answer = wire::send(&address, case, &request_id).await;
        if let Some(problem) = check(case, &answer) {
            mismatches.push(format!("{:<40} {problem}", case.name));
        }
        match case.kept {
            Kept::Stored => {
                stored.insert(request_id);
            }
            Kept::DeadLetter => {
                dead_lettered.insert(request_id);
            }
            Kept::Duplicate | Kept::Nothing => {}
        }
    }

    // The stalled body is answered 503 at the request timeout (or the connection is closed).
    let answer = slow_body.await.expect("slow client task");
    if !(answer.starts_with("HTTP/1.1 503") || answer.is_empty()) {
        mismatches
            .push(format!("{:<40} expected a 503 or a closed connection, got {answer:?}", "stalled body"));
    }
    // A head that never ends: the connection is closed once it has sent nothing for the idle read
    // timeout (without an answer), and the corpus above was served meanwhile.
    let answer = slow_headers.await.expect("slow client task");
    if !answer.is_empty() {
        mismatches.push(format!("{:<40} expected the connection closed, got {answer:?}", "stalled head"));
    }

    let jetstream = system.jetstream().await.expect("jetstream");
    let in_stream = request_ids(&jetstream, &system.config.nats.stream.name).await;
    let in_dead_letters = request_ids(&jetstream, &system.config.nats.dead_letter_stream.name).await;
    if in_stream != stored {
        mismatches.push(format!(
            "event stream: {} stored, {} expected; unexpected {:?}, missing {:?}",
            in_stream.len(),
            stored.len(),
            named(&corpus, in_stream.difference(&stored)),
            named(&corpus, stored.difference(&in_stream))
        ));
    }
    if in_dead_letters != dead_lettered {
        mismatches.push(format!(
            "dead letters: {} kept, {} expected; unexpected {:?}, missing {:?}",
            in_dead_letters.len(),
            dead_lettered.len(),
            named(&corpus, in_dead_letters.difference(&dead_lettered)),
            named(&corpus, dead_lettered.difference(&in_dead_letters))
        ));
    }
    tracing::info!(
        "hostile corpus: {} cases, {} stored, {} dead-lettered, {} mismatches",
        corpus.len(),
        stored.len(),
        dead_lettered.len(),
        mismatches.len()
    );
    assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), mismatches.join("\n"));
    system.stop().await.expect("clean stop");
}

/// The names of the cases sent with these request ids.
fn named<'a>(corpus: &[Case], request_ids: impl Iterator<Item = &'a String>) -> Vec<String> {
    request_ids
        .map(|id| {
            let index = id.trim_start_matches("hostile-").parse::<usize>().ok();
            index.and_then(|index| corpus.get(index)).map_or_else(|| id.clone(), |case| case.name.to_owned())
        })
        .collect()
}

/// What is wrong with an answer, if anything.
fn check(case: &Case, answer: &Answer) -> Option<String> {
    let Some(status) = answer.status else {
        return Some(format!("expected {}, got no answer ({})", case.status, answer.note));
    };
    if status != case.status {
        return Some(format!("expected {}, got {status}: {}", case.status, answer.body_text()));
    }
    let json = answer.json();
    match (status, case.kept) {
        (200, Kept::Stored | Kept::Duplicate) => {
            let duplicate = case.kept == Kept::Duplicate;
            let confirmed = json.as_ref().is_some_and(|json| {
                json["accepted"] == true && json["duplicate"] == duplicate && json["seq"].is_u64()
            });
            (!confirmed).then(|| format!("200 without the expected confirmation: {}", answer.body_text()))
        }
        (200, _) => Some("a 200 must store the event".to_owned()),
        (401, _) => {
            let uniform = json.as_ref().is_some_and(|json| {
                json["error"] == "unauthorized" && json["message"] == "missing or invalid credentials"
            });
            (!uniform).then(|| format!("a 401 with another message: {}", answer.body_text()))
        }
        _ => None,
    }
}

/// The `Switchboard-Request-Id` of every message in a stream.
async fn request_ids(jetstream: &async_nats::jetstream::Context, stream_name: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let Ok(mut stream) = jetstream.get_stream(stream_name).await else { return ids };
    let state = stream.info().await.expect("stream info").state.clone();
    if state.messages == 0 {
        return ids;
    }
    for sequence in state.first_sequence..=state.last_sequence {
        let Ok(message) = stream.get_raw_message(sequence).await else { continue };
        let id = message.headers.get(switchboard_events::headers::REQUEST_ID).map(|value| value.as_str());
        ids.insert(id.unwrap_or("(none)").to_owned());
    }
    ids
}

/// A client that sends complete headers announcing a body, then nothing.
fn stalled_body(address: &str) -> tokio::task::JoinHandle<String> {
    let head = format!(
        "POST /v1/events/sms:message:status HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer {TEST_TOKEN}\r\ncontent-type: application/json\r\ncontent-length: 64\r\n\r\n{{\"id\":"
    );
    stall(address.to_owned(), head)
}

/// A client that sends half a request head, then nothing.
fn stalled_headers(address: &str) -> tokio::task::JoinHandle<String> {
    let head = "POST /v1/events/sms:message:status HTTP/1.1\r\nhost: gateway\r\nauthoriz".to_owned();
    stall(address.to_owned(), head)
}

fn stall(address: String, head: String) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connects");
        stream.write_all(head.as_bytes()).await.expect("writes");
        let mut answer = Vec::new();
        // Longer than the request timeout and the gateway's idle read timeout (10 s).
        let read = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut answer)).await;
        match read {
            Ok(_) => String::from_utf8_lossy(&answer).into_owned(),
            Err(_) => "still open after the idle read timeout".to_owned(),
        }
    })
}
