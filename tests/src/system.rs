//! The real components, in process, on port-0 listeners.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use switchboard::{Component, Listeners};
use switchboard_events::{EventKind, Product, Subjects};
use switchboard_proto::chat::chat_service_client::ChatServiceClient;
use switchboard_proto::contacts::contacts_service_client::ContactsServiceClient;
use switchboard_proto::interact::interact_service_client::InteractServiceClient;
use switchboard_proto::sms::sms_service_client::SmsServiceClient;
use switchboard_proto::voice::voice_service_client::VoiceServiceClient;
use switchboard_runtime::config::{Config, SourceConfig};
use switchboard_runtime::tokio_util::sync::CancellationToken;
use switchboard_runtime::{Secret, nats};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::{NatsServer, TestBackend, TestDatabase};

/// The token every test system's gateway accepts.
pub const TEST_TOKEN: &str = "test-token-0123456789abcdef";

/// A fixture from `tests/fixtures/<set>/<name>`, e.g. `fixture("events", "sms.message.status.json")`.
pub fn fixture(set: &str, name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(set, name)).unwrap_or_else(|error| panic!("fixture {set}/{name}: {error}"))
}

pub fn fixture_path(set: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(set).join(name)
}

/// Polls `probe` until it returns `Some`, or panics after `timeout` with `what`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A change to the configuration before start.
type ConfigEdit = Box<dyn FnOnce(&mut Config) + Send>;

pub struct TestSystemBuilder {
    components: Vec<Component>,
    nats_url: Option<String>,
    databases: Vec<(Product, Secret)>,
    edits: Vec<ConfigEdit>,
    /// Run on a runtime of its own, so [`TestSystem::kill`] can end it like a crashed process.
    own_runtime: bool,
}

impl std::fmt::Debug for TestSystemBuilder {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TestSystemBuilder")
            .field("components", &self.components)
            .finish_non_exhaustive()
    }
}

impl TestSystemBuilder {
    /// Only these components (default: all).
    pub fn components(mut self, components: &[Component]) -> Self {
        self.components = components.to_vec();
        self
    }

    /// Use this NATS server instead of starting one.
    pub fn nats(mut self, url: String) -> Self {
        self.nats_url = Some(url);
        self
    }

    /// Use this database for a product instead of creating one (replicas share a database).
    pub fn database(mut self, product: Product, url: Secret) -> Self {
        self.databases.push((product, url));
        self
    }

    /// Runs the components on a tokio runtime of their own (one worker thread), as a separate process
    /// would: [`TestSystem::kill`] then drops every task, connection and transaction at once, without
    /// any graceful shutdown.
    pub fn own_runtime(mut self) -> Self {
        self.own_runtime = true;
        self
    }

    /// Changes the configuration before start.
    pub fn configure(mut self, edit: impl FnOnce(&mut Config) + Send + 'static) -> Self {
        self.edits.push(Box::new(edit));
        self
    }

    pub async fn start(self) -> anyhow::Result<TestSystem> {
        crate::init_test_logging();
        let (nats_server, nats_url) = match self.nats_url {
            Some(url) => (None, url),
            None => {
                let server = NatsServer::start()?;
                let url = server.url();
                (Some(server), url)
            }
        };
        let data_dir = tempfile::Builder::new().prefix("switchboard-data-").tempdir()?;
        let mut config = Config::default();
        config.nats.url = nats_url;
        config.storage.data_dir = data_dir.path().to_path_buf();
        config.gateway.sources = vec![SourceConfig::with_tokens("provider", vec![Secret::new(TEST_TOKEN)])];
        // Quick retries keep fault tests short.
        for product in Product::ALL {
            let consumer = &mut config.service_mut(product).consumer;
            consumer.retry_initial = Duration::from_millis(100);
            consumer.retry_max = Duration::from_secs(1);
        }
        let backend = TestBackend::from_env();
        let mut databases = Vec::new();
        let services: Vec<Product> = self
            .components
            .iter()
            .filter_map(|component| match component {
                Component::Service(product) => Some(*product),
                Component::Gateway => None,
            })
            .collect();
        for product in services {
            let url = match self.databases.iter().find(|(given, _)| *given == product) {
                Some((_, url)) => url.clone(),
                None => {
                    let database = TestDatabase::create(backend, product.name()).await?;
                    let url = database.url();
                    databases.push(database);
                    url
                }
            };
            config.service_mut(product).database_url = Some(url);
        }
        for edit in self.edits {
            edit(&mut config);
        }
        let problems = config.validate();
        anyhow::ensure!(problems.is_empty(), "invalid test configuration: {problems:?}");

        let runtime = if self.own_runtime {
            Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("switchboard-under-test")
                    .enable_all()
                    .build()?,
            )
        } else {
            None
        };
        // Sockets belong to the runtime that drives them: bind plain sockets, register them there.
        let bind = || -> anyhow::Result<std::net::TcpListener> {
            let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        };
        let (admin, gateway, grpc) = (bind()?, bind()?, bind()?);
        let admin_address = admin.local_addr()?;
        let gateway_address = gateway.local_addr()?;
        let grpc_address = grpc.local_addr()?;
        let config = Arc::new(config);
        let stop = CancellationToken::new();
        let handle = match &runtime {
            Some(runtime) => runtime.handle().clone(),
            None => tokio::runtime::Handle::current(),
        };
        let listeners = {
            let _entered = handle.enter();
            Listeners {
                admin: TcpListener::from_std(admin)?,
                gateway: Some(TcpListener::from_std(gateway)?),
                grpc: Some(TcpListener::from_std(grpc)?),
            }
        };
        let task =
            handle.spawn(switchboard::run(config.clone(), self.components.clone(), listeners, stop.clone()));
        let system = TestSystem {
            config,
            nats_server,
            gateway_url: format!("http://{gateway_address}"),
            grpc_url: format!("http://{grpc_address}"),
            admin_url: format!("http://{admin_address}"),
            http: reqwest::Client::new(),
            stop,
            task: Some(task),
            runtime,
            _databases: databases,
            _data_dir: data_dir,
        };
        system.wait_ready().await?;
        Ok(system)
    }
}

/// A running set of components with their own NATS (unless given one) and databases.
#[derive(Debug)]
pub struct TestSystem {
    pub config: Arc<Config>,
    /// The NATS server this system started (absent when it was given one).
    pub nats_server: Option<NatsServer>,
    pub gateway_url: String,
    pub grpc_url: String,
    pub admin_url: String,
    pub http: reqwest::Client,
    stop: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    /// The runtime of its own, when built with [`TestSystemBuilder::own_runtime`].
    runtime: Option<tokio::runtime::Runtime>,
    _databases: Vec<TestDatabase>,
    _data_dir: tempfile::TempDir,
}

impl TestSystem {
    pub fn builder() -> TestSystemBuilder {
        TestSystemBuilder {
            components: Component::available(),
            nats_url: None,
            databases: Vec::new(),
            edits: Vec::new(),
            own_runtime: false,
        }
    }

    /// Every component, with its own NATS and databases.
    pub async fn start() -> anyhow::Result<TestSystem> {
        TestSystem::builder().start().await
    }

    /// Waits for `/readyz` to answer 200.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(task) = &self.task
                && task.is_finished()
            {
                anyhow::bail!("the system stopped during start-up");
            }
            let ready = self.http.get(format!("{}/readyz", self.admin_url)).send().await;
            if matches!(&ready, Ok(response) if response.status().is_success()) {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the system did not become ready: {:?}",
                ready.map(|r| r.status())
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Posts `body` to `/v1/events/{event}` with the test token.
    pub async fn post(&self, event: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/events/{event}", self.gateway_url))
            .bearer_auth(TEST_TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("the gateway answers")
    }

    /// Posts and asserts a 200, returning the answer's JSON.
    pub async fn post_ok(&self, event: &str, body: impl Into<reqwest::Body>) -> serde_json::Value {
        let response = self.post(event, body).await;
        let status = response.status();
        let answer: serde_json::Value = response.json().await.expect("a JSON answer");
        assert_eq!(status, 200, "answer: {answer}");
        answer
    }

    pub async fn sms(&self) -> SmsServiceClient<Channel> {
        SmsServiceClient::connect(self.grpc_url.clone()).await.expect("grpc connects")
    }

    pub async fn chat(&self) -> ChatServiceClient<Channel> {
        ChatServiceClient::connect(self.grpc_url.clone()).await.expect("grpc connects")
    }

    pub async fn voice(&self) -> VoiceServiceClient<Channel> {
        VoiceServiceClient::connect(self.grpc_url.clone()).await.expect("grpc connects")
    }

    pub async fn interact(&self) -> InteractServiceClient<Channel> {
        InteractServiceClient::connect(self.grpc_url.clone()).await.expect("grpc connects")
    }

    pub async fn contacts(&self) -> ContactsServiceClient<Channel> {
        ContactsServiceClient::connect(self.grpc_url.clone()).await.expect("grpc connects")
    }

    /// Waits for the dead letter of the event stored at `sequence` in the events stream, and returns it
    /// (its headers say why and where it came from).
    pub async fn dead_letter_of(&self, sequence: u64) -> async_nats::jetstream::message::StreamMessage {
        let jetstream = self.jetstream().await.expect("jetstream");
        let wanted = sequence.to_string();
        wait_until(&format!("the dead letter of event {sequence}"), Duration::from_secs(15), || {
            let jetstream = jetstream.clone();
            let wanted = wanted.clone();
            async move {
                let mut stream =
                    jetstream.get_stream(&self.config.nats.dead_letter_stream.name).await.ok()?;
                let state = stream.info().await.ok()?.state.clone();
                for dead_sequence in state.first_sequence..=state.last_sequence {
                    let Ok(letter) = stream.get_raw_message(dead_sequence).await else { continue };
                    let original = letter.headers.get(switchboard_events::headers::DLQ_ORIGINAL_SEQUENCE);
                    if original.map(|value| value.as_str()) == Some(wanted.as_str()) {
                        return Some(letter);
                    }
                }
                None
            }
        })
        .await
    }

    /// Publishes `body` straight to the event's subject, as a publisher other than the gateway would:
    /// no `Nats-Msg-Id` (so the same body is stored again), and `received_at` (RFC 3339) as the receive
    /// time when given. Returns the event's stream sequence.
    pub async fn publish_direct(
        &self,
        kind: EventKind,
        body: impl Into<bytes::Bytes>,
        received_at: Option<&str>,
    ) -> u64 {
        let jetstream = self.jetstream().await.expect("jetstream");
        let subjects = Subjects::new(&self.config.nats.subject_prefix).expect("valid prefix");
        let mut header_map = async_nats::HeaderMap::new();
        header_map.insert(switchboard_events::headers::EVENT, kind.as_str());
        if let Some(received_at) = received_at {
            header_map.insert(switchboard_events::headers::RECEIVED_AT, received_at);
        }
        let acknowledgement = jetstream
            .publish_with_headers(subjects.event(kind), header_map, body.into())
            .await
            .expect("publish")
            .await
            .expect("stored");
        acknowledgement.sequence
    }

    /// A JetStream context on this system's NATS, for looking at streams directly.
    pub async fn jetstream(&self) -> anyhow::Result<async_nats::jetstream::Context> {
        let client = nats::connect_once(&self.config.nats, "test").await.context("test client connects")?;
        Ok(async_nats::jetstream::new(client))
    }

    /// Waits until durable consumer `durable` has nothing pending and nothing unacknowledged: every
    /// event of its subjects applied and committed (a batch is acknowledged after its commit). On
    /// PostgreSQL two batches are written at once, so a later event can show before an earlier
    /// batch has committed: seeing the last event is not enough. Fails after `timeout`.
    pub async fn wait_applied(&self, durable: &str, timeout: Duration) {
        let jetstream = self.jetstream().await.expect("jetstream");
        let stream_name = self.config.nats.stream.name.clone();
        wait_until(&format!("consumer {durable} to acknowledge every event"), timeout, || {
            let (jetstream, stream_name) = (jetstream.clone(), stream_name.clone());
            async move {
                let stream = jetstream.get_stream(&stream_name).await.ok()?;
                let mut consumer: async_nats::jetstream::consumer::PullConsumer =
                    stream.get_consumer(durable).await.ok()?;
                let info = consumer.info().await.ok()?;
                (info.num_pending == 0 && info.num_ack_pending == 0).then_some(())
            }
        })
        .await
    }

    /// Signals shutdown and waits for every component to stop.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        match self.task.take() {
            Some(task) => task.await.context("the system task panicked")?,
            None => Ok(()),
        }
    }

    /// Ends the system at once, like SIGKILL ends a process: every task is dropped where it stands,
    /// connections close without goodbye, open transactions are rolled back by the database, and
    /// nothing is acknowledged. Needs [`TestSystemBuilder::own_runtime`].
    pub fn kill(mut self) {
        let runtime = self.runtime.take().expect("kill needs a system built with own_runtime()");
        self.task.take();
        runtime.shutdown_background();
    }
}

impl Drop for TestSystem {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime may block, which async code must not: let it finish in the background.
            runtime.shutdown_background();
        }
    }
}
