//! Retention: a periodic job that deletes old history and clears old raw JSON, in bounded chunks.
//!
//! Each service lists what may expire ([`Target`]); the ages come from `<service>.retention`. Every
//! statement touches at most `chunk_size` rows (selected by key through a subquery, which both
//! SQLite and PostgreSQL accept), so no statement holds locks for long and the consumer keeps
//! writing between chunks. Current state is never deleted; opt-outs are never touched.

use std::time::Duration;

use switchboard_events::value::unix_micros;
use switchboard_runtime::config::RetentionConfig;
use switchboard_runtime::tokio_util::sync::CancellationToken;
use switchboard_store::{Database, TableShape, sqlx};
use time::OffsetDateTime;

/// What expires in one table.
#[derive(Clone, Copy)]
pub struct Target {
    /// The table, as its store states it (its name and key select a chunk of rows).
    pub table: &'static dyn TableShape,
    /// The time (microseconds) that ages a row.
    pub time_column: &'static str,
    pub action: Action,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Target")
            .field("table", &self.table.name())
            .field("time_column", &self.time_column)
            .field("action", &self.action)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// History: delete rows older than `retention.history`.
    DeleteHistory,
    /// Clear `raw_json` (to `''`) on rows older than `retention.raw_json`.
    ClearRawJson,
}

/// The column [`Action::ClearRawJson`] clears: every table keeps the provider's body in it.
const RAW_JSON: &str = "raw_json";

impl Target {
    /// A history table's rows, deleted once received longer ago than `retention.history`.
    pub const fn delete_history(table: &'static dyn TableShape) -> Target {
        Target { table, time_column: "received_at", action: Action::DeleteHistory }
    }

    /// The raw JSON of a table's rows, cleared once their `time_column` is older than
    /// `retention.raw_json`.
    pub const fn clear_raw_json(table: &'static dyn TableShape, time_column: &'static str) -> Target {
        Target { table, time_column, action: Action::ClearRawJson }
    }

    /// The columns this target names that its table does not have. Empty when it is consistent.
    pub fn missing_columns(&self) -> Vec<&'static str> {
        let columns = self.table.column_names();
        let named = match self.action {
            Action::DeleteHistory => vec![self.time_column],
            Action::ClearRawJson => vec![self.time_column, RAW_JSON],
        };
        named.into_iter().filter(|column| !columns.contains(column)).collect()
    }

    fn age(&self, config: &RetentionConfig) -> Option<Duration> {
        match self.action {
            Action::DeleteHistory => config.history,
            Action::ClearRawJson => config.raw_json,
        }
    }

    fn chunk_statement(&self) -> String {
        let key = self.table.key().join(", ");
        let (table, time) = (self.table.name(), self.time_column);
        match self.action {
            Action::DeleteHistory => format!(
                "DELETE FROM {table} WHERE ({key}) IN (SELECT {key} FROM {table} WHERE {time} < $1 LIMIT $2)"
            ),
            Action::ClearRawJson => format!(
                "UPDATE {table} SET {RAW_JSON} = '' WHERE ({key}) IN \
                 (SELECT {key} FROM {table} WHERE {time} < $1 AND {RAW_JSON} <> '' LIMIT $2)"
            ),
        }
    }

    fn action_name(&self) -> &'static str {
        match self.action {
            Action::DeleteHistory => "deleted",
            Action::ClearRawJson => "cleared",
        }
    }
}

/// Applies every target once; returns the rows touched per target.
pub async fn run_once(
    database: &Database,
    service: &str,
    targets: &[Target],
    config: &RetentionConfig,
    now: OffsetDateTime,
) -> Result<Vec<(Target, u64)>, sqlx::Error> {
    let mut touched = Vec::new();
    for target in targets {
        let Some(age) = target.age(config) else {
            continue;
        };
        let cutoff = unix_micros(now) - i64::try_from(age.as_micros()).unwrap_or(i64::MAX);
        let statement = target.chunk_statement();
        let mut total = 0u64;
        loop {
            let result = sqlx::query(&statement)
                .bind(cutoff)
                .bind(config.chunk_size)
                .execute(database.writer())
                .await?;
            let affected = result.rows_affected();
            total += affected;
            if affected < u64::try_from(config.chunk_size).unwrap_or(u64::MAX) {
                break;
            }
            // Let the consumer's transactions in between chunks.
            tokio::task::yield_now().await;
        }
        if total > 0 {
            metrics::counter!(
                "switchboard_retention_rows_total",
                "service" => service.to_owned(),
                "table" => target.table.name(),
                "action" => target.action_name()
            )
            .increment(total);
            tracing::info!(
                service,
                table = target.table.name(),
                action = target.action_name(),
                rows = total,
                "retention applied"
            );
        }
        touched.push((*target, total));
    }
    Ok(touched)
}

/// Runs the job every `config.interval` until `shutdown`.
pub async fn run_periodically(
    database: Database,
    service: String,
    targets: &'static [Target],
    config: RetentionConfig,
    shutdown: CancellationToken,
) {
    if config.history.is_none() && config.raw_json.is_none() {
        return;
    }
    loop {
        if let Err(error) = run_once(&database, &service, targets, &config, OffsetDateTime::now_utc()).await {
            tracing::warn!(%service, %error, "retention failed; will try again");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(config.interval) => {}
        }
    }
}
