//! Batches are written through `Database::writer`: on SQLite one connection, taken in turn (a second
//! writer waits for the first to commit instead of sleeping in SQLite's busy handler), while queries
//! read through the other pool meanwhile; on PostgreSQL the shared pool, so replicas' and consumers'
//! transactions run side by side.

use std::time::Duration;

use switchboard_store::sqlx::{self, Executor as _};
use switchboard_store::{Backend, Database, PoolSettings, Table, columns, delivered};
use switchboard_tests::{TestBackend, TestDatabase};

#[tokio::test]
async fn writers_take_turns_on_sqlite_and_share_the_pool_on_postgres() {
    let backend = TestBackend::from_env();
    let database = TestDatabase::create(backend, "writer").await.expect("database");
    let store = Database::connect(database.url().expose(), PoolSettings::default()).await.expect("connect");
    store.pool().execute("CREATE TABLE writes (n BIGINT NOT NULL)").await.expect("table");

    let mut first = store.begin_write().await.expect("first writer");
    sqlx::query("INSERT INTO writes (n) VALUES (1)").execute(&mut *first).await.expect("insert");

    // A query is answered while the batch is open, and does not see it yet.
    let visible: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM writes")
        .fetch_one(store.pool())
        .await
        .expect("read during the write");
    assert_eq!(visible, 0);

    // The writer pool hands out one connection on SQLite, and waits for it to come back.
    let another = tokio::time::timeout(Duration::from_millis(300), store.writer().acquire()).await;
    match store.backend() {
        Backend::Sqlite => assert!(another.is_err(), "a second writer connection was handed out"),
        Backend::Postgres => assert!(another.is_ok_and(|connection| connection.is_ok())),
    }

    let second = tokio::spawn({
        let store = store.clone();
        async move {
            let mut second = store.begin_write().await.expect("second writer");
            sqlx::query("INSERT INTO writes (n) VALUES (2)").execute(&mut *second).await.expect("insert");
            second.commit().await.expect("commit");
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    match store.backend() {
        Backend::Sqlite => assert!(!second.is_finished(), "the second writer ran beside the first"),
        Backend::Postgres => assert!(second.is_finished(), "the second writer waited for the first"),
    }
    first.commit().await.expect("commit");
    tokio::time::timeout(Duration::from_secs(10), second).await.expect("second writer done").expect("task");

    let written: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM writes").fetch_one(store.pool()).await.expect("read");
    assert_eq!(written, 2);
    store.close().await;
}

/// A delete by key (contacts' attributes, rewritten in every batch) reads the key's index, not the
/// whole table, though the table has no statistics yet: on a fresh PostgreSQL database catching up
/// on a backlog, the planner otherwise takes each key to match 0.5 % of the rows and scans the table
/// whole for every statement of 200 keys or more. And it deletes exactly the rows of those keys.
#[tokio::test]
async fn deleting_by_key_reads_the_index_before_the_table_has_statistics() {
    let backend = TestBackend::from_env();
    let database = TestDatabase::create(backend, "delete_in").await.expect("database");
    let store = Database::connect(database.url().expose(), PoolSettings::default()).await.expect("connect");
    store
        .pool()
        .execute("CREATE TABLE attributes (owner TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (owner, key))")
        .await
        .expect("table");
    let mut load = store.begin_write().await.expect("load");
    for chunk in 0..20 {
        let values: Vec<String> = (chunk * 1000..(chunk + 1) * 1000)
            .map(|owner| format!("('{owner}', 'a'), ('{owner}', 'b')"))
            .collect();
        sqlx::query(&format!("INSERT INTO attributes (owner, key) VALUES {}", values.join(", ")))
            .execute(&mut *load)
            .await
            .expect("insert");
    }
    load.commit().await.expect("commit");

    // 300 keys: a statement of 256, then the rest (32, 8, 4); every fifth owner has no rows.
    let owners: Vec<String> =
        (0..300).map(|index| format!("{}", index * 5 + (index % 5 != 0) as usize * 20_000)).collect();
    let keys: Vec<&str> = owners.iter().map(String::as_str).collect();
    let mut batch = store.begin_write().await.expect("batch");
    let scans_before = table_scans(&mut batch, store.backend()).await;
    switchboard_store::delete_where_in(&mut batch, "attributes", "owner", &keys).await.expect("delete");
    if store.backend() == Backend::Postgres {
        let (sequential, by_index) = table_scans(&mut batch, store.backend()).await;
        assert_eq!(sequential, scans_before.0, "the delete scanned the table whole");
        assert!(by_index - scans_before.1 >= 4, "{by_index} index scans for four statements");
        let setting: String = sqlx::query_scalar("SELECT current_setting('enable_seqscan')")
            .fetch_one(&mut *batch)
            .await
            .expect("setting");
        assert_eq!(setting, "on", "the rest of the transaction plans as configured");
    }
    batch.commit().await.expect("commit");

    let left: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM attributes").fetch_one(store.pool()).await.expect("count");
    assert_eq!(left, 40_000 - 2 * 60, "the 60 owners that had rows lost both, no other row went");
    store.close().await;
}

/// PostgreSQL's count of sequential and index scans of `attributes` (the session's, not yet sent to
/// the statistics); zeros on SQLite.
async fn table_scans(connection: &mut sqlx::AnyConnection, backend: Backend) -> (i64, i64) {
    if backend != Backend::Postgres {
        return (0, 0);
    }
    sqlx::query_as(
        "SELECT COALESCE(seq_scan, 0), COALESCE(idx_scan, 0) FROM pg_stat_xact_user_tables \
         WHERE relname = 'attributes'",
    )
    .fetch_one(connection)
    .await
    .expect("statistics of this session")
}

#[derive(Debug, Clone, PartialEq)]
struct Note {
    id: String,
    note: Option<String>,
    count: Option<i64>,
    stream_sequence: i64,
}

delivered!(Note);

const NOTES: Table<Note> =
    Table { name: "notes", key: &["id"], columns: columns!(Note { id, note, count, stream_sequence }) };

/// What a table writes comes back as it was, on both backends: text that looks like SQL or an array
/// literal (quotes, backslashes, braces, commas, the word NULL, empty text, spaces), non-ASCII text,
/// nulls of both types and the extreme integers, in more rows than one multi-row statement takes.
#[tokio::test]
async fn rows_written_through_a_table_come_back_as_they_were() {
    let backend = TestBackend::from_env();
    let database = TestDatabase::create(backend, "round_trip").await.expect("database");
    let store = Database::connect(database.url().expose(), PoolSettings::default()).await.expect("connect");
    store
        .pool()
        .execute("CREATE TABLE notes (id TEXT PRIMARY KEY, note TEXT, count BIGINT, stream_sequence BIGINT NOT NULL)")
        .await
        .expect("table");
    let texts = [
        Some("plain"),
        Some("\"quoted\""),
        Some("back\\slash and a trailing one\\"),
        Some("{braces},commas,\"mixed\\\""),
        Some("NULL"),
        Some("null"),
        Some(""),
        Some("  spaced  "),
        Some("tab\there\nnewline\r"),
        Some("'single' and $1 and ::text[]"),
        Some("ünïcødé ✓ 漢字 🚀"),
        None,
    ];
    let counts = [Some(0), Some(-1), Some(i64::MIN), Some(i64::MAX), None, Some(42)];
    let notes: Vec<Note> = (0..600_i64)
        .map(|index| Note {
            id: format!("{index:04}"),
            note: texts[index as usize % texts.len()].map(str::to_owned),
            count: counts[index as usize % counts.len()],
            stream_sequence: index + 1,
        })
        .collect();

    let mut batch = store.begin_write().await.expect("batch");
    let written = NOTES
        .write_earliest(&mut batch, &notes.iter().collect::<Vec<_>>(), |note| (note.id.clone(),))
        .await
        .expect("write");
    batch.commit().await.expect("commit");
    assert_eq!(written, notes, "every row is new, so every row is returned");

    let stored: Vec<(String, Option<String>, Option<i64>, i64)> =
        sqlx::query_as("SELECT id, note, count, stream_sequence FROM notes ORDER BY id")
            .fetch_all(store.pool())
            .await
            .expect("read back");
    let expected: Vec<(String, Option<String>, Option<i64>, i64)> = notes
        .iter()
        .map(|note| (note.id.clone(), note.note.clone(), note.count, note.stream_sequence))
        .collect();
    assert_eq!(stored, expected);
    store.close().await;
}
