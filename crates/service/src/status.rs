//! Storage errors as the consumer's decisions and as gRPC status codes.

use switchboard_runtime::consumer::ApplyError;
use switchboard_store::sqlx;
use tonic::Status;

/// A failed write as the consumer acts on it: [`ApplyError::Failed`] when its rows caused it (the
/// consumer isolates them and eventually dead-letters them), [`ApplyError::Unavailable`] for
/// everything else (retried for as long as it lasts; see [`switchboard_store::is_caused_by_the_rows`]).
/// The error itself is kept, typed.
pub fn write_error(error: sqlx::Error) -> ApplyError {
    if switchboard_store::is_caused_by_the_rows(&error) {
        ApplyError::Failed(Box::new(error))
    } else {
        ApplyError::Unavailable(Box::new(error))
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_fail_closed_and_keep_their_error_typed() {
        assert!(matches!(write_error(sqlx::Error::PoolTimedOut), ApplyError::Unavailable(_)));
        assert!(matches!(write_error(sqlx::Error::RowNotFound), ApplyError::Unavailable(_)));
        assert!(matches!(write_error(sqlx::Error::Decode("bad".into())), ApplyError::Failed(_)));
        let kept = write_error(sqlx::Error::PoolTimedOut);
        assert!(
            matches!(kept.cause().downcast_ref::<sqlx::Error>(), Some(sqlx::Error::PoolTimedOut)),
            "{kept:?}"
        );
    }
}
