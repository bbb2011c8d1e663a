//! The voice service: consumes `voice.>`, keeps one call detail record per `mid` (by the precedence
//! rules of [`model`]) with every distinct version received and the opt-out list, and answers
//! `VoiceService` over gRPC.
//!
//! * [`model`]: which record of a call wins, and which statuses mean answered;
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
use switchboard_proto::voice::voice_service_server::VoiceServiceServer;
use switchboard_runtime::Platform;
use switchboard_service::ServiceHost;
use tonic::service::RoutesBuilder;

/// The gRPC service name, for health checks.
pub const SERVICE_NAME: &str = switchboard_proto::service_names::VOICE;

switchboard_service::describe_service! {
    product: Product::Voice,
    grpc_service: SERVICE_NAME,
    migrations: store::MIGRATIONS,
    tables: store::TABLES,
    retention: store::RETENTION,
    consumers: [("voice", "voice")],
    projection: consumer::VoiceProjection,
    start: start,
}

/// Opens the database, starts the `voice` consumer and adds `VoiceService` to `routes`. Runs until
/// the platform's shutdown; then [`ServiceHost::finish`] waits for the consumer to stop.
pub async fn start(platform: &Platform, routes: &mut RoutesBuilder) -> anyhow::Result<ServiceHost> {
    let mut host = ServiceHost::open(platform, Product::Voice, store::MIGRATIONS).await?;
    let projection = Arc::new(projection(host.projection_parts()));
    host.spawn_consumers(CONSUMERS, projection);
    host.spawn_retention(store::RETENTION);
    let api = api::VoiceApi {
        database: host.database.clone(),
        changes: host.changes.clone(),
        zone: host.zone,
        shutdown: platform.shutdown.clone(),
    };
    routes.add_service(VoiceServiceServer::new(api));
    Ok(host)
}
