//! The admin port: `/healthz` (the process runs), `/readyz` (it can do its job), `/metrics`.
//!
//! Readiness is the sum of named checks registered by each component (NATS connected, stream
//! present, consumer running, database reachable) and turns false as soon as shutdown begins, so a
//! load balancer stops sending work before the servers stop.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::{BoxFuture, join_all};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// How long one check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Default)]
pub struct Readiness {
    inner: Arc<ReadinessInner>,
}

#[derive(Default)]
struct ReadinessInner {
    /// Set once every component of the process has started; until then the process is not ready.
    started: AtomicBool,
    shutting_down: AtomicBool,
    checks: Mutex<Vec<(String, Check)>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.check_names();
        formatter.debug_struct("Readiness").field("checks", &names).finish()
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReadinessReport {
    pub ready: bool,
    pub checks: Vec<CheckResult>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CheckResult {
    pub name: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Readiness {
    /// Registers a check; it runs on every `/readyz` request, bounded by a timeout.
    pub fn add_check<F, Fut>(&self, name: impl Into<String>, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let check: Check = Arc::new(move || Box::pin(check()));
        if let Ok(mut checks) = self.inner.checks.lock() {
            checks.push((name.into(), check));
        }
    }

    pub fn check_names(&self) -> Vec<String> {
        self.inner
            .checks
            .lock()
            .map(|checks| checks.iter().map(|(name, _)| name.clone()).collect())
            .unwrap_or_default()
    }

    /// Every component has started: from now on readiness is the checks' verdict.
    pub fn mark_started(&self) {
        self.inner.started.store(true, Ordering::SeqCst);
    }

    /// From now on the process reports not ready.
    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }

    pub async fn evaluate(&self) -> ReadinessReport {
        let checks: Vec<(String, Check)> =
            self.inner.checks.lock().map(|checks| checks.clone()).unwrap_or_default();
        let results = join_all(checks.into_iter().map(|(name, check)| async move {
            let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
            };
            CheckResult { name, ok: outcome.is_ok(), error: outcome.err() }
        }))
        .await;
        let mut results = results;
        if !self.inner.started.load(Ordering::SeqCst) {
            results.insert(
                0,
                CheckResult { name: "startup".to_owned(), ok: false, error: Some("starting".to_owned()) },
            );
        }
        if self.is_shutting_down() {
            results.push(CheckResult {
                name: "shutdown".to_owned(),
                ok: false,
                error: Some("shutting down".to_owned()),
            });
        }
        ReadinessReport { ready: results.iter().all(|result| result.ok), checks: results }
    }
}

pub fn router(readiness: Readiness) -> Router {
    // Install the metrics recorder now, with the admin port: until it exists every counter and
    // histogram update is dropped, and the first scrape may come long after the first webhook.
    crate::telemetry::metrics();
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(readiness)
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    let report = readiness.evaluate().await;
    let status = if report.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(report)).into_response()
}

async fn metrics() -> Response {
    let body = crate::telemetry::metrics().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Serves the admin endpoints until `shutdown` is cancelled. The admin port stays up until the
/// very end so probes see the not-ready state during the drain.
pub async fn serve(
    listener: TcpListener,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(readiness)).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readiness_combines_checks_and_shutdown() {
        let readiness = Readiness::default();
        assert!(!readiness.evaluate().await.ready, "not ready before start-up completes");
        readiness.mark_started();
        assert!(readiness.evaluate().await.ready, "no checks: ready");
        readiness.add_check("good", || async { Ok(()) });
        assert!(readiness.evaluate().await.ready);
        readiness.add_check("bad", || async { Err("database unreachable".to_owned()) });
        let report = readiness.evaluate().await;
        assert!(!report.ready);
        assert_eq!(report.checks[1].error.as_deref(), Some("database unreachable"));

        let only_good = Readiness::default();
        only_good.mark_started();
        only_good.add_check("good", || async { Ok(()) });
        only_good.begin_shutdown();
        assert!(!only_good.evaluate().await.ready, "shutting down: not ready");
    }
}
