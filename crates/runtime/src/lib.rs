//! The platform every Switchboard component runs on: configuration, telemetry, NATS connection and
//! JetStream provisioning, the consumer loop, dead letters, the change feed behind `Watch`, the admin
//! server, and shutdown. The gRPC server and the query APIs' conventions are the services' own
//! (`switchboard_service::grpc`), so the gateway links no gRPC.
#![forbid(unsafe_code)]

pub mod admin;
pub mod changes;
pub mod config;
pub mod consumer;
pub mod dead_letter;
pub mod nats;
pub mod platform;
pub mod retry;
pub mod secret;
pub mod shutdown;
pub mod telemetry;

pub use admin::Readiness;
pub use config::Config;
pub use platform::Platform;
pub use secret::Secret;
pub use tokio_util;
