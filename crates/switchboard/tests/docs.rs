//! The documentation's examples, run as a user runs them: `switchboard up` as a process (on a
//! private nats-server and free ports, SQLite in a temporary directory), fed every bundled example
//! through the gateway, then
//! - every `switchboard …` command in README.md and docs/cli.md (```console blocks, run by
//!   `trycmd`), with the output shown there compared (`...` and `[..]` stand for what varies);
//! - every `grpcurl …` command in README.md and docs/api.md, through gRPC reflection like grpcurl:
//!   the method and message types come from the server, the request is the documented JSON, and the
//!   answer must be a success that is not empty (streams: accepted and still open after a moment).
//!
//! A command in a code block that is not run here fails the test, so an example cannot be added
//! without being run. `TRYCMD=overwrite` writes the actual outputs into the documents (then put the
//! wildcards back where they vary).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor};
use switchboard_tests::NatsServer;
use tokio::process::{Child, Command};
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

const WAIT: Duration = Duration::from_secs(30);
/// Where the documents say `switchboard up` serves gRPC; replaced by the test's address.
const DOCUMENTED_GRPC: &str = "127.0.0.1:50051";

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository")
}

fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").to_string()
}

/// `switchboard up` and what a user's shell would hold to reach it.
struct Up {
    child: Child,
    environment: Vec<(String, String)>,
    grpc: String,
    gateway: String,
    admin: String,
    stderr: PathBuf,
    stdout: PathBuf,
    _home: tempfile::TempDir,
}

impl Up {
    async fn start(nats: &NatsServer) -> Up {
        let home =
            tempfile::Builder::new().prefix("switchboard-docs-").tempdir().expect("temporary directory");
        let (gateway, grpc, admin) = (free_address(), free_address(), free_address());
        let environment: Vec<(String, String)> = vec![
            ("SWITCHBOARD_NATS__URL".into(), nats.url()),
            ("SWITCHBOARD_STORAGE__DATA_DIR".into(), home.path().join("data").display().to_string()),
            ("SWITCHBOARD_GATEWAY__LISTEN".into(), gateway.clone()),
            ("SWITCHBOARD_GRPC__LISTEN".into(), grpc.clone()),
            ("SWITCHBOARD_ADMIN__LISTEN".into(), admin.clone()),
            ("NO_COLOR".into(), "1".into()),
            ("COLUMNS".into(), "200".into()),
        ];
        let stdout = home.path().join("up.stdout");
        let stderr = home.path().join("up.stderr");
        let child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("up")
            .env_remove("SWITCHBOARD_CONFIG")
            .env_remove("RUST_LOG")
            .envs(environment.iter().cloned())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .kill_on_drop(true)
            .spawn()
            .expect("switchboard up starts");
        let up = Up { child, environment, grpc, gateway, admin, stderr, stdout, _home: home };
        up.wait_ready().await;
        up
    }

    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let ready = client.get(format!("http://{}/readyz", self.admin)).send().await;
            if ready.is_ok_and(|response| response.status().is_success()) {
                return;
            }
            assert!(started.elapsed() < WAIT, "switchboard up is not ready: {}", self.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn token(&self) -> String {
        let data = &self.environment[1].1;
        std::fs::read_to_string(Path::new(data).join("gateway-token"))
            .expect("the generated token")
            .trim()
            .to_owned()
    }

    /// Every bundled example, as the provider would post it, and one body the gateway refuses (the
    /// documents' dead letter 1).
    async fn feed(&self) {
        let client = reqwest::Client::new();
        let token = self.token();
        let post = |event: String, body: Vec<u8>| {
            let request = client
                .post(format!("http://{}/v1/events/{event}", self.gateway))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body);
            async move { request.send().await.expect("the gateway answers").status().as_u16() }
        };
        assert_eq!(
            post("sms:message:status".into(), b"{\"id\": \"b34e35ad-fe34\", \"status\":".to_vec()).await,
            422
        );
        let directory = repository().join("tests/fixtures/events");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&directory)
            .expect("fixtures")
            .map(|entry| entry.expect("entry").path())
            .collect();
        files.sort();
        for file in files {
            let name = file.file_name().expect("name").to_string_lossy().into_owned();
            // `rcs.message.in.incoming-media.json` → `rcs:message:in`; the contact versions are one event.
            let stem = name.trim_end_matches(".json");
            let event = if stem.starts_with("contacts.") {
                "contacts:subscriber:subscription".to_owned()
            } else {
                stem.split('.').take(3).collect::<Vec<_>>().join(":")
            };
            let status = post(event.clone(), std::fs::read(&file).expect("fixture")).await;
            assert_eq!(status, 200, "{name} as {event}");
        }
    }

    /// Waits until every durable consumer has applied everything (`switchboard status`, as a user
    /// would check).
    async fn wait_drained(&self) {
        let started = Instant::now();
        loop {
            let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
                .args(["status", "--json"])
                .envs(self.environment.iter().cloned())
                .output()
                .await
                .expect("status runs");
            let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
            let drained = status["consumers"].as_array().is_some_and(|consumers| {
                consumers.len() >= 6
                    && consumers
                        .iter()
                        .all(|consumer| consumer["pending"] == 0 && consumer["ack_pending"] == 0)
            });
            if drained {
                return;
            }
            assert!(started.elapsed() < WAIT, "not drained: {status}\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Ctrl-C, as a user stops it: everything, its nats-server included, stops cleanly.
    async fn interrupt(mut self) -> (String, String) {
        let pid = self.child.id().expect("running");
        let status =
            std::process::Command::new("kill").args(["-INT", &pid.to_string()]).status().expect("kill");
        assert!(status.success());
        let exit =
            tokio::time::timeout(WAIT, self.child.wait()).await.expect("up stops").expect("exit status");
        let stderr = self.logs();
        assert!(exit.success(), "switchboard up exited with {exit}: {stderr}");
        (std::fs::read_to_string(&self.stdout).unwrap_or_default(), stderr)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_examples_run_and_show_what_the_documents_say() {
    let nats = NatsServer::start().expect("nats-server starts");
    let up = Up::start(&nats).await;
    // The README's first webhook, before anything else reached the stream: its answer as shown.
    first_webhook(&up).await;
    up.feed().await;
    up.wait_drained().await;

    // Relative paths in the examples are the repository's, where a user runs them.
    std::env::set_current_dir(repository()).expect("the repository");
    for document in ["README.md", "docs/cli.md"] {
        commands_outside_console_blocks(document, "switchboard ");
        let cases = trycmd::TestCases::new();
        cases
            .register_bin("switchboard", Path::new(env!("CARGO_BIN_EXE_switchboard")))
            .register_bin("grpcurl", trycmd::schema::Bin::Ignore)
            .register_bin("curl", trycmd::schema::Bin::Ignore)
            .env("RUST_LOG", "");
        for (name, value) in &up.environment {
            cases.env(name.clone(), value.clone());
        }
        cases.case(document).run();
    }

    let mut calls = 0;
    let mut failures = Vec::new();
    for document in ["README.md", "docs/api.md"] {
        for command in grpcurl_commands(document) {
            if let Err(error) = run_grpcurl(&command, &up.grpc).await {
                failures.push(format!("{document}: {command}\n  {error}"));
            }
            calls += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {calls} grpcurl examples fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(calls >= 20, "only {calls} grpcurl examples found");

    let (stdout, stderr) = up.interrupt().await;
    assert!(
        stdout.contains(&format!("NATS:     {} (a server that was already running there)", nats.url())),
        "{stdout}"
    );
    assert!(!stderr.contains('\x1b'), "logs written to a file carry no colour codes: {stderr}");
}

/// Runs the README's "send a delivery report" block with bash, as a user pastes it (its address
/// and token file made this system's), and compares the answer with the one shown under it.
async fn first_webhook(up: &Up) {
    let (_, lines) = code_blocks("README.md")
        .into_iter()
        .find(|(info, lines)| info == "sh" && lines.iter().any(|line| line.contains("curl ")))
        .expect("the README's first webhook");
    let data = &up.environment[1].1;
    let script: String = lines
        .iter()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            line.replace("data/gateway-token", &format!("{data}/gateway-token"))
                .replace("http://127.0.0.1:8080", &format!("http://{}", up.gateway))
        })
        .collect::<Vec<_>>()
        .join("\n");
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(repository())
        .output()
        .await
        .expect("bash runs");
    assert!(output.status.success(), "{script}\n{}", String::from_utf8_lossy(&output.stderr));
    let shown = lines
        .iter()
        .find_map(|line| line.strip_prefix("# {"))
        .map(|rest| format!("{{{rest}"))
        .expect("the answer shown in the README");
    let mut shown: serde_json::Value = serde_json::from_str(&shown).expect("the shown answer is JSON");
    let mut answer: serde_json::Value = serde_json::from_slice(&output.stdout).expect("the answer is JSON");
    // The request id is new every time ("…" in the README).
    assert!(answer["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{answer}");
    shown["request_id"] = serde_json::Value::Null;
    answer["request_id"] = serde_json::Value::Null;
    assert_eq!(answer, shown);
}

/// Fenced code blocks of a document, with their info strings: (info, lines).
fn code_blocks(document: &str) -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(repository().join(document)).expect("the document");
    let mut blocks = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in text.lines() {
        match (&mut current, line.trim_start().strip_prefix("```")) {
            (None, Some(info)) => current = Some((info.trim().to_owned(), Vec::new())),
            (Some(_), Some(_)) => blocks.push(current.take().expect("open block")),
            (Some((_, lines)), None) => lines.push(line.to_owned()),
            (None, None) => {}
        }
    }
    assert!(current.is_none(), "{document}: a code block is never closed");
    blocks
}

/// A `switchboard` command in a code block that trycmd does not run is an example nobody checks.
fn commands_outside_console_blocks(document: &str, prefix: &str) {
    for (info, lines) in code_blocks(document) {
        if info == "console" {
            continue;
        }
        for line in lines {
            let command = line.trim_start().trim_start_matches("$ ");
            assert!(
                !command.starts_with(prefix) && !command.contains(&format!("| {prefix}")),
                "{document}: `{line}` is in a ```{info} block, so it is never run: show it in a ```console block"
            );
        }
    }
}

/// Every `grpcurl` command in a document's code blocks, continuation lines joined.
fn grpcurl_commands(document: &str) -> Vec<String> {
    let mut commands = Vec::new();
    for (_, lines) in code_blocks(document) {
        let mut pending: Option<String> = None;
        for line in lines {
            let line = line.trim().trim_start_matches("$ ").trim_start_matches("> ");
            let text = match pending.take() {
                Some(start) => format!("{start} {line}"),
                None if line.starts_with("grpcurl ") => line.to_owned(),
                None => continue,
            };
            match text.strip_suffix('\\') {
                Some(start) => pending = Some(start.trim_end().to_owned()),
                None => commands.push(text),
            }
        }
    }
    commands
}

/// Runs one grpcurl command line the way grpcurl would: reflection, JSON in, a non-empty answer.
async fn run_grpcurl(command: &str, grpc: &str) -> Result<(), String> {
    let words = shlex::split(command).ok_or("unbalanced quotes")?;
    let mut data = "{}".to_owned();
    let mut positional = Vec::new();
    let mut words = words.into_iter().skip(1);
    while let Some(word) = words.next() {
        match word.as_str() {
            "-plaintext" => {}
            "-d" => data = words.next().ok_or("-d without data")?,
            flag if flag.starts_with('-') => return Err(format!("{flag} is not understood by this check")),
            _ => positional.push(word),
        }
    }
    let [address, method] = positional.as_slice() else {
        return Err(format!("expected an address and a method, got {positional:?}"));
    };
    if address != DOCUMENTED_GRPC {
        return Err(format!("the examples address switchboard up at {DOCUMENTED_GRPC}, not {address}"));
    }
    let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
        .map_err(|error| error.to_string())?
        .connect()
        .await
        .map_err(|error| error.to_string())?;
    let (service, method_name) = method.rsplit_once('/').ok_or("the method is not Service/Method")?;
    let pool = reflect(channel.clone(), service).await?;
    let descriptor = pool
        .get_service_by_name(service)
        .ok_or_else(|| format!("reflection does not know {service}"))?
        .methods()
        .find(|candidate| candidate.name() == method_name)
        .ok_or_else(|| format!("{service} has no method {method_name}"))?;
    let mut deserializer = serde_json::Deserializer::from_str(&data);
    let request = DynamicMessage::deserialize(descriptor.input(), &mut deserializer)
        .map_err(|error| format!("the request is not a {}: {error}", descriptor.input().full_name()))?;
    call(channel, &descriptor, request).await
}

/// The descriptors of the file defining `symbol` and everything it imports, from the server.
async fn reflect(channel: tonic::transport::Channel, symbol: &str) -> Result<DescriptorPool, String> {
    let mut client = ServerReflectionClient::new(channel);
    let mut files: Vec<prost_types::FileDescriptorProto> = Vec::new();
    let mut wanted = vec![MessageRequest::FileContainingSymbol(symbol.to_owned())];
    while let Some(request) = wanted.pop() {
        let request = ServerReflectionRequest { host: String::new(), message_request: Some(request) };
        let mut answers = client
            .server_reflection_info(futures::stream::iter([request]))
            .await
            .map_err(|error| format!("reflection: {error}"))?
            .into_inner();
        let answer =
            answers.message().await.map_err(|error| format!("reflection: {error}"))?.ok_or("no answer")?;
        let Some(MessageResponse::FileDescriptorResponse(response)) = answer.message_response else {
            return Err(format!("reflection answered {:?}", answer.message_response));
        };
        for bytes in response.file_descriptor_proto {
            let file = prost_types::FileDescriptorProto::decode(bytes.as_slice())
                .map_err(|error| error.to_string())?;
            if files.iter().all(|known| known.name != file.name) {
                files.push(file);
            }
        }
        for file in &files {
            for dependency in &file.dependency {
                if files.iter().all(|known| known.name.as_deref() != Some(dependency.as_str())) {
                    wanted.push(MessageRequest::FileByFilename(dependency.clone()));
                }
            }
        }
        wanted.dedup();
    }
    DescriptorPool::from_file_descriptor_set(prost_types::FileDescriptorSet { file: files })
        .map_err(|error| error.to_string())
}

async fn call(
    channel: tonic::transport::Channel,
    method: &MethodDescriptor,
    request: DynamicMessage,
) -> Result<(), String> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|error| error.to_string())?;
    let path: tonic::codegen::http::uri::PathAndQuery =
        format!("/{}/{}", method.parent_service().full_name(), method.name()).parse().map_err(|_| "path")?;
    let codec = DynamicCodec(method.output());
    if method.is_server_streaming() {
        let mut stream = grpc
            .server_streaming(tonic::Request::new(request), path, codec)
            .await
            .map_err(|status| format!("{status:?}"))?
            .into_inner();
        // A watch waits for changes: it must be accepted and stay open without an error.
        return match tokio::time::timeout(Duration::from_millis(500), stream.message()).await {
            Err(_) | Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => Err(format!("{status:?}")),
        };
    }
    let answer = grpc
        .unary(tonic::Request::new(request), path, codec)
        .await
        .map_err(|status| format!("{status:?}"))?
        .into_inner();
    let options = prost_reflect::SerializeOptions::new().skip_default_fields(false);
    let json = answer
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|error| error.to_string())?;
    let empty = match &json {
        serde_json::Value::Object(fields) => fields.values().all(|value| match value {
            serde_json::Value::Array(items) => items.is_empty(),
            serde_json::Value::String(text) => text.is_empty(),
            serde_json::Value::Null => true,
            _ => false,
        }),
        _ => true,
    };
    if empty {
        return Err(format!("the answer is empty: {json}"));
    }
    Ok(())
}

/// Encodes and decodes the messages reflection described.
#[derive(Clone)]
struct DynamicCodec(prost_reflect::MessageDescriptor);

impl tonic::codec::Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicCodec;
    type Decoder = DynamicCodec;

    fn encoder(&mut self) -> Self::Encoder {
        self.clone()
    }

    fn decoder(&mut self) -> Self::Decoder {
        self.clone()
    }
}

impl tonic::codec::Encoder for DynamicCodec {
    type Item = DynamicMessage;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: DynamicMessage,
        buffer: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Self::Error> {
        item.encode(buffer).map_err(|error| tonic::Status::internal(error.to_string()))
    }
}

impl tonic::codec::Decoder for DynamicCodec {
    type Item = DynamicMessage;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        buffer: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<DynamicMessage>, Self::Error> {
        let mut message = DynamicMessage::new(self.0.clone());
        message.merge(buffer).map_err(|error| tonic::Status::internal(error.to_string()))?;
        Ok(Some(message))
    }
}
