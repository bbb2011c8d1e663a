//! `switchboard send`: post an event to the gateway as the provider would — one, or many for a quick
//! load test with a summary of answers and latencies.

use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use switchboard_events::EventKind;

use super::{CliContext, examples, reachable};

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The event, e.g. `sms:message:status` (or `sms.message.status`).
    #[arg(required_unless_present = "list")]
    event: Option<String>,
    /// The body: a file, or `-` for standard input. Default: the bundled example for the event.
    body: Option<PathBuf>,
    /// The gateway's base URL. Default: the configured `gateway.listen` (loopback for a wildcard).
    #[arg(long, env = "SWITCHBOARD_GATEWAY_URL", value_name = "URL")]
    gateway: Option<String>,
    /// The bearer token. Default: the token `switchboard up` generated in `<data_dir>/gateway-token`.
    #[arg(long, env = "SWITCHBOARD_GATEWAY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// How many times to send it.
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// Requests per second at most (default: as fast as `--concurrency` allows).
    #[arg(long)]
    rate: Option<f64>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Make every copy a new event: each gets its own message (call, contact) id, unique to the run,
    /// so JetStream stores every copy and each is a message of its own.
    #[arg(long)]
    distinct: bool,
    /// List the events and exit.
    #[arg(long)]
    list: bool,
}

/// One request's outcome.
#[derive(Debug)]
pub(crate) struct Outcome {
    status: Option<u16>,
    duplicate: bool,
    latency: Duration,
    answer: String,
}

#[derive(Debug, Serialize)]
struct Summary {
    event: &'static str,
    sent: u64,
    stored: u64,
    duplicates: u64,
    refused: std::collections::BTreeMap<u16, u64>,
    errors: u64,
    elapsed_seconds: f64,
    requests_per_second: f64,
    latency_ms: Latency,
}

#[derive(Debug, Serialize)]
struct Latency {
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
}

pub async fn run(cli: &CliContext, args: &SendArgs) -> anyhow::Result<()> {
    if args.list {
        if cli.output.json {
            let events: Vec<serde_json::Value> = EventKind::ALL
                .iter()
                .map(|kind| {
                    serde_json::json!({
                        "event": kind.as_str(),
                        "subject": cli.config.nats.subjects().event(*kind),
                        "service": kind.product().name(),
                    })
                })
                .collect();
            return cli.output.print_json(&serde_json::Value::Array(events));
        }
        let mut table = cli.output.table(&["EVENT", "SUBJECT", "SERVICE"]);
        for kind in EventKind::ALL {
            table.add_row(vec![
                kind.as_str(),
                &cli.config.nats.subjects().event(kind),
                kind.product().name(),
            ]);
        }
        return cli.output.print_table(&table);
    }
    let name = args.event.as_deref().context("name an event")?;
    let kind = EventKind::parse(name).with_context(|| {
        format!("unknown event {name:?}; `switchboard send --list` shows the twelve events")
    })?;
    let body = match &args.body {
        None => examples::example(kind),
        Some(path) if path.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("reading the body from stdin")?;
            text
        }
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    };
    let request = Arc::new(Request::new(cli, args.gateway.as_deref(), args.token.as_deref(), kind.as_str())?);

    if args.count <= 1 {
        let outcome = request.send(body).await;
        return print_single(cli, &request, &outcome).map(|_| ());
    }
    let bodies = Bodies::new(kind, body, args.distinct)?;
    let summary = send_many(cli, kind, &request, &bodies, args).await?;
    print_summary(cli, &summary)
}

/// Posts bodies for one event to the gateway, as the provider would.
#[derive(Debug)]
pub(crate) struct Request {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Request {
    /// The gateway at `gateway` (default: the configured `gateway.listen`), with `token` (default: the
    /// one `switchboard up` wrote under the data directory), for the event named `event`.
    pub(crate) fn new(
        cli: &CliContext,
        gateway: Option<&str>,
        token: Option<&str>,
        event: &str,
    ) -> anyhow::Result<Request> {
        let gateway = gateway
            .map(str::to_owned)
            .unwrap_or_else(|| format!("http://{}", reachable(cli.config.gateway.listen)));
        let url = format!("{}/v1/events/{event}", gateway.trim_end_matches('/'));
        let token = match token {
            Some(token) => Some(token.to_owned()),
            None => std::fs::read_to_string(cli.config.storage.data_dir.join("gateway-token"))
                .ok()
                .map(|token| token.trim().to_owned())
                .filter(|token| !token.is_empty()),
        };
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        Ok(Request { client, url, token })
    }

    pub(crate) async fn send(&self, body: String) -> Outcome {
        let started = Instant::now();
        let mut builder = self.client.post(&self.url).header("content-type", "application/json").body(body);
        if let Some(token) = &self.token {
            builder = builder.bearer_auth(token);
        }
        match builder.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let answer = response.text().await.unwrap_or_default();
                let duplicate = serde_json::from_str::<serde_json::Value>(&answer)
                    .ok()
                    .and_then(|value| value["duplicate"].as_bool())
                    .unwrap_or(false);
                Outcome { status: Some(status), duplicate, latency: started.elapsed(), answer }
            }
            Err(error) => Outcome {
                status: None,
                duplicate: false,
                latency: started.elapsed(),
                answer: error.to_string(),
            },
        }
    }
}

/// Prints the gateway's answer to one request; an error for anything but 2xx, with its reason.
/// Returns the answer.
pub(crate) fn print_single(
    cli: &CliContext,
    request: &Request,
    outcome: &Outcome,
) -> anyhow::Result<Option<serde_json::Value>> {
    let Some(status) = outcome.status else {
        anyhow::bail!("cannot reach the gateway at {}: {}", request.url, outcome.answer);
    };
    let answer: Option<serde_json::Value> = serde_json::from_str(&outcome.answer).ok();
    if !(200..300).contains(&status) {
        let message = answer
            .as_ref()
            .and_then(|value| value["error"].as_str().or(value["message"].as_str()).map(str::to_owned))
            .unwrap_or_else(|| outcome.answer.clone());
        if cli.output.json
            && let Some(answer) = &answer
        {
            cli.output.print_json(answer)?;
        }
        anyhow::bail!("the gateway at {} answered {status}: {message}", request.url);
    }
    match &answer {
        Some(answer) if cli.output.json => cli.output.print_json(answer)?,
        Some(answer) => cli.output.print_line(format!(
            "stored {} as sequence {}{} ({} ms)",
            answer["event"].as_str().unwrap_or("?"),
            answer["seq"],
            if outcome.duplicate { " (a duplicate of an earlier body)" } else { "" },
            outcome.latency.as_millis()
        ))?,
        None => cli.output.print_line(&outcome.answer)?,
    }
    Ok(answer)
}

/// The bodies of a run: the same one, or one made distinct per request.
#[derive(Debug)]
struct Bodies {
    kind: EventKind,
    base: String,
    object: Option<serde_json::Map<String, serde_json::Value>>,
    /// Unique to this run, so a second run's copies are new events too.
    run: uuid::Uuid,
}

impl Bodies {
    fn new(kind: EventKind, base: String, distinct: bool) -> anyhow::Result<Bodies> {
        let object = if distinct {
            match serde_json::from_str::<serde_json::Value>(&base) {
                Ok(serde_json::Value::Object(object)) => Some(object),
                _ => anyhow::bail!("--distinct needs a JSON object body"),
            }
        } else {
            None
        };
        Ok(Bodies { kind, base, object, run: uuid::Uuid::new_v4() })
    }

    fn body(&self, index: u64) -> String {
        match &self.object {
            None => self.base.clone(),
            Some(object) => {
                let mut object = object.clone();
                distinct_identity(self.kind, &mut object, self.run, index);
                serde_json::Value::Object(object).to_string()
            }
        }
    }
}

/// Gives copy `index` of a run its own identity: the field its service keys the event by (the
/// message, call or contact id) gets a value unique to the run and the copy, shaped like the
/// provider's. An sms copy is recipient `index + 1` of one bulk request whose id is the run's.
fn distinct_identity(
    kind: EventKind,
    object: &mut serde_json::Map<String, serde_json::Value>,
    run: uuid::Uuid,
    index: u64,
) {
    let ordinal = index + 1;
    // Numeric ids stay numbers: the run's first 32 bits, then the copy.
    let number = u64::from(run.as_fields().0) * 1_000_000 + ordinal;
    let set = |object: &mut serde_json::Map<String, serde_json::Value>, key: &str, text: String| {
        let value = match object.get(key) {
            Some(serde_json::Value::Number(_)) => serde_json::Value::from(number),
            _ => serde_json::Value::from(text),
        };
        object.insert(key.to_owned(), value);
    };
    match kind {
        EventKind::SmsMessageStatus => set(object, "id", format!("{run}:{ordinal}")),
        EventKind::VoiceMessageOut => set(object, "mid", format!("{run}-{ordinal}")),
        EventKind::ContactsSubscriberSubscription => {
            set(object, "id", format!("{run}-{ordinal}"));
            let identity = object.get("identity").and_then(|value| value.as_str()).unwrap_or_default();
            let unique = match identity.split_once('@') {
                Some((user, domain)) => format!("{user}+{ordinal}-{}@{domain}", run.simple()),
                None => format!("{identity}-{ordinal}-{}", run.simple()),
            };
            object.insert("identity".to_owned(), unique.into());
        }
        _ if kind.is_enveloped() => match object.get_mut("payload") {
            Some(serde_json::Value::Object(payload)) => set(payload, "id", format!("{run}-{ordinal}")),
            _ => set(object, "id", format!("{run}-{ordinal}")),
        },
        _ => set(object, "id", format!("{run}-{ordinal}")),
    }
}

async fn send_many(
    cli: &CliContext,
    kind: EventKind,
    request: &Arc<Request>,
    bodies: &Bodies,
    args: &SendArgs,
) -> anyhow::Result<Summary> {
    let progress = ProgressBar::new(args.count);
    if cli.output.json || !cli.output.styled() {
        progress.set_draw_target(ProgressDrawTarget::hidden());
    }
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let interval = args.rate.filter(|rate| *rate > 0.0).map(|rate| Duration::from_secs_f64(1.0 / rate));
    let started = Instant::now();
    let requests = futures::stream::iter(0..args.count).map(|index| {
        let body = bodies.body(index);
        let request = request.clone();
        async move {
            if let Some(interval) = interval {
                // Paced from the start, so a slow answer does not lower the rate.
                let due = started + interval.mul_f64(index as f64);
                tokio::time::sleep_until(due.into()).await;
            }
            request.send(body).await
        }
    });
    let mut outcomes = requests.buffer_unordered(args.concurrency.max(1));
    let mut summary = Summary {
        event: kind.as_str(),
        sent: 0,
        stored: 0,
        duplicates: 0,
        refused: Default::default(),
        errors: 0,
        elapsed_seconds: 0.0,
        requests_per_second: 0.0,
        latency_ms: Latency { p50: 0.0, p95: 0.0, p99: 0.0, max: 0.0 },
    };
    let mut latencies = Vec::with_capacity(args.count as usize);
    while let Some(outcome) = outcomes.next().await {
        summary.sent += 1;
        latencies.push(outcome.latency);
        match outcome.status {
            Some(status) if (200..300).contains(&status) => {
                summary.stored += 1;
                if outcome.duplicate {
                    summary.duplicates += 1;
                }
            }
            Some(status) => *summary.refused.entry(status).or_default() += 1,
            None => summary.errors += 1,
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    let elapsed = started.elapsed();
    summary.elapsed_seconds = elapsed.as_secs_f64();
    summary.requests_per_second = summary.sent as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
    latencies.sort();
    let at = |quantile: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let index = ((latencies.len() - 1) as f64 * quantile).round() as usize;
        latencies[index].as_secs_f64() * 1000.0
    };
    summary.latency_ms = Latency { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: at(1.0) };
    Ok(summary)
}

fn print_summary(cli: &CliContext, summary: &Summary) -> anyhow::Result<()> {
    if cli.output.json {
        cli.output.print_json(&serde_json::to_value(summary)?)?;
    } else {
        let refused = summary
            .refused
            .iter()
            .map(|(status, count)| format!("{count}×{status}"))
            .collect::<Vec<_>>()
            .join(", ");
        let table = cli.output.fields(&[
            ("event", summary.event.to_owned()),
            ("sent", summary.sent.to_string()),
            ("stored", summary.stored.to_string()),
            ("of which duplicates", summary.duplicates.to_string()),
            ("refused", if refused.is_empty() { "0".to_owned() } else { refused }),
            ("connection errors", summary.errors.to_string()),
            ("elapsed", format!("{:.2} s", summary.elapsed_seconds)),
            ("rate", format!("{:.1} requests/s", summary.requests_per_second)),
            (
                "latency p50 / p95 / p99 / max",
                format!(
                    "{:.1} / {:.1} / {:.1} / {:.1} ms",
                    summary.latency_ms.p50,
                    summary.latency_ms.p95,
                    summary.latency_ms.p99,
                    summary.latency_ms.max
                ),
            ),
        ]);
        cli.output.print_table(&table)?;
    }
    anyhow::ensure!(
        summary.stored == summary.sent,
        "{} of {} requests were not stored",
        summary.sent - summary.stored,
        summary.sent
    );
    Ok(())
}
