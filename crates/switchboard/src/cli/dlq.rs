//! `switchboard dlq list|show|replay|purge`: the dead-letter stream, read through its headers
//! (reason, component, original subject and sequence; see `switchboard_runtime::dead_letter`).
//!
//! Two kinds of dead letters, two ways back:
//! - an event a service could not process was in the stream (it carries
//!   `Switchboard-Dlq-Original-Sequence`). A replay publishes the body byte for byte onto the
//!   original subject with the original headers, minus the dead-letter ones, plus
//!   `Switchboard-Replayed-From: <dead-letter sequence>`. Its `Nats-Msg-Id` is
//!   `replay-<dead-letter sequence>-<original id>`: a new id, so JetStream does not drop it as a
//!   duplicate of the original, and the same one for the same dead letter, so a replay repeated
//!   within the duplicate window is stored once.
//! - a body the gateway refused (unknown event, not JSON, wrong shape) never entered the stream and
//!   must not enter it by replay: `resubmit` posts it (or a corrected body) through the gateway,
//!   whose checks it must pass like any webhook.
//!
//! Either way the dead letter is deleted once its event is stored (unless `--keep`).

use anyhow::Context as _;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream::Stream};
use clap::Subcommand;
use comfy_table::Cell;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use switchboard_events::headers;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::CliContext;
use super::output::{self, Tone, clip};

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Dead letters, oldest first, with why each was given up on.
    #[command(after_help = "Example:\n  switchboard dlq list --limit 20 --json")]
    List {
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One dead letter: its headers and body.
    #[command(after_help = "Example:\n  switchboard dlq show 3")]
    Show { sequence: u64 },
    /// Publish events a service gave up on back onto their original subjects, then delete the dead
    /// letters. Bodies the gateway refused never entered the stream: they are skipped (see
    /// `resubmit`).
    #[command(after_help = "Examples:\n  switchboard dlq replay 3 4\n  switchboard dlq replay --all --keep")]
    Replay {
        /// Dead-letter sequences (see `dlq list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        sequences: Vec<u64>,
        /// Every dead letter.
        #[arg(long)]
        all: bool,
        /// Keep the dead letters after replaying them.
        #[arg(long)]
        keep: bool,
    },
    /// Post a body the gateway refused through the gateway again, after correcting it (`--body`),
    /// then delete the dead letter.
    #[command(
        after_help = "Examples:\n  switchboard dlq show 3 --json | jq -r .body > fixed.json   (then edit it)\n  switchboard dlq resubmit 3 --body fixed.json\n  switchboard dlq resubmit 4 --event sms:message:status"
    )]
    Resubmit {
        /// The dead letter's sequence (see `dlq list`).
        sequence: u64,
        /// The corrected body: a file, or `-` for standard input. Default: the dead letter's body.
        #[arg(long)]
        body: Option<std::path::PathBuf>,
        /// The event to post it as. Default: the one it was posted as.
        #[arg(long)]
        event: Option<String>,
        /// The gateway's base URL. Default: the configured `gateway.listen` (loopback for a wildcard).
        #[arg(long, env = "SWITCHBOARD_GATEWAY_URL", value_name = "URL")]
        gateway: Option<String>,
        /// The bearer token. Default: the token `switchboard up` generated in `<data_dir>/gateway-token`.
        #[arg(long, env = "SWITCHBOARD_GATEWAY_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Keep the dead letter after the gateway stored the event.
        #[arg(long)]
        keep: bool,
    },
    /// Delete dead letters: the given sequences, or all of them.
    #[command(after_help = "Examples:\n  switchboard dlq purge 3\n  switchboard dlq purge --all --yes")]
    Purge {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        sequences: Vec<u64>,
        #[arg(long)]
        all: bool,
        /// Confirm deleting every dead letter.
        #[arg(long)]
        yes: bool,
    },
}

/// One dead letter as printed.
#[derive(Debug, Serialize)]
struct Letter {
    sequence: u64,
    subject: String,
    dead_lettered_at: String,
    component: String,
    original_subject: String,
    original_sequence: Option<u64>,
    reason: String,
    headers: serde_json::Map<String, serde_json::Value>,
    body: String,
}

fn header(map: &HeaderMap, name: &str) -> String {
    map.get(name).map(|value| value.as_str().to_owned()).unwrap_or_default()
}

fn letter(message: &jetstream::message::StreamMessage) -> Letter {
    let mut header_json = serde_json::Map::new();
    for (name, values) in message.headers.iter() {
        let values: Vec<&str> = values.iter().map(|value| value.as_str()).collect();
        header_json.insert(name.to_string(), values.join(", ").into());
    }
    let at = header(&message.headers, headers::DLQ_AT);
    Letter {
        sequence: message.sequence,
        subject: message.subject.to_string(),
        dead_lettered_at: if at.is_empty() { message.time.format(&Rfc3339).unwrap_or_default() } else { at },
        component: header(&message.headers, headers::DLQ_COMPONENT),
        original_subject: header(&message.headers, headers::DLQ_ORIGINAL_SUBJECT),
        original_sequence: header(&message.headers, headers::DLQ_ORIGINAL_SEQUENCE).parse().ok(),
        reason: header(&message.headers, headers::DLQ_REASON),
        headers: header_json,
        body: String::from_utf8_lossy(&message.payload).into_owned(),
    }
}

#[derive(Debug)]
pub struct DeadLetterStream {
    jetstream: jetstream::Context,
    stream: Stream,
}

async fn open(cli: &CliContext) -> anyhow::Result<DeadLetterStream> {
    let config = &cli.config;
    let name = &config.nats.dead_letter_stream.name;
    let (jetstream, stream) = super::open_stream(config, name, "dead-letter stream").await?;
    Ok(DeadLetterStream { jetstream, stream })
}

impl DeadLetterStream {
    /// The sequences present, oldest first (deleted ones are skipped when read).
    async fn range(&mut self) -> anyhow::Result<Vec<u64>> {
        let state = self.stream.info().await.context("reading the dead-letter stream")?.state.clone();
        if state.messages == 0 {
            return Ok(Vec::new());
        }
        Ok((state.first_sequence..=state.last_sequence).collect())
    }

    async fn get(&self, sequence: u64) -> Option<jetstream::message::StreamMessage> {
        self.stream.get_raw_message(sequence).await.ok()
    }
}

pub async fn run(cli: &CliContext, command: &DlqCommand) -> anyhow::Result<()> {
    let mut dead_letters = open(cli).await?;
    let output = &cli.output;
    match command {
        DlqCommand::List { limit } => {
            let mut letters = Vec::new();
            for sequence in dead_letters.range().await? {
                if letters.len() >= *limit {
                    break;
                }
                if let Some(message) = dead_letters.get(sequence).await {
                    letters.push(letter(&message));
                }
            }
            if output.json {
                return output.print_json(&serde_json::to_value(&letters)?);
            }
            let mut table =
                output.table(&["SEQ", "AT", "COMPONENT", "ORIGINAL SUBJECT", "ORIGINAL SEQ", "REASON"]);
            for letter in &letters {
                table.add_row(vec![
                    Cell::new(letter.sequence),
                    Cell::new(
                        OffsetDateTime::parse(&letter.dead_lettered_at, &Rfc3339)
                            .map(output::moment_text)
                            .unwrap_or_else(|_| letter.dead_lettered_at.clone()),
                    ),
                    Cell::new(&letter.component),
                    Cell::new(&letter.original_subject),
                    Cell::new(
                        letter.original_sequence.map(|sequence| sequence.to_string()).unwrap_or_default(),
                    ),
                    output.tone(clip(&letter.reason, 80), Tone::Bad),
                ]);
            }
            output.print_table(&table)?;
            output.print_line(format!("{} dead letter(s)", letters.len()))
        }
        DlqCommand::Show { sequence } => {
            let message =
                dead_letters.get(*sequence).await.with_context(|| format!("no dead letter {sequence}"))?;
            let letter = letter(&message);
            if output.json {
                return output.print_json(&serde_json::to_value(&letter)?);
            }
            let mut table = output.fields(&[
                ("sequence", letter.sequence.to_string()),
                ("subject", letter.subject.clone()),
                ("reason", letter.reason.clone()),
            ]);
            for (name, value) in &letter.headers {
                table.add_row(vec![name.clone(), value.as_str().unwrap_or_default().to_owned()]);
            }
            output.print_table(&table)?;
            let body = serde_json::from_str::<serde_json::Value>(&letter.body)
                .ok()
                .and_then(|json| serde_json::to_string_pretty(&json).ok())
                .unwrap_or(letter.body);
            output.print_line(body)
        }
        DlqCommand::Replay { sequences, all, keep } => {
            let named = if *all { dead_letters.range().await? } else { sequences.clone() };
            replay(cli, &dead_letters, &named, *keep, !*all).await
        }
        DlqCommand::Resubmit { sequence, body, event, gateway, token, keep } => {
            let message =
                dead_letters.get(*sequence).await.with_context(|| format!("no dead letter {sequence}"))?;
            anyhow::ensure!(
                !entered_the_stream(&message.headers),
                "dead letter {sequence} is an event from the stream that {} gave up on: fix the cause, then `switchboard dlq replay {sequence}`",
                header(&message.headers, headers::DLQ_COMPONENT)
            );
            let body = match body {
                None => String::from_utf8(message.payload.to_vec())
                    .context("the dead letter's body is not UTF-8 text: give a corrected one with --body")?,
                Some(path) if path.as_os_str() == "-" => {
                    let mut text = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                        .context("reading the body from stdin")?;
                    text
                }
                Some(path) => {
                    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
                }
            };
            let event = match event {
                Some(event) => event.clone(),
                None => posted_as(cli, &message.headers),
            };
            let request = super::send::Request::new(cli, gateway.as_deref(), token.as_deref(), &event)?;
            let outcome = request.send(body).await;
            super::send::print_single(cli, &request, &outcome)
                .with_context(|| format!("dead letter {sequence} was not resubmitted (and is kept)"))?;
            if !*keep {
                dead_letters
                    .stream
                    .delete_message(*sequence)
                    .await
                    .with_context(|| format!("stored, but dead letter {sequence} was not deleted"))?;
            }
            Ok(())
        }
        DlqCommand::Purge { sequences, all, yes } => {
            if *all {
                anyhow::ensure!(*yes, "purging every dead letter needs --yes");
                let purged = dead_letters.stream.purge().await.context("purging")?;
                if output.json {
                    return output.print_json(&serde_json::json!({ "purged": purged.purged }));
                }
                return output.print_line(format!("purged {} dead letter(s)", purged.purged));
            }
            let mut deleted = 0u64;
            for sequence in sequences {
                dead_letters
                    .stream
                    .delete_message(*sequence)
                    .await
                    .with_context(|| format!("deleting dead letter {sequence}"))?;
                deleted += 1;
            }
            if output.json {
                return output.print_json(&serde_json::json!({ "purged": deleted }));
            }
            output.print_line(format!("deleted {deleted} dead letter(s)"))
        }
    }
}

#[derive(Debug, Default, Serialize)]
struct ReplaySummary {
    replayed: Vec<Replayed>,
    /// Sequences with no dead letter (already replayed or purged).
    missing: Vec<u64>,
    /// Bodies the gateway refused: they never entered the stream, so they are not replayed.
    not_replayable: Vec<NotReplayable>,
    /// Dead letters that could not be replayed, with why.
    failed: Vec<Failed>,
}

#[derive(Debug, Serialize)]
struct Replayed {
    dead_letter_sequence: u64,
    subject: String,
    stream_sequence: u64,
    duplicate: bool,
}

#[derive(Debug, Serialize)]
struct NotReplayable {
    dead_letter_sequence: u64,
    component: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct Failed {
    dead_letter_sequence: u64,
    error: String,
}

/// The headers a replayed event carries: the original ones, without the dead-letter ones, naming
/// the dead letter it came from.
fn replay_headers(original: &HeaderMap, dead_letter_sequence: u64) -> HeaderMap {
    let mut replayed = HeaderMap::new();
    for (name, values) in original.iter() {
        let name_text = name.to_string();
        if name_text.starts_with("Switchboard-Dlq-") || name_text == headers::MSG_ID {
            continue;
        }
        for value in values {
            replayed.append(name_text.as_str(), value.as_str());
        }
    }
    let original_id = header(original, headers::MSG_ID);
    replayed.insert(headers::MSG_ID, format!("replay-{dead_letter_sequence}-{original_id}").as_str());
    replayed.insert(headers::REPLAYED_FROM, dead_letter_sequence.to_string().as_str());
    replayed
}

async fn replay(
    cli: &CliContext,
    dead_letters: &DeadLetterStream,
    sequences: &[u64],
    keep: bool,
    named: bool,
) -> anyhow::Result<()> {
    let output = &cli.output;
    let progress = ProgressBar::new(sequences.len() as u64);
    if output.json || !output.styled() {
        progress.set_draw_target(ProgressDrawTarget::hidden());
    }
    progress.set_style(
        ProgressStyle::with_template("replaying {bar:40} {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut summary = ReplaySummary::default();
    for &sequence in sequences {
        progress.inc(1);
        let Some(message) = dead_letters.get(sequence).await else {
            summary.missing.push(sequence);
            continue;
        };
        if !entered_the_stream(&message.headers) {
            summary.not_replayable.push(NotReplayable {
                dead_letter_sequence: sequence,
                component: header(&message.headers, headers::DLQ_COMPONENT),
                reason: header(&message.headers, headers::DLQ_REASON),
            });
            continue;
        }
        let subject = header(&message.headers, headers::DLQ_ORIGINAL_SUBJECT);
        if subject.is_empty() {
            summary.failed.push(Failed {
                dead_letter_sequence: sequence,
                error: "no original subject in its headers".to_owned(),
            });
            continue;
        }
        let replay_header_map = replay_headers(&message.headers, sequence);
        let published = async {
            dead_letters
                .jetstream
                .publish_with_headers(subject.clone(), replay_header_map, message.payload.clone())
                .await?
                .await
        }
        .await;
        match published {
            Ok(ack) => {
                if !keep && let Err(error) = dead_letters.stream.delete_message(sequence).await {
                    summary.failed.push(Failed {
                        dead_letter_sequence: sequence,
                        error: format!("replayed as {} but not deleted: {error}", ack.sequence),
                    });
                }
                summary.replayed.push(Replayed {
                    dead_letter_sequence: sequence,
                    subject,
                    stream_sequence: ack.sequence,
                    duplicate: ack.duplicate,
                });
            }
            Err(error) => {
                summary.failed.push(Failed { dead_letter_sequence: sequence, error: error.to_string() })
            }
        }
    }
    progress.finish_and_clear();
    if output.json {
        output.print_json(&serde_json::to_value(&summary)?)?;
    } else {
        let mut table = output.table(&["DEAD LETTER", "REPLAYED ONTO", "STREAM SEQ"]);
        for replayed in &summary.replayed {
            table.add_row(vec![
                Cell::new(replayed.dead_letter_sequence),
                Cell::new(&replayed.subject),
                Cell::new(format!(
                    "{}{}",
                    replayed.stream_sequence,
                    if replayed.duplicate { " (duplicate)" } else { "" }
                )),
            ]);
        }
        for failed in &summary.failed {
            table.add_row(vec![
                Cell::new(failed.dead_letter_sequence),
                output.tone(&failed.error, Tone::Bad),
                Cell::new(""),
            ]);
        }
        if !summary.replayed.is_empty() || !summary.failed.is_empty() {
            output.print_table(&table)?;
        }
        output.print_line(format!(
            "replayed {}, missing {}, failed {}, not replayable {}{}",
            summary.replayed.len(),
            summary.missing.len(),
            summary.failed.len(),
            summary.not_replayable.len(),
            if keep { " (dead letters kept)" } else { "" }
        ))?;
        if !summary.not_replayable.is_empty() {
            let sequences: Vec<String> =
                summary.not_replayable.iter().map(|letter| letter.dead_letter_sequence.to_string()).collect();
            output.print_line(format!(
                "not replayed: {} (bodies the gateway refused never entered the stream; correct one and \
                 `switchboard dlq resubmit <sequence> --body <file>`, or purge it)",
                sequences.join(", ")
            ))?;
        }
    }
    anyhow::ensure!(
        summary.failed.is_empty(),
        "{} dead letter(s) could not be replayed",
        summary.failed.len()
    );
    anyhow::ensure!(
        !named || summary.not_replayable.is_empty(),
        "{} of the named dead letter(s) cannot be replayed: the gateway refused them (see `switchboard dlq resubmit`)",
        summary.not_replayable.len()
    );
    Ok(())
}

/// Whether a dead letter's event was in the event stream (a service gave up on it), rather than a
/// body the gateway refused.
fn entered_the_stream(map: &HeaderMap) -> bool {
    map.get(headers::DLQ_ORIGINAL_SEQUENCE).is_some()
}

/// The event a refused body was posted as: its `Switchboard-Event`, or the name its original
/// subject was derived from (`sms.message.foo` → `sms:message:foo`).
fn posted_as(cli: &CliContext, map: &HeaderMap) -> String {
    let event = header(map, headers::EVENT);
    if !event.is_empty() {
        return event;
    }
    let subject = header(map, headers::DLQ_ORIGINAL_SUBJECT);
    let prefix = cli.config.nats.subjects().prefix().to_owned();
    subject.strip_prefix(prefix.as_str()).unwrap_or(&subject).replace('.', ":")
}
