//! Migrations shipped inside the binary, one SQL text per dialect, applied with sqlx's migrator.
//!
//! A service lists its migrations (and shared ones, like the opt-out table) as [`MigrationFiles`];
//! each version is applied once per database, in order, recorded in `_sqlx_migrations`. On PostgreSQL
//! the migrator takes an advisory lock, so replicas starting together do not race.

use std::borrow::Cow;

use futures::future::BoxFuture;
use sqlx::AnyPool;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

use crate::{Backend, StoreError};

/// One migration in both dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationFiles {
    pub version: i64,
    pub description: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// Shared by every service, after its own first migrations: text compares byte by byte on
/// PostgreSQL as it does on SQLite (`migrations/postgres/bytewise_text.sql` says why and how).
pub const BYTEWISE_TEXT: MigrationFiles = MigrationFiles {
    version: 901,
    description: "text compares byte by byte",
    sqlite: include_str!("../migrations/sqlite/bytewise_text.sql"),
    postgres: include_str!("../migrations/postgres/bytewise_text.sql"),
};

#[derive(Debug)]
struct EmbeddedSource(Vec<Migration>);

impl<'s> MigrationSource<'s> for EmbeddedSource {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move { Ok(self.0) })
    }
}

pub(crate) async fn run_migrations(
    pool: &AnyPool,
    backend: Backend,
    files: &[MigrationFiles],
) -> Result<(), StoreError> {
    let migrations = files
        .iter()
        .map(|file| {
            let sql = match backend {
                Backend::Sqlite => file.sqlite,
                Backend::Postgres => file.postgres,
            };
            Migration::new(
                file.version,
                Cow::Borrowed(file.description),
                MigrationType::Simple,
                Cow::Borrowed(sql),
                false,
            )
        })
        .collect();
    let migrator = Migrator::new(EmbeddedSource(migrations)).await?;
    migrator.run(pool).await?;
    Ok(())
}
