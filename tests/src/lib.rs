//! The test harness: real servers, per test, on free ports.
//!
//! * [`NatsServer`] starts `nats-server` with JetStream in its own temporary directory on a free port
//!   (never the machine's shared server), can be stopped and restarted on the same port, and is killed
//!   when dropped.
//! * [`TestDatabase`] gives each test its own database on the backend chosen by
//!   `SB_TEST_DATABASE` (`sqlite`, the default, or `postgres`); a PostgreSQL database is created on the
//!   server at `SB_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) and
//!   dropped afterwards.
//! * [`TestSystem`] runs the real components in process against both, with port-0 listeners.
//! * [`faults`] plays the provider under faults and checks that nothing stored was lost or applied
//!   twice.
#![forbid(unsafe_code)]

mod database;
pub mod faults;
mod nats;
mod postgres;
pub mod projection;
mod system;
pub mod workload;

pub use database::{TestBackend, TestDatabase, postgres_admin_url};
pub use nats::{NatsCluster, NatsServer, server_version as nats_server_version};
pub use postgres::PostgresServer;
pub use system::{TEST_TOKEN, TestSystem, TestSystemBuilder, fixture, fixture_path, wait_until};

/// The token the test systems' gateways accept.
pub fn system_token() -> &'static str {
    TEST_TOKEN
}

/// Logs from the code under test, shown for failing tests (`RUST_LOG` filters them).
pub fn init_test_logging() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,switchboard=info".to_owned());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}
