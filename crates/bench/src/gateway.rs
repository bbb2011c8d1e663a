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
use crate::stats::{LoadResult, median, print_load_table};

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
    let gateway = spawn_component(&binary, &config, "gateway", &[])?;
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
    // CPU seconds used during each target's runs: by the target itself, and by nats-server.
    let pids = [baseline.0.id(), gateway.0.id()];
    let mut cpu = [[0.0f64; 2]; 2];
    let mut round_ratios = Vec::new();
    for round in 0..options.rounds {
        // Alternate which goes first, so a slow moment of the machine does not favour one side.
        let order: Vec<usize> = if round % 2 == 0 { vec![0, 1] } else { vec![1, 0] };
        let mut rates = [0.0f64; 2];
        for index in order {
            let before = [cpu_seconds(pids[index]), nats.pid().and_then(cpu_seconds)];
            let result =
                load::run(&targets[index], options.concurrency, options.duration, counter.clone()).await;
            let after = [cpu_seconds(pids[index]), nats.pid().and_then(cpu_seconds)];
            for (process, (before, after)) in before.into_iter().zip(after).enumerate() {
                cpu[index][process] += after.zip(before).map_or(f64::NAN, |(after, before)| after - before);
            }
            eprintln!("  round {round}: {} {:.0} req/s", result.name, result.rate());
            rates[index] = result.rate();
            totals[index].absorb(&result);
        }
        round_ratios.push(rates[1] / rates[0]);
    }
    print_load_table(
        &format!(
            "gateway vs bare publisher: {} connections, {} rounds of {:?} each",
            options.concurrency, options.rounds, options.duration
        ),
        &totals,
    );
    let per_request =
        |index: usize, process: usize| cpu[index][process] / totals[index].ok.max(1) as f64 * 1e6;
    let listed: Vec<String> = round_ratios.iter().map(|ratio| format!("{ratio:.3}")).collect();
    println!(
        "throughput ratio per round (gateway / baseline, run back to back): {}; median {:.3}",
        listed.join(" "),
        median(&mut round_ratios)
    );
    println!(
        "CPU per request: baseline {:.1} µs, gateway {:.1} µs ({:.2}×); nats-server {:.1} µs while \
         loading the baseline, {:.1} µs while loading the gateway",
        per_request(0, 0),
        per_request(1, 0),
        per_request(1, 0) / per_request(0, 0),
        per_request(0, 1),
        per_request(1, 1),
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

/// The environment the image gives every container (the `ENV` lines of deploy/docker/Dockerfile's
/// last stage: the allocator's settings), so that a benchmark runs what ships. A variable set in the
/// benchmark's own environment wins.
fn image_environment() -> Vec<(String, String)> {
    let mut environment = Vec::new();
    for line in include_str!("../../../deploy/docker/Dockerfile").lines() {
        if line.starts_with("FROM ") {
            environment.clear();
        } else if let Some(settings) = line.strip_prefix("ENV ") {
            environment.extend(settings.split_whitespace().filter_map(|setting| {
                let (name, value) = setting.split_once('=')?;
                Some((name.to_owned(), value.trim_matches('"').to_owned()))
            }));
        }
    }
    environment.retain(|(name, _)| std::env::var_os(name).is_none());
    environment
}

/// Starts `switchboard --config <config> <component>` with the image's environment and extra
/// environment, output discarded.
pub(crate) fn spawn_component(
    binary: &Path,
    config: &Path,
    component: &str,
    environment: &[(String, String)],
) -> anyhow::Result<ChildGuard> {
    let child = Command::new(binary)
        .arg("--config")
        .arg(config)
        .arg(component)
        .envs(image_environment())
        .envs(environment.iter().map(|(name, value)| (name, value)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {} {component}", binary.display()))?;
    Ok(ChildGuard(child))
}

/// Kills the child when the benchmark ends, however it ends.
pub(crate) struct ChildGuard(pub(crate) Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(crate) fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
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

pub(crate) async fn wait_ready(url: &str) -> anyhow::Result<()> {
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

/// User plus system CPU time of a process so far, from `/proc/<pid>/stat` (in clock ticks of 1/100 s,
/// the `USER_HZ` Linux reports on every architecture it runs on here).
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    const TICKS_PER_SECOND: f64 = 100.0;
    let stat = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    // The command name may hold spaces; the fields after it are space-separated, utime and stime
    // being the 14th and 15th of the line (the 12th and 13th after the name).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / TICKS_PER_SECOND)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_components_start_with_the_images_allocator_settings() {
        let names: Vec<String> = image_environment().into_iter().map(|(name, _)| name).collect();
        for name in ["MIMALLOC_PURGE_DELAY", "MIMALLOC_ALLOW_THP"] {
            // A setting in the benchmark's own environment wins and is not repeated.
            assert_eq!(
                names.iter().any(|found| found == name),
                std::env::var_os(name).is_none(),
                "{name} in {names:?}"
            );
        }
        let values: Vec<(String, String)> =
            image_environment().into_iter().filter(|(name, _)| name.starts_with("MIMALLOC_")).collect();
        assert!(values.iter().all(|(_, value)| value.parse::<u64>().is_ok()), "{values:?}");
    }
}
