//! Driving a service's store directly, as its consumer would: for the projection property tests.

use std::sync::Arc;

use switchboard_events::{EventKind, Product, TimeZoneSetting};
use switchboard_runtime::Secret;
use switchboard_runtime::changes::ChangeFeed;
use switchboard_runtime::consumer::{Projection, StoredEvent};
use switchboard_store::sqlx::{self, AnyConnection};
use switchboard_store::{Database, MigrationFiles, PoolSettings};

/// `body` as the consumer hands it to a projection: the `sequence`th event of the stream, received
/// `spacing` microseconds after the previous one.
pub fn delivery(kind: EventKind, sequence: u64, body: &str, spacing: i64) -> StoredEvent {
    StoredEvent {
        kind,
        stream_sequence: sequence,
        delivered: 1,
        received_at: 1_700_000_000_000_000 + i64::try_from(sequence).unwrap_or_default() * spacing,
        body: bytes::Bytes::from(body.to_owned()),
    }
}

/// Writes `rows` with `write` in consecutive transactions of the given sizes (cycled), as the
/// consumer writes fetched batches, and returns the rows each batch's write reported as changed.
pub async fn apply_in_batches<T, R>(
    database: &Database,
    rows: &[T],
    batch_sizes: &[usize],
    write: impl AsyncFn(&mut AnyConnection, &[T]) -> Result<Vec<R>, sqlx::Error>,
) -> Vec<R> {
    let mut changed = Vec::new();
    let mut start = 0;
    let mut sizes = batch_sizes.iter().cycle();
    while start < rows.len() {
        let size = (*sizes.next().unwrap_or(&1)).max(1);
        let end = (start + size).min(rows.len());
        let mut transaction = database.begin_write().await.expect("begin");
        changed.extend(write(&mut transaction, &rows[start..end]).await.expect("write"));
        transaction.commit().await.expect("commit");
        start = end;
    }
    changed
}

/// The last change reported for every key, in key order: what a watcher that applied every change
/// holds at the end, which must be what the database holds.
pub fn latest_changes<R, K: Ord>(changed: Vec<R>, key: impl Fn(&R) -> K) -> Vec<R> {
    let mut latest = std::collections::BTreeMap::new();
    for row in changed {
        latest.insert(key(&row), row);
    }
    latest.into_values().collect()
}

/// One service's projection over its own database, as its consumer runs it: for the tests and
/// benchmarks that apply batches to every service alike.
#[derive(Debug)]
pub enum ServiceProjection {
    Sms(Arc<switchboard_sms::consumer::SmsProjection>),
    Chat(Arc<switchboard_chat::consumer::ChatProjection>),
    Voice(Arc<switchboard_voice::consumer::VoiceProjection>),
    Interact(Arc<switchboard_interact::consumer::InteractProjection>),
    Contacts(Arc<switchboard_contacts::consumer::ContactsProjection>),
}

impl ServiceProjection {
    /// Opens (and migrates) the database at `url` and builds `product`'s projection on it.
    pub async fn open(
        product: Product,
        url: &Secret,
        pool: PoolSettings,
        changes: ChangeFeed,
    ) -> anyhow::Result<ServiceProjection> {
        let zone = TimeZoneSetting::default();
        let open = async |migrations: &'static [MigrationFiles]| {
            Database::open(url.expose(), pool, migrations).await
        };
        Ok(match product {
            Product::Sms => {
                let database = open(switchboard_sms::store::MIGRATIONS).await?;
                ServiceProjection::Sms(Arc::new(switchboard_sms::consumer::SmsProjection {
                    database,
                    changes,
                    zone,
                }))
            }
            Product::Chat => {
                let database = open(switchboard_chat::store::MIGRATIONS).await?;
                ServiceProjection::Chat(Arc::new(switchboard_chat::consumer::ChatProjection {
                    database,
                    changes,
                    zone,
                }))
            }
            Product::Voice => {
                let database = open(switchboard_voice::store::MIGRATIONS).await?;
                ServiceProjection::Voice(Arc::new(switchboard_voice::consumer::VoiceProjection {
                    database,
                    changes,
                    zone,
                }))
            }
            Product::Interact => {
                let database = open(switchboard_interact::store::MIGRATIONS).await?;
                ServiceProjection::Interact(Arc::new(switchboard_interact::consumer::InteractProjection {
                    database,
                    changes,
                    zone,
                }))
            }
            Product::Contacts => {
                let database = open(switchboard_contacts::store::MIGRATIONS).await?;
                ServiceProjection::Contacts(Arc::new(switchboard_contacts::consumer::ContactsProjection {
                    database,
                    changes,
                    zone,
                }))
            }
        })
    }

    pub fn database(&self) -> &Database {
        match self {
            ServiceProjection::Sms(projection) => &projection.database,
            ServiceProjection::Chat(projection) => &projection.database,
            ServiceProjection::Voice(projection) => &projection.database,
            ServiceProjection::Interact(projection) => &projection.database,
            ServiceProjection::Contacts(projection) => &projection.database,
        }
    }

    /// Decodes `batch` and applies it in one transaction, as the consumer does after a fetch.
    pub async fn apply(&self, batch: &[StoredEvent]) -> anyhow::Result<()> {
        match self {
            ServiceProjection::Sms(projection) => decode_and_apply(projection.as_ref(), batch).await,
            ServiceProjection::Chat(projection) => decode_and_apply(projection.as_ref(), batch).await,
            ServiceProjection::Voice(projection) => decode_and_apply(projection.as_ref(), batch).await,
            ServiceProjection::Interact(projection) => decode_and_apply(projection.as_ref(), batch).await,
            ServiceProjection::Contacts(projection) => decode_and_apply(projection.as_ref(), batch).await,
        }
    }

    /// Applies `deliveries` in consecutive batches of `batch` the way the consumer loop does: each
    /// batch is applied on a task of its own while the next one is decoded, one batch after the other.
    pub async fn apply_all(&self, deliveries: &[StoredEvent], batch: usize) -> anyhow::Result<()> {
        match self {
            ServiceProjection::Sms(projection) => apply_pipelined(projection, deliveries, batch).await,
            ServiceProjection::Chat(projection) => apply_pipelined(projection, deliveries, batch).await,
            ServiceProjection::Voice(projection) => apply_pipelined(projection, deliveries, batch).await,
            ServiceProjection::Interact(projection) => apply_pipelined(projection, deliveries, batch).await,
            ServiceProjection::Contacts(projection) => apply_pipelined(projection, deliveries, batch).await,
        }
    }
}

fn decode<P: Projection>(projection: &P, batch: &[StoredEvent]) -> anyhow::Result<Vec<P::Item>> {
    batch
        .iter()
        .map(|delivery| projection.decode(delivery))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|reason| anyhow::anyhow!("event refused: {reason}"))
}

async fn apply<P: Projection>(projection: &P, items: &[P::Item]) -> anyhow::Result<()> {
    projection.apply(items).await.map_err(|error| anyhow::anyhow!("apply: {error}"))
}

async fn decode_and_apply<P: Projection>(projection: &P, batch: &[StoredEvent]) -> anyhow::Result<()> {
    apply(projection, &decode(projection, batch)?).await
}

async fn apply_pipelined<P: Projection>(
    projection: &Arc<P>,
    deliveries: &[StoredEvent],
    batch: usize,
) -> anyhow::Result<()> {
    let mut writing: Option<tokio::task::JoinHandle<anyhow::Result<()>>> = None;
    for chunk in deliveries.chunks(batch.max(1)) {
        let items = decode(projection.as_ref(), chunk)?;
        if let Some(previous) = writing.take() {
            previous.await??;
        }
        let projection = Arc::clone(projection);
        writing = Some(tokio::spawn(async move { apply(projection.as_ref(), &items).await }));
    }
    match writing {
        Some(last) => last.await?,
        None => Ok(()),
    }
}
