//! `switchboard rebuild <service>`: a service's tables rebuilt from the event stream into a fresh
//! database, with the service's own migrations and projection.
//!
//! The events are read from the start of the stream by an ephemeral ordered consumer (the service's
//! durable consumer is not touched while reading), up to the last event stored when the rebuild
//! started: sequence `S`. Events that do not decode are counted and skipped, as the service would
//! dead-letter them. The rebuilt database then holds the state events `1..=S` describe.
//!
//! Swapping it in happens with the service stopped: `--swap` (SQLite) moves the files and recreates
//! the service's durable consumers to deliver from `S + 1`, since events after `S` may have been
//! acknowledged into the old database while the rebuild ran and must reach the new one. Otherwise
//! the steps are printed. Events a consumer delivers again are harmless: projections are
//! idempotent and independent of order.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use switchboard_events::Product;
use switchboard_runtime::changes::ChangeFeed;
use switchboard_runtime::config::Config;
use switchboard_runtime::nats;
use switchboard_runtime::tokio_util::sync::CancellationToken;
use switchboard_service::descriptor::{ProjectionParts, ServiceDescriptor};
use switchboard_service::replay::{ReplayProgress, StreamReplay};
use switchboard_store::Database;

use super::{Cli, Output};

#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// The service whose tables to rebuild: sms, chat, voice, interact or contacts.
    service: String,
    /// Where to build: a database URL (`sqlite://…` or `postgres://…`, an empty database) or a
    /// SQLite file path that does not exist yet. Default: `<configured SQLite file>.rebuild`.
    #[arg(long, value_name = "URL|PATH")]
    into: Option<String>,
    /// Then move the configured SQLite file aside (`.bak`), move the rebuilt one in its place and
    /// reset the service's durable consumers. The service must be stopped.
    #[arg(long)]
    swap: bool,
    /// Events applied per transaction.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Do not rebuild: only recreate the service's durable consumers to deliver from stream sequence
    /// SEQ + 1 (the step a rebuild without `--swap` prints). The service must be stopped.
    #[arg(long, value_name = "SEQ", conflicts_with_all = ["into", "swap"])]
    resume_after: Option<u64>,
}

/// What a rebuild did, as printed with `--json`.
#[derive(Debug, Serialize)]
struct Summary {
    service: &'static str,
    /// The rebuilt database (credentials redacted).
    database: String,
    /// Events read from the stream.
    events: u64,
    /// Events applied to the new database.
    applied: u64,
    /// Events that could not be decoded (the service dead-letters these).
    undecodable: u64,
    /// Events the projection refused even alone.
    failed: u64,
    /// A few of the reasons, first ones first.
    reasons: Vec<String>,
    /// The last stream sequence read: the rebuilt database holds every event up to it.
    last_sequence: u64,
    seconds: f64,
    swapped: bool,
    consumers_reset: Vec<String>,
    /// What remains for the operator.
    next_steps: Vec<String>,
}

pub async fn run(cli: &Cli, args: &RebuildArgs) -> anyhow::Result<()> {
    let product = Product::from_name(&args.service)
        .filter(|product| crate::implemented_services().contains(product))
        .with_context(|| format!("unknown service {:?}", args.service))?;
    let output = Output::new(cli.json);
    let config = Config::load_sections(cli.config.as_deref(), Some(&["nats", "storage", product.name()]))
        .map_err(|errors| anyhow::anyhow!("{errors}"))?;
    // Like `switchboard up`: with nothing answering at a local NATS URL, start nats-server on its
    // data, so the steps work with `up` stopped.
    let local_nats = crate::local::ensure_nats(&config).await?;
    let result = rebuild(&config, product, args, &output).await;
    if let Some(local_nats) = local_nats {
        local_nats.stop().await;
    }
    result
}

async fn rebuild(
    config: &Config,
    product: Product,
    args: &RebuildArgs,
    output: &Output,
) -> anyhow::Result<()> {
    let output = *output;
    if let Some(last) = args.resume_after {
        let client = super::connect_nats(config).await?;
        let jetstream = nats::jetstream(client, &config.nats);
        let reset =
            reset_consumers(&jetstream, &config.nats.stream.name, crate::descriptor(product), last).await?;
        if output.json {
            return output
                .print_json(&serde_json::json!({ "consumers_reset": reset, "resume_at": last + 1 }));
        }
        if reset.is_empty() {
            return output.print_line(format!(
                "no durable consumer of the {product} service exists yet: it reads the stream from the start"
            ));
        }
        for name in &reset {
            output.print_line(format!("consumer {name} now delivers from stream sequence {}", last + 1))?;
        }
        return Ok(());
    }
    let service = config.service(product);
    let live = service.database_url(product, &config.storage.data_dir);
    let live_file = sqlite_path(live.expose());
    let target = match &args.into {
        Some(into) => target_url(into),
        None => {
            let live_file = live_file.as_ref().context(
                "the service's database is not SQLite: give the database to build into with --into <url>",
            )?;
            let mut name = live_file.clone().into_os_string();
            name.push(".rebuild");
            target_url(&PathBuf::from(name).display().to_string())
        }
    };
    let target_file = sqlite_path(&target);
    if args.swap && (live_file.is_none() || target_file.is_none()) {
        anyhow::bail!(
            "--swap moves SQLite files: for PostgreSQL, run without it and follow the printed steps"
        );
    }
    if let Some(file) = &target_file
        && file.exists()
    {
        anyhow::bail!("{} already exists: remove it or choose another --into", file.display());
    }
    if args.swap
        && let Some(live) = &live_file
        && with_suffix(live, ".bak").exists()
    {
        anyhow::bail!("{}.bak already exists: remove it (an earlier backup) before swapping", live.display());
    }
    if live_file.is_some() && live_file == target_file {
        anyhow::bail!("--into is the service's own database: rebuild into a new one");
    }

    let client = super::connect_nats(config).await?;
    let jetstream = nats::jetstream(client.clone(), &config.nats);
    let subjects = config.nats.subjects();
    let stop = CancellationToken::new();
    // Changes are announced on a subject of their own, so the live service's watchers see nothing.
    let changes =
        ChangeFeed::start(client.clone(), format!("{}.rebuild", subjects.changes(product)), stop.clone())
            .await
            .map_err(|error| anyhow::anyhow!("change feed: {error}"))?;
    let settings = switchboard_service::host::pool_settings(service, 2);
    let database = Database::open(&target, settings, crate::descriptor(product).migrations)
        .await
        .context("creating the database to rebuild into")?;
    let descriptor = crate::descriptor(product);
    let bar = Bar::new(output, product);
    let replay = StreamReplay {
        jetstream: &jetstream,
        subjects: &subjects,
        stream: &config.nats.stream.name,
        product,
        batch: args.batch,
        progress: &bar,
    };
    let started = Instant::now();
    let parts =
        ProjectionParts { database: database.clone(), changes, zone: config.storage.provider_timezone };
    let tally = (descriptor.rebuild)(&replay, parts).await?;
    // Closing checkpoints SQLite's write-ahead log into the file, so the file alone is the database.
    database.close().await;
    stop.cancel();
    let seconds = started.elapsed().as_secs_f64();

    let mut swapped = false;
    if args.swap
        && let (Some(live_file), Some(target_file)) = (&live_file, &target_file)
    {
        swap_files(live_file, target_file)?;
        swapped = true;
    }
    let consumers_reset = if swapped {
        reset_consumers(&jetstream, &config.nats.stream.name, crate::descriptor(product), tally.last_sequence)
            .await?
    } else {
        Vec::new()
    };
    let next_steps = next_steps(product, &live_file, &target, swapped, tally.last_sequence);
    let summary = Summary {
        service: product.name(),
        database: nats::redacted_url(&target),
        events: tally.events,
        applied: tally.applied,
        undecodable: tally.undecodable,
        failed: tally.failed,
        reasons: tally.reasons,
        last_sequence: tally.last_sequence,
        seconds,
        swapped,
        consumers_reset,
        next_steps,
    };
    print(&output, &summary)
}

fn print(output: &Output, summary: &Summary) -> anyhow::Result<()> {
    if output.json {
        return output.print_json(&serde_json::to_value(summary)?);
    }
    output.print_line(format!(
        "rebuilt {} into {}: {} events read up to stream sequence {}, {} applied, {} undecodable, {} failed, in {:.1}s",
        summary.service,
        summary.database,
        summary.events,
        summary.last_sequence,
        summary.applied,
        summary.undecodable,
        summary.failed,
        summary.seconds
    ))?;
    for reason in &summary.reasons {
        output.print_line(format!("  skipped: {reason}"))?;
    }
    if summary.swapped {
        output.print_line("swapped: the rebuilt database is in place; the old one is kept as .bak")?;
    }
    for name in &summary.consumers_reset {
        output.print_line(format!(
            "consumer {name} now delivers from stream sequence {}",
            summary.last_sequence + 1
        ))?;
    }
    if !summary.next_steps.is_empty() {
        output.print_line("next:")?;
        for (index, step) in summary.next_steps.iter().enumerate() {
            output.print_line(format!("  {}. {step}", index + 1))?;
        }
    }
    Ok(())
}

/// The SQLite file a URL names, if it is a SQLite URL.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// `--into` as a database URL: a plain path is a SQLite file, created on open.
fn target_url(into: &str) -> String {
    let url = if into.contains("://") || into.starts_with("sqlite:") {
        into.to_owned()
    } else {
        format!("sqlite://{into}")
    };
    if sqlite_path(&url).is_some() && !url.contains("mode=") {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}mode=rwc")
    } else {
        url
    }
}

/// The rebuild's progress bar (hidden for `--json` and off a terminal).
struct Bar(ProgressBar);

impl Bar {
    fn new(output: Output, product: Product) -> Bar {
        let bar = ProgressBar::new(0);
        if output.json {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_style(
            ProgressStyle::with_template(
                "rebuilding {msg} {bar:40} {human_pos}/{human_len} {per_sec} elapsed {elapsed} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(product.name());
        Bar(bar)
    }
}

impl ReplayProgress for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
    }

    fn advance(&self, read: u64) {
        self.0.set_position(read);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// SQLite's companions of a database file (present while it is open, or after a crash).
const COMPANIONS: [&str; 3] = ["", "-wal", "-shm"];

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Moves `live` (and its `-wal`/`-shm`) to `live.bak`, then `rebuilt` to `live`.
fn swap_files(live: &Path, rebuilt: &Path) -> anyhow::Result<()> {
    let backup = with_suffix(live, ".bak");
    if backup.exists() {
        anyhow::bail!("{} already exists: remove it (an earlier backup) before swapping", backup.display());
    }
    for companion in COMPANIONS {
        let from = with_suffix(live, companion);
        if from.exists() {
            let to = with_suffix(&backup, companion);
            std::fs::rename(&from, &to)
                .with_context(|| format!("moving {} to {}", from.display(), to.display()))?;
        }
    }
    for companion in COMPANIONS {
        let from = with_suffix(rebuilt, companion);
        if from.exists() {
            let to = with_suffix(live, companion);
            std::fs::rename(&from, &to)
                .with_context(|| format!("moving {} to {}", from.display(), to.display()))?;
        }
    }
    Ok(())
}

/// Recreates the service's durable consumers, with their settings, to deliver from `last + 1`.
/// A consumer that does not exist is left to the service, which creates it from the start of the
/// stream.
async fn reset_consumers(
    jetstream: &jetstream::Context,
    stream: &str,
    service: &ServiceDescriptor,
    last: u64,
) -> anyhow::Result<Vec<String>> {
    let stream = jetstream.get_stream(stream).await.with_context(|| format!("no stream {stream}"))?;
    let mut reset = Vec::new();
    for name in service.durable_names() {
        let Ok(existing) = stream.get_consumer::<consumer::pull::Config>(name).await else {
            continue;
        };
        let mut config = existing.cached_info().config.clone();
        config.deliver_policy = consumer::DeliverPolicy::ByStartSequence { start_sequence: last + 1 };
        stream.delete_consumer(name).await.with_context(|| format!("deleting consumer {name}"))?;
        stream.create_consumer(config).await.with_context(|| format!("recreating consumer {name}"))?;
        reset.push(name.to_owned());
    }
    Ok(reset)
}

fn next_steps(
    product: Product,
    live_file: &Option<PathBuf>,
    target: &str,
    swapped: bool,
    last_sequence: u64,
) -> Vec<String> {
    let mut steps = Vec::new();
    if swapped {
        steps.push(format!("start the {product} service"));
        return steps;
    }
    steps.push(format!("stop the {product} service (every replica; or `switchboard up`)"));
    match (live_file, sqlite_path(target)) {
        (Some(live), Some(rebuilt)) => {
            steps.push(format!(
                "mv {} {}   (and its -wal and -shm files, if any)",
                live.display(),
                with_suffix(live, ".bak").display()
            ));
            steps.push(format!("mv {} {}", rebuilt.display(), live.display()));
        }
        _ => steps.push(format!(
            "set [{product}] database_url to {} (or SWITCHBOARD_{}__DATABASE_URL)",
            nats::redacted_url(target),
            product.name().to_uppercase()
        )),
    }
    steps.push(format!(
        "switchboard rebuild {product} --resume-after {last_sequence}   (its consumers then deliver what the rebuilt database lacks; needed when the service ran during the rebuild, harmless otherwise)"
    ));
    steps.push(format!("start the {product} service"));
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_database_urls() {
        assert_eq!(target_url("/var/lib/sb/sms.db.new"), "sqlite:///var/lib/sb/sms.db.new?mode=rwc");
        assert_eq!(target_url("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db?mode=rwc");
        assert_eq!(target_url("sqlite:///tmp/a.db?mode=rwc"), "sqlite:///tmp/a.db?mode=rwc");
        assert_eq!(target_url("postgres://sb@db/sms_new"), "postgres://sb@db/sms_new");
        assert_eq!(sqlite_path("sqlite:///tmp/a.db?mode=rwc"), Some(PathBuf::from("/tmp/a.db")));
        assert_eq!(sqlite_path("postgres://db/x"), None);
        let names = |product| crate::descriptor(product).durable_names().collect::<Vec<_>>();
        assert_eq!(names(Product::Chat), ["chat-whatsapp", "chat-rcs"]);
        assert_eq!(names(Product::Interact), ["interact"]);
    }
}
