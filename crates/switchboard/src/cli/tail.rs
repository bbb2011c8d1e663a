//! `switchboard tail`: the events the stream stored, live or from a point in the past, through an
//! ephemeral ordered JetStream consumer (nothing is acknowledged; the server removes the consumer
//! when the command ends).
//!
//! It reads what JetStream stored, not what was published: a body the gateway sent again within the
//! duplicate window, which JetStream dropped, is not shown, and every event carries its stream
//! sequence, so a printed event can be found again (`--from-sequence`).

use std::io::Write;

use anyhow::Context as _;
use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use clap::Args;
use futures::StreamExt;
use switchboard_events::headers;
use switchboard_runtime::nats;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
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
    /// Start at this stream sequence instead of with the next event stored.
    #[arg(long, value_name = "SEQ", conflicts_with = "since")]
    from_sequence: Option<u64>,
    /// Start with the events stored since this time: `1h`, `2021-04-09`, `2021-04-09T10:00:00Z`.
    #[arg(long, value_parser = super::query::parse_time)]
    since: Option<prost_types::Timestamp>,
}

impl TailArgs {
    fn deliver_policy(&self) -> anyhow::Result<DeliverPolicy> {
        Ok(match (self.from_sequence, &self.since) {
            (Some(start_sequence), _) => {
                DeliverPolicy::ByStartSequence { start_sequence: start_sequence.max(1) }
            }
            (None, Some(since)) => DeliverPolicy::ByStartTime {
                start_time: OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(since.seconds) * 1_000_000_000 + i128::from(since.nanos),
                )
                .context("--since is out of range")?,
            },
            (None, None) => DeliverPolicy::New,
        })
    }
}

pub async fn run(cli: &CliContext, args: &TailArgs) -> anyhow::Result<()> {
    let config = &cli.config;
    let client = tokio::time::timeout(config.nats.connect_timeout, nats::connect_once(&config.nats, "cli"))
        .await
        .map_err(|_| anyhow::anyhow!("timed out connecting to NATS at {}", config.nats.url))??;
    let jetstream = nats::jetstream(client, &config.nats);
    let name = &config.nats.stream.name;
    let stream = jetstream.get_stream(name).await.with_context(|| {
        format!("no stream {name} at {} (has any component started there?)", config.nats.url)
    })?;
    let subjects = config.nats.subjects();
    let following = match &args.pattern {
        Some(pattern) => format!("{}{pattern}", subjects.prefix()),
        None => subjects.stream_subjects().join(", "),
    };
    let consumer = stream
        .create_consumer(OrderedConfig {
            // The stream holds only event subjects: without a pattern, no filter.
            filter_subject: args.pattern.as_ref().map(|_| following.clone()).unwrap_or_default(),
            deliver_policy: args.deliver_policy()?,
            ..Default::default()
        })
        .await
        .with_context(|| format!("cannot read stream {name} at {}", config.nats.url))?;
    let mut messages = consumer.messages().await.context("reading the stream")?;
    // On stderr, so it tells a person (or a test) that the consumer is live without mixing into the
    // events on stdout.
    let _ = writeln!(std::io::stderr(), "following {following} in {name} (Ctrl-C to stop)");
    let mut printed = 0u64;
    let output = &cli.output;
    loop {
        let message = tokio::select! {
            message = messages.next() => message,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(message) = message else { break };
        let message = message.with_context(|| format!("reading stream {name}"))?;
        let (sequence, stored_at) = match message.info() {
            Ok(info) => (info.stream_sequence, info.published),
            Err(error) => anyhow::bail!("an event without stream metadata: {error}"),
        };
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
                "sequence": sequence,
                "stored_at": stored_at.format(&Rfc3339).unwrap_or_default(),
                "subject": message.subject.as_str(),
                "headers": header_json,
                "body": parsed.clone().unwrap_or_else(|| body.clone().into()),
            });
            output.print_line(line)?;
        } else {
            let at = stored_at
                .format(format_description!("[hour]:[minute]:[second].[subsecond digits:3]"))
                .unwrap_or_default();
            let subject = message.subject.as_str();
            let source = header(headers::SOURCE);
            let from = if source.is_empty() { String::new() } else { format!(" from {source}") };
            let title = if output.styled() {
                format!("\x1b[2m{at} #{sequence}\x1b[0m \x1b[1;36m{subject}\x1b[0m{from}")
            } else {
                format!("{at} #{sequence} {subject}{from}")
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
