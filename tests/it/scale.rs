//! Several replicas on one database and one durable consumer; a database that goes away mid-run.

use std::time::Duration;

use async_nats::HeaderMap;
use switchboard::Component;
use switchboard_events::Product;
use switchboard_proto::sms::GetMessageRequest;
use switchboard_sms::store::{self, EventRow, MessageRow};
use switchboard_store::{Conditions, Database, PoolSettings};
use switchboard_tests::{NatsServer, PostgresServer, TestBackend, TestDatabase, TestSystem, wait_until};

const WAIT: Duration = Duration::from_secs(60);

/// A publish as the gateway would make it, with a fixed receive time so two runs store the same rows.
async fn publish(jetstream: &async_nats::jetstream::Context, index: usize, body: &str) {
    let mut headers = HeaderMap::new();
    headers.insert("Switchboard-Event", "sms:message:status");
    let received_at = format!("2026-01-01T00:00:{:02}.{:06}Z", index / 1_000_000 % 60, index % 1_000_000);
    headers.insert("Switchboard-Received-At", received_at.as_str());
    // A distinct id per publish: a redelivered body after the duplicate window, as the provider does.
    headers.insert("Nats-Msg-Id", format!("publish-{index}").as_str());
    jetstream
        .publish_with_headers("sms.message.status", headers, body.to_owned().into())
        .await
        .expect("publish")
        .await
        .expect("stored");
}

/// Reports for `messages` messages, five statuses each, every body twice, interleaved.
fn workload(messages: usize) -> Vec<String> {
    let statuses = [
        ("AWAITING-DLR", "2021-04-09 16:27:36"),
        ("TIMEOUT-DLR", "2021-04-09 18:27:36"),
        ("DELIVRD", "2021-04-09 16:30:00"),
        ("UNDELIV", "2021-04-09 16:29:00"),
        ("ENROUTE", "2021-04-09 20:00:00"),
    ];
    let mut bodies = Vec::new();
    for round in 0..2 {
        for (status_index, (status, time)) in statuses.iter().enumerate() {
            for message in 0..messages {
                // Vary the order per message so replicas see different interleavings.
                let position = (status_index + message + round) % statuses.len();
                let (status, time) =
                    if round == 0 { (status, time) } else { (&statuses[position].0, &statuses[position].1) };
                bodies.push(
                    serde_json::json!({"id": format!("scale-{message}:1"), "mobile": format!("9190000{message:05}"), "status": status, "deliv_time": time})
                        .to_string(),
                );
            }
        }
    }
    bodies
}

async fn dump(url: &switchboard_runtime::Secret) -> Vec<(MessageRow, Vec<EventRow>)> {
    let database = Database::connect(url.expose(), PoolSettings::default()).await.expect("connect");
    let rows = store::list_messages(&database, Conditions::new(), None, 100_000).await.expect("list");
    let mut state = Vec::new();
    for row in rows {
        let (message, history) = store::get_message(&database, &row.id).await.expect("get").expect("exists");
        state.push((message, history));
    }
    state.sort_by(|left, right| left.0.id.cmp(&right.0.id));
    database.close().await;
    state
}

/// Runs `replicas` sms replicas on one database and one NATS, publishes the workload, waits until
/// the consumer is drained, and returns the stored state.
async fn run_replicas(replicas: usize, bodies: &[String]) -> Vec<(MessageRow, Vec<EventRow>)> {
    let nats = NatsServer::start().expect("nats");
    let database = TestDatabase::create(TestBackend::from_env(), "replicas").await.expect("database");
    let mut systems = Vec::new();
    for _ in 0..replicas {
        let system = TestSystem::builder()
            .components(&[Component::Service(Product::Sms)])
            .nats(nats.url())
            .database(Product::Sms, database.url())
            // Small batches make the replicas interleave more.
            .configure(|config| config.service_mut(Product::Sms).consumer.batch_size = Some(7))
            .start()
            .await
            .expect("replica starts");
        systems.push(system);
    }
    let jetstream = systems[0].jetstream().await.expect("jetstream");
    for (index, body) in bodies.iter().enumerate() {
        publish(&jetstream, index, body).await;
    }
    // The replicas share one durable consumer.
    systems[0].wait_applied("sms", WAIT).await;
    // Every replica answers from the same state.
    for system in &systems {
        let mut client = system.sms().await;
        let message = client
            .get_message(GetMessageRequest { id: "scale-0:1".into() })
            .await
            .expect("found")
            .into_inner();
        assert_eq!(message.status, "DELIVRD");
    }
    let state = dump(&database.url()).await;
    for system in systems {
        system.stop().await.expect("clean stop");
    }
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_on_one_database_store_what_one_replica_stores() {
    let bodies = workload(40);
    let single = run_replicas(1, &bodies).await;
    let three = run_replicas(3, &bodies).await;
    assert_eq!(single.len(), 40);
    assert!(single.iter().all(|(message, history)| message.status == "DELIVRD" && history.len() == 5));
    assert_eq!(three.len(), single.len());
    for (replicated, alone) in three.iter().zip(&single) {
        assert_eq!(replicated, alone, "message {} differs", alone.0.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_mid_run_loses_nothing_and_dead_letters_nothing() {
    if TestBackend::from_env() != TestBackend::Postgres {
        // This test brings its own PostgreSQL server; running it once (in the PostgreSQL pass) is enough.
        return;
    }
    let postgres = PostgresServer::start().expect("private postgres");
    let url = switchboard_runtime::Secret::new(postgres.url("postgres"));
    let system = TestSystem::builder()
        .components(&[Component::Gateway, Component::Service(Product::Sms)])
        .database(Product::Sms, url)
        .configure(|config| {
            config.service_mut(Product::Sms).acquire_timeout = Duration::from_millis(500);
            config.service_mut(Product::Sms).consumer.retry_max = Duration::from_millis(500);
        })
        .start()
        .await
        .expect("system starts");
    let report = |index: usize| {
        serde_json::json!({"id": format!("restart-{index}:1"), "mobile": "919000000001", "status": "DELIVRD", "deliv_time": "2021-04-09 16:27:51"})
            .to_string()
    };
    for index in 0..30 {
        system.post_ok("sms:message:status", report(index)).await;
    }
    postgres.stop().expect("postgres stops");
    // The gateway still takes events: they wait in the stream.
    for index in 30..60 {
        system.post_ok("sms:message:status", report(index)).await;
    }
    let readyz = format!("{}/readyz", system.admin_url);
    let not_ready = wait_until("readiness to turn false", WAIT, || {
        let system = &system;
        let readyz = readyz.clone();
        async move {
            let response = system.http.get(readyz).send().await.ok()?;
            (response.status() == 503).then_some(response.text().await.unwrap_or_default())
        }
    })
    .await;
    assert!(not_ready.contains("database:sms"), "{not_ready}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    postgres.start_again().expect("postgres starts again");

    let mut client = system.sms().await;
    for index in 0..60 {
        let id = format!("restart-{index}:1");
        wait_until(&format!("message {id}"), WAIT, || {
            let mut client = client.clone();
            let request = GetMessageRequest { id: id.clone() };
            async move { client.get_message(request).await.ok() }
        })
        .await;
    }
    let message = client
        .get_message(GetMessageRequest { id: "restart-45:1".into() })
        .await
        .expect("found")
        .into_inner();
    assert_eq!(message.history.len(), 1, "stored once despite the retries");
    let jetstream = system.jetstream().await.expect("jetstream");
    let mut dead_letters = jetstream.get_stream("SWITCHBOARD_DLQ").await.expect("dlq");
    assert_eq!(
        dead_letters.info().await.expect("info").state.messages,
        0,
        "an unavailable database is never a dead letter"
    );
    wait_until("readiness to recover", WAIT, || {
        let system = &system;
        let readyz = readyz.clone();
        async move { system.http.get(readyz).send().await.ok().filter(|response| response.status() == 200) }
    })
    .await;
    system.stop().await.expect("clean stop");
}
