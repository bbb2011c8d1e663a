//! Small helpers for SQL text both dialects accept.

use crate::Backend;

/// Numbered placeholders, `$1, $2, …`, in the order values are bound.
#[derive(Debug, Default)]
pub struct Placeholders {
    count: usize,
}

impl Placeholders {
    pub fn new() -> Placeholders {
        Placeholders::default()
    }

    /// The next placeholder.
    pub fn allocate(&mut self) -> String {
        self.count += 1;
        format!("${}", self.count)
    }

    /// How many have been handed out.
    pub fn count(&self) -> usize {
        self.count
    }
}

/// The VALUES list of a multi-row insert of `rows` rows of `columns` values, bound in order:
/// `($1, $2), ($3, $4)` on PostgreSQL, `(?, ?), (?, ?)` on SQLite.
///
/// SQLite gets anonymous placeholders because sqlx looks up every numbered parameter by name, and
/// SQLite's name lookup walks the statement's parameter list: with thousands of parameters in one
/// batch insert that lookup, not the insert, took most of the time.
pub fn values_rows(backend: Backend, rows: usize, columns: usize) -> String {
    let mut placeholders = Placeholders::new();
    let mut text = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        if row > 0 {
            text.push_str(", ");
        }
        text.push('(');
        push_placeholders(&mut text, backend, &mut placeholders, columns);
        text.push(')');
    }
    text
}

/// The most rows one multi-row statement writes.
pub const STATEMENT_ROWS: usize = 256;
const _: () = assert!(STATEMENT_ROWS.is_power_of_two(), "statement_sizes fills the rest with powers of two");

/// How many rows each statement of a multi-row write of `count` rows takes: as many
/// [`STATEMENT_ROWS`] as fit, then the rest as descending powers of two. Every statement then has one
/// of a few shapes, which each connection prepares once and keeps (sqlx caches prepared statements
/// by their text): no batch is parsed and planned anew because its row count is new.
pub fn statement_sizes(count: usize) -> impl Iterator<Item = usize> {
    let full = count / STATEMENT_ROWS;
    let rest = count % STATEMENT_ROWS;
    std::iter::repeat_n(STATEMENT_ROWS, full)
        .chain((0..usize::BITS).rev().map(|bit| 1usize << bit).filter(move |size| rest & size != 0))
}

/// A query being built, bound to values that live at least as long as its text.
pub type BoundQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Writes `rows` with multi-row statements of the sizes [`statement_sizes`] gives, in order:
/// `statement(size)` is the SQL for `size` rows (its VALUES list from [`values_rows`]) and `bind`
/// binds one row's values. Returns every row the statements returned (`RETURNING`), in order.
///
/// `statement` is called once per size, not once per statement: a batch of 5,000 rows is nineteen
/// statements of 256 rows, and building the text of each (thousands of numbered placeholders) was
/// about 8 % of the contacts service's CPU samples while it drained a backlog on PostgreSQL.
pub async fn write_rows<T>(
    connection: &mut sqlx::AnyConnection,
    rows: &[T],
    statement: impl Fn(usize) -> String,
    bind: impl for<'q> Fn(BoundQuery<'q>, &'q T) -> BoundQuery<'q>,
) -> Result<Vec<sqlx::any::AnyRow>, sqlx::Error> {
    let mut returned = Vec::new();
    let mut rest = rows;
    let mut sql = SqlBySize::default();
    for size in statement_sizes(rows.len()) {
        let (chunk, after) = rest.split_at(size);
        rest = after;
        let query = chunk.iter().fold(sqlx::query(sql.get(size, &statement)), &bind);
        returned.extend(query.fetch_all(&mut *connection).await?);
    }
    Ok(returned)
}

/// The SQL text of the last statement size used: [`statement_sizes`] gives each size in one run.
#[derive(Default)]
struct SqlBySize(Option<(usize, String)>);

impl SqlBySize {
    fn get(&mut self, size: usize, statement: impl FnOnce(usize) -> String) -> &str {
        if self.0.as_ref().is_none_or(|(built, _)| *built != size) {
            self.0 = Some((size, statement(size)));
        }
        self.0.as_ref().map_or("", |(_, text)| text)
    }
}

/// Deletes the rows of `table` whose `column` is one of `keys`, in statements of at most
/// [`STATEMENT_ROWS`] keys, each planned for its own values (not a cached prepared statement).
/// Run it inside the caller's transaction: on PostgreSQL it turns off sequential scans for its own
/// statements only (`SET LOCAL`, restored after them), which a statement outside a transaction
/// would not keep.
///
/// `column` must lead an index of `table`; PostgreSQL is kept from scanning the whole table instead,
/// which its planner otherwise chooses wherever the table has no statistics yet (a fresh database
/// catching up on a backlog, a `rebuild`, until autovacuum first analyses it). Without statistics
/// it takes each key to match 0.5 % of the rows, so a statement of 200 keys looks like it deletes
/// the whole table: contacts' attributes were read whole for every statement of every batch
/// (`pg_stat_user_tables`: 426 sequential scans reading 18.8 million rows while 200,000 events
/// drained). A prepared statement fares no better: after five executions PostgreSQL gives it a
/// generic plan, made once, that scans the table whole for every batch as it grows.
pub async fn delete_where_in(
    connection: &mut sqlx::AnyConnection,
    table: &str,
    column: &str,
    keys: &[&str],
) -> Result<(), sqlx::Error> {
    if keys.is_empty() {
        return Ok(());
    }
    let backend = Backend::of(connection);
    if backend == Backend::Postgres {
        sqlx::query("SET LOCAL enable_seqscan = off").execute(&mut *connection).await?;
    }
    let mut rest = keys;
    let mut sql = SqlBySize::default();
    for size in statement_sizes(keys.len()) {
        let (chunk, after) = rest.split_at(size);
        rest = after;
        let sql = sql.get(size, |size| {
            format!("DELETE FROM {table} WHERE {column} IN ({})", values_list(backend, size))
        });
        let query = chunk.iter().fold(sqlx::query(sql), |query, key| query.bind(*key)).persistent(false);
        query.execute(&mut *connection).await?;
    }
    if backend == Backend::Postgres {
        sqlx::query("SET LOCAL enable_seqscan TO DEFAULT").execute(&mut *connection).await?;
    }
    Ok(())
}

/// `count` placeholders separated by commas, for `IN (…)`: `$1, $2` on PostgreSQL, `?, ?` on SQLite
/// (see [`values_rows`] for why SQLite's are anonymous).
pub fn values_list(backend: Backend, count: usize) -> String {
    let mut text = String::with_capacity(count * 5);
    push_placeholders(&mut text, backend, &mut Placeholders::new(), count);
    text
}

fn push_placeholders(text: &mut String, backend: Backend, placeholders: &mut Placeholders, count: usize) {
    for index in 0..count {
        if index > 0 {
            text.push_str(", ");
        }
        match backend {
            Backend::Postgres => text.push_str(&placeholders.allocate()),
            Backend::Sqlite => text.push('?'),
        }
    }
}

/// The rows of `table` whose text column `key` is one of `keys`, read with `from_row` inside the
/// caller's transaction: the current rows an upsert did not return whole ([`current_rows_returned`]).
pub async fn rows_by_key<T>(
    connection: &mut sqlx::AnyConnection,
    columns: &str,
    table: &str,
    key: &str,
    keys: &[String],
    from_row: impl Fn(&sqlx::any::AnyRow) -> Result<T, sqlx::Error>,
) -> Result<Vec<T>, sqlx::Error> {
    let backend = Backend::of(connection);
    let rows = write_rows(
        connection,
        keys,
        |size| format!("SELECT {columns} FROM {table} WHERE {key} IN ({})", values_list(backend, size)),
        |query, value| query.bind(value.as_str()),
    )
    .await?;
    rows.iter().map(from_row).collect()
}

/// The `SET` list and `WHERE` condition of an `ON CONFLICT … DO UPDATE` that keeps a row's current
/// state, for `INSERT … ON CONFLICT (key) DO UPDATE SET {set} WHERE {condition}`:
///
/// * `winners` take the incoming value when `beats` holds (the precedence rule, as SQL comparing
///   `excluded` with `table`), and keep the stored one otherwise;
/// * `earliest` keep the earliest non-null value ever written, `latest` the latest;
///
/// and the row is only written when one of them changes it (so the upsert returns only changed rows).
pub fn current_state_update(
    table: &str,
    beats: &str,
    winners: &[&str],
    earliest: &[&str],
    latest: &[&str],
) -> (String, String) {
    let mut set: Vec<String> = winners
        .iter()
        .map(|column| {
            format!("{column} = CASE WHEN {beats} THEN excluded.{column} ELSE {table}.{column} END")
        })
        .collect();
    let mut changes = vec![format!("({beats})")];
    for (columns, order) in [(earliest, "<"), (latest, ">")] {
        for column in columns {
            let replaces = format!(
                "(excluded.{column} IS NOT NULL AND ({table}.{column} IS NULL OR excluded.{column} {order} {table}.{column}))"
            );
            set.push(format!(
                "{column} = CASE WHEN {replaces} THEN excluded.{column} ELSE {table}.{column} END"
            ));
            changes.push(replaces);
        }
    }
    (set.join(", "), changes.join(" OR "))
}

/// Reduces a batch to one row per key, sorted by key, keeping for each key the row `prefer` chooses
/// (`prefer(candidate, kept)` is true when `candidate` should replace `kept`).
///
/// Multi-row upserts need this: PostgreSQL refuses to touch a row twice in one statement, and rows
/// written in key order make concurrent writers lock in the same order, so they cannot deadlock.
pub fn one_row_per_key<'a, K: Ord, T: 'a>(
    rows: impl IntoIterator<Item = &'a T>,
    key: impl Fn(&'a T) -> K,
    prefer: impl Fn(&T, &T) -> bool,
) -> std::collections::BTreeMap<K, &'a T> {
    let mut kept: std::collections::BTreeMap<K, &'a T> = std::collections::BTreeMap::new();
    for row in rows {
        match kept.entry(key(row)) {
            std::collections::btree_map::Entry::Vacant(entry) => {
                entry.insert(row);
            }
            std::collections::btree_map::Entry::Occupied(mut entry) => {
                if prefer(row, entry.get()) {
                    entry.insert(row);
                }
            }
        }
    }
    kept
}

/// A row that holds one delivery from the stream: its stream sequence orders deliveries, and where
/// several deliveries of one thing meet, the earliest (the lowest sequence) is kept.
pub trait Delivered {
    /// The stream sequence of the delivery this row holds.
    fn stream_sequence(&self) -> i64;
}

/// Implements [`Delivered`] for a row type with a `stream_sequence` field.
#[macro_export]
macro_rules! delivered {
    ($row:ty) => {
        impl $crate::Delivered for $row {
            fn stream_sequence(&self) -> i64 {
                self.stream_sequence
            }
        }
    };
}

/// A row a batch proposes for a service's current state that keeps, besides the winning event's
/// columns, the first and last receive time of every event for its key ([`batch_winners`]).
pub trait CurrentRow: Delivered + Clone {
    /// `(first_received_at, last_received_at)`.
    fn received(&self) -> (i64, i64);
    /// Sets the receive times.
    fn set_received(&mut self, received: (i64, i64));
    /// Whether this row replaces `current` as the state (the service's precedence rule).
    fn beats(&self, current: &Self) -> bool;
}

/// Implements [`CurrentRow`] (and [`Delivered`]) for a row type with `first_received_at`,
/// `last_received_at` and `stream_sequence` fields and a `precedence()` whose `beats` is the
/// service's rule, as every service's current rows have.
#[macro_export]
macro_rules! current_row {
    ($row:ty) => {
        $crate::delivered!($row);

        impl $crate::CurrentRow for $row {
            fn received(&self) -> (i64, i64) {
                (self.first_received_at, self.last_received_at)
            }

            fn set_received(&mut self, received: (i64, i64)) {
                (self.first_received_at, self.last_received_at) = received;
            }

            fn beats(&self, current: &Self) -> bool {
                self.precedence().beats(&current.precedence())
            }
        }
    };
}

/// A batch's winning row for one key, by reference, with the batch's first and last receive times
/// for that key.
#[derive(Debug)]
pub struct BatchWinner<'a, T> {
    pub row: &'a T,
    pub received: (i64, i64),
}

impl<'a, T: CurrentRow> BatchWinner<'a, T> {
    pub fn new(row: &'a T) -> BatchWinner<'a, T> {
        BatchWinner { row, received: row.received() }
    }

    /// Takes another row for the same key into account.
    pub fn meet(&mut self, other: &'a T) {
        let (first, last) = other.received();
        self.received = (self.received.0.min(first), self.received.1.max(last));
        if other.beats(self.row) {
            self.row = other;
        }
    }

    /// The row the upsert proposes (and, when it is written, the row stored).
    pub fn into_row(self) -> T {
        let mut row = self.row.clone();
        row.set_received(self.received);
        row
    }
}

/// Reduces a batch to one [`BatchWinner`] per key, sorted by key (see [`one_row_per_key`] for why),
/// owning each key once.
pub fn batch_winners<'a, T: CurrentRow>(
    rows: &[&'a T],
    key: impl Fn(&'a T) -> &'a str,
) -> std::collections::BTreeMap<String, BatchWinner<'a, T>> {
    let mut winners: std::collections::BTreeMap<String, BatchWinner<'a, T>> =
        std::collections::BTreeMap::new();
    for &row in rows {
        match winners.get_mut(key(row)) {
            Some(winner) => winner.meet(row),
            None => {
                winners.insert(key(row).to_owned(), BatchWinner::new(row));
            }
        }
    }
    winners
}

/// The rows of an upsert that replaces every column and that its `RETURNING` named (by key): as a
/// changed row is then exactly the row written, the statement only needs to return keys, not every
/// column (reading whole rows back cost more than the upsert itself).
pub fn written_rows_returned<'a, T: Clone + 'a, K: Ord>(
    written: impl IntoIterator<Item = &'a T>,
    written_key: impl Fn(&T) -> K,
    returned: &[sqlx::any::AnyRow],
    returned_key: impl Fn(&sqlx::any::AnyRow) -> Result<K, sqlx::Error>,
) -> Result<Vec<T>, sqlx::Error> {
    let named = returned.iter().map(returned_key).collect::<Result<std::collections::BTreeSet<K>, _>>()?;
    Ok(written.into_iter().filter(|row| named.contains(&written_key(row))).cloned().collect())
}

/// What a current-state upsert ([`current_state_update`]) changed, from a `RETURNING` of only the key,
/// `stream_sequence` and the columns the database merges (earliest and latest values):
///
/// * a returned row that holds this batch's winner for its key (the same stream sequence) is that
///   winner with the merged columns taken from the database (`merge`);
/// * a returned row that kept the report it had (only merged columns changed) is not known whole:
///   its key is in the second list, for the caller to read back.
///
/// Whole rows are rarely needed, and returning every column of every row cost more than the upsert.
pub fn current_rows_returned<K: Ord, T>(
    mut winners: std::collections::BTreeMap<K, T>,
    returned: &[sqlx::any::AnyRow],
    returned_key: impl Fn(&sqlx::any::AnyRow) -> Result<K, sqlx::Error>,
    stream_sequence: impl Fn(&T) -> i64,
    merge: impl Fn(&mut T, &sqlx::any::AnyRow) -> Result<(), sqlx::Error>,
) -> Result<(Vec<T>, Vec<K>), sqlx::Error> {
    use sqlx::Row as _;
    let mut changed = Vec::with_capacity(returned.len());
    let mut kept_their_report = Vec::new();
    for row in returned {
        let key = returned_key(row)?;
        let sequence: i64 = row.try_get("stream_sequence")?;
        match winners.remove(&key) {
            Some(mut winner) if stream_sequence(&winner) == sequence => {
                merge(&mut winner, row)?;
                changed.push(winner);
            }
            _ => kept_their_report.push(key),
        }
    }
    Ok((changed, kept_their_report))
}

/// The receive times a current-state upsert merged (`first_received_at`, `last_received_at`), from
/// its `RETURNING` row: the [`current_rows_returned`] `merge` of the services that keep both.
pub fn received_bounds(row: &sqlx::any::AnyRow) -> Result<(i64, i64), sqlx::Error> {
    use sqlx::Row as _;
    Ok((row.try_get("first_received_at")?, row.try_get("last_received_at")?))
}

/// A `LIKE` pattern matching values that start with `prefix`, with `%`, `_` and `\` in the prefix
/// taken literally. Use it as `column LIKE $n ESCAPE '\'` (both dialects accept that form).
pub fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for character in prefix.chars() {
        if matches!(character, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(character);
    }
    pattern.push('%');
    pattern
}

/// Microseconds in a day: stored times are microseconds, so day buckets are integer arithmetic.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The epoch day of `column` (microseconds since the epoch) in the zone `offset_placeholder`
/// microseconds east of UTC, for grouping by calendar day in both dialects.
pub fn epoch_day_sql(column: &str, offset_placeholder: &str) -> String {
    format!("(({column} + {offset_placeholder}) / {MICROS_PER_DAY})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_take_every_row_in_a_few_shapes() {
        let mut shapes = std::collections::BTreeSet::new();
        for count in 0..=3 * STATEMENT_ROWS + 7 {
            let sizes: Vec<usize> = statement_sizes(count).collect();
            assert_eq!(sizes.iter().sum::<usize>(), count, "{count} rows: {sizes:?}");
            assert!(sizes.windows(2).all(|pair| pair[0] >= pair[1]), "largest first: {sizes:?}");
            assert!(sizes.len() <= count / STATEMENT_ROWS + STATEMENT_ROWS.ilog2() as usize, "{sizes:?}");
            shapes.extend(sizes);
        }
        let expected: std::collections::BTreeSet<usize> =
            (0..=STATEMENT_ROWS.ilog2()).map(|bit| 1usize << bit).collect();
        assert_eq!(shapes, expected, "only powers of two up to STATEMENT_ROWS");
    }

    #[test]
    fn the_text_of_each_statement_size_is_built_once_per_write() {
        let built = std::cell::RefCell::new(Vec::new());
        let statement = |size: usize| {
            built.borrow_mut().push(size);
            format!("{size} rows")
        };
        let mut sql = SqlBySize::default();
        let texts: Vec<String> =
            statement_sizes(3 * STATEMENT_ROWS + 5).map(|size| sql.get(size, statement).to_owned()).collect();
        assert_eq!(texts, ["256 rows", "256 rows", "256 rows", "4 rows", "1 rows"]);
        assert_eq!(*built.borrow(), [256, 4, 1]);
    }

    #[test]
    fn values_rows_number_placeholders_in_order() {
        assert_eq!(values_rows(Backend::Postgres, 2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values_rows(Backend::Postgres, 1, 1), "($1)");
        assert_eq!(values_rows(Backend::Sqlite, 2, 2), "(?, ?), (?, ?)");
        assert_eq!(values_list(Backend::Postgres, 3), "$1, $2, $3");
        assert_eq!(values_list(Backend::Sqlite, 2), "?, ?");
        let mut placeholders = Placeholders::new();
        assert_eq!(
            (placeholders.allocate(), placeholders.allocate(), placeholders.count()),
            ("$1".into(), "$2".into(), 2)
        );
    }

    #[test]
    fn one_row_per_key_keeps_the_preferred_row_in_key_order() {
        let rows = [("b", 3), ("a", 5), ("b", 1), ("a", 7)];
        let kept = one_row_per_key(&rows, |row| row.0, |candidate, kept| candidate.1 < kept.1);
        let kept: Vec<_> = kept.into_values().copied().collect();
        assert_eq!(kept, [("a", 5), ("b", 1)]);
    }

    #[derive(Debug, Clone, PartialEq)]
    struct Report {
        key: &'static str,
        rank: i64,
        received: (i64, i64),
    }

    impl CurrentRow for Report {
        fn received(&self) -> (i64, i64) {
            self.received
        }
        fn set_received(&mut self, received: (i64, i64)) {
            self.received = received;
        }
        fn beats(&self, current: &Report) -> bool {
            self.rank > current.rank
        }
    }

    impl Delivered for Report {
        fn stream_sequence(&self) -> i64 {
            self.rank
        }
    }

    #[test]
    fn batch_winners_keep_the_winner_and_the_receive_span_of_every_row() {
        let report = |key, rank, at| Report { key, rank, received: (at, at) };
        let rows = [report("b", 1, 30), report("a", 2, 50), report("b", 3, 10), report("a", 1, 70)];
        let rows: Vec<&Report> = rows.iter().collect();
        let winners: Vec<(String, Report)> = batch_winners(&rows, |row| row.key)
            .into_iter()
            .map(|(key, winner)| (key, winner.into_row()))
            .collect();
        assert_eq!(
            winners,
            [
                ("a".to_owned(), Report { key: "a", rank: 2, received: (50, 70) }),
                ("b".to_owned(), Report { key: "b", rank: 3, received: (10, 30) }),
            ]
        );
    }

    #[test]
    fn like_prefix_escapes_wildcards() {
        assert_eq!(like_prefix("dem"), "dem%");
        assert_eq!(like_prefix("50%_a\\b"), "50\\%\\_a\\\\b%");
        assert_eq!(epoch_day_sql("t", "$1"), "((t + $1) / 86400000000)");
    }
}

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Integer(i64),
}

impl From<String> for Value {
    fn from(text: String) -> Value {
        Value::Text(text)
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Value {
        Value::Text(text.to_owned())
    }
}

impl From<i64> for Value {
    fn from(integer: i64) -> Value {
        Value::Integer(integer)
    }
}

/// A `WHERE` clause built from optional filters, with its values in placeholder order.
///
/// ```
/// # use switchboard_store::Conditions;
/// let mut conditions = Conditions::new();
/// let mobile = conditions.bind("9190");
/// conditions.push(format!("mobile = {mobile}"));
/// assert_eq!(conditions.where_clause(), " WHERE mobile = $1");
/// ```
#[derive(Debug, Default)]
pub struct Conditions {
    placeholders: Placeholders,
    clauses: Vec<String>,
    values: Vec<Value>,
}

impl Conditions {
    pub fn new() -> Conditions {
        Conditions::default()
    }

    /// Records a value and returns its placeholder, to be used in a clause (or a LIMIT).
    pub fn bind(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        self.placeholders.allocate()
    }

    /// Adds a condition; all conditions must hold.
    pub fn push(&mut self, clause: impl Into<String>) {
        self.clauses.push(clause.into());
    }

    /// `column = $n` when `value` is not empty.
    pub fn equal_if_set(&mut self, column: &str, value: &str) {
        if !value.is_empty() {
            let placeholder = self.bind(value);
            self.push(format!("{column} = {placeholder}"));
        }
    }

    /// `column >= start AND column < end` for the bounds that are set.
    pub fn range(&mut self, column: &str, (start, end): (Option<i64>, Option<i64>)) {
        if let Some(start) = start {
            let placeholder = self.bind(start);
            self.push(format!("{column} >= {placeholder}"));
        }
        if let Some(end) = end {
            let placeholder = self.bind(end);
            self.push(format!("{column} < {placeholder}"));
        }
    }

    /// ` WHERE a AND b`, or nothing.
    pub fn where_clause(&self) -> String {
        if self.clauses.is_empty() { String::new() } else { format!(" WHERE {}", self.clauses.join(" AND ")) }
    }

    /// Binds every recorded value to `query`, in order.
    pub fn bind_to<'q>(
        &self,
        mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        for value in &self.values {
            query = match value {
                Value::Text(text) => query.bind(text.clone()),
                Value::Integer(integer) => query.bind(*integer),
            };
        }
        query
    }
}

/// The values of a keyset cursor, in the order of its columns.
pub trait CursorValues {
    fn values(self) -> Vec<Value>;
}

impl CursorValues for (i64, String) {
    fn values(self) -> Vec<Value> {
        vec![self.0.into(), self.1.into()]
    }
}

impl CursorValues for (i64, String, String) {
    fn values(self) -> Vec<Value> {
        vec![self.0.into(), self.1.into(), self.2.into()]
    }
}

/// One page of a list in descending order of `order` (its last columns a unique key): the rows
/// after `after` (the `order` values of the previous page's last row), at most `limit`.
#[derive(Debug)]
pub struct Keyset {
    pub order: &'static [&'static str],
    pub after: Option<Vec<Value>>,
    pub limit: i64,
}

impl Keyset {
    pub fn new(order: &'static [&'static str], after: Option<impl CursorValues>, limit: i64) -> Keyset {
        Keyset { order, after: after.map(CursorValues::values), limit }
    }
}

/// `SELECT {select} FROM {from}` the rows matching `conditions` on the page `keyset` names, read
/// with `read`.
pub async fn select_page<T>(
    database: &crate::Database,
    select: &str,
    from: &str,
    mut conditions: Conditions,
    keyset: Keyset,
    read: impl Fn(&sqlx::any::AnyRow) -> Result<T, sqlx::Error>,
) -> Result<Vec<T>, sqlx::Error> {
    let order = keyset.order.join(", ");
    if let Some(after) = keyset.after {
        let placeholders: Vec<String> = after.into_iter().map(|value| conditions.bind(value)).collect();
        conditions.push(format!("({order}) < ({})", placeholders.join(", ")));
    }
    let limit = conditions.bind(keyset.limit);
    let descending: Vec<String> = keyset.order.iter().map(|column| format!("{column} DESC")).collect();
    let sql = format!(
        "SELECT {select} FROM {from}{} ORDER BY {} LIMIT {limit}",
        conditions.where_clause(),
        descending.join(", ")
    );
    let rows = conditions.bind_to(sqlx::query(&sql)).fetch_all(database.pool()).await?;
    rows.iter().map(read).collect()
}
