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
    let name = &config.nats.stream.name;
    let (_, stream) = super::open_stream(config, name, "stream").await?;
    let subjects = config.nats.subjects();
    let following = match &args.pattern {
        Some(pattern) => format!("{}{pattern}", subjects.prefix()),
        None => subjects.stream_subjects().join(", "),
    };
    // The server filters by a pattern within one subject root (`sms.>`); one that spans roots
    // (`*.message.in`) is not a subset of any stream subject, so it is matched here instead.
    let pattern = args.pattern.as_ref().map(|_| following.clone());
    let server_filter = pattern.clone().filter(|pattern| within_one_root(pattern, subjects.prefix()));
    let consumer_name = format!("tail-{}", uuid::Uuid::new_v4().simple());
    let consumer = stream
        .create_consumer(OrderedConfig {
            name: Some(consumer_name.clone()),
            // The stream holds only event subjects: without a pattern, no filter.
            filter_subject: server_filter.clone().unwrap_or_default(),
            deliver_policy: args.deliver_policy()?,
            ..Default::default()
        })
        .await
        .with_context(|| format!("cannot read stream {name} at {}", nats::redacted_url(&config.nats.url)))?;
    let client_filter = if server_filter.is_none() { pattern } else { None };
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
        if let Some(pattern) = &client_filter
            && !subject_matches(pattern, message.subject.as_str())
        {
            continue;
        }
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
                // By name: a header map has no order of its own.
                let mut lines: Vec<String> = map
                    .iter()
                    .flat_map(|(name, values)| {
                        values.iter().map(move |value| format!("  {name}: {}", value.as_str()))
                    })
                    .collect();
                lines.sort();
                for line in lines {
                    output.print_line(line)?;
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
    // The server would remove it after a few seconds of inactivity; removing it now keeps
    // `switchboard status` to the consumers that read.
    drop(messages);
    let _ = stream.delete_consumer(&consumer_name).await;
    Ok(())
}

/// Whether a subject pattern stays within one subject root (its first token after the prefix is a
/// literal), so the server can filter by it.
fn within_one_root(pattern: &str, prefix: &str) -> bool {
    let rest = pattern.strip_prefix(prefix).unwrap_or(pattern);
    rest.split('.').next().is_some_and(|root| !root.is_empty() && root != "*" && root != ">")
}

/// NATS subject matching: `*` is one token, a final `>` one or more.
fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for token in pattern.split('.') {
        match (token, subject_tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (literal, Some(actual)) if literal == actual => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_nats_matches_them() {
        assert!(subject_matches("*.message.in", "whatsapp.message.in"));
        assert!(!subject_matches("*.message.in", "whatsapp.message.status"));
        assert!(subject_matches("sms.>", "sms.message.status"));
        assert!(!subject_matches("sms.>", "sms"));
        assert!(!subject_matches("sms.message", "sms.message.status"));
        assert!(within_one_root("sms.>", ""));
        assert!(within_one_root("acme.sms.*.status", "acme."));
        assert!(!within_one_root("*.message.in", ""));
        assert!(!within_one_root(">", ""));
    }
}
