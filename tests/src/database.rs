//! A database of its own for each test, on SQLite or PostgreSQL.

use std::time::Duration;

use anyhow::Context as _;
use rand::RngCore;
use switchboard_runtime::Secret;
use switchboard_store::sqlx::{self, Connection, Executor};

/// Which backend the suite runs on, from `SB_TEST_DATABASE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    Sqlite,
    Postgres,
}

impl TestBackend {
    pub fn from_env() -> TestBackend {
        match std::env::var("SB_TEST_DATABASE").as_deref() {
            Ok("postgres") | Ok("postgresql") => TestBackend::Postgres,
            _ => TestBackend::Sqlite,
        }
    }
}

/// The server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("SB_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// One database, removed when dropped.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    /// For PostgreSQL: the database's name, dropped on `Drop`.
    postgres_name: Option<String>,
    _directory: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub async fn create(backend: TestBackend, label: &str) -> anyhow::Result<TestDatabase> {
        match backend {
            TestBackend::Sqlite => {
                let directory = tempfile::Builder::new().prefix("switchboard-db-").tempdir()?;
                let url =
                    format!("sqlite://{}?mode=rwc", directory.path().join(format!("{label}.db")).display());
                Ok(TestDatabase { url, postgres_name: None, _directory: Some(directory) })
            }
            TestBackend::Postgres => {
                let mut bytes = [0u8; 6];
                rand::rng().fill_bytes(&mut bytes);
                let name = format!("sbtest_{label}_{}", hex::encode(bytes));
                let admin = postgres_admin_url();
                let mut connection = sqlx::PgConnection::connect(&admin)
                    .await
                    .with_context(|| format!("cannot reach PostgreSQL at {admin} (SB_TEST_POSTGRES_URL)"))?;
                connection.execute(format!("CREATE DATABASE {name}").as_str()).await?;
                connection.close().await?;
                let url = replace_database(&admin, &name);
                Ok(TestDatabase { url, postgres_name: Some(name), _directory: None })
            }
        }
    }

    pub fn url(&self) -> Secret {
        Secret::new(self.url.clone())
    }
}

/// The admin URL with its database name replaced.
fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_end = base.find("://").map(|index| index + 3).unwrap_or(0);
    let path_start = base[authority_end..].find('/').map(|index| index + authority_end).unwrap_or(base.len());
    format!("{}/{database}{query}", &base[..path_start])
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        // Drop runs outside any runtime we can block on: use a thread with its own.
        let admin = postgres_admin_url();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut connection = sqlx::PgConnection::connect(&admin).await.ok()?;
                let statement = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                tokio::time::timeout(Duration::from_secs(10), connection.execute(statement.as_str()))
                    .await
                    .ok()?
                    .ok()?;
                Some(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            tracing::warn!("could not drop a test database");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_replaced() {
        assert_eq!(
            replace_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            replace_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://h", "x"), "postgres://h/x");
    }
}
