//! Logs (pretty or JSON, via `tracing`) and Prometheus metrics (via `metrics`).

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{LogConfig, LogFormat};

/// Builds the process's log subscriber. Returned rather than installed, so tests and embedders can
/// scope it (`tracing::subscriber::with_default`) or capture its output.
pub fn log_subscriber<W>(
    config: &LogConfig,
    writer: W,
) -> Result<Box<dyn tracing::Subscriber + Send + Sync>, String>
where
    W: for<'writer> tracing_subscriber::fmt::MakeWriter<'writer> + Send + Sync + 'static,
{
    log_subscriber_coloured(config, writer, false)
}

/// Like [`log_subscriber`], with ANSI colours when `colour` is true (for a terminal).
pub fn log_subscriber_coloured<W>(
    config: &LogConfig,
    writer: W,
    colour: bool,
) -> Result<Box<dyn tracing::Subscriber + Send + Sync>, String>
where
    W: for<'writer> tracing_subscriber::fmt::MakeWriter<'writer> + Send + Sync + 'static,
{
    let filter = log_filter(config, std::env::var("RUST_LOG").ok().as_deref())?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(colour)
        .with_span_events(FmtSpan::NONE);
    Ok(match config.format {
        LogFormat::Pretty => Box::new(builder.with_target(true).finish()),
        LogFormat::Json => Box::new(builder.json().flatten_event(true).with_current_span(false).finish()),
    })
}

/// `RUST_LOG`, when set and not empty, as operators of Rust services expect; otherwise
/// `[log] filter`. An invalid filter is an error either way, never a silent default.
fn log_filter(config: &LogConfig, rust_log: Option<&str>) -> Result<EnvFilter, String> {
    match rust_log.map(str::trim).filter(|value| !value.is_empty()) {
        Some(value) => EnvFilter::try_new(value)
            .map_err(|error| format!("RUST_LOG {value:?} is not a valid filter: {error}")),
        None => EnvFilter::try_new(&config.filter)
            .map_err(|error| format!("log.filter {:?} is not a valid filter: {error}", config.filter)),
    }
}

/// Installs the log subscriber for the whole process (binaries only), writing to standard error:
/// coloured only when it is a terminal and `NO_COLOR` is unset, so logs redirected to a file or
/// collected from a container hold no escape codes.
pub fn init_logging(config: &LogConfig) -> Result<(), String> {
    use std::io::IsTerminal as _;
    let colour =
        std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let subscriber = log_subscriber_coloured(config, std::io::stderr, colour)?;
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|error| format!("logging already set up: {error}"))
}

/// Latency buckets in seconds: from sub-millisecond publishes to the provider's 3 s deadline.
const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0, 10.0];

/// How often recorded histogram samples are folded into their buckets.
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(1);
/// The name of the thread that does it (`ps -T`, `/proc/<pid>/task/*/comm`).
const UPKEEP_THREAD: &str = "metrics-upkeep";

/// The process-wide Prometheus recorder, installed on first use. Metrics are process-global by the
/// nature of the `metrics` facade; several components in one process share one registry.
///
/// The recorder keeps every histogram sample until its upkeep folds them into the buckets; without
/// it they would pile up between scrapes, or for ever where nothing scrapes (the gateway grew by
/// 18 MiB in 10 s under load). A thread of its own runs the upkeep every
/// [`METRICS_UPKEEP_INTERVAL`] for the life of the process.
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let handle = match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (an embedding application's): keep a private one so
                // /metrics still answers, with what this recorder sees.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            };
            let upkeep = handle.clone();
            keep_up(UPKEEP_THREAD, METRICS_UPKEEP_INTERVAL, move || upkeep.run_upkeep());
            handle
        })
        .clone()
}

/// Runs `upkeep` every `interval` on a thread of its own named `name`, which outlives any runtime.
fn keep_up(name: &str, interval: Duration, upkeep: impl Fn() + Send + 'static) {
    let started = std::thread::Builder::new().name(name.to_owned()).spawn(move || {
        loop {
            std::thread::sleep(interval);
            upkeep();
        }
    });
    if let Err(error) = started {
        // Samples are still folded in at every scrape; only an unscraped process would grow.
        tracing::warn!(%error, "cannot start the metrics upkeep thread");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn the_upkeep_runs_again_and_again_on_its_own_thread() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        keep_up("upkeep-test", Duration::from_millis(10), move || {
            assert_eq!(std::thread::current().name(), Some("upkeep-test"));
            counted.fetch_add(1, Ordering::SeqCst);
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while runs.load(Ordering::SeqCst) < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "the upkeep ran {} times",
                runs.load(Ordering::SeqCst)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn the_process_recorder_starts_its_upkeep_thread() {
        let _ = metrics();
        let threads = || -> Vec<String> {
            std::fs::read_dir("/proc/self/task")
                .expect("/proc is readable")
                .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
                .map(|name| name.trim().to_owned())
                .collect()
        };
        // A new thread takes its name once it runs.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !threads().iter().any(|name| name == UPKEEP_THREAD) {
            assert!(std::time::Instant::now() < deadline, "threads: {:?}", threads());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn rust_log_wins_over_the_configured_filter() {
        let config = LogConfig { filter: "info".to_owned(), ..LogConfig::default() };
        assert_eq!(
            log_filter(&config, Some("switchboard=trace")).expect("valid").to_string(),
            "switchboard=trace"
        );
        assert_eq!(log_filter(&config, None).expect("valid").to_string(), "info");
        assert_eq!(log_filter(&config, Some("  ")).expect("valid").to_string(), "info");
        assert!(log_filter(&config, Some("=[")).is_err());
    }
}
