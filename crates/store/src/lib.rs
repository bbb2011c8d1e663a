//! Storage shared by the product services.
//!
//! Every service keeps its tables in its own database: SQLite (the embedded default, one file per
//! service, WAL) or PostgreSQL (production), chosen by URL. Both go through sqlx's `Any` driver so
//! that one set of queries serves both; where the dialects differ (DDL, mostly), the two versions sit
//! side by side in `migrations/sqlite` and `migrations/postgres` of each service.
//!
//! Conventions that keep the SQL portable:
//! * placeholders are `$1, $2, …` (both dialects accept them; see [`Placeholders`]);
//! * times are `BIGINT` microseconds since the epoch, so day buckets are integer arithmetic;
//! * no booleans (0/1 integers), no native JSON (raw JSON is `TEXT`, byte for byte);
//! * upserts use `INSERT … ON CONFLICT … DO UPDATE … WHERE`, which both implement, with one row
//!   per key per statement and rows sorted by key (a stable lock order, so concurrent replicas cannot
//!   deadlock each other).
#![forbid(unsafe_code)]

mod database;
mod error;
mod migrate;
mod sql;
mod table;
mod winner;

pub use database::{Backend, Database, PoolSettings, WriteTransaction};
pub use error::{StoreError, is_caused_by_the_rows, is_unavailable};
pub use migrate::{BYTEWISE_TEXT, MigrationFiles};
pub use sql::{
    BatchWinner, BoundQuery, Conditions, CurrentRow, CursorValues, Delivered, Keyset, MICROS_PER_DAY,
    Placeholders, STATEMENT_ROWS, Value, batch_winners, current_rows_returned, current_state_update,
    delete_where_in, epoch_day_sql, like_prefix, one_row_per_key, received_bounds, rows_by_key, select_page,
    statement_sizes, values_list, values_rows, write_rows, written_rows_returned,
};
pub use sqlx;
pub use table::{Bind, BindValue, Column, Table, TableShape, column_name, schema_differences};
pub use winner::{Precedence, WinnerRule};
