//! gRPC query throughput and latency on a loaded sms service: `GetMessage` and `ListMessages`
//! against the cheapest call the same server answers (the health check), in the same run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use switchboard_proto::sms::sms_service_client::SmsServiceClient;
use switchboard_proto::sms::{GetMessageRequest, ListMessagesRequest};
use switchboard_tests::{TestSystem, system_token};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::stats::{LoadResult, print_load_table};
use switchboard_tests::workload;

#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) messages: usize,
    pub(crate) concurrency: usize,
    pub(crate) duration: Duration,
}

#[derive(Debug, Clone, Copy)]
enum Call {
    Health,
    Get,
    List,
}

pub(crate) async fn run(options: Options) -> anyhow::Result<()> {
    let system = workload::sms_system().await?;
    load(&system, options.messages).await?;
    let channel = Channel::from_shared(system.grpc_url.clone())?.connect().await?;
    let mut results = Vec::new();
    for (name, call) in [
        ("health check (baseline)", Call::Health),
        ("GetMessage", Call::Get),
        ("ListMessages (page 50)", Call::List),
    ] {
        let result = drive(name, call, channel.clone(), &options).await;
        eprintln!("  {name}: {:.0} calls/s", result.rate());
        results.push(result);
    }
    print_load_table(
        &format!(
            "gRPC queries on {} stored messages: {} concurrent callers, {:?} each",
            options.messages, options.concurrency, options.duration
        ),
        &results,
    );
    system.stop().await?;
    Ok(())
}

/// Posts `messages` reports through the gateway and waits until the last is queryable.
async fn load(system: &TestSystem, messages: usize) -> anyhow::Result<()> {
    let url = format!("{}/v1/events/sms:message:status", system.gateway_url);
    let http = reqwest::Client::new();
    let results: Vec<bool> = futures::stream::iter(0..messages)
        .map(|message| {
            let request = http
                .post(&url)
                .bearer_auth(system_token())
                .header("content-type", "application/json")
                .body(workload::sms_status(message, "DELIVRD"));
            async move { matches!(request.send().await, Ok(response) if response.status().is_success()) }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    anyhow::ensure!(results.iter().all(|ok| *ok), "loading: the gateway refused some events");
    let mut client = system.sms().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    for message in [0, messages / 2, messages - 1] {
        while client.get_message(GetMessageRequest { id: workload::sms_id(message) }).await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "message {message} not visible after 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

async fn drive(name: &str, call: Call, channel: Channel, options: &Options) -> LoadResult {
    let started = Instant::now();
    let deadline = started + options.duration;
    let sequence = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..options.concurrency {
        let mut health = HealthClient::new(channel.clone());
        let mut sms = SmsServiceClient::new(channel.clone());
        let sequence = sequence.clone();
        let messages = options.messages as u64;
        let mut result = LoadResult::new(name);
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let n = sequence.fetch_add(7919, Ordering::Relaxed) % messages;
                let at = Instant::now();
                let ok = match call {
                    Call::Health => health.check(HealthCheckRequest { service: String::new() }).await.is_ok(),
                    Call::Get => {
                        sms.get_message(GetMessageRequest { id: workload::sms_id(n as usize) }).await.is_ok()
                    }
                    Call::List => sms
                        .list_messages(ListMessagesRequest {
                            mobile: format!("9189{:08}", n % 100),
                            page_size: 50,
                            ..Default::default()
                        })
                        .await
                        .is_ok_and(|response| !response.get_ref().messages.is_empty()),
                };
                if ok {
                    result.ok += 1;
                    result.latencies.record(at.elapsed());
                } else {
                    result.failed += 1;
                }
            }
            result
        }));
    }
    let mut total = LoadResult::new(name);
    for task in tasks {
        if let Ok(result) = task.await {
            total.absorb(&result);
        }
    }
    total.elapsed = started.elapsed();
    total
}
