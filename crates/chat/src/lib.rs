//! The chat service: consumes `whatsapp.>` and `rcs.>`, keeps every outbound message's current
//! status (by the precedence rules of [`model`]) with its milestones and full history, every inbound
//! message and the opt-out list, and answers `ChatService` over gRPC.
//!
//! * [`model`]: channels, status precedence, milestones, what the rates count;
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
use switchboard_proto::chat::chat_service_server::ChatServiceServer;
use switchboard_runtime::Platform;
use switchboard_service::ServiceHost;
use tonic::service::RoutesBuilder;

/// The gRPC service name, for health checks.
pub const SERVICE_NAME: &str = switchboard_proto::service_names::CHAT;

switchboard_service::describe_service! {
    product: Product::Chat,
    grpc_service: SERVICE_NAME,
    migrations: store::MIGRATIONS,
    tables: store::TABLES,
    retention: store::RETENTION,
    consumers: [("chat-whatsapp", model::WHATSAPP), ("chat-rcs", model::RCS)],
    projection: consumer::ChatProjection,
    start: start,
}

/// Opens the database, starts the `chat-whatsapp` and `chat-rcs` consumers (one per subject root:
/// NATS 2.9 has no multi-filter consumers) and adds `ChatService` to `routes`. Runs until the
/// platform's shutdown; then [`ServiceHost::finish`] waits for both consumers to stop.
pub async fn start(platform: &Platform, routes: &mut RoutesBuilder) -> anyhow::Result<ServiceHost> {
    let mut host = ServiceHost::open(platform, Product::Chat, store::MIGRATIONS).await?;
    let projection = Arc::new(projection(host.projection_parts()));
    host.spawn_consumers(CONSUMERS, projection);
    host.spawn_retention(store::RETENTION);
    let api = api::ChatApi {
        database: host.database.clone(),
        changes: host.changes.clone(),
        zone: host.zone,
        shutdown: platform.shutdown.clone(),
    };
    routes.add_service(ChatServiceServer::new(api));
    Ok(host)
}
