//! The interact service: consumes `vmn.>`, keeps every message sent to the company's virtual numbers
//! (with its keywords, by the rules of [`model`]), and answers `InteractService` over gRPC.
//!
//! * [`model`]: keywords, and which delivery of a message id is kept;
//! * [`consumer`]: stream → table;
//! * [`store`]: the SQL;
//! * [`api`]: the gRPC service.
#![forbid(unsafe_code)]

pub mod api;
pub mod consumer;
pub mod model;
pub mod store;

use std::sync::Arc;

use switchboard_events::Product;
use switchboard_proto::interact::interact_service_server::InteractServiceServer;
use switchboard_runtime::Platform;
use switchboard_service::ServiceHost;
use tonic::service::RoutesBuilder;

/// The gRPC service name, for health checks.
pub const SERVICE_NAME: &str = switchboard_proto::service_names::INTERACT;

switchboard_service::describe_service! {
    product: Product::Interact,
    grpc_service: SERVICE_NAME,
    migrations: store::MIGRATIONS,
    tables: store::TABLES,
    retention: store::RETENTION,
    consumers: [("interact", "vmn")],
    projection: consumer::InteractProjection,
    start: start,
}

/// Opens the database, starts the `interact` consumer and adds `InteractService` to `routes`. Runs
/// until the platform's shutdown; then [`ServiceHost::finish`] waits for the consumer to stop.
pub async fn start(platform: &Platform, routes: &mut RoutesBuilder) -> anyhow::Result<ServiceHost> {
    let mut host = ServiceHost::open(platform, Product::Interact, store::MIGRATIONS).await?;
    let projection = Arc::new(projection(host.projection_parts()));
    host.spawn_consumers(CONSUMERS, projection);
    host.spawn_retention(store::RETENTION);
    let api = api::InteractApi {
        database: host.database.clone(),
        changes: host.changes.clone(),
        zone: host.zone,
        shutdown: platform.shutdown.clone(),
    };
    routes.add_service(InteractServiceServer::new(api));
    Ok(host)
}
