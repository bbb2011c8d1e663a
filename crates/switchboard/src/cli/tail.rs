//! `switchboard tail`: events as they enter the stream, through a core NATS subscription on the
//! stream's subjects (nothing is created on the server, nothing is acknowledged).

use std::io::Write;

use clap::Args;
use futures::StreamExt;
use switchboard_events::headers;
use switchboard_runtime::nats;
use time::OffsetDateTime;
use time::macros::format_description;

use super::CliContext;

#[derive(Debug, Args)]
pub struct TailArgs {
    /// A subject pattern without the configured prefix, e.g. `sms.>` or `*.message.in`. Default:
    /// every event subject.
    pattern: Option<String>,
    /// Only events whose body contains this text.
    #[arg(long)]
    grep: Option<String>,
    /// Stop after this many events.
    #[arg(long)]
    count: Option<u64>,
    /// Print bodies indented over several lines.
    #[arg(long)]
    pretty: bool,
    /// Print every header.
    #[arg(long)]
    headers: bool,
}

pub async fn run(cli: &CliContext, args: &TailArgs) -> anyhow::Result<()> {
    let config = &cli.config;
    let client = tokio::time::timeout(config.nats.connect_timeout, nats::connect_once(&config.nats, "cli"))
        .await
        .map_err(|_| anyhow::anyhow!("timed out connecting to NATS at {}", config.nats.url))??;
    let subjects = config.nats.subjects();
    let patterns: Vec<String> = match &args.pattern {
        Some(pattern) => vec![format!("{}{pattern}", subjects.prefix())],
        None => subjects.stream_subjects(),
    };
    let mut subscriptions = Vec::new();
    for pattern in &patterns {
        subscriptions.push(client.subscribe(pattern.clone()).await?);
    }
    client.flush().await?;
    // On stderr, so it tells a person (or a test) that the subscription is live without mixing
    // into the events on stdout.
    let _ = writeln!(std::io::stderr(), "following {} (Ctrl-C to stop)", patterns.join(", "));
    let mut messages = futures::stream::select_all(subscriptions);
    let mut printed = 0u64;
    let output = &cli.output;
    loop {
        let message = tokio::select! {
            message = messages.next() => message,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(message) = message else { break };
        let body = String::from_utf8_lossy(&message.payload);
        if let Some(text) = &args.grep
            && !body.contains(text.as_str())
        {
            continue;
        }
        let header = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|map| map.get(name))
                .map(|value| value.as_str().to_owned())
                .unwrap_or_default()
        };
        let parsed: Option<serde_json::Value> = serde_json::from_slice(&message.payload).ok();
        if output.json {
            let mut header_json = serde_json::Map::new();
            if let Some(map) = &message.headers {
                for (name, values) in map.iter() {
                    let values: Vec<&str> = values.iter().map(|value| value.as_str()).collect();
                    header_json.insert(name.to_string(), values.join(", ").into());
                }
            }
            let line = serde_json::json!({
                "subject": message.subject.as_str(),
                "headers": header_json,
                "body": parsed.clone().unwrap_or_else(|| body.clone().into()),
            });
            output.print_line(line)?;
        } else {
            let now = OffsetDateTime::now_utc()
                .format(format_description!("[hour]:[minute]:[second].[subsecond digits:3]"))
                .unwrap_or_default();
            let subject = message.subject.as_str();
            let source = header(headers::SOURCE);
            let from = if source.is_empty() { String::new() } else { format!(" from {source}") };
            let title = if output.styled() {
                format!("\x1b[2m{now}\x1b[0m \x1b[1;36m{subject}\x1b[0m{from}")
            } else {
                format!("{now} {subject}{from}")
            };
            output.print_line(title)?;
            if args.headers
                && let Some(map) = &message.headers
            {
                for (name, values) in map.iter() {
                    for value in values {
                        output.print_line(format!("  {name}: {}", value.as_str()))?;
                    }
                }
            }
            let rendered = match (&parsed, args.pretty) {
                (Some(json), true) => serde_json::to_string_pretty(json).unwrap_or_default(),
                (Some(json), false) => json.to_string(),
                (None, _) => body.into_owned(),
            };
            output.print_line(format!("  {rendered}"))?;
        }
        printed += 1;
        if args.count.is_some_and(|count| printed >= count) {
            break;
        }
    }
    Ok(())
}
