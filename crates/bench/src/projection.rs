//! Each service's projection against plain batched inserts of the same events, in the same run.
//!
//! Both sides get the same decoded-ready deliveries in batches of the consumer's size, each batch in
//! one transaction. The baseline inserts one row per event (subject, sequence, time, body) with one
//! multi-row INSERT; the projection does everything the consumer does after fetching: decode, apply
//! the state rules, write current state and history, announce changes — each batch decoded while the
//! one before it is written, as the consumer loop does.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use switchboard_events::Product;
use switchboard_runtime::changes::ChangeFeed;
use switchboard_runtime::consumer::StoredEvent;
use switchboard_runtime::tokio_util::sync::CancellationToken;
use switchboard_store::sqlx::{self, Executor as _};
use switchboard_store::{Database, PoolSettings, values_rows};
use switchboard_tests::projection::{ServiceProjection, delivery};
use switchboard_tests::workload::{self, Arrival};
use switchboard_tests::{NatsServer, TestBackend, TestDatabase};

use crate::stats::median;

#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) products: Vec<Product>,
    pub(crate) backends: Vec<TestBackend>,
    pub(crate) events: usize,
    pub(crate) batch: usize,
    pub(crate) rounds: usize,
    pub(crate) arrival: Arrival,
}

#[derive(Debug)]
struct Row {
    product: Product,
    backend: TestBackend,
    baseline: f64,
    projection: f64,
}

pub(crate) async fn run(options: Options) -> anyhow::Result<()> {
    let nats = NatsServer::start().context("starting nats-server for the change feeds")?;
    let client = async_nats::connect(nats.url()).await?;
    let stop = CancellationToken::new();
    let mut rows = Vec::new();
    for &backend in &options.backends {
        for &product in &options.products {
            let deliveries = deliveries(product, options.events, options.arrival)?;
            let changes = ChangeFeed::start(client.clone(), format!("bench.changes.{product}"), stop.clone())
                .await
                .map_err(|error| anyhow::anyhow!("change feed: {error}"))?;
            let (mut baselines, mut projections) = (Vec::new(), Vec::new());
            for _ in 0..options.rounds {
                let elapsed = baseline(backend, &deliveries, options.batch).await?;
                baselines.push(deliveries.len() as f64 / elapsed.as_secs_f64());
                let elapsed = projection(product, backend, &deliveries, options.batch, &changes).await?;
                projections.push(deliveries.len() as f64 / elapsed.as_secs_f64());
            }
            let row = Row {
                product,
                backend,
                baseline: median(&mut baselines),
                projection: median(&mut projections),
            };
            eprintln!(
                "  {product} on {}: {:.0} events/s (baseline {:.0})",
                backend_name(backend),
                row.projection,
                row.baseline
            );
            rows.push(row);
        }
    }
    stop.cancel();
    let order = match options.arrival {
        Arrival::Local { window } => format!("reports within {window} events of their message"),
        Arrival::Shuffled => "shuffled".to_owned(),
    };
    println!(
        "\nprojection rate, {} events per run ({order}), batches of {}, median of {} rounds",
        options.events, options.batch, options.rounds
    );
    println!(
        "{:<10} {:<10} {:>16} {:>16} {:>8}",
        "service", "backend", "plain inserts/s", "projected ev/s", "ratio"
    );
    for row in rows {
        println!(
            "{:<10} {:<10} {:>16.0} {:>16.0} {:>8.3}",
            row.product.name(),
            backend_name(row.backend),
            row.baseline,
            row.projection,
            row.projection / row.baseline
        );
    }
    Ok(())
}

pub(crate) fn backend_name(backend: TestBackend) -> &'static str {
    match backend {
        TestBackend::Sqlite => "sqlite",
        TestBackend::Postgres => "postgres",
    }
}

fn deliveries(product: Product, count: usize, arrival: Arrival) -> anyhow::Result<Vec<StoredEvent>> {
    workload::events(product, count, arrival)
        .into_iter()
        .enumerate()
        .map(|(index, (kind, body))| Ok(delivery(kind, index as u64 + 1, &String::from_utf8(body)?, 1)))
        .collect()
}

fn pool() -> PoolSettings {
    PoolSettings { max_connections: 4, acquire_timeout: Duration::from_secs(30), ..PoolSettings::default() }
}

/// Plain multi-row inserts of one row per event.
async fn baseline(
    backend: TestBackend,
    deliveries: &[StoredEvent],
    batch: usize,
) -> anyhow::Result<Duration> {
    let database = TestDatabase::create(backend, "baseline").await?;
    let store = Database::connect(database.url().expose(), pool()).await?;
    store
        .pool()
        .execute("CREATE TABLE events (subject TEXT NOT NULL, sequence BIGINT NOT NULL, received_at BIGINT NOT NULL, body TEXT NOT NULL)")
        .await?;
    let kind = store.backend();
    let started = Instant::now();
    for chunk in deliveries.chunks(batch) {
        let statement = format!(
            "INSERT INTO events (subject, sequence, received_at, body) VALUES {}",
            values_rows(kind, chunk.len(), 4)
        );
        let mut query = sqlx::query(&statement);
        for delivery in chunk {
            query = query
                .bind(delivery.kind.subject_suffix())
                .bind(delivery.stream_sequence as i64)
                .bind(delivery.received_at)
                .bind(String::from_utf8_lossy(&delivery.body).into_owned());
        }
        let mut transaction = store.pool().begin().await?;
        query.execute(&mut *transaction).await?;
        transaction.commit().await?;
    }
    let elapsed = started.elapsed();
    store.close().await;
    Ok(elapsed)
}

async fn projection(
    product: Product,
    backend: TestBackend,
    deliveries: &[StoredEvent],
    batch: usize,
    changes: &ChangeFeed,
) -> anyhow::Result<Duration> {
    let database = TestDatabase::create(backend, product.name()).await?;
    let projection = ServiceProjection::open(product, &database.url(), pool(), changes.clone()).await?;
    let started = Instant::now();
    projection.apply_all(deliveries, batch).await.context("workload")?;
    let elapsed = started.elapsed();
    projection.database().close().await;
    Ok(elapsed)
}
