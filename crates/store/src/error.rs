//! Storage errors, and which of them are worth retrying.

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

/// Whether a failed query is worth retrying by its caller (the database is unreachable,
/// overloaded, locked, read-only, out of space, or failing to read or write its files). Queries
/// answer UNAVAILABLE for these and INTERNAL for the rest; writes are sorted by
/// [`is_caused_by_the_rows`].
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database_error) => {
            let code = database_error.code().map(|code| code.into_owned()).unwrap_or_default();
            is_unavailable_code(&code)
        }
        _ => false,
    }
}

/// PostgreSQL SQLSTATEs and SQLite result codes that mean "not now".
fn is_unavailable_code(code: &str) -> bool {
    // PostgreSQL: connection exceptions (08…), insufficient resources (53…: disk full, out of
    // memory, too many connections), operator intervention (57P01 admin shutdown, 57P02 crash
    // shutdown, 57P03 cannot connect now), serialization failure and deadlock (40001, 40P01), lock
    // not available (55P03), a read-only transaction (25006: a standby, or writes refused).
    if code.starts_with("08") || code.starts_with("53") || code.starts_with("57P") {
        return true;
    }
    if matches!(code, "40001" | "40P01" | "55P03" | "25006") {
        return true;
    }
    // SQLite: READONLY (8), IOERR (10), FULL (13), BUSY (5) and LOCKED (6), with their extended
    // codes (e.g. 778 a failed write, 261 busy recovery, 517 busy snapshot).
    match code.parse::<i32>() {
        Ok(sqlite_code) => matches!(sqlite_code & 0xff, 5 | 6 | 8 | 10 | 13),
        Err(_) => false,
    }
}

/// Whether a failed write is caused by its rows (a constraint they break, a value the database
/// cannot take): a consumer isolates such rows and eventually dead-letters them. Everything else
/// means "retry until it works".
///
/// The sort fails closed: only errors known to be caused by the data are. An error that says
/// nothing about the rows (the server is unreachable, overloaded, read-only or shutting down; the
/// disk is full; an I/O error; a permission or schema problem an operator must fix; anything not
/// recognised) stops the consumer and retries its batch for as long as it lasts, with readiness
/// false: it is never dead-lettered, and never acknowledged.
pub fn is_caused_by_the_rows(error: &sqlx::Error) -> bool {
    match error {
        // A value that cannot be encoded or read back.
        sqlx::Error::Encode(_) | sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => true,
        sqlx::Error::Database(database_error) => {
            let code = database_error.code().map(|code| code.into_owned()).unwrap_or_default();
            is_data_error_code(&code)
        }
        _ => false,
    }
}

/// PostgreSQL SQLSTATEs and SQLite result codes that blame the rows written.
fn is_data_error_code(code: &str) -> bool {
    // PostgreSQL: data exceptions (22…: a value out of range, invalid text for a type, …) and
    // integrity constraint violations (23…). Not 25006 (read-only transaction), 42… (a missing
    // table or privilege), 53… (disk full, out of memory), 57… (shutdown), 08… (connection).
    if code.len() == 5 && (code.starts_with("22") || code.starts_with("23")) {
        return true;
    }
    // SQLite: TOOBIG (18), CONSTRAINT (19) and MISMATCH (20), with their extended codes (e.g. 2067,
    // a unique constraint). Not FULL (13), IOERR (10), READONLY (8), CANTOPEN (14), BUSY (5),
    // LOCKED (6), NOMEM (7), CORRUPT (11) or anything else.
    match code.parse::<i32>() {
        Ok(sqlite_code) => matches!(sqlite_code & 0xff, 18..=20),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_that_blame_the_rows_are_permanent() {
        // PostgreSQL: unique violation, check violation, invalid text, numeric out of range.
        // SQLite: constraint (plain, unique, not null), too big, mismatch.
        for code in ["23505", "23514", "22P02", "22003", "19", "2067", "1299", "18", "20"] {
            assert!(is_data_error_code(code), "{code}");
        }
        // PostgreSQL: connection failure, admin shutdown, deadlock, serialization, disk full, out of
        // memory, too many connections, read-only transaction, undefined table, insufficient
        // privilege, lock timeout. SQLite: busy, locked, full, I/O errors (write, fsync, short
        // read), read-only, can't open, no memory, corrupt. And codes we have never seen.
        for code in [
            "08006", "57P01", "40P01", "40001", "53100", "53200", "53300", "25006", "42P01", "42501",
            "55P03", "5", "517", "6", "13", "10", "778", "1034", "522", "8", "1032", "14", "7", "11", "",
            "XX000", "99",
        ] {
            assert!(!is_data_error_code(code), "{code}");
        }
        assert!(!is_caused_by_the_rows(&sqlx::Error::PoolTimedOut));
        for code in ["08006", "57P01", "40P01", "53100", "25006", "5", "517", "8", "13", "778"] {
            assert!(is_unavailable_code(code), "{code}");
        }
        for code in ["23505", "42P01", "19", "2067", "11", ""] {
            assert!(!is_unavailable_code(code), "{code}");
        }
        assert!(!is_caused_by_the_rows(&sqlx::Error::RowNotFound));
        assert!(!is_caused_by_the_rows(&sqlx::Error::Protocol("?".into())));
        assert!(is_caused_by_the_rows(&sqlx::Error::Decode("bad".into())));
    }
}
