//! End-to-end latency: from the moment a webhook is sent to the moment the sms service announces the
//! committed change (what a `Watch` caller sees; a `GetMessage` then returns it), at a steady rate.
//! The gateway's own answer time is measured in the same run as the reference.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use switchboard_proto::sms::WatchRequest;
use switchboard_proto::sms::watch_response::Change;
use switchboard_tests::system_token;

use crate::stats::{Latencies, millis};
use switchboard_tests::workload;

#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) rate: u32,
    pub(crate) duration: Duration,
}

pub(crate) async fn run(options: Options) -> anyhow::Result<()> {
    let system = workload::sms_system().await?;
    let mut client = system.sms().await;
    let mut changes = client.watch(WatchRequest::default()).await?.into_inner();

    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let visible = Arc::new(Mutex::new(Latencies::new()));
    let watcher = {
        let sent = sent.clone();
        let visible = visible.clone();
        tokio::spawn(async move {
            while let Some(Ok(change)) = changes.next().await {
                if let Some(Change::Message(message)) = change.change {
                    let started = sent.lock().ok().and_then(|mut sent| sent.remove(&message.id));
                    if let (Some(started), Ok(mut visible)) = (started, visible.lock()) {
                        visible.record(started.elapsed());
                    }
                }
            }
        })
    };

    let answered = Arc::new(Mutex::new(Latencies::new()));
    let mut failed = 0u64;
    let total = (options.rate as f64 * options.duration.as_secs_f64()) as usize;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(options.rate)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let url = format!("{}/v1/events/sms:message:status", system.gateway_url);
    let http = reqwest::Client::new();
    let mut requests = Vec::with_capacity(total);
    let started = Instant::now();
    for message in 0..total {
        ticker.tick().await;
        let id = workload::sms_id(message);
        let body = workload::sms_status(message, "DELIVRD");
        let request =
            http.post(&url).bearer_auth(system_token()).header("content-type", "application/json").body(body);
        let sent = sent.clone();
        let answered = answered.clone();
        requests.push(tokio::spawn(async move {
            let at = Instant::now();
            if let Ok(mut sent) = sent.lock() {
                sent.insert(id.clone(), at);
            }
            let ok = matches!(request.send().await, Ok(response) if response.status().is_success());
            if ok {
                if let Ok(mut answered) = answered.lock() {
                    answered.record(at.elapsed());
                }
            } else if let Ok(mut sent) = sent.lock() {
                sent.remove(&id);
            }
            ok
        }));
    }
    for request in requests {
        if !request.await.unwrap_or(false) {
            failed += 1;
        }
    }
    let sending = started.elapsed();
    // Let the last events through.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && sent.lock().map(|sent| !sent.is_empty()).unwrap_or(false) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let missing = sent.lock().map(|sent| sent.len()).unwrap_or(0);
    watcher.abort();

    let answered = answered.lock().map(|latencies| latencies.clone()).unwrap_or_default();
    let visible = visible.lock().map(|latencies| latencies.clone()).unwrap_or_default();
    println!(
        "\nend-to-end latency at {} events/s for {:?} (achieved {:.0}/s): {} sent, {} failed, {} never visible",
        options.rate,
        options.duration,
        total as f64 / sending.as_secs_f64(),
        total,
        failed,
        missing
    );
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "measure", "count", "p50 ms", "p99 ms", "p999 ms", "max ms"
    );
    for (name, latencies) in
        [("gateway answer (stored)", &answered), ("webhook → visible over gRPC", &visible)]
    {
        println!(
            "{:<34} {:>9} {:>9} {:>9} {:>9} {:>9}",
            name,
            latencies.count(),
            millis(latencies.quantile(0.5)),
            millis(latencies.quantile(0.99)),
            millis(latencies.quantile(0.999)),
            millis(latencies.max())
        );
    }
    system.stop().await?;
    anyhow::ensure!(missing == 0, "{missing} acknowledged events never became visible");
    Ok(())
}
