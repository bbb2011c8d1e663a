//! The contacts service: consumes `contacts.>`, keeps every contact's current version (by the
//! precedence rules of [`model`]) with every version received and the current attributes, and
//! answers `ContactsService` over gRPC.
//!
//! * [`model`]: which version wins, and how names and identities compare;
//! * [`consumer`]: stream → tables;
//! * [`store`]: the SQL;
//! * [`api`]: the gRPC service.
#![forbid(unsafe_code)]

pub mod api;
pub mod consumer;
pub mod model;
pub mod store;

use std::sync::Arc;

use switchboard_events::Product;
use switchboard_proto::contacts::contacts_service_server::ContactsServiceServer;
use switchboard_runtime::Platform;
use switchboard_service::{ConsumerDescriptor, ProjectionParts, ServiceDescriptor, ServiceHost};
use tonic::service::RoutesBuilder;

/// The gRPC service name, for health checks.
pub const SERVICE_NAME: &str = switchboard_proto::service_names::CONTACTS;

/// The durable consumers, one per subject root.
const CONSUMERS: &[ConsumerDescriptor] = &[ConsumerDescriptor { durable_name: "contacts", root: "contacts" }];

/// The contacts service, as the process runs it.
pub const DESCRIPTOR: ServiceDescriptor = ServiceDescriptor {
    product: Product::Contacts,
    grpc_service: SERVICE_NAME,
    migrations: store::MIGRATIONS,
    consumers: CONSUMERS,
    start: |platform, routes| Box::pin(start(platform, routes)),
    rebuild: |replay, parts| Box::pin(async move { replay.replay(&projection(parts)).await }),
};

/// The projection the consumers feed, on `parts`.
fn projection(parts: ProjectionParts) -> consumer::ContactsProjection {
    consumer::ContactsProjection { database: parts.database, changes: parts.changes, zone: parts.zone }
}

/// Opens the database, starts the `contacts` consumer and adds `ContactsService` to `routes`. Runs
/// until the platform's shutdown; then [`ServiceHost::finish`] waits for the consumer to stop.
pub async fn start(platform: &Platform, routes: &mut RoutesBuilder) -> anyhow::Result<ServiceHost> {
    let mut host = ServiceHost::open(platform, Product::Contacts, store::MIGRATIONS).await?;
    let projection = Arc::new(projection(host.projection_parts()));
    host.spawn_consumers(CONSUMERS, projection);
    host.spawn_retention(store::RETENTION);
    let api = api::ContactsApi {
        database: host.database.clone(),
        changes: host.changes.clone(),
        shutdown: platform.shutdown.clone(),
    };
    routes.add_service(ContactsServiceServer::new(api));
    Ok(host)
}
