//! Declarative tables: a service states a table once (its name, key and columns, each column with
//! how it is bound from the row type that fills it) and the statements that write it are generated
//! from that statement: the column list, the VALUES placeholders and their count, the bind order,
//! and the "earliest delivery wins" and "current state" upserts.
//!
//! ```
//! use switchboard_store::{Table, columns};
//!
//! struct Report { id: String, digest: String, note: Option<String>, stream_sequence: i64 }
//!
//! const REPORTS: Table<Report> = Table {
//!     name: "reports",
//!     key: &["id", "digest"],
//!     columns: columns!(Report {
//!         id,
//!         digest,
//!         note,
//!         // A column bound from something other than the field of its name:
//!         note_length: |query, report| query.bind(report.note.as_ref().map_or(0, |note| note.len() as i64)),
//!         stream_sequence,
//!     }),
//! };
//! assert_eq!(REPORTS.column_list(), "id, digest, note, note_length, stream_sequence");
//! ```

use std::collections::BTreeMap;

use sqlx::Row as _;

use crate::sql::{
    BoundQuery, Conditions, CurrentRow, Delivered, Keyset, batch_winners, current_rows_returned,
    current_state_update, one_row_per_key, received_bounds, rows_by_key, select_page, values_rows,
    write_rows, written_rows_returned,
};
use crate::{Backend, Database};

/// Binds one column's value of a `T` to the next placeholder.
pub type Bind<T> = for<'q> fn(BoundQuery<'q>, &'q T) -> BoundQuery<'q>;

/// One column of a table: its name and how its value is bound from the row type.
#[derive(Debug)]
pub struct Column<T> {
    pub name: &'static str,
    pub bind: Bind<T>,
}

/// A table written from rows of type `T`: every statement that writes it is derived from here.
pub struct Table<T: 'static> {
    pub name: &'static str,
    /// The conflict target: the primary key's columns.
    pub key: &'static [&'static str],
    /// Every column, in the order they are bound.
    pub columns: &'static [Column<T>],
}

impl<T> std::fmt::Debug for Table<T> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Table")
            .field("name", &self.name)
            .field("key", &self.key)
            .field("columns", &self.names().collect::<Vec<_>>())
            .finish()
    }
}

/// A value a [`Column`] binds straight from a field of its name, without copying text.
pub trait BindValue {
    fn bind_to<'q>(&'q self, query: BoundQuery<'q>) -> BoundQuery<'q>;
}

impl BindValue for String {
    fn bind_to<'q>(&'q self, query: BoundQuery<'q>) -> BoundQuery<'q> {
        query.bind(self.as_str())
    }
}

impl BindValue for Option<String> {
    fn bind_to<'q>(&'q self, query: BoundQuery<'q>) -> BoundQuery<'q> {
        query.bind(self.as_deref())
    }
}

impl BindValue for i64 {
    fn bind_to<'q>(&'q self, query: BoundQuery<'q>) -> BoundQuery<'q> {
        query.bind(*self)
    }
}

impl BindValue for Option<i64> {
    fn bind_to<'q>(&'q self, query: BoundQuery<'q>) -> BoundQuery<'q> {
        query.bind(*self)
    }
}

/// The column an identifier names: `r#type` is the column `type`.
#[doc(hidden)]
pub const fn column_name(identifier: &'static str) -> &'static str {
    match identifier.as_bytes() {
        [b'r', b'#', rest @ ..] => match std::str::from_utf8(rest) {
            Ok(name) => name,
            Err(_) => identifier,
        },
        _ => identifier,
    }
}

/// The columns of a [`Table`] of rows of type `$row`, in bind order: `name` binds the field `name`
/// ([`BindValue`]); `name: |query, row| …` binds whatever the closure binds.
#[macro_export]
macro_rules! columns {
    ($row:ty { $($name:ident $(: $bind:expr)?),* $(,)? }) => {
        &[$($crate::column!($row, $name $(, $bind)?)),*]
    };
}

/// One entry of [`columns!`].
#[doc(hidden)]
#[macro_export]
macro_rules! column {
    ($row:ty, $name:ident) => {
        $crate::Column::<$row> {
            name: $crate::column_name(stringify!($name)),
            bind: |query, row| $crate::BindValue::bind_to(&row.$name, query),
        }
    };
    ($row:ty, $name:ident, $bind:expr) => {
        $crate::Column::<$row> { name: $crate::column_name(stringify!($name)), bind: $bind }
    };
}

impl<T> Table<T> {
    /// The column names, in bind order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.columns.iter().map(|column| column.name)
    }

    /// `a, b, c`: the column list of an `INSERT` or a `SELECT`.
    pub fn column_list(&self) -> String {
        self.names().collect::<Vec<_>>().join(", ")
    }

    /// The columns that are not part of the key.
    pub fn non_key(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.names().filter(|name| !self.key.contains(name))
    }

    /// `INSERT INTO table (columns) VALUES (…), (…)` for `rows` rows.
    pub fn insert(&self, backend: Backend, rows: usize) -> String {
        format!(
            "INSERT INTO {} ({}) VALUES {}",
            self.name,
            self.column_list(),
            values_rows(backend, rows, self.columns.len())
        )
    }

    /// Binds every column of `row`, in order.
    pub fn bind<'q>(&self, query: BoundQuery<'q>, row: &'q T) -> BoundQuery<'q> {
        self.columns.iter().fold(query, |query, column| (column.bind)(query, row))
    }

    /// A page of this table's rows (every column), read with `read` (see [`select_page`]).
    pub async fn page(
        &self,
        database: &Database,
        conditions: Conditions,
        keyset: Keyset,
        read: impl Fn(&sqlx::any::AnyRow) -> Result<T, sqlx::Error>,
    ) -> Result<Vec<T>, sqlx::Error> {
        select_page(database, &self.column_list(), self.name, conditions, keyset, read).await
    }

    /// `ON CONFLICT (key) DO UPDATE SET c = excluded.c, … WHERE excluded.stream_sequence <
    /// table.stream_sequence`: an earlier delivery of a stored key replaces `columns` of it.
    fn earlier_delivery_replaces<'c>(&self, columns: impl IntoIterator<Item = &'c str>) -> String {
        let assignments: Vec<String> =
            columns.into_iter().map(|column| format!("{column} = excluded.{column}")).collect();
        format!(
            "ON CONFLICT ({}) DO UPDATE SET {} WHERE excluded.stream_sequence < {}.stream_sequence",
            self.key.join(", "),
            assignments.join(", "),
            self.name
        )
    }

    /// Writes a history: one row per distinct key (an event and its digest), keeping the earliest
    /// delivery of each. A stored row is the same content delivered again, so a redelivery that
    /// came earlier in the stream only moves its delivery to itself (`received_at`,
    /// `stream_sequence`, and the `derived` columns that follow from them); a later one changes
    /// nothing.
    pub async fn write_history<'r, K: Ord>(
        &self,
        connection: &mut sqlx::AnyConnection,
        rows: &[&'r T],
        key: impl Fn(&'r T) -> K,
        derived: &[&str],
    ) -> Result<(), sqlx::Error>
    where
        T: Delivered,
    {
        let earliest = one_row_per_key(rows.iter().copied(), key, earlier);
        let delivery = ["received_at", "stream_sequence"].into_iter().chain(derived.iter().copied());
        let conflict = self.earlier_delivery_replaces(delivery);
        let backend = Backend::of(connection);
        let rows: Vec<&T> = earliest.into_values().collect();
        write_rows(
            connection,
            &rows,
            |size| format!("{} {conflict}", self.insert(backend, size)),
            |query, row| self.bind(query, row),
        )
        .await?;
        Ok(())
    }

    /// Writes one row per key where the earliest delivery of a key is the row: of several
    /// deliveries, in the batch or stored, the one with the lowest stream sequence is kept whole, so
    /// the outcome does not depend on their order. Returns the rows written (inserted or
    /// replaced), sorted by key, for watchers.
    ///
    /// `key` gives a row's key as the conflict target's columns decode (`(String,)`,
    /// `(String, String)`).
    pub async fn write_earliest<K>(
        &self,
        connection: &mut sqlx::AnyConnection,
        rows: &[&T],
        key: impl Fn(&T) -> K,
    ) -> Result<Vec<T>, sqlx::Error>
    where
        T: Clone + Delivered,
        K: Ord + for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        let earliest = one_row_per_key(rows.iter().copied(), &key, earlier);
        if earliest.is_empty() {
            return Ok(Vec::new());
        }
        let conflict = self.earlier_delivery_replaces(self.non_key());
        let returning = self.key.join(", ");
        let backend = Backend::of(connection);
        let written: Vec<&T> = earliest.into_values().collect();
        let returned = write_rows(
            connection,
            &written,
            |size| format!("{} {conflict} RETURNING {returning}", self.insert(backend, size)),
            |query, row| self.bind(query, row),
        )
        .await?;
        written_rows_returned(written, key, &returned, |row| K::from_row(row))
    }

    /// Writes a batch into a current-state table (one row per key, single-column key): each key's
    /// row is the event that wins by the service's rule (`beats_sql`, the SQL form of
    /// [`CurrentRow::beats`], comparing `excluded` with the table), and keeps the first and last
    /// receive time of every event for it. Returns the rows that changed, sorted by key; a row
    /// that only widened its receive times is read back whole with `read`.
    pub async fn write_current(
        &self,
        connection: &mut sqlx::AnyConnection,
        rows: &[&T],
        key: impl Fn(&T) -> &str,
        beats_sql: &str,
        read: impl Fn(&sqlx::any::AnyRow) -> Result<T, sqlx::Error>,
    ) -> Result<Vec<T>, sqlx::Error>
    where
        T: CurrentRow,
    {
        let [key_column] = self.key else {
            unreachable!("a current-state table has a one-column key, {} has {:?}", self.name, self.key)
        };
        const RECEIVED: [&str; 2] = ["first_received_at", "last_received_at"];
        // One row per key: the winner with the batch's receive times (PostgreSQL refuses to touch a
        // row twice in one statement).
        let winners: BTreeMap<String, T> =
            batch_winners(rows, &key).into_iter().map(|(key, winner)| (key, winner.into_row())).collect();
        let winner_columns: Vec<&str> = self.non_key().filter(|column| !RECEIVED.contains(column)).collect();
        let (assignments, changed) =
            current_state_update(self.name, beats_sql, &winner_columns, &RECEIVED[..1], &RECEIVED[1..]);
        let backend = Backend::of(connection);
        let written: Vec<&T> = winners.values().collect();
        let returned = write_rows(
            connection,
            &written,
            |size| {
                format!(
                    "{} ON CONFLICT ({key_column}) DO UPDATE SET {assignments} WHERE {changed} \
                     RETURNING {key_column}, stream_sequence, first_received_at, last_received_at",
                    self.insert(backend, size)
                )
            },
            |query, row| self.bind(query, row),
        )
        .await?;
        let (mut changed, kept_their_row) = current_rows_returned(
            winners,
            &returned,
            |row| row.try_get(*key_column),
            T::stream_sequence,
            |winner, row| {
                winner.set_received(received_bounds(row)?);
                Ok(())
            },
        )?;
        changed.extend(
            rows_by_key(connection, &self.column_list(), self.name, key_column, &kept_their_row, read)
                .await?,
        );
        changed.sort_by(|left, right| key(left).cmp(key(right)));
        Ok(changed)
    }
}

/// Whether `candidate` was delivered before `kept` (the rule that keeps the earliest delivery).
fn earlier<T: Delivered>(candidate: &T, kept: &T) -> bool {
    candidate.stream_sequence() < kept.stream_sequence()
}

/// What a table is, whatever fills it: its name, key and columns (for checks against the schema,
/// and for statements that do not write rows: retention).
pub trait TableShape: Sync {
    fn name(&self) -> &'static str;
    fn key(&self) -> &'static [&'static str];
    fn column_names(&self) -> Vec<&'static str>;
}

impl<T> TableShape for Table<T> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn key(&self) -> &'static [&'static str] {
        self.key
    }

    fn column_names(&self) -> Vec<&'static str> {
        self.names().collect()
    }
}

/// The differences between a stated table and the table the migrations made: columns stated that it
/// lacks, and columns it has that are not stated. Both empty when they agree.
pub async fn schema_differences(
    database: &Database,
    table: &dyn TableShape,
) -> Result<(Vec<String>, Vec<String>), sqlx::Error> {
    let stored: Vec<String> = match database.backend() {
        Backend::Sqlite => {
            sqlx::query(&format!("SELECT name FROM pragma_table_info('{}')", table.name()))
                .fetch_all(database.pool())
                .await?
        }
        Backend::Postgres => {
            sqlx::query(
                "SELECT column_name::text AS name FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1",
            )
            .bind(table.name())
            .fetch_all(database.pool())
            .await?
        }
    }
    .iter()
    .map(|row| row.try_get("name"))
    .collect::<Result<_, _>>()?;
    let stated = table.column_names();
    let missing = stated
        .iter()
        .filter(|name| !stored.iter().any(|column| column == *name))
        .map(|name| (*name).to_owned());
    let extra = stored.iter().filter(|column| !stated.contains(&column.as_str())).cloned();
    Ok((missing.collect(), extra.collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone)]
    struct Row {
        id: String,
        note: Option<String>,
        stream_sequence: i64,
    }

    crate::delivered!(Row);

    const ROWS: Table<Row> = Table {
        name: "notes",
        key: &["id"],
        columns: crate::columns!(Row {
            id,
            r#note: |query, row| row.note.bind_to(query),
            doubled: |query, row| query.bind(row.stream_sequence * 2),
            stream_sequence
        }),
    };

    #[test]
    fn statements_follow_the_columns() {
        assert_eq!(ROWS.column_list(), "id, note, doubled, stream_sequence");
        assert_eq!(ROWS.non_key().collect::<Vec<_>>(), ["note", "doubled", "stream_sequence"]);
        assert_eq!(
            ROWS.insert(Backend::Postgres, 2),
            "INSERT INTO notes (id, note, doubled, stream_sequence) VALUES ($1, $2, $3, $4), ($5, $6, $7, $8)"
        );
        assert_eq!(
            ROWS.earlier_delivery_replaces(["note"]),
            "ON CONFLICT (id) DO UPDATE SET note = excluded.note \
             WHERE excluded.stream_sequence < notes.stream_sequence"
        );
    }

    #[tokio::test]
    async fn rows_round_trip_and_the_earliest_delivery_is_kept() -> Result<(), Box<dyn std::error::Error>> {
        let directory = tempfile::tempdir()?;
        let url = format!("sqlite://{}", directory.path().join("t.db").display()) + "?mode=rwc";
        let database = Database::connect(&url, crate::PoolSettings::default()).await?;
        sqlx::query(
            "CREATE TABLE notes (id TEXT PRIMARY KEY, note TEXT, doubled BIGINT, stream_sequence BIGINT)",
        )
        .execute(database.pool())
        .await?;
        assert_eq!(schema_differences(&database, &ROWS).await?, (vec![], vec![]));

        let row = |id: &str, note: &str, stream_sequence| Row {
            id: id.to_owned(),
            note: Some(note.to_owned()),
            stream_sequence,
        };
        let mut connection = database.pool().acquire().await?;
        let batch = [row("a", "late", 9), row("b", "only", 4), row("a", "early", 7)];
        let written = ROWS
            .write_earliest(&mut connection, &batch.iter().collect::<Vec<_>>(), |row| (row.id.clone(),))
            .await?;
        assert_eq!(
            written.iter().map(|row| row.note.as_deref()).collect::<Vec<_>>(),
            [Some("early"), Some("only")]
        );
        // A later delivery changes nothing and is not returned; an earlier one replaces the row.
        let again = [row("a", "later", 8), row("b", "earlier", 2)];
        let written = ROWS
            .write_earliest(&mut connection, &again.iter().collect::<Vec<_>>(), |row| (row.id.clone(),))
            .await?;
        assert_eq!(written.iter().map(|row| row.id.as_str()).collect::<Vec<_>>(), ["b"]);
        let stored: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT id, note, doubled FROM notes ORDER BY id")
                .fetch_all(&mut *connection)
                .await?;
        assert_eq!(stored, [("a".into(), "early".into(), 14), ("b".into(), "earlier".into(), 4)]);

        sqlx::query("ALTER TABLE notes ADD COLUMN extra TEXT").execute(&mut *connection).await?;
        sqlx::query("ALTER TABLE notes DROP COLUMN doubled").execute(&mut *connection).await?;
        drop(connection);
        assert_eq!(
            schema_differences(&database, &ROWS).await?,
            (vec!["doubled".to_owned()], vec!["extra".to_owned()])
        );
        Ok(())
    }
}
