//! The skeleton every product service shares, so the five services differ only in their events,
//! tables and API:
//!
//! * [`descriptor`]: what a service is (product, gRPC service, migrations, consumers, how to start
//!   and rebuild it), stated once in its crate;
//! * [`grpc`]: the gRPC server (health, reflection, bearer-token auth, reloading TLS) and the
//!   conventions every query API follows (paging, time ranges, daily buckets, watch streams);
//! * [`replay`]: replaying the stream into a projection (`switchboard rebuild`);
//! * [`host`]: open the service's database (retrying until it answers), register readiness, start
//!   the change feed and the consumer loops;
//! * [`optouts`]: the opt-out list that sms, chat and voice all keep (table, projection, check and
//!   list queries);
//! * [`retention`]: the periodic job that expires old history and raw JSON;
//! * [`status`]: storage errors as the consumer's retry or dead-letter decision ([`write_error`]),
//!   and as gRPC status codes without leaking internals.
#![forbid(unsafe_code)]

pub mod descriptor;
pub mod grpc;
pub mod host;
pub mod optouts;
pub mod replay;
pub mod retention;
pub mod status;

pub use descriptor::{ConsumerDescriptor, ProjectionParts, ServiceDescriptor};
pub use host::ServiceHost;
pub use status::write_error;
