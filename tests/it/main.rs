//! End-to-end tests: HTTP in, gRPC and NATS out, against a real nats-server and a real database
//! (SQLite by default, PostgreSQL with SB_TEST_DATABASE=postgres).

mod batch_limits;
mod changes;
mod chat;
mod consumer;
mod contacts;
mod faults;
mod gateway;
mod gateway_auth;
mod gateway_faults;
mod gateway_routes;
mod gateway_tls;
mod hostile;
mod interact;
mod metrics;
mod migrations;
mod projections;
mod retention;
mod scale;
mod security;
mod security_nats;
mod security_tls;
mod sms;
mod storage_faults;
mod voice;
mod voice_projections;
mod writer;
