//! Storage errors, and which of them are worth retrying.

use switchboard_runtime::consumer::ApplyError;
use thiserror::Error;

use crate::Backend;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("the database URL must start with sqlite:, postgres:// or postgresql://")]
    UnsupportedUrl,
    #[error("cannot create the data directory {path}: {source}")]
    DataDirectory {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to {}: {source}", backend.name())]
    Connect {
        backend: Backend,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Query(#[from] sqlx::Error),
}

/// Sorts a failed write into "retry until it works" (the database is unreachable, overloaded, locked,
/// or chose this transaction as a deadlock victim) and "something about these rows" (constraint
/// violations, bad data), which the consumer isolates and eventually dead-letters.
pub fn classify(error: sqlx::Error) -> ApplyError {
    let message = error.to_string();
    if is_transient(&error) { ApplyError::Unavailable(message) } else { ApplyError::Failed(message) }
}

fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database_error) => {
            let code = database_error.code().map(|code| code.into_owned()).unwrap_or_default();
            is_transient_code(&code)
        }
        _ => false,
    }
}

/// PostgreSQL SQLSTATEs and SQLite result codes that mean "not now".
fn is_transient_code(code: &str) -> bool {
    // PostgreSQL: connection exceptions (08…), insufficient resources (53…), operator intervention
    // (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now), serialization failure
    // and deadlock (40001, 40P01), lock not available (55P03).
    if code.starts_with("08") || code.starts_with("53") || code.starts_with("57P") {
        return true;
    }
    if matches!(code, "40001" | "40P01" | "55P03") {
        return true;
    }
    // SQLite: BUSY (5) and LOCKED (6) with their extended codes (e.g. 261, 517, 262).
    match code.parse::<i32>() {
        Ok(sqlite_code) => matches!(sqlite_code & 0xff, 5 | 6),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes() {
        for code in ["08006", "57P01", "40P01", "40001", "53300", "5", "517", "6"] {
            assert!(is_transient_code(code), "{code}");
        }
        for code in ["23505", "22P02", "19", "2067", ""] {
            assert!(!is_transient_code(code), "{code}");
        }
        assert!(matches!(classify(sqlx::Error::PoolTimedOut), ApplyError::Unavailable(_)));
        assert!(matches!(classify(sqlx::Error::RowNotFound), ApplyError::Failed(_)));
    }
}
