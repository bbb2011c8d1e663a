//! The sms service: consumes `sms.>`, keeps every message's current status (by the precedence rules
//! of [`model`]) with its full history and the opt-out list, and answers `SmsService` over gRPC.
//!
//! * [`model`]: status classes and which report wins;
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
use switchboard_proto::sms::sms_service_server::SmsServiceServer;
use switchboard_runtime::Platform;
use switchboard_service::ServiceHost;
use tonic::service::RoutesBuilder;

/// The gRPC service name, for health checks.
pub const SERVICE_NAME: &str = switchboard_proto::service_names::SMS;

switchboard_service::describe_service! {
    product: Product::Sms,
    grpc_service: SERVICE_NAME,
    migrations: store::MIGRATIONS,
    tables: store::TABLES,
    retention: store::RETENTION,
    consumers: [("sms", "sms")],
    projection: consumer::SmsProjection,
    start: start,
}

/// Opens the database, starts the `sms` consumer and adds `SmsService` to `routes`. Runs until the
/// platform's shutdown; then [`ServiceHost::finish`] waits for the consumer to stop.
pub async fn start(platform: &Platform, routes: &mut RoutesBuilder) -> anyhow::Result<ServiceHost> {
    let mut host = ServiceHost::open(platform, Product::Sms, store::MIGRATIONS).await?;
    let projection = Arc::new(projection(host.projection_parts()));
    host.spawn_consumers(CONSUMERS, projection);
    host.spawn_retention(store::RETENTION);
    let api = api::SmsApi {
        database: host.database.clone(),
        changes: host.changes.clone(),
        zone: host.zone,
        shutdown: platform.shutdown.clone(),
    };
    routes.add_service(SmsServiceServer::new(api));
    Ok(host)
}
