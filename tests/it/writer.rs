//! Batches are written through `Database::writer`: on SQLite one connection, taken in turn (a second
//! writer waits for the first to commit instead of sleeping in SQLite's busy handler), while queries
//! read through the other pool meanwhile; on PostgreSQL the shared pool, so replicas' and consumers'
//! transactions run side by side.

use std::time::Duration;

use switchboard_store::sqlx::{self, Executor as _};
use switchboard_store::{Backend, Database, PoolSettings};
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
