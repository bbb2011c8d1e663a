//! A JetStream backlog drained by the real service process, timed from outside, against the floor:
//! a bare pull consumer that fetches and acknowledges the same backlog and does nothing else.
//!
//! 1. A `switchboard gateway` process takes every product's events over HTTP (so the stored
//!    messages carry the gateway's real headers and message ids): each service's realistic mix
//!    (sms: two or three reports per message, in both orders; chat: statuses and inbound; voice,
//!    interact, contacts), arriving near their message's place in the order.
//! 2. For each backend and service: the floor first (a durable pull consumer of the service's
//!    subjects, fetching batches of the consumer's size and acknowledging each message), then a
//!    fresh `switchboard <service>` process on a fresh database, timed from its start until its
//!    durable consumers have nothing pending and nothing unacknowledged, as `switchboard status`
//!    would show it.
//! 3. Reported per service and backend: events/s of both and their ratio, CPU per event of the
//!    service process and of the database server (PostgreSQL's processes; SQLite runs inside the
//!    service), and the service's peak resident memory: anonymous (heap, stacks) and file-backed
//!    (SQLite's memory map and the binary) apart.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use switchboard_events::{Product, Subjects};
use switchboard_runtime::config::NatsConfig;
use switchboard_tests::workload::{self, Arrival};
use switchboard_tests::{NatsServer, TestBackend, TestDatabase};

use crate::gateway::{cpu_seconds, free_port, sibling_binary, spawn_component, wait_ready};

#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) products: Vec<Product>,
    pub(crate) backends: Vec<TestBackend>,
    pub(crate) events: usize,
    pub(crate) switchboard: Option<PathBuf>,
}

const TOKEN: &str = "bench-token-0123456789abcdef";
/// Connections posting the backlog.
const FILL_CONCURRENCY: usize = 64;

#[derive(Debug)]
struct Row {
    product: Product,
    backend: TestBackend,
    events: usize,
    floor_seconds: f64,
    service_seconds: f64,
    service_cpu: f64,
    database_cpu: Option<f64>,
    peak_anonymous_mib: f64,
    peak_file_mib: f64,
}

pub(crate) async fn run(options: Options) -> anyhow::Result<()> {
    let binary = match &options.switchboard {
        Some(path) => path.clone(),
        None => sibling_binary("switchboard")?,
    };
    let nats = NatsServer::start().context("starting nats-server")?;
    let directory = tempfile::Builder::new().prefix("switchboard-drain-").tempdir()?;
    let config = directory.path().join("switchboard.toml");
    let gateway_port = free_port()?;
    std::fs::write(&config, config_text(&nats.url(), gateway_port, free_port()?))?;

    // The streams, as a service creates them at start-up.
    let nats_config = NatsConfig { url: nats.url(), ..NatsConfig::default() };
    let client = async_nats::connect(nats.url()).await?;
    let jetstream = async_nats::jetstream::new(client);
    switchboard_runtime::nats::provision_streams(&jetstream, &nats_config).await?;

    {
        let gateway = spawn_component(&binary, &config, "gateway", &[])?;
        let admin = admin_port(&config)?;
        wait_ready(&format!("http://127.0.0.1:{admin}/readyz")).await?;
        for product in &options.products {
            let started = Instant::now();
            let events = workload::events(*product, options.events, Arrival::Local { window: 2_000 });
            let stored = fill(gateway_port, events).await?;
            eprintln!(
                "  {product}: {stored} events stored through the gateway in {:.1}s",
                started.elapsed().as_secs_f64()
            );
        }
        drop(gateway);
    }

    let subjects = Subjects::new("")?;
    let mut rows = Vec::new();
    for backend in &options.backends {
        for product in &options.products {
            let roots = roots(*product);
            let (floor_seconds, stored) = floor(&jetstream, &subjects, &roots, options.events).await?;
            let measured =
                drain(&binary, &config, &jetstream, *product, *backend, &roots, directory.path()).await?;
            eprintln!(
                "  {product} on {}: floor {:.1}s, service {:.1}s",
                backend_name(*backend),
                floor_seconds,
                measured.service_seconds
            );
            // What is in the stream: the gateway drops a repeated body as a duplicate (voice repeats
            // some call records on purpose).
            rows.push(Row { floor_seconds, events: stored, ..measured });
        }
    }
    print_table(&rows);
    Ok(())
}

fn config_text(nats_url: &str, gateway_port: u16, admin_port: u16) -> String {
    format!(
        r#"[nats]
url = "{nats_url}"

[admin]
listen = "127.0.0.1:{admin_port}"

[grpc]
listen = "127.0.0.1:0"

[log]
format = "json"
filter = "warn"

[gateway]
listen = "127.0.0.1:{gateway_port}"
rate_limit = 10000000
rate_burst = 10000000

[[gateway.sources]]
name = "provider"
tokens = ["{TOKEN}"]
token_header = "authorization"
"#
    )
}

fn admin_port(config: &Path) -> anyhow::Result<u16> {
    let text = std::fs::read_to_string(config)?;
    let line = text.lines().find(|line| line.starts_with("listen = \"127.0.0.1:")).context("admin listen")?;
    Ok(line.trim_end_matches('"').rsplit(':').next().unwrap_or_default().parse()?)
}

/// The subject roots a service consumes, one durable consumer each: (durable name, root).
fn roots(product: Product) -> Vec<(&'static str, &'static str)> {
    switchboard::descriptor(product)
        .consumers
        .iter()
        .map(|consumer| (consumer.durable_name, consumer.root))
        .collect()
}

fn backend_name(backend: TestBackend) -> &'static str {
    match backend {
        TestBackend::Sqlite => "sqlite",
        TestBackend::Postgres => "postgres",
    }
}

/// Posts every event through the gateway; returns how many were stored (not duplicates).
async fn fill(
    gateway_port: u16,
    events: Vec<(switchboard_events::EventKind, Vec<u8>)>,
) -> anyhow::Result<usize> {
    let events = Arc::new(events);
    let next = Arc::new(AtomicUsize::new(0));
    let stored = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::builder().pool_max_idle_per_host(FILL_CONCURRENCY).build()?;
    let mut tasks = Vec::new();
    for _ in 0..FILL_CONCURRENCY {
        let (events, next, stored, client) = (events.clone(), next.clone(), stored.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some((kind, body)) = events.get(index) else { return Ok::<(), anyhow::Error>(()) };
                let url = format!("http://127.0.0.1:{gateway_port}/v1/events/{}", kind.as_str());
                for attempt in 0.. {
                    let response = client
                        .post(&url)
                        .bearer_auth(TOKEN)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    match response {
                        Ok(response) if response.status().is_success() => {
                            let answer: serde_json::Value = response.json().await?;
                            if answer["duplicate"] == serde_json::Value::Bool(false) {
                                stored.fetch_add(1, Ordering::Relaxed);
                            }
                            break;
                        }
                        _ if attempt < 20 => tokio::time::sleep(Duration::from_millis(50)).await,
                        other => anyhow::bail!("the gateway did not take an event: {other:?}"),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(stored.load(Ordering::Relaxed))
}

/// A bare pull consumer per root: fetch and acknowledge every message, nothing else. Returns the
/// time it took and how many messages there were.
async fn floor(
    jetstream: &async_nats::jetstream::Context,
    subjects: &Subjects,
    roots: &[(&str, &str)],
    expected: usize,
) -> anyhow::Result<(f64, usize)> {
    use async_nats::jetstream::consumer::{AckPolicy, pull};
    let stream = jetstream.get_stream("SWITCHBOARD").await?;
    let batch = switchboard_runtime::config::BATCH_SIZE_ONE_WRITE;
    let started = Instant::now();
    let mut acknowledged = 0usize;
    for (durable, root) in roots {
        let name = format!("floor-{durable}");
        let _ = stream.delete_consumer(&name).await;
        let consumer = stream
            .create_consumer(pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: subjects.root_filter(root),
                ack_policy: AckPolicy::Explicit,
                max_ack_pending: 20_000,
                ..Default::default()
            })
            .await?;
        let pending = consumer.cached_info().num_pending as usize;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(batch)
            .max_bytes_per_batch(switchboard_runtime::consumer::BATCH_MAX_BYTES)
            .messages()
            .await?;
        let mut taken = 0usize;
        while taken < pending {
            let message = messages.next().await.context("the floor's message stream ended")??;
            message.ack().await.map_err(|error| anyhow::anyhow!("ack: {error}"))?;
            taken += 1;
        }
        acknowledged += taken;
        stream.delete_consumer(&name).await?;
    }
    anyhow::ensure!(acknowledged >= expected.min(1), "the floor read nothing");
    Ok((started.elapsed().as_secs_f64(), acknowledged))
}

/// A fresh service process on a fresh database, timed until its consumers have drained the backlog.
async fn drain(
    binary: &Path,
    config: &Path,
    jetstream: &async_nats::jetstream::Context,
    product: Product,
    backend: TestBackend,
    roots: &[(&str, &str)],
    directory: &Path,
) -> anyhow::Result<Row> {
    let stream = jetstream.get_stream("SWITCHBOARD").await?;
    for (durable, _) in roots {
        let _ = stream.delete_consumer(durable).await;
    }
    let database = TestDatabase::create(backend, &format!("drain_{}", product.name())).await?;
    let data_dir = tempfile::Builder::new().prefix("switchboard-drain-data-").tempdir_in(directory)?;
    let database_cpu_before = postgres_cpu_seconds();
    let started = Instant::now();
    let environment = [
        (
            format!("SWITCHBOARD_{}__DATABASE_URL", product.name().to_uppercase()),
            database.url().expose().to_owned(),
        ),
        ("SWITCHBOARD_STORAGE__DATA_DIR".to_owned(), data_dir.path().display().to_string()),
        ("SWITCHBOARD_ADMIN__LISTEN".to_owned(), format!("127.0.0.1:{}", free_port()?)),
    ];
    let child = spawn_component(binary, config, product.name(), &environment)?;
    let pid = child.0.id();
    let mut peak_anonymous = 0.0f64;
    let mut peak_file = 0.0f64;
    let deadline = started + Duration::from_secs(600);
    loop {
        if let Some((anonymous, file)) = resident_mib(pid) {
            peak_anonymous = peak_anonymous.max(anonymous);
            peak_file = peak_file.max(file);
        }
        if drained(&stream, roots).await {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "{product} did not drain within 10 minutes");
        anyhow::ensure!(alive(&child.0), "{product} exited while draining");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let service_seconds = started.elapsed().as_secs_f64();
    let service_cpu = cpu_seconds(pid).unwrap_or(f64::NAN);
    let database_cpu = match backend {
        TestBackend::Postgres => {
            postgres_cpu_seconds().zip(database_cpu_before).map(|(after, before)| after - before)
        }
        TestBackend::Sqlite => None,
    };
    drop(child);
    Ok(Row {
        product,
        backend,
        events: 0,
        floor_seconds: 0.0,
        service_seconds,
        service_cpu,
        database_cpu,
        peak_anonymous_mib: peak_anonymous,
        peak_file_mib: peak_file,
    })
}

/// Whether the child still runs (not gone, not a zombie).
fn alive(child: &Child) -> bool {
    std::fs::read_to_string(Path::new("/proc").join(child.id().to_string()).join("stat"))
        .is_ok_and(|stat| !stat.contains(") Z "))
}

async fn drained(stream: &async_nats::jetstream::stream::Stream, roots: &[(&str, &str)]) -> bool {
    for (durable, _) in roots {
        let Ok(info) = stream.consumer_info(*durable).await else { return false };
        if info.num_pending > 0 || info.num_ack_pending > 0 {
            return false;
        }
    }
    true
}

/// Resident memory now: anonymous and file-backed, in MiB (`RssAnon`, `RssFile` + `RssShmem`).
fn resident_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|line| line.starts_with(name))?;
        Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
    };
    Some((field("RssAnon:")?, field("RssFile:")? + field("RssShmem:").unwrap_or(0.0)))
}

/// CPU seconds of every `postgres` process on the machine (the server the tests use).
fn postgres_cpu_seconds() -> Option<f64> {
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else { continue };
        if comm.trim() == "postgres" {
            total += cpu_seconds(pid).unwrap_or(0.0);
        }
    }
    Some(total)
}

fn print_table(rows: &[Row]) {
    println!(
        "\n{:<9} {:<8} {:>8} {:>11} {:>11} {:>6} {:>10} {:>10} {:>9} {:>9}",
        "service",
        "backend",
        "events",
        "floor ev/s",
        "service ev/s",
        "ratio",
        "svc µs/ev",
        "db µs/ev",
        "anon MiB",
        "file MiB"
    );
    for row in rows {
        let events = row.events as f64;
        let floor_rate = events / row.floor_seconds;
        let service_rate = events / row.service_seconds;
        println!(
            "{:<9} {:<8} {:>8} {:>11.0} {:>11.0} {:>6.3} {:>10.1} {:>10} {:>9.1} {:>9.1}",
            row.product.name(),
            backend_name(row.backend),
            row.events,
            floor_rate,
            service_rate,
            service_rate / floor_rate,
            row.service_cpu / events * 1e6,
            row.database_cpu.map_or("-".to_owned(), |cpu| format!("{:.1}", cpu / events * 1e6)),
            row.peak_anonymous_mib,
            row.peak_file_mib,
        );
    }
}
