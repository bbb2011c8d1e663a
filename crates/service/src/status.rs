//! Storage errors as gRPC status codes.

use switchboard_store::sqlx;
use tonic::Status;

/// A failed query: UNAVAILABLE when the database cannot be reached (the client may retry), INTERNAL
/// otherwise. The cause is logged, never sent to the caller.
pub fn from_query_error(error: sqlx::Error) -> Status {
    if switchboard_store::is_unavailable(&error) {
        tracing::warn!(cause = %error, "query failed: database unavailable");
        Status::unavailable("the database is unavailable; try again")
    } else {
        tracing::error!(cause = %error, "query failed");
        Status::internal("internal error")
    }
}
