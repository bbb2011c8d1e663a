//! What a product service is, stated once in its own crate: its product, gRPC service, migrations,
//! durable consumers, how to start it and how to rebuild its tables. The binary, `migrate`,
//! `rebuild` and the tests iterate the list of descriptors instead of matching on products.

use std::future::Future;
use std::pin::Pin;

use switchboard_events::{Product, TimeZoneSetting};
use switchboard_runtime::Platform;
use switchboard_runtime::changes::ChangeFeed;
use switchboard_store::{Database, MigrationFiles, TableShape};
use tonic::service::RoutesBuilder;

use crate::ServiceHost;
use crate::replay::{StreamReplay, Tally};

/// A boxed future, as a descriptor's function pointers return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One durable consumer of a service: its name on the stream and the subject root it reads
/// (`sms` → `sms.>`). One per root: NATS 2.9 has no multi-filter consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerDescriptor {
    pub durable_name: &'static str,
    pub root: &'static str,
}

/// What a service's projection is built from.
#[derive(Debug, Clone)]
pub struct ProjectionParts {
    pub database: Database,
    pub changes: ChangeFeed,
    pub zone: TimeZoneSetting,
}

/// Starts a service: opens its database, starts its consumers, adds its gRPC service to the routes.
pub type StartFn =
    for<'a> fn(&'a Platform, &'a mut RoutesBuilder) -> BoxFuture<'a, anyhow::Result<ServiceHost>>;

/// Replays the stream into the service's projection built on `parts` (for `switchboard rebuild`).
pub type RebuildFn =
    for<'a> fn(&'a StreamReplay<'a>, ProjectionParts) -> BoxFuture<'a, anyhow::Result<Tally>>;

/// A product service, as the process runs it.
#[derive(Clone, Copy)]
pub struct ServiceDescriptor {
    pub product: Product,
    /// The gRPC service's full name (health checks, reflection).
    pub grpc_service: &'static str,
    /// The database migrations, in the order they apply.
    pub migrations: &'static [MigrationFiles],
    /// The tables the service writes, as its store states them (checked against the migrations).
    pub tables: &'static [&'static dyn TableShape],
    /// What the retention job may expire.
    pub retention: &'static [crate::retention::Target],
    /// The durable consumers, one per subject root of the product.
    pub consumers: &'static [ConsumerDescriptor],
    pub start: StartFn,
    pub rebuild: RebuildFn,
}

impl std::fmt::Debug for ServiceDescriptor {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ServiceDescriptor")
            .field("product", &self.product)
            .field("grpc_service", &self.grpc_service)
            .field("consumers", &self.consumers)
            .finish_non_exhaustive()
    }
}

impl ServiceDescriptor {
    /// The durable consumers' names.
    pub fn durable_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.consumers.iter().map(|consumer| consumer.durable_name)
    }

    /// Problems with a list of descriptors: each product once, and each descriptor's consumers
    /// reading exactly its product's subject roots (what the stream captures), with names unique
    /// across the list. Empty when the list is consistent.
    pub fn check_list(descriptors: &[&ServiceDescriptor]) -> Vec<String> {
        let mut problems = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for (index, descriptor) in descriptors.iter().enumerate() {
            let product = descriptor.product;
            if descriptors[..index].iter().any(|earlier| earlier.product == product) {
                problems.push(format!("{product} is described twice"));
            }
            let mut roots: Vec<&str> = descriptor.consumers.iter().map(|consumer| consumer.root).collect();
            roots.sort_unstable();
            let mut expected = product.subject_roots().to_vec();
            expected.sort_unstable();
            if roots != expected {
                problems
                    .push(format!("{product} consumes {roots:?}, but its subject roots are {expected:?}"));
            }
            for name in descriptor.durable_names() {
                if names.contains(&name) {
                    problems.push(format!("consumer name {name} is used twice"));
                }
                names.push(name);
            }
        }
        problems
    }
}

/// Declares a service crate's [`ServiceDescriptor`] as `DESCRIPTOR`, its consumers as `CONSUMERS`
/// (for `start`, which cannot name `DESCRIPTOR` itself), and `projection(parts)`, which
/// builds the projection its consumers feed (a struct with `database`, `changes` and `zone`): the
/// consumers' `start` and the descriptor's `rebuild` use the same one.
///
/// ```ignore
/// switchboard_service::describe_service! {
///     product: Product::Sms,
///     grpc_service: SERVICE_NAME,
///     migrations: store::MIGRATIONS,
///     tables: store::TABLES,
///     retention: store::RETENTION,
///     consumers: [("sms", "sms")],
///     projection: consumer::SmsProjection,
///     start: start,
/// }
/// ```
#[macro_export]
macro_rules! describe_service {
    (
        product: $product:expr,
        grpc_service: $grpc_service:expr,
        migrations: $migrations:expr,
        tables: $tables:expr,
        retention: $retention:expr,
        consumers: [$(($durable_name:expr, $root:expr)),+ $(,)?],
        projection: $projection:path,
        start: $start:path $(,)?
    ) => {
        /// The durable consumers, one per subject root (`start` spawns these).
        const CONSUMERS: &[$crate::ConsumerDescriptor] =
            &[$($crate::ConsumerDescriptor { durable_name: $durable_name, root: $root }),+];

        /// The service, as the process runs it.
        pub const DESCRIPTOR: $crate::ServiceDescriptor = $crate::ServiceDescriptor {
            product: $product,
            grpc_service: $grpc_service,
            migrations: $migrations,
            tables: $tables,
            retention: $retention,
            consumers: CONSUMERS,
            start: |platform, routes| Box::pin($start(platform, routes)),
            rebuild: |replay, parts| Box::pin(async move { replay.replay(&projection(parts)).await }),
        };

        /// The projection the consumers feed, on `parts`.
        fn projection(parts: $crate::ProjectionParts) -> $projection {
            $projection { database: parts.database, changes: parts.changes, zone: parts.zone }
        }
    };
}
