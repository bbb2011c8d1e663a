//! `switchboard-bench`: how fast Switchboard is, always against a baseline measured in the same run
//! (these machines are shared and noisy; absolute numbers alone mean little).
//!
//! * `gateway`: the gateway against a bare axum publisher, over loopback, with real JetStream;
//! * `projection`: each service's projection against plain batched inserts, per backend;
//! * `query`: gRPC `GetMessage`/`ListMessages` against the health check on the same server;
//! * `latency`: webhook → visible over gRPC at a steady rate;
//! * `drain`: a backlog drained by the real service process, against a bare pull consumer.
//!
//! Method and recorded figures: docs/benchmarks.md.
#![forbid(unsafe_code)]
// A command-line tool: its results go to stdout.
#![allow(clippy::print_stdout)]

mod drain;
mod gateway;
mod latency;
mod load;
mod projection;
mod query;
mod stats;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use switchboard_events::Product;
use switchboard_tests::TestBackend;
use switchboard_tests::workload::Arrival;

/// The allocator the `switchboard` binary uses (mimalloc), so that the baselines here and the
/// components measured compare like for like.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "switchboard-bench",
    about = "Benchmarks against same-run baselines (see docs/benchmarks.md)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The gateway (auth, metrics, every check) against a bare publish-and-ack handler.
    ///
    /// Example: switchboard-bench gateway --concurrency 64 --seconds 10 --rounds 3
    Gateway {
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Length of each measured round.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Rounds per side, interleaved.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// The switchboard binary (default: next to this one).
        #[arg(long)]
        switchboard: Option<PathBuf>,
    },
    /// Each service's projection against plain batched inserts of the same events.
    ///
    /// Example: switchboard-bench projection --service sms --backend sqlite --events 50000
    Projection {
        /// Services to measure (default: all five).
        #[arg(long = "service", value_parser = parse_product)]
        services: Vec<Product>,
        /// Backends to measure (default: sqlite). PostgreSQL uses SB_TEST_POSTGRES_URL.
        #[arg(long = "backend", value_enum)]
        backends: Vec<BackendArg>,
        #[arg(long, default_value_t = 50_000)]
        events: usize,
        /// Events per transaction, as the consumer's batch_size (default: the consumer's default when
        /// it writes one batch at a time).
        #[arg(long, default_value_t = switchboard_runtime::config::BATCH_SIZE_ONE_WRITE)]
        batch: usize,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// How far (in events) a report may arrive from its message's place in the sending order.
        #[arg(long, default_value_t = 2_000)]
        window: usize,
        /// Shuffle the whole run instead: every batch touches rows all over the tables (worst case).
        #[arg(long, conflicts_with = "window")]
        shuffle: bool,
    },
    /// gRPC GetMessage and ListMessages against the health check, on a loaded sms service.
    ///
    /// Example: switchboard-bench query --messages 20000 --seconds 5
    Query {
        #[arg(long, default_value_t = 20_000)]
        messages: usize,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// Webhook to visible over gRPC, at a steady rate.
    ///
    /// Example: switchboard-bench latency --rate 2000 --seconds 20
    Latency {
        #[arg(long, default_value_t = 2000)]
        rate: u32,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// A backlog drained by the real `switchboard <service>` process, timed from outside, against a
    /// bare pull consumer that only fetches and acknowledges.
    ///
    /// Example: switchboard-bench drain --service sms --backend sqlite --events 200000
    Drain {
        /// Services to measure (default: all five).
        #[arg(long = "service", value_parser = parse_product)]
        services: Vec<Product>,
        /// Backends to measure (default: sqlite). PostgreSQL uses SB_TEST_POSTGRES_URL.
        #[arg(long = "backend", value_enum)]
        backends: Vec<BackendArg>,
        /// Events per service in the backlog.
        #[arg(long, default_value_t = 200_000)]
        events: usize,
        /// The switchboard binary (default: next to this one).
        #[arg(long)]
        switchboard: Option<PathBuf>,
    },
    /// The bare publisher the gateway is compared with (started by `gateway`).
    #[command(hide = true)]
    BaselineServer {
        #[arg(long)]
        nats: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BackendArg {
    Sqlite,
    Postgres,
}

fn parse_product(name: &str) -> Result<Product, String> {
    Product::from_name(name)
        .ok_or_else(|| format!("unknown service {name:?} (sms, chat, voice, interact, contacts)"))
}

/// The backends asked for; SQLite when none.
fn test_backends(backends: Vec<BackendArg>) -> Vec<TestBackend> {
    if backends.is_empty() {
        return vec![TestBackend::Sqlite];
    }
    backends
        .into_iter()
        .map(|backend| match backend {
            BackendArg::Sqlite => TestBackend::Sqlite,
            BackendArg::Postgres => TestBackend::Postgres,
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Gateway { concurrency, seconds, rounds, switchboard } => {
            gateway::run(gateway::Options {
                concurrency,
                duration: Duration::from_secs(seconds),
                rounds,
                switchboard,
            })
            .await
        }
        Command::Drain { services, backends, events, switchboard } => {
            let products = if services.is_empty() { Product::ALL.to_vec() } else { services };
            drain::run(drain::Options { products, backends: test_backends(backends), events, switchboard })
                .await
        }
        Command::Projection { services, backends, events, batch, rounds, window, shuffle } => {
            let products = if services.is_empty() { Product::ALL.to_vec() } else { services };
            let backends = test_backends(backends);
            let arrival = if shuffle { Arrival::Shuffled } else { Arrival::Local { window } };
            projection::run(projection::Options { products, backends, events, batch, rounds, arrival }).await
        }
        Command::Query { messages, concurrency, seconds } => {
            query::run(query::Options { messages, concurrency, duration: Duration::from_secs(seconds) }).await
        }
        Command::Latency { rate, seconds } => {
            latency::run(latency::Options { rate, duration: Duration::from_secs(seconds) }).await
        }
        Command::BaselineServer { nats } => gateway::baseline_server(nats).await,
    }
}
