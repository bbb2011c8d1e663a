//! Starting a product service: its database, change feed, readiness checks and consumer loops.

use std::sync::Arc;
use std::time::Duration;

use switchboard_events::{Product, TimeZoneSetting};
use switchboard_runtime::Platform;
use switchboard_runtime::changes::ChangeFeed;
use switchboard_runtime::config::ServiceConfig;
use switchboard_runtime::consumer::{ConsumerHealth, ConsumerLoop, Projection};
use switchboard_runtime::dead_letter::DeadLetters;
use switchboard_runtime::nats::ConsumerSpec;
use switchboard_store::{Backend, Database, MigrationFiles, PoolSettings};
use tokio::task::JoinHandle;

/// The pool a service's configuration asks for, with `max_connections` of its own (a tool such as
/// `rebuild` or `migrate` needs fewer than the running service).
pub fn pool_settings(service: &ServiceConfig, max_connections: u32) -> PoolSettings {
    PoolSettings {
        max_connections,
        acquire_timeout: service.acquire_timeout,
        sqlite_cache_kib: service.sqlite_cache_mib.saturating_mul(1024),
    }
}

/// A running product service's shared parts. The service adds its consumers with
/// [`ServiceHost::spawn_consumer`] and hands clones of `database` and `changes` to its API.
#[derive(Debug)]
pub struct ServiceHost {
    pub platform: Platform,
    pub product: Product,
    pub database: Database,
    pub changes: ChangeFeed,
    /// The provider's zone, for zone-less timestamps and daily figures.
    pub zone: TimeZoneSetting,
    /// Consumer loops and background jobs, awaited by `finish`.
    consumers: Vec<JoinHandle<()>>,
}

impl ServiceHost {
    /// Opens the service's database (migrating it) and its change feed. Waits, retrying, while the
    /// database is unreachable, so a service can start before its database does.
    pub async fn open(
        platform: &Platform,
        product: Product,
        migrations: &[MigrationFiles],
    ) -> anyhow::Result<ServiceHost> {
        let config = &platform.config;
        let service_config = config.service(product);
        let url = service_config.database_url(product, &config.storage.data_dir);
        let settings = pool_settings(service_config, service_config.max_connections);
        let mut pauses = switchboard_runtime::retry::waiting();
        let database = loop {
            match Database::open(url.expose(), settings, migrations).await {
                Ok(database) => break database,
                Err(error) => {
                    let delay = pauses.next().unwrap_or(Duration::from_secs(5));
                    tracing::warn!(service = %product, %error, retry_in = ?delay, "cannot open database");
                    tokio::select! {
                        _ = platform.shutdown.cancelled() => anyhow::bail!("stopped before the {product} database was reachable"),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        };
        tracing::info!(service = %product, backend = database.backend().name(), "database ready");
        let probe = database.clone();
        platform.readiness.add_check(format!("database:{product}"), move || {
            let probe = probe.clone();
            async move { probe.ping().await }
        });
        let changes = ChangeFeed::start(
            platform.client.clone(),
            platform.subjects.changes(product),
            platform.shutdown.clone(),
        )
        .await
        .map_err(|error| anyhow::anyhow!("cannot subscribe to the {product} change feed: {error}"))?;
        Ok(ServiceHost {
            platform: platform.clone(),
            product,
            database,
            changes,
            zone: config.storage.provider_timezone,
            consumers: Vec::new(),
        })
    }

    /// Starts the durable consumer `durable_name` on one subject root (`sms`, `whatsapp`, …), feeding
    /// `projection`, and registers its readiness check.
    pub fn spawn_consumer<P: Projection>(&mut self, durable_name: &str, root: &str, projection: Arc<P>) {
        let platform = &self.platform;
        let service = platform.config.service(self.product);
        let settings = service.consumer.clone();
        let concurrent_writes = concurrent_writes(self.database.backend(), service.max_connections);
        let spec = ConsumerSpec {
            stream: platform.config.nats.stream.name.clone(),
            durable_name: durable_name.to_owned(),
            filter_subject: platform.subjects.root_filter(root),
            ack_wait: settings.ack_wait,
            max_ack_pending: settings.max_ack_pending,
            max_batch: i64::try_from(settings.batch_size(concurrent_writes)).unwrap_or(i64::MAX),
        };
        let health = ConsumerHealth::default();
        let probe = health.clone();
        let name = durable_name.to_owned();
        platform.readiness.add_check(format!("consumer:{durable_name}"), move || {
            let state = probe.check().map_err(|problem| format!("consumer {name}: {problem}"));
            async move { state }
        });
        let consumer = ConsumerLoop {
            jetstream: platform.jetstream.clone(),
            subjects: platform.subjects.clone(),
            spec,
            settings,
            dead_letters: DeadLetters::new(
                platform.jetstream.clone(),
                platform.subjects.clone(),
                self.product.name(),
            ),
            projection,
            health,
            concurrent_writes,
        };
        self.consumers.push(tokio::spawn(consumer.run(platform.shutdown.clone())));
    }

    /// Starts the service's durable consumers (one per subject root, as its descriptor lists them),
    /// all feeding `projection`.
    pub fn spawn_consumers<P: Projection>(
        &mut self,
        consumers: &[crate::ConsumerDescriptor],
        projection: Arc<P>,
    ) {
        for consumer in consumers {
            self.spawn_consumer(consumer.durable_name, consumer.root, projection.clone());
        }
    }

    /// The parts a service's projection is built from: its database, change feed and zone.
    pub fn projection_parts(&self) -> crate::ProjectionParts {
        crate::ProjectionParts {
            database: self.database.clone(),
            changes: self.changes.clone(),
            zone: self.zone,
        }
    }

    /// Starts the retention job for `targets` with the service's `retention` settings (it does
    /// nothing when no age is configured).
    pub fn spawn_retention(&mut self, targets: &'static [crate::retention::Target]) {
        let config = self.platform.config.service(self.product).retention.clone();
        let job = crate::retention::run_periodically(
            self.database.clone(),
            self.product.name().to_owned(),
            targets,
            config,
            self.platform.shutdown.clone(),
        );
        self.consumers.push(tokio::spawn(job));
    }

    /// After shutdown was signalled: waits for the consumers to finish their batches, then closes the
    /// database.
    pub async fn finish(self) {
        for consumer in self.consumers {
            if let Err(error) = consumer.await {
                tracing::error!(service = %self.product, %error, "consumer task failed");
            }
        }
        self.database.close().await;
        tracing::info!(service = %self.product, "service stopped");
    }
}

/// Batches a consumer applies at once on `backend` with a pool of `max_connections`. SQLite writes
/// one transaction at a time (the writer pool holds one connection): a second batch would only wait
/// for it, held in memory. PostgreSQL runs two side by side, so the server applies one while the
/// service binds the other (a backlog drained 1.02–1.27 times as fast; three at once were slower
/// than two; docs/benchmarks.md), when the pool has room for them and for reads: four connections
/// or more.
pub fn concurrent_writes(backend: Backend, max_connections: u32) -> usize {
    match backend {
        Backend::Postgres if max_connections >= 4 => 2,
        Backend::Postgres | Backend::Sqlite => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_follows_the_service_configuration() {
        let service = ServiceConfig {
            sqlite_cache_mib: 3,
            acquire_timeout: Duration::from_secs(7),
            ..ServiceConfig::default()
        };
        let settings = pool_settings(&service, 2);
        assert_eq!(settings.sqlite_cache_kib, 3 * 1024);
        assert_eq!(settings.acquire_timeout, Duration::from_secs(7));
        assert_eq!(settings.max_connections, 2);
    }

    #[test]
    fn two_batches_at_once_only_on_postgresql_with_room_in_the_pool() {
        assert_eq!(concurrent_writes(Backend::Postgres, 8), 2);
        assert_eq!(concurrent_writes(Backend::Postgres, 4), 2);
        assert_eq!(concurrent_writes(Backend::Postgres, 3), 1, "a small pool keeps a connection for reads");
        assert_eq!(concurrent_writes(Backend::Sqlite, 8), 1, "SQLite's writes take turns anyway");
    }
}
