//! The `switchboard` binary against a running system: a real nats-server and the real components
//! (the test harness's `TestSystem`), driven only through the command line.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use switchboard_tests::{TEST_TOKEN, TestSystem, wait_until};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(20);

/// The binary with this system's NATS, an empty data directory and no configuration file.
fn switchboard(system: &TestSystem, data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command
        .env_remove("SWITCHBOARD_CONFIG")
        .env("SWITCHBOARD_NATS__URL", &system.config.nats.url)
        .env("SWITCHBOARD_STORAGE__DATA_DIR", data_dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

async fn run(system: &TestSystem, data_dir: &std::path::Path, args: &[&str]) -> Run {
    let output = switchboard(system, data_dir).args(args).output().await.expect("the binary runs");
    Run {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn run_ok(system: &TestSystem, data_dir: &std::path::Path, args: &[&str]) -> Run {
    let result = run(system, data_dir, args).await;
    assert!(
        result.success,
        "switchboard {args:?} failed:\nstdout: {}\nstderr: {}",
        result.stdout, result.stderr
    );
    result
}

/// Runs until it succeeds (the services apply events asynchronously).
async fn run_until_ok(system: &TestSystem, data_dir: &std::path::Path, args: &[&str]) -> Run {
    wait_until(&format!("switchboard {args:?}"), WAIT, || async {
        let result = run(system, data_dir, args).await;
        result.success.then_some(result)
    })
    .await
}

fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("switchboard-cli-").tempdir().expect("temporary directory")
}

#[tokio::test]
async fn sent_events_are_queryable_from_the_command_line() {
    let system = TestSystem::start().await.expect("system starts");
    let data = data_dir();
    let dir = data.path();
    let gateway = system.gateway_url.as_str();
    let grpc = system.grpc_url.as_str();

    let sent = run_ok(
        &system,
        dir,
        &["send", "sms:message:status", "--gateway", gateway, "--token", TEST_TOKEN, "--json"],
    )
    .await
    .json();
    assert_eq!(sent["accepted"], true);
    assert_eq!(sent["event"], "sms:message:status");
    let sequence = sent["seq"].as_u64().expect("a sequence");

    let id = "b34e35ad-fe34-4a8b-977c-b21cd76cd7d6:1";
    let message = run_until_ok(&system, dir, &["sms", "get", id, "--endpoint", grpc, "--json"]).await.json();
    assert_eq!(message["id"], id);
    assert_eq!(message["mobile"], "918921269123");
    assert_eq!(message["status"], "DELIVRD");
    assert_eq!(message["status_class"], "STATUS_CLASS_DELIVERED");
    assert_eq!(message["stream_sequence"], sequence);
    assert_eq!(message["history"].as_array().map(Vec::len), Some(1));

    let listed =
        run_ok(&system, dir, &["sms", "list", "--mobile", "918921269123", "--endpoint", grpc, "--json"])
            .await
            .json();
    let ids: Vec<&str> =
        listed.as_array().expect("an array").iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, vec![id]);
    let none = run_ok(&system, dir, &["sms", "list", "--status", "UNDELIV", "--endpoint", grpc, "--json"])
        .await
        .json();
    assert_eq!(none.as_array().map(Vec::len), Some(0));

    // The human table names the message too.
    let table = run_ok(&system, dir, &["sms", "list", "--endpoint", grpc]).await;
    assert!(table.stdout.contains(id) && table.stdout.contains("DELIVRD"), "{}", table.stdout);

    // A missing record is an error with a clear message.
    let missing = run(&system, dir, &["sms", "get", "no-such-id", "--endpoint", grpc]).await;
    assert!(!missing.success);
    assert!(missing.stderr.contains("not found"), "{}", missing.stderr);

    // An opt-out, then the check through the CLI.
    run_ok(&system, dir, &["send", "sms:unsubscription", "--gateway", gateway, "--token", TEST_TOKEN]).await;
    let check = wait_until("the opt-out to apply", WAIT, || async {
        let answer = run_ok(
            &system,
            dir,
            &["optout", "check", "+91 700-208 8123", "--sender", "Demo12", "--endpoint", grpc, "--json"],
        )
        .await
        .json();
        (answer["opted_out"] == true).then_some(answer)
    })
    .await;
    assert_eq!(check["matches"][0]["id"], "d105a1ef-6728-4563-8b85-7f5356c8a123");
    let other = run_ok(
        &system,
        dir,
        &["optout", "check", "917002088123", "--sender", "OTHER1", "--endpoint", grpc, "--json"],
    )
    .await
    .json();
    assert_eq!(other["opted_out"], false);

    // Chat, voice and contacts through their bundled examples.
    for event in ["whatsapp:message:status", "voice:message:out", "contacts:subscriber:subscription"] {
        run_ok(&system, dir, &["send", event, "--gateway", gateway, "--token", TEST_TOKEN]).await;
    }
    let chat = wait_until("a chat message", WAIT, || async {
        let list = run_ok(&system, dir, &["chat", "list", "--endpoint", grpc, "--json"]).await.json();
        list.as_array().is_some_and(|list| !list.is_empty()).then_some(list)
    })
    .await;
    assert_eq!(chat[0]["channel"], "whatsapp");
    let calls = wait_until("a call", WAIT, || async {
        let list = run_ok(&system, dir, &["voice", "calls", "--endpoint", grpc, "--json"]).await.json();
        list.as_array().is_some_and(|list| !list.is_empty()).then_some(list)
    })
    .await;
    let mid = calls[0]["mid"].as_str().expect("a mid").to_owned();
    let call = run_ok(&system, dir, &["voice", "get", &mid, "--endpoint", grpc, "--json"]).await.json();
    assert_eq!(call["mid"], mid.as_str());
    let contacts = wait_until("a contact", WAIT, || async {
        let list = run_ok(&system, dir, &["contacts", "list", "--endpoint", grpc, "--json"]).await.json();
        list.as_array().is_some_and(|list| !list.is_empty()).then_some(list)
    })
    .await;
    let identity = contacts[0]["identity"].as_str().expect("an identity").to_owned();
    let history =
        run_ok(&system, dir, &["contacts", "history", &identity, "--endpoint", grpc, "--json"]).await.json();
    assert_eq!(history.as_array().map(Vec::len), Some(1));
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn status_shows_the_stream_consumers_and_readiness() {
    let system = TestSystem::start().await.expect("system starts");
    let data = data_dir();
    let dir = data.path();
    run_ok(
        &system,
        dir,
        &["send", "sms:message:status", "--gateway", &system.gateway_url, "--token", TEST_TOKEN],
    )
    .await;
    let admin = format!("system={}", system.admin_url);
    let status = wait_until("the sms consumer to catch up", WAIT, || async {
        let status = run_ok(&system, dir, &["status", "--admin", &admin, "--json"]).await.json();
        let sms = status["consumers"].as_array()?.iter().find(|consumer| consumer["name"] == "sms")?.clone();
        (sms["pending"] == 0 && sms["ack_pending"] == 0 && sms["delivered_sequence"] == 1).then_some(status)
    })
    .await;
    assert_eq!(status["stream"]["name"], "SWITCHBOARD");
    assert_eq!(status["stream"]["messages"], 1);
    assert_eq!(status["dead_letters"]["name"], "SWITCHBOARD_DLQ");
    assert_eq!(status["dead_letters"]["messages"], 0);
    assert_eq!(status["healthy"], true);
    assert_eq!(status["components"][0]["ready"], true);
    let names: Vec<&str> = status["consumers"]
        .as_array()
        .expect("consumers")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for expected in ["chat-rcs", "chat-whatsapp", "contacts", "interact", "sms", "voice"] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }

    let table = run_ok(&system, dir, &["status", "--admin", &admin]).await;
    assert!(table.stdout.contains("SWITCHBOARD") && table.stdout.contains("ready"), "{}", table.stdout);

    assert_eq!(status["nats"]["url"], system.config.nats.url.as_str());
    assert!(!status["nats"]["version"].as_str().unwrap_or_default().is_empty(), "{status}");

    // Another server, without the streams: status says which server it asked.
    let other = switchboard_tests::NatsServer::start().expect("another nats-server");
    let elsewhere = switchboard(&system, dir)
        .env("SWITCHBOARD_NATS__URL", other.url())
        .args(["status", "--admin", &admin])
        .output()
        .await
        .expect("status runs");
    let stderr = String::from_utf8_lossy(&elsewhere.stderr);
    assert!(!elsewhere.status.success());
    assert!(stderr.contains(&format!("stream SWITCHBOARD is missing at {}", other.url())), "{stderr}");
    assert!(String::from_utf8_lossy(&elsewhere.stdout).contains(&format!("NATS {} (server", other.url())));

    // An unreachable component makes status fail.
    let down = run(&system, dir, &["status", "--admin", "gone=http://127.0.0.1:9", "--json"]).await;
    assert!(!down.success);
    assert_eq!(down.json()["components"][0]["ready"], false);
    system.stop().await.expect("clean stop");
}

/// Posts a body to the gateway as the provider would; returns the status code.
async fn post(system: &TestSystem, event: &str, body: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/v1/events/{event}", system.gateway_url))
        .bearer_auth(TEST_TOKEN)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("the gateway answers")
        .status()
        .as_u16()
}

async fn stream_messages(system: &TestSystem) -> u64 {
    let jetstream = system.jetstream().await.expect("jetstream");
    let mut stream = jetstream.get_stream("SWITCHBOARD").await.expect("stream");
    stream.info().await.expect("stream info").state.messages
}

#[tokio::test]
async fn bodies_the_gateway_refused_are_resubmitted_through_it_never_replayed_into_the_stream() {
    let system = TestSystem::start().await.expect("system starts");
    let data = data_dir();
    let dir = data.path();
    // Authenticated bodies the gateway refuses and keeps: an unknown event, not JSON, an empty body,
    // an envelope naming another event.
    let envelope = r#"{"event": "rcs:message:status", "payload": {"id": "m1", "status": "read"}}"#;
    for (event, body) in [
        ("sms:message:foo", r#"{"id": "x"}"#),
        ("sms:message:status", "this is not json"),
        ("sms:message:status", ""),
        ("whatsapp:message:status", envelope),
    ] {
        let status = post(&system, event, body).await;
        assert!((400..500).contains(&status), "{event} {body:?} answered {status}");
    }
    let letters = run_ok(&system, dir, &["dlq", "list", "--json"]).await.json();
    let letters = letters.as_array().expect("an array").clone();
    assert_eq!(letters.len(), 4, "{letters:?}");
    assert!(letters.iter().all(|letter| letter["component"] == "gateway"));
    let not_json = letters.iter().find(|letter| letter["body"] == "this is not json").expect("kept");
    assert_eq!(not_json["original_subject"], "sms.message.status");
    assert!(!not_json["reason"].as_str().expect("a reason").is_empty());
    let not_json_sequence = not_json["sequence"].as_u64().expect("sequence");
    let shown = run_ok(&system, dir, &["dlq", "show", &not_json_sequence.to_string(), "--json"]).await.json();
    assert_eq!(shown["headers"]["Switchboard-Source"], "provider");

    // Replaying everything leaves them alone: none entered the stream, none may enter it this way.
    let summary = run_ok(&system, dir, &["dlq", "replay", "--all", "--json"]).await.json();
    assert_eq!(summary["replayed"].as_array().map(Vec::len), Some(0), "{summary}");
    assert_eq!(summary["failed"].as_array().map(Vec::len), Some(0), "{summary}");
    assert_eq!(summary["not_replayable"].as_array().map(Vec::len), Some(4), "{summary}");
    assert_eq!(stream_messages(&system).await, 0);
    let table = run_ok(&system, dir, &["dlq", "replay", "--all"]).await;
    assert!(table.stdout.contains("dlq resubmit"), "{}", table.stdout);
    // Named, it is an error that says what to do instead.
    let named = run(&system, dir, &["dlq", "replay", &not_json_sequence.to_string()]).await;
    assert!(!named.success && named.stderr.contains("resubmit"), "{}", named.stderr);
    assert_eq!(
        run_ok(&system, dir, &["dlq", "list", "--json"]).await.json().as_array().map(Vec::len),
        Some(4)
    );

    // Resubmitted as it is, it is refused again and kept; corrected, it is stored and deleted.
    let again = run(
        &system,
        dir,
        &[
            "dlq",
            "resubmit",
            &not_json_sequence.to_string(),
            "--gateway",
            &system.gateway_url,
            "--token",
            TEST_TOKEN,
        ],
    )
    .await;
    assert!(!again.success && again.stderr.contains("422"), "{}", again.stderr);
    let fixed = dir.join("fixed.json");
    std::fs::write(&fixed, r#"{"id": "fixed:1", "mobile": "918921269123", "status": "DELIVRD"}"#)
        .expect("write body");
    let resubmitted = run_ok(
        &system,
        dir,
        &[
            "dlq",
            "resubmit",
            &not_json_sequence.to_string(),
            "--body",
            fixed.to_str().expect("utf-8 path"),
            "--gateway",
            &system.gateway_url,
            "--token",
            TEST_TOKEN,
            "--json",
        ],
    )
    .await
    .json();
    assert_eq!(resubmitted["accepted"], true);
    assert_eq!(stream_messages(&system).await, 1);
    let left = run_ok(&system, dir, &["dlq", "list", "--json"]).await.json();
    assert!(left.as_array().expect("an array").iter().all(|letter| letter["sequence"] != not_json_sequence));
    run_until_ok(&system, dir, &["sms", "get", "fixed:1", "--endpoint", &system.grpc_url]).await;
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn events_a_service_gave_up_on_are_replayed_with_their_headers() {
    let system = TestSystem::start().await.expect("system starts");
    let data = data_dir();
    let dir = data.path();
    // A body in the stream that the sms service cannot decode (no id): it dead-letters it.
    let jetstream = system.jetstream().await.expect("jetstream");
    let mut original = async_nats::HeaderMap::new();
    original.insert("Switchboard-Source", "provider");
    original.insert("Switchboard-Event", "sms:message:status");
    original.insert("Nats-Msg-Id", "undecodable-1");
    let body = r#"{"mobile": "918921269123", "status": "DELIVRD"}"#;
    let ack = jetstream
        .publish_with_headers("sms.message.status", original, body.into())
        .await
        .expect("published")
        .await
        .expect("stored");
    let letter = wait_until("the sms service's dead letter", WAIT, || async {
        let list = run_ok(&system, dir, &["dlq", "list", "--json"]).await.json();
        list.as_array()?.first().cloned()
    })
    .await;
    assert_eq!(letter["component"], "sms");
    assert_eq!(letter["original_sequence"], ack.sequence);
    let dead_sequence = letter["sequence"].as_u64().expect("sequence");
    // It is not the gateway's to take: resubmit refuses it and names replay.
    let resubmit = run(&system, dir, &["dlq", "resubmit", &dead_sequence.to_string()]).await;
    assert!(!resubmit.success && resubmit.stderr.contains("dlq replay"), "{}", resubmit.stderr);

    let summary = run_ok(&system, dir, &["dlq", "replay", "--all", "--json"]).await.json();
    assert_eq!(summary["replayed"].as_array().map(Vec::len), Some(1), "{summary}");
    assert_eq!(summary["failed"].as_array().map(Vec::len), Some(0));
    let replayed = &summary["replayed"][0];
    assert_eq!(replayed["subject"], "sms.message.status");
    let stream_sequence = replayed["stream_sequence"].as_u64().expect("stream sequence");

    // The event is back in the main stream, byte for byte, with the original headers.
    let stream = jetstream.get_stream("SWITCHBOARD").await.expect("stream");
    let event = stream.get_raw_message(stream_sequence).await.expect("the replayed event");
    assert_eq!(event.payload.as_ref(), body.as_bytes());
    assert_eq!(event.subject.as_str(), "sms.message.status");
    let header = |name: &str| event.headers.get(name).map(|value| value.as_str().to_owned());
    assert_eq!(header("Switchboard-Replayed-From"), Some(dead_sequence.to_string()));
    assert_eq!(header("Switchboard-Source").as_deref(), Some("provider"));
    assert_eq!(header("Switchboard-Event").as_deref(), Some("sms:message:status"));
    assert_eq!(header("Nats-Msg-Id"), Some(format!("replay-{dead_sequence}-undecodable-1")));
    assert_eq!(header("Switchboard-Dlq-Reason"), None);

    // The first dead letter is gone; the sms service gives up on the replayed body in its turn.
    let after = wait_until("the replayed event's dead letter", WAIT, || async {
        let list = run_ok(&system, dir, &["dlq", "list", "--json"]).await.json();
        let list = list.as_array()?.clone();
        (list.first()?["original_sequence"] == stream_sequence).then_some(list)
    })
    .await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["component"], "sms");

    let purge_refused = run(&system, dir, &["dlq", "purge", "--all"]).await;
    assert!(!purge_refused.success && purge_refused.stderr.contains("--yes"));
    let purged = run_ok(&system, dir, &["dlq", "purge", "--all", "--yes", "--json"]).await.json();
    assert_eq!(purged["purged"], 1);
    let empty = run_ok(&system, dir, &["dlq", "list", "--json"]).await.json();
    assert_eq!(empty.as_array().map(Vec::len), Some(0));
    system.stop().await.expect("clean stop");
}

/// Starts `switchboard tail` with `args` and waits until it follows the stream.
async fn start_tail(system: &TestSystem, dir: &std::path::Path, args: &[&str]) -> tokio::process::Child {
    let mut tail = switchboard(system, dir)
        .arg("tail")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tail starts");
    let mut stderr = BufReader::new(tail.stderr.take().expect("stderr")).lines();
    let ready = tokio::time::timeout(WAIT, stderr.next_line()).await.expect("tail says it follows");
    let ready = ready.expect("stderr line").unwrap_or_default();
    assert!(ready.starts_with("following "), "{ready}");
    tail
}

async fn tail_lines(tail: tokio::process::Child) -> Vec<Value> {
    let output =
        tokio::time::timeout(WAIT, tail.wait_with_output()).await.expect("tail ends").expect("output");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

#[tokio::test]
async fn tail_prints_what_the_stream_stored_and_send_counts_a_load() {
    let system = TestSystem::start().await.expect("system starts");
    let data = data_dir();
    let dir = data.path();
    let send = |event: &'static str, extra: &'static [&'static str]| {
        let mut args = vec!["send", event, "--gateway", &system.gateway_url, "--token", TEST_TOKEN, "--json"];
        args.extend_from_slice(extra);
        args
    };

    // The same body three times is stored once: tail shows it once, then the next event.
    let tail = start_tail(&system, dir, &["--count", "2", "--json"]).await;
    let repeated = run_ok(&system, dir, &send("sms:message:status", &["--count", "3", "--concurrency", "1"]))
        .await
        .json();
    assert_eq!(repeated["stored"], 3);
    assert_eq!(repeated["duplicates"], 2);
    run_ok(&system, dir, &send("voice:message:out", &[])).await;
    let lines = tail_lines(tail).await;
    let subjects: Vec<&str> = lines.iter().filter_map(|line| line["subject"].as_str()).collect();
    assert_eq!(subjects, vec!["sms.message.status", "voice.message.out"]);
    assert_eq!(lines[0]["sequence"], 1);
    assert_eq!(lines[1]["sequence"], 2);
    assert_eq!(lines[0]["headers"]["Switchboard-Event"], "sms:message:status");
    assert_eq!(lines[0]["body"]["id"], "b34e35ad-fe34-4a8b-977c-b21cd76cd7d6:1");

    // --distinct: every copy is a message of its own, under a pattern, at a bounded rate.
    let tail = start_tail(&system, dir, &["sms.>", "--count", "3", "--json"]).await;
    let summary =
        run_ok(&system, dir, &send("sms:message:status", &["--count", "3", "--rate", "50", "--distinct"]))
            .await
            .json();
    assert_eq!(summary["sent"], 3);
    assert_eq!(summary["stored"], 3);
    assert_eq!(summary["duplicates"], 0);
    let lines = tail_lines(tail).await;
    let mut ids: Vec<String> =
        lines.iter().filter_map(|line| line["body"]["id"].as_str().map(str::to_owned)).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "{lines:?}");
    let request = ids[0].rsplit_once(':').expect("<request>:<recipient>").0.to_owned();
    let mut recipients: Vec<String> = ids.iter().map(|id| id.replace(&format!("{request}:"), "")).collect();
    recipients.sort();
    assert_eq!(recipients, vec!["1", "2", "3"], "one request's three recipients");
    for line in &lines {
        assert!(line["body"].get("switchboard_send_seq").is_none(), "{line}");
        assert_eq!(line["body"]["mobile"], "918921269123");
    }
    // Each is a message of its own in the sms service, with one report each.
    let listed = wait_until("the three messages", WAIT, || async {
        let listed =
            run_ok(&system, dir, &["sms", "list", "--endpoint", &system.grpc_url, "--json"]).await.json();
        (listed.as_array()?.len() == 4).then_some(listed)
    })
    .await;
    for id in &ids {
        assert!(listed.as_array().expect("an array").iter().any(|message| message["id"] == id.as_str()));
    }

    // From a past point: the stream's history, not live events.
    let history = run_ok(&system, dir, &["tail", "--from-sequence", "2", "--count", "2", "--json"]).await;
    let history: Vec<Value> =
        history.stdout.lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect();
    let sequences: Vec<u64> = history.iter().filter_map(|line| line["sequence"].as_u64()).collect();
    assert_eq!(sequences, vec![2, 3]);
    assert_eq!(history[0]["subject"], "voice.message.out");
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn completions_and_help_are_generated() {
    let data = data_dir();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["completions", shell])
            .current_dir(data.path())
            .output()
            .await
            .expect("runs");
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&output.stdout);
        assert!(script.contains("dlq") && script.contains("optout"), "{shell} completions name the commands");
    }
    for command in [
        &["send", "--help"][..],
        &["dlq", "replay", "--help"],
        &["sms", "list", "--help"],
        &["status", "--help"],
    ] {
        let output =
            Command::new(env!("CARGO_BIN_EXE_switchboard")).args(command).output().await.expect("runs");
        assert!(output.status.success());
        assert!(String::from_utf8_lossy(&output.stdout).contains("Example"), "{command:?} has an example");
    }
}

fn sms_report(id: &str, status: &str, deliv_time: &str) -> String {
    serde_json::json!({
        "id": id, "mobile": "918921269123", "status": status, "credits": "1.0000", "units": 1,
        "deliv_time": deliv_time, "sent_time": "2021-04-09 16:27:35", "submit_time": "2021-04-09 16:27:30",
    })
    .to_string()
}

/// Every message the service answers with, in list order, and each one as GetMessage returns it.
async fn sms_answers(
    system: &TestSystem,
) -> (Vec<switchboard_proto::sms::Message>, Vec<switchboard_proto::sms::Message>) {
    use switchboard_proto::sms::{GetMessageRequest, ListMessagesRequest};
    let mut client = system.sms().await;
    let listed = client
        .list_messages(ListMessagesRequest { page_size: 100, ..Default::default() })
        .await
        .expect("list messages")
        .into_inner()
        .messages;
    let mut got = Vec::new();
    for message in &listed {
        let request = GetMessageRequest { id: message.id.clone() };
        got.push(client.get_message(request).await.expect("get message").into_inner());
    }
    (listed, got)
}

#[tokio::test]
async fn rebuild_replays_the_stream_into_a_database_that_answers_like_the_live_one() {
    use switchboard_events::{EventKind, Product};
    let system = TestSystem::start().await.expect("system starts");
    let data = data_dir();
    let dir = data.path();

    // Statuses out of order, a report published twice, another product's event, and a body the
    // service cannot decode (dead-lettered in normal operation).
    let reports = [
        ("a:1", "DELIVRD", "2021-04-09 16:30:00"),
        ("a:1", "SUBMITTED", "2021-04-09 16:28:00"),
        ("b:1", "UNDELIV", "2021-04-09 16:29:00"),
        ("b:1", "UNDELIV", "2021-04-09 16:29:00"),
        ("c:1", "SUBMITTED", "2021-04-09 16:28:00"),
    ];
    // Each with the receive time the gateway would have stamped: the rebuild reads it as the live
    // service did (an event without one gets the time it is applied).
    for (index, (id, status, at)) in reports.into_iter().enumerate() {
        let received = format!("2021-04-09T16:40:0{index}Z");
        system.publish_direct(EventKind::SmsMessageStatus, sms_report(id, status, at), Some(&received)).await;
    }
    system
        .post_ok(
            "whatsapp:message:status",
            switchboard_tests::fixture("events", "whatsapp.message.status.json"),
        )
        .await;
    system.publish_direct(EventKind::SmsMessageStatus, "not json", None).await;
    let last = system
        .publish_direct(
            EventKind::SmsMessageStatus,
            sms_report("c:1", "DELIVRD", "2021-04-09 16:31:00"),
            Some("2021-04-09T16:41:00Z"),
        )
        .await;

    // Every batch committed, not only the last report's: two batches can be written at once on
    // PostgreSQL, and the live answers once showed c:1 without its first receive time, which the
    // batch before was still committing.
    system.wait_applied("sms", WAIT).await;
    let live = wait_until("the live service to apply every report", WAIT, || async {
        // Both answers must already show the last report: the list is read before the gets, so a
        // list taken while the last report was being applied would otherwise be stale.
        let (listed, got) = sms_answers(&system).await;
        let shows_last = |messages: &[switchboard_proto::sms::Message]| {
            messages.len() == 3 && messages.iter().any(|message| message.stream_sequence == last)
        };
        (shows_last(&listed) && shows_last(&got)).then_some((listed, got))
    })
    .await;

    let rebuilt_file = dir.join("rebuilt").join("sms.db");
    let rebuilt_path = rebuilt_file.display().to_string();
    let summary = run_ok(&system, dir, &["rebuild", "sms", "--into", &rebuilt_path, "--json"]).await.json();
    assert_eq!(summary["service"], "sms");
    assert_eq!(summary["events"], 7, "{summary}");
    assert_eq!(summary["applied"], 6, "{summary}");
    assert_eq!(summary["undecodable"], 1, "{summary}");
    assert_eq!(summary["failed"], 0, "{summary}");
    assert_eq!(summary["last_sequence"], last);
    assert_eq!(summary["swapped"], false);
    assert!(rebuilt_file.exists());
    // A new file: SQLite's header (bytes 16-17, big-endian) gives the page size it was created with.
    let header = std::fs::read(&rebuilt_file).expect("the rebuilt file reads");
    assert_eq!(
        u16::from_be_bytes([header[16], header[17]]),
        16 * 1024,
        "a rebuilt database has 16 KiB pages"
    );

    // A second sms service, on a NATS of its own, serving the rebuilt database.
    let url = switchboard_runtime::Secret::new(format!("sqlite://{rebuilt_path}?mode=rwc"));
    let replica = TestSystem::builder()
        .components(&[switchboard::Component::Service(Product::Sms)])
        .database(Product::Sms, url)
        .start()
        .await
        .expect("a service on the rebuilt database starts");
    let rebuilt = sms_answers(&replica).await;
    assert_eq!(rebuilt.0, live.0, "ListMessages differs");
    assert_eq!(rebuilt.1, live.1, "GetMessage differs");
    let statuses: Vec<(&str, &str)> =
        rebuilt.1.iter().map(|message| (message.id.as_str(), message.status.as_str())).collect();
    assert!(statuses.contains(&("a:1", "DELIVRD")) && statuses.contains(&("c:1", "DELIVRD")), "{statuses:?}");

    // A second rebuild into the same file is refused rather than merged.
    let again = run(&system, dir, &["rebuild", "sms", "--into", &rebuilt_path]).await;
    assert!(!again.success && again.stderr.contains("already exists"), "{}", again.stderr);
}

#[tokio::test]
async fn rebuild_with_swap_moves_the_files_and_resumes_the_consumer_after_the_rebuilt_events() {
    use async_nats::jetstream::consumer::{DeliverPolicy, pull};
    // The gateway alone: the sms service is stopped, as a swap requires.
    let system = TestSystem::builder()
        .components(&[switchboard::Component::Gateway])
        .start()
        .await
        .expect("system starts");
    let data = data_dir();
    let dir = data.path();
    let sent = run_ok(
        &system,
        dir,
        &["send", "sms:message:status", "--gateway", &system.gateway_url, "--token", TEST_TOKEN, "--json"],
    )
    .await
    .json();
    let sequence = sent["seq"].as_u64().expect("a sequence");
    // The stopped service's database and durable consumer, which has not read that event yet.
    run_ok(&system, dir, &["migrate", "sms"]).await;
    let jetstream = system.jetstream().await.expect("jetstream");
    let stream = jetstream.get_stream(&system.config.nats.stream.name).await.expect("stream");
    stream
        .create_consumer(pull::Config {
            durable_name: Some("sms".into()),
            filter_subject: "sms.>".into(),
            ..Default::default()
        })
        .await
        .expect("consumer");

    let summary = run_ok(&system, dir, &["rebuild", "sms", "--swap", "--json"]).await.json();
    assert_eq!(summary["applied"], 1, "{summary}");
    assert_eq!(summary["swapped"], true);
    assert_eq!(summary["consumers_reset"], serde_json::json!(["sms"]));
    assert!(dir.join("sms.db.bak").exists(), "the old database is kept");
    assert!(dir.join("sms.db").exists() && !dir.join("sms.db.rebuild").exists());

    let mut consumer = stream.get_consumer::<pull::Config>("sms").await.expect("consumer recreated");
    let info = consumer.info().await.expect("consumer info");
    assert_eq!(info.config.deliver_policy, DeliverPolicy::ByStartSequence { start_sequence: sequence + 1 });
    assert_eq!(info.num_pending, 0, "the rebuilt event is not delivered again");

    // The swapped-in file is the rebuilt database: a service on it answers for the event.
    let url = switchboard_runtime::Secret::new(format!("sqlite://{}?mode=rwc", dir.join("sms.db").display()));
    let replica = TestSystem::builder()
        .components(&[switchboard::Component::Service(switchboard_events::Product::Sms)])
        .database(switchboard_events::Product::Sms, url)
        .start()
        .await
        .expect("a service on the swapped database starts");
    let (listed, _) = sms_answers(&replica).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].stream_sequence, sequence);

    // A second swap would overwrite the backup: refused before anything is built.
    let again = run(&system, dir, &["rebuild", "sms", "--swap"]).await;
    assert!(!again.success && again.stderr.contains(".bak already exists"), "{}", again.stderr);
    assert!(!dir.join("sms.db.rebuild").exists());

    // The printed step after a rebuild without --swap: the consumer resumes after a given sequence,
    // and nothing is rebuilt.
    let resumed = run_ok(&system, dir, &["rebuild", "sms", "--resume-after", "0", "--json"]).await.json();
    assert_eq!(resumed["consumers_reset"], serde_json::json!(["sms"]), "{resumed}");
    assert_eq!(resumed["resume_at"], 1);
    let info = consumer.info().await.expect("consumer info");
    assert_eq!(info.config.deliver_policy, DeliverPolicy::ByStartSequence { start_sequence: 1 });
    assert_eq!(info.num_pending, 1, "the event is delivered again");
    assert!(!dir.join("sms.db.rebuild").exists());
    let refused = run(&system, dir, &["rebuild", "sms", "--resume-after", "3", "--swap"]).await;
    assert!(!refused.success && refused.stderr.contains("cannot be used with"), "{}", refused.stderr);
}

/// A configuration file that does not parse stops `config check` and every component, with the
/// file, line and column; a wrong type on a secret never shows the secret.
#[tokio::test]
async fn a_broken_configuration_file_stops_everything_and_shows_no_secret() {
    let directory = data_dir();
    let broken = directory.path().join("broken.toml");
    std::fs::write(&broken, "[grpc.auth]\nenabled = true,\n").expect("written");
    for args in
        [vec!["config", "check"], vec!["config", "check", "--for", "sms"], vec!["sms"], vec!["gateway"]]
    {
        let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("--config")
            .arg(&broken)
            .args(&args)
            .env_remove("SWITCHBOARD_CONFIG")
            .env("SWITCHBOARD_STORAGE__DATA_DIR", directory.path())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(20), output)
            .await
            .expect("it stops at once")
            .expect("it runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} accepted a broken file");
        assert!(stderr.contains("broken.toml, line 2, column 15"), "{args:?}: {stderr}");
        assert!(!String::from_utf8_lossy(&output.stdout).contains("valid"), "{args:?}");
    }
    let secret = directory.path().join("secret.toml");
    std::fs::write(&secret, "[[gateway.sources]]\nname = \"p\"\ntokens = \"s3cr3t-token-value\"\n")
        .expect("written");
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(&secret)
        .args(["config", "check"])
        .env_remove("SWITCHBOARD_CONFIG")
        .output()
        .await
        .expect("it runs");
    let printed =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!output.status.success());
    assert!(printed.contains("gateway.sources.0.tokens: invalid type: found a string"), "{printed}");
    assert!(!printed.contains("s3cr3t-token-value"), "{printed}");
}
