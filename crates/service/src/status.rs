//! Storage errors as gRPC status codes.

use switchboard_runtime::consumer::ApplyError;
use switchboard_store::sqlx;
use tonic::Status;

/// A failed query: UNAVAILABLE when the database cannot be reached (the client may retry), INTERNAL
/// otherwise. The cause is logged, never sent to the caller.
pub fn from_query_error(error: sqlx::Error) -> Status {
    match switchboard_store::classify(error) {
        ApplyError::Unavailable(cause) => {
            tracing::warn!(%cause, "query failed: database unavailable");
            Status::unavailable("the database is unavailable; try again")
        }
        ApplyError::Failed(cause) => {
            tracing::error!(%cause, "query failed");
            Status::internal("internal error")
        }
    }
}
