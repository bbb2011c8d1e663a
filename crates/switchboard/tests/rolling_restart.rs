//! A rolling restart of everything under load, with real processes: two `switchboard gateway`
//! processes and two processes of every service (one database per service, shared by its two
//! replicas), twelve in all, on one `nats-server`. While the provider's load flows through both
//! gateways, every process in turn gets SIGTERM, must exit cleanly, is started again and must answer
//! `/readyz` before the next one goes. Afterwards every accepted event is stored once and projected
//! once, nothing is dead-lettered, and the state equals a clean replay of the stream.

use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use switchboard::Component;
use switchboard_events::Product;
use switchboard_tests::faults::check::{
    Services, assert_replay_matches, assert_same_state, snapshot, verify, wait_drained,
};
use switchboard_tests::faults::load::{Load, workload};
use switchboard_tests::{NatsServer, TEST_TOKEN, TestBackend, TestDatabase, TestSystem};
use tokio::process::{Child, Command};

/// Message ids in the workload (about 3,700 deliveries in all: enough to outlast twelve restarts on a
/// busy machine, where each takes longer while the load runs on).
const MESSAGES: usize = 480;
/// The provider gives up after this long; the restarts and the load must be done well before.
const LOAD_DEADLINE: Duration = Duration::from_secs(75);
/// A process must be ready this long after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// A process must have exited this long after SIGTERM (shutdown.timeout is 10 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Replicas of every component.
const REPLICAS: usize = 2;
/// Deliveries accepted after a restarted process is ready before the next one is stopped, so that
/// every restart lands in the middle of the load and each restarted process takes part of it.
const BETWEEN_RESTARTS: usize = 100;

/// Ports that were free when chosen, all different. They come from below Linux's default range of
/// ephemeral ports (32768 and up), so that no outgoing connection takes one while its process is
/// restarting: each process is started again on the same ports.
fn free_ports(count: usize) -> Vec<u16> {
    let mut ports = Vec::with_capacity(count);
    while ports.len() < count {
        let port = rand::random_range(20_000..32_000);
        if !ports.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
        }
    }
    ports
}

/// A TOML basic string.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

/// The configuration every process reads: the gateway's source, one database per service (both
/// replicas on it), small batches (a stop is likely to find one in progress) and quick retries. The
/// acknowledgement wait stays at its default, 30 s, as in production: an event that was on its way to
/// a replica as it stopped is redelivered only that long afterwards, which the time the consumers
/// take to drain after the load shows.
fn config_file(directory: &Path, nats_url: &str, databases: &[(Product, String)]) -> PathBuf {
    let mut text = format!(
        "[nats]\nurl = {}\n\n[log]\nfilter = \"info\"\n\n[shutdown]\ndrain_delay = \"0s\"\ntimeout = \"10s\"\n\n\
         [storage]\ndata_dir = {}\n\n[[gateway.sources]]\nname = \"provider\"\ntokens = [{}]\n",
        quoted(nats_url),
        quoted(&directory.join("data").display().to_string()),
        quoted(TEST_TOKEN),
    );
    for (product, url) in databases {
        let name = product.name();
        text.push_str(&format!(
            "\n[{name}]\ndatabase_url = {}\nacquire_timeout = \"500ms\"\n\n[{name}.consumer]\nbatch_size = 16\n\
             retry_initial = \"100ms\"\nretry_max = \"500ms\"\n",
            quoted(url)
        ));
    }
    let path = directory.join("switchboard.toml");
    std::fs::write(&path, text).expect("the configuration is written");
    path
}

/// One `switchboard <component>` process, started again on the same ports after each stop, with its
/// output appended to a log file.
struct Replica {
    component: Component,
    number: usize,
    config: PathBuf,
    admin_port: u16,
    /// The gateway's HTTP port, or the service's gRPC port.
    port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl Replica {
    fn new(component: Component, number: usize, ports: [u16; 2], directory: &Path, config: &Path) -> Replica {
        let name = format!("{}-{number}", component.name());
        Replica {
            component,
            number,
            config: config.to_path_buf(),
            admin_port: ports[0],
            port: ports[1],
            log: directory.join(format!("{name}.log")),
            child: None,
        }
    }

    fn name(&self) -> String {
        format!("{}-{}", self.component.name(), self.number)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new().create(true).append(true).open(&self.log).expect("the log file opens");
        let listen = match self.component {
            Component::Gateway => "SWITCHBOARD_GATEWAY__LISTEN",
            Component::Service(_) => "SWITCHBOARD_GRPC__LISTEN",
        };
        let child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg(self.component.name())
            .env("SWITCHBOARD_CONFIG", &self.config)
            .env("SWITCHBOARD_ADMIN__LISTEN", format!("127.0.0.1:{}", self.admin_port))
            .env(listen, format!("127.0.0.1:{}", self.port))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("switchboard {} starts: {error}", self.name()));
        self.child = Some(child);
    }

    /// Waits until `/readyz` answers 200; the process must not exit meanwhile.
    async fn wait_ready(&mut self, http: &reqwest::Client) {
        let url = format!("http://127.0.0.1:{}/readyz", self.admin_port);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("the process can be polled") {
                panic!("{} exited during start-up: {status}", self.name());
            }
            let ready = http.get(&url).send().await;
            if matches!(&ready, Ok(response) if response.status().is_success()) {
                return;
            }
            assert!(Instant::now() < deadline, "{} not ready after {START_TIMEOUT:?}", self.name());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Sends SIGTERM and waits for the process to exit; it must exit successfully (a clean shutdown).
    async fn terminate(&mut self) {
        let mut child = self.child.take().expect("running");
        let pid = child.id().expect("the process has not been reaped");
        let signalled =
            Command::new("kill").args(["-TERM", &pid.to_string()]).status().await.expect("kill runs");
        assert!(signalled.success(), "SIGTERM sent to {}", self.name());
        let status = tokio::time::timeout(STOP_TIMEOUT, child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} still running {STOP_TIMEOUT:?} after SIGTERM", self.name()))
            .expect("the process is reaped");
        assert!(status.success(), "{} shut down cleanly on SIGTERM: {status}", self.name());
    }
}

/// Every process of the test; when the test fails, the end of each one's log is printed.
struct Fleet {
    replicas: Vec<Replica>,
}

impl Fleet {
    async fn start(replicas: Vec<Replica>, http: &reqwest::Client) -> Fleet {
        let mut fleet = Fleet { replicas };
        for replica in &mut fleet.replicas {
            replica.spawn();
        }
        for replica in &mut fleet.replicas {
            replica.wait_ready(http).await;
        }
        fleet
    }

    fn gateway_urls(&self) -> Vec<String> {
        self.replicas
            .iter()
            .filter(|replica| replica.component == Component::Gateway)
            .map(Replica::url)
            .collect()
    }

    /// Replica `number` of each service.
    fn services(&self, number: usize) -> Services {
        Services::each_at(self.replicas.iter().filter(|replica| replica.number == number).filter_map(
            |replica| match replica.component {
                Component::Service(product) => Some((product, replica.url())),
                Component::Gateway => None,
            },
        ))
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for replica in &self.replicas {
            let log = std::fs::read_to_string(&replica.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!("--- the last lines of {} ---", replica.name());
            for line in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{line}");
            }
        }
    }
}

/// The consumers of the events stream with events not yet applied and acknowledged, and how many.
async fn unacknowledged(jetstream: &async_nats::jetstream::Context) -> Vec<(String, u64)> {
    let stream = jetstream.get_stream("SWITCHBOARD").await.expect("the events stream");
    let names: Vec<String> = stream.consumer_names().try_collect().await.expect("consumer names");
    let mut behind = Vec::new();
    for name in names {
        let mut consumer: async_nats::jetstream::consumer::PullConsumer =
            stream.get_consumer(&name).await.expect("the consumer");
        let info = consumer.info().await.expect("consumer info");
        let events = info.num_pending + info.num_ack_pending as u64;
        if events > 0 {
            behind.push((name, events));
        }
    }
    behind
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_every_process_under_load_loses_and_repeats_nothing() {
    let scenario = "rolling restart";
    let nats = NatsServer::start().expect("nats-server starts");
    let backend = TestBackend::from_env();
    let mut databases = Vec::new();
    let mut urls = Vec::new();
    for product in Product::ALL {
        let database =
            TestDatabase::create(backend, &format!("rolling_{}", product.name())).await.expect("a database");
        urls.push((product, database.url().expose().to_owned()));
        databases.push(database);
    }
    let directory = tempfile::Builder::new().prefix("switchboard-rolling-").tempdir().expect("a directory");
    let config = config_file(directory.path(), &nats.url(), &urls);
    let components = Component::available();
    let mut ports = free_ports(2 * REPLICAS * components.len()).into_iter();
    let mut replicas = Vec::new();
    for component in components {
        for number in 1..=REPLICAS {
            let ports = [ports.next().expect("a port"), ports.next().expect("a port")];
            replicas.push(Replica::new(component, number, ports, directory.path(), &config));
        }
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("http client");
    let started = Instant::now();
    let mut fleet = Fleet::start(replicas, &http).await;
    eprintln!("{} processes ready in {:?}", fleet.replicas.len(), started.elapsed());

    let gateways = Arc::new(RwLock::new(fleet.gateway_urls()));
    let load_started = Instant::now();
    let load = Load::start(workload(MESSAGES, 11), gateways, 4, Duration::from_millis(10), LOAD_DEADLINE);
    load.wait_accepted(50).await;

    // One process after the other: SIGTERM, a clean exit, started again, ready, some load, next.
    let mut recoveries = Vec::new();
    for replica in &mut fleet.replicas {
        let signalled = Instant::now();
        replica.terminate().await;
        let stopped = signalled.elapsed();
        replica.spawn();
        replica.wait_ready(&http).await;
        recoveries.push((replica.name(), stopped, signalled.elapsed()));
        load.wait_accepted(load.accepted() + BETWEEN_RESTARTS).await;
    }
    let (accepted, planned) = (load.accepted(), load.planned.len());
    assert!(accepted < planned, "the load outlasted the restarts ({accepted} of {planned} accepted)");

    let finished = load.finish().await;
    let load_time = load_started.elapsed();
    let undelivered = finished.receipts.iter().filter(|receipt| receipt.is_none()).count();
    assert_eq!(undelivered, 0, "every delivery was accepted within {LOAD_DEADLINE:?}");
    let client = async_nats::connect(nats.url()).await.expect("nats connects");
    let jetstream = async_nats::jetstream::new(client);
    let behind = unacknowledged(&jetstream).await;
    let drained = Instant::now();
    wait_drained(&jetstream).await;
    let drained = drained.elapsed();
    let services = fleet.services(1);
    let summary = verify(scenario, &finished, &services, &jetstream).await;
    summary.print();
    let slowest = recoveries.iter().max_by_key(|(_, _, recovered)| *recovered).expect("restarts");
    let mut times: Vec<Duration> = recoveries.iter().map(|(_, _, recovered)| *recovered).collect();
    times.sort();
    eprintln!(
        "{} processes restarted one by one: SIGTERM to ready again median {} ms, slowest {} ms ({}); \
         SIGTERM to exit at most {} ms; the load took {} ms; events not yet applied then {:?}, all \
         applied {} ms later",
        recoveries.len(),
        times[times.len() / 2].as_millis(),
        slowest.2.as_millis(),
        slowest.0,
        recoveries.iter().map(|(_, stopped, _)| *stopped).max().expect("restarts").as_millis(),
        load_time.as_millis(),
        behind,
        drained.as_millis(),
    );
    for (name, stopped, recovered) in &recoveries {
        eprintln!(
            "  {name:<12} exit {:>5} ms  ready again {:>5} ms",
            stopped.as_millis(),
            recovered.as_millis()
        );
    }
    assert_eq!(summary.lost, 0, "{summary:?}");
    assert_eq!(summary.duplicated, 0, "{summary:?}");
    assert_eq!(summary.stored, summary.distinct, "{summary:?}");
    assert_eq!(summary.projected, summary.distinct, "{summary:?}");

    // Both replicas of a service answer the same.
    let faulted = snapshot(&services, &finished).await;
    assert_same_state(scenario, &faulted, &snapshot(&fleet.services(2), &finished).await);

    // A clean replay: fresh services on fresh databases read the same stream from the start.
    for replica in &mut fleet.replicas {
        replica.terminate().await;
    }
    assert_replay_matches(scenario, &jetstream, TestSystem::builder().nats(nats.url()), &faulted, &finished)
        .await;
}
