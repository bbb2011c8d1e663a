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
use switchboard_service::ServiceHost;
use tonic::service::RoutesBuilder;

/// The gRPC service name, for health checks.
pub const SERVICE_NAME: &str = switchboard_proto::service_names::CONTACTS;

switchboard_service::describe_service! {
    product: Product::Contacts,
    grpc_service: SERVICE_NAME,
    migrations: store::MIGRATIONS,
    tables: store::TABLES,
    retention: store::RETENTION,
    consumers: [("contacts", "contacts")],
    projection: consumer::ContactsProjection,
    start: start,
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
