//! `switchboard status`: the event stream and its consumers, the dead letters, and every
//! component's readiness. Exits non-zero when something needs attention, so scripts can use it.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use comfy_table::Cell;
use futures::TryStreamExt;
use serde::Serialize;
use switchboard_runtime::nats;

use super::output::Tone;
use super::{CliContext, reachable};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A component's admin address, as `NAME=URL` or `URL` (repeatable). Default: the configured
    /// `admin.listen` (where `switchboard up` serves every component's readiness).
    #[arg(long = "admin", value_name = "[NAME=]URL")]
    admins: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Status {
    /// The server these figures come from.
    nats: NatsStatus,
    stream: Option<StreamStatus>,
    dead_letters: Option<StreamStatus>,
    consumers: Vec<ConsumerStatus>,
    components: Vec<ComponentStatus>,
    healthy: bool,
}

#[derive(Debug, Serialize)]
struct NatsStatus {
    /// `nats.url`, credentials redacted.
    url: String,
    server_name: String,
    version: String,
}

#[derive(Debug, Serialize)]
struct StreamStatus {
    name: String,
    subjects: Vec<String>,
    messages: u64,
    bytes: u64,
    first_sequence: u64,
    last_sequence: u64,
    consumers: usize,
}

#[derive(Debug, Serialize)]
struct ConsumerStatus {
    name: String,
    filter_subject: String,
    /// Events in the stream not yet delivered to the consumer.
    pending: u64,
    /// Delivered, not yet acknowledged.
    ack_pending: usize,
    /// Delivered more than once.
    redelivered: usize,
    delivered_sequence: u64,
    ack_floor_sequence: u64,
}

#[derive(Debug, Serialize)]
struct ComponentStatus {
    name: String,
    url: String,
    ready: bool,
    /// The admin port's readiness report (its checks), or why it could not be read.
    report: serde_json::Value,
}

pub async fn run(cli: &CliContext, args: &StatusArgs) -> anyhow::Result<()> {
    let status = collect(cli, args).await?;
    let output = &cli.output;
    if output.json {
        output.print_json(&serde_json::to_value(&status)?)?;
    } else {
        print(cli, &status)?;
    }
    if !status.healthy {
        let mut problems = Vec::new();
        if status.stream.is_none() {
            problems.push(format!(
                "stream {} is missing at {} (has any component started there?)",
                cli.config.nats.stream.name, status.nats.url
            ));
        }
        for component in status.components.iter().filter(|component| !component.ready) {
            problems.push(format!("{} at {} is not ready", component.name, component.url));
        }
        anyhow::bail!("not healthy: {}", problems.join("; "));
    }
    Ok(())
}

async fn collect(cli: &CliContext, args: &StatusArgs) -> anyhow::Result<Status> {
    let config = &cli.config;
    let client = super::connect_nats(config).await?;
    let server = client.server_info();
    let nats_status = NatsStatus {
        url: nats::redacted_url(&config.nats.url),
        server_name: server.server_name.clone(),
        version: server.version.clone(),
    };
    let jetstream = nats::jetstream(client, &config.nats);

    let mut consumers = Vec::new();
    let stream = match jetstream.get_stream(&config.nats.stream.name).await {
        Ok(mut stream) => {
            let info = stream.info().await.context("reading the stream's state")?.clone();
            let mut listed: Vec<ConsumerStatus> = stream
                .consumers()
                .map_ok(|consumer| ConsumerStatus {
                    name: consumer.name.clone(),
                    filter_subject: consumer.config.filter_subject.clone(),
                    pending: consumer.num_pending,
                    ack_pending: consumer.num_ack_pending,
                    redelivered: consumer.num_redelivered,
                    delivered_sequence: consumer.delivered.stream_sequence,
                    ack_floor_sequence: consumer.ack_floor.stream_sequence,
                })
                .try_collect()
                .await
                .context("listing consumers")?;
            listed.sort_by(|left, right| left.name.cmp(&right.name));
            consumers = listed;
            Some(StreamStatus {
                name: info.config.name.clone(),
                subjects: info.config.subjects.clone(),
                messages: info.state.messages,
                bytes: info.state.bytes,
                first_sequence: info.state.first_sequence,
                last_sequence: info.state.last_sequence,
                consumers: info.state.consumer_count,
            })
        }
        Err(_) => None,
    };
    let dead_letters = match jetstream.get_stream(&config.nats.dead_letter_stream.name).await {
        Ok(mut stream) => {
            let info = stream.info().await.context("reading the dead-letter stream's state")?;
            Some(StreamStatus {
                name: info.config.name.clone(),
                subjects: info.config.subjects.clone(),
                messages: info.state.messages,
                bytes: info.state.bytes,
                first_sequence: info.state.first_sequence,
                last_sequence: info.state.last_sequence,
                consumers: info.state.consumer_count,
            })
        }
        Err(_) => None,
    };

    let admins: Vec<(String, String)> = if args.admins.is_empty() {
        vec![("switchboard".to_owned(), format!("http://{}", reachable(config.admin.listen)))]
    } else {
        args.admins
            .iter()
            .map(|entry| match entry.split_once('=') {
                Some((name, url)) => (name.to_owned(), url.to_owned()),
                None => (entry.clone(), entry.clone()),
            })
            .collect()
    };
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let mut components = Vec::new();
    for (name, url) in admins {
        let url = if url.contains("://") { url } else { format!("http://{url}") };
        let readyz = format!("{}/readyz", url.trim_end_matches('/'));
        let (ready, report) = match http.get(&readyz).send().await {
            Ok(response) => {
                let ready = response.status().is_success();
                let report = response
                    .json::<serde_json::Value>()
                    .await
                    .unwrap_or_else(|error| serde_json::json!({ "error": error.to_string() }));
                (ready, report)
            }
            Err(error) => (false, serde_json::json!({ "error": format!("unreachable: {error}") })),
        };
        components.push(ComponentStatus { name, url, ready, report });
    }
    let healthy = stream.is_some() && components.iter().all(|component| component.ready);
    Ok(Status { nats: nats_status, stream, dead_letters, consumers, components, healthy })
}

fn print(cli: &CliContext, status: &Status) -> anyhow::Result<()> {
    let output = &cli.output;
    output.print_line(format!(
        "NATS {} (server {}, version {})",
        status.nats.url, status.nats.server_name, status.nats.version
    ))?;
    let mut streams = output.table(&["STREAM", "MESSAGES", "BYTES", "FIRST", "LAST", "CONSUMERS"]);
    for (expected, stream) in [
        (&cli.config.nats.stream.name, &status.stream),
        (&cli.config.nats.dead_letter_stream.name, &status.dead_letters),
    ] {
        match stream {
            Some(stream) => streams.add_row(vec![
                Cell::new(&stream.name),
                Cell::new(stream.messages),
                Cell::new(stream.bytes),
                Cell::new(stream.first_sequence),
                Cell::new(stream.last_sequence),
                Cell::new(stream.consumers),
            ]),
            None => streams.add_row(vec![Cell::new(expected), output.tone("missing", Tone::Bad)]),
        };
    }
    output.print_table(&streams)?;

    let mut consumers = output.table(&[
        "CONSUMER",
        "FILTER",
        "PENDING",
        "ACK PENDING",
        "REDELIVERED",
        "LAST DELIVERED SEQ",
        "ACK FLOOR SEQ",
    ]);
    for consumer in &status.consumers {
        let backlog = if consumer.pending == 0 { Tone::Good } else { Tone::Waiting };
        consumers.add_row(vec![
            Cell::new(&consumer.name),
            Cell::new(&consumer.filter_subject),
            output.tone(consumer.pending.to_string(), backlog),
            Cell::new(consumer.ack_pending),
            Cell::new(consumer.redelivered),
            Cell::new(consumer.delivered_sequence),
            Cell::new(consumer.ack_floor_sequence),
        ]);
    }
    output.print_table(&consumers)?;

    let mut components = output.table(&["COMPONENT", "ADMIN", "READY", "FAILING CHECKS"]);
    for component in &status.components {
        let failing = match component.report["checks"].as_array() {
            Some(checks) => checks
                .iter()
                .filter(|check| check["ok"] == false)
                .map(|check| {
                    format!(
                        "{}: {}",
                        check["name"].as_str().unwrap_or("?"),
                        check["error"].as_str().unwrap_or("failing")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
            None => component.report["error"].as_str().unwrap_or_default().to_owned(),
        };
        components.add_row(vec![
            Cell::new(&component.name),
            Cell::new(&component.url),
            if component.ready {
                output.tone("ready", Tone::Good)
            } else {
                output.tone("not ready", Tone::Bad)
            },
            Cell::new(failing),
        ]);
    }
    output.print_table(&components)
}
