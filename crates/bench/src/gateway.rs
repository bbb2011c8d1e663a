//! The gateway against a bare publisher, both as their own processes, loaded over loopback in
//! interleaved rounds.
//!
//! The baseline (`switchboard-bench baseline-server`) is an axum handler that publishes the body to
//! the event's subject and waits for the JetStream acknowledgement, nothing else. The gateway runs as
//! `switchboard gateway` with a token source, metrics and every check on.

use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::post;
use bytes::Bytes;
use switchboard_events::event_to_subject;
use switchboard_tests::NatsServer;

use crate::load::{self, Target};
use crate::stats::{LoadResult, print_load_table};

#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) concurrency: usize,
    pub(crate) duration: Duration,
    pub(crate) rounds: usize,
    pub(crate) switchboard: Option<PathBuf>,
}

const TOKEN: &str = "bench-token-0123456789abcdef";

pub(crate) async fn run(options: Options) -> anyhow::Result<()> {
    let nats = NatsServer::start().context("starting nats-server")?;
    let directory = tempfile::Builder::new().prefix("switchboard-bench-").tempdir()?;
    let gateway_port = free_port()?;
    let admin_port = free_port()?;
    let config = directory.path().join("switchboard.toml");
    std::fs::write(
        &config,
        format!(
            r#"[nats]
url = "{nats}"

[admin]
listen = "127.0.0.1:{admin_port}"

[log]
format = "json"
filter = "info"

[gateway]
listen = "127.0.0.1:{gateway_port}"
# Rate limiting stays on (its check runs for every request) with a ceiling above what one machine
# can send, so it measures the check's cost rather than refusing the load.
rate_limit = 10000000
rate_burst = 10000000

[[gateway.sources]]
name = "provider"
tokens = ["{TOKEN}"]
token_header = "authorization"
"#,
            nats = nats.url()
        ),
    )?;
    let binary = match &options.switchboard {
        Some(path) => path.clone(),
        None => sibling_binary("switchboard")?,
    };
    let gateway = ChildGuard(
        Command::new(&binary)
            .arg("--config")
            .arg(&config)
            .arg("gateway")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?,
    );
    wait_ready(&format!("http://127.0.0.1:{admin_port}/readyz")).await?;

    let mut baseline = ChildGuard(
        Command::new(std::env::current_exe()?)
            .args(["baseline-server", "--nats", &nats.url()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the baseline server")?,
    );
    let baseline_address: SocketAddr =
        first_line(&mut baseline.0)?.parse().context("the baseline server did not print its address")?;

    let targets = [
        Target {
            name: "baseline (publish + ack)".to_owned(),
            url: format!("http://{baseline_address}/v1/events/sms:message:status"),
            token: None,
        },
        Target {
            name: "gateway".to_owned(),
            url: format!("http://127.0.0.1:{gateway_port}/v1/events/sms:message:status"),
            token: Some(TOKEN.to_owned()),
        },
    ];
    let counter = Arc::new(AtomicUsize::new(0));
    // Warm both up (connections, JetStream, allocator) before measuring.
    for target in &targets {
        load::run(target, options.concurrency, Duration::from_secs(1), counter.clone()).await;
    }
    let mut totals: Vec<LoadResult> = targets.iter().map(|target| LoadResult::new(&target.name)).collect();
    for round in 0..options.rounds {
        // Alternate which goes first, so a slow moment of the machine does not favour one side.
        let order: Vec<usize> = if round % 2 == 0 { vec![0, 1] } else { vec![1, 0] };
        for index in order {
            let result =
                load::run(&targets[index], options.concurrency, options.duration, counter.clone()).await;
            eprintln!("  round {round}: {} {:.0} req/s", result.name, result.rate());
            totals[index].absorb(&result);
        }
    }
    print_load_table(
        &format!(
            "gateway vs bare publisher: {} connections, {} rounds of {:?} each",
            options.concurrency, options.rounds, options.duration
        ),
        &totals,
    );
    println!(
        "peak memory (VmHWM): gateway {} MiB, baseline {} MiB",
        peak_memory_mib(gateway.0.id()).map_or("?".to_owned(), |mib| format!("{mib:.1}")),
        peak_memory_mib(baseline.0.id()).map_or("?".to_owned(), |mib| format!("{mib:.1}")),
    );
    drop(gateway);
    drop(baseline);
    drop(nats);
    Ok(())
}

/// Kills the child when the benchmark ends, however it ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let directory = exe.parent().context("the benchmark binary has no directory")?;
    let path = directory.join(name);
    anyhow::ensure!(
        path.exists(),
        "{} not found: build it with `cargo build --release -p switchboard -p switchboard-bench` or pass --switchboard",
        path.display()
    );
    Ok(path)
}

async fn wait_ready(url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = reqwest::get(url).await
            && response.status().is_success()
        {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{url} not ready after 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn peak_memory_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The baseline: publish the body, await the JetStream ack, answer 200. Prints its address first.
pub(crate) async fn baseline_server(nats_url: String) -> anyhow::Result<()> {
    let client = async_nats::connect(&nats_url).await?;
    let jetstream = async_nats::jetstream::new(client);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    let app = Router::new().route("/v1/events/{event}", post(publish)).with_state(jetstream);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn publish(
    State(jetstream): State<async_nats::jetstream::Context>,
    UrlPath(event): UrlPath<String>,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let Ok(subject) = event_to_subject("", &event) else { return (StatusCode::NOT_FOUND, "unknown event") };
    match jetstream.publish(subject, body).await {
        Ok(ack) => match ack.await {
            Ok(_) => (StatusCode::OK, "{\"stored\":true}"),
            Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not stored"),
        },
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not stored"),
    }
}

fn first_line(child: &mut Child) -> anyhow::Result<String> {
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    Ok(line.trim().to_owned())
}
