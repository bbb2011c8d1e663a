//! A closed-loop HTTP load generator: a fixed number of connections, each posting as fast as answers
//! come back, for a fixed time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::stats::LoadResult;
use switchboard_tests::workload;

#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) name: String,
    /// The URL of `sms:message:status` deliveries.
    pub(crate) url: String,
    pub(crate) token: Option<String>,
}

/// Posts unique sms reports to `target` from `concurrency` tasks for `duration`. `counter` numbers
/// the messages across runs so no body repeats (a repeat would be a cheap duplicate).
pub(crate) async fn run(
    target: &Target,
    concurrency: usize,
    duration: Duration,
    counter: Arc<AtomicUsize>,
) -> LoadResult {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new());
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let client = client.clone();
        let target = target.clone();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            let mut result = LoadResult::new(target.name.clone());
            while Instant::now() < deadline {
                let message = counter.fetch_add(1, Ordering::Relaxed);
                let body = workload::sms_status(message, "DELIVRD");
                let mut request =
                    client.post(&target.url).header("content-type", "application/json").body(body);
                if let Some(token) = &target.token {
                    request = request.bearer_auth(token);
                }
                let sent = Instant::now();
                let answer = match request.send().await {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        let _ = response.bytes().await;
                        ok
                    }
                    Err(_) => false,
                };
                if answer {
                    result.ok += 1;
                    result.latencies.record(sent.elapsed());
                } else {
                    result.failed += 1;
                }
            }
            result
        }));
    }
    let mut total = LoadResult::new(target.name.clone());
    for task in tasks {
        if let Ok(result) = task.await {
            total.absorb(&result);
        }
    }
    total.elapsed = started.elapsed();
    total
}
