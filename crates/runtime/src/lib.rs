//! What every Switchboard component shares: configuration, telemetry, NATS connection and JetStream
//! provisioning, the consumer loop, dead letters, the change feed behind `Watch`, gRPC and admin
//! servers, and shutdown.
#![forbid(unsafe_code)]

pub mod admin;
pub mod changes;
pub mod config;
pub mod consumer;
pub mod dead_letter;
pub mod grpc;
pub mod grpc_auth;
pub mod grpc_tls;
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
