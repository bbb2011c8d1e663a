//! Upgrades: a database migrated by an earlier release takes the later migrations in place and
//! keeps its rows, on both backends.

use switchboard_events::{EventKind, Product, TimeZoneSetting, decode_as};
use switchboard_sms::consumer::report_row;
use switchboard_sms::store;
use switchboard_store::sqlx::{self, Row as _};
use switchboard_store::{Backend, Conditions, Database, MigrationFiles, PoolSettings, schema_differences};
use switchboard_tests::projection::{apply_in_batches, delivery};
use switchboard_tests::{TestBackend, TestDatabase};

fn settings() -> PoolSettings {
    PoolSettings { max_connections: 2, ..PoolSettings::default() }
}

/// The migrations the first release shipped: each service's first, and the shared opt-out table.
fn first_release(migrations: &[MigrationFiles]) -> Vec<MigrationFiles> {
    migrations
        .iter()
        .filter(|migration| migration.version == 1 || migration.version == 900)
        .copied()
        .collect()
}

async fn applied_versions(database: &Database) -> Vec<i64> {
    sqlx::query("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(database.pool())
        .await
        .expect("migration table")
        .iter()
        .map(|row| row.try_get("version").expect("version"))
        .collect()
}

/// The text columns (`table.column`) of a PostgreSQL database that compare by its locale rather
/// than byte by byte (`BYTEWISE_TEXT`). SQLite compares bytes unless a column says otherwise, as the
/// contacts' case-insensitive keys do on purpose: nothing to check there.
async fn text_not_compared_bytewise(database: &Database) -> Vec<String> {
    if database.backend() == Backend::Sqlite {
        return Vec::new();
    }
    sqlx::query(
        "SELECT table_name || '.' || column_name AS name FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations' \
           AND data_type = 'text' AND collation_name IS DISTINCT FROM 'C' ORDER BY 1",
    )
    .fetch_all(database.pool())
    .await
    .expect("catalogue")
    .iter()
    .map(|row| row.try_get("name").expect("name"))
    .collect()
}

#[tokio::test]
async fn every_service_upgrades_a_database_of_the_first_release() {
    for product in Product::ALL {
        let (service, migrations) = (product.name(), switchboard::descriptor(product).migrations);
        let database = TestDatabase::create(TestBackend::from_env(), service).await.expect("database");
        let old = Database::open(database.url().expose(), settings(), &first_release(migrations))
            .await
            .expect(service);
        if old.backend() == Backend::Postgres {
            assert!(
                !text_not_compared_bytewise(&old).await.is_empty(),
                "{service}: the first release's text"
            );
        }
        old.close().await;
        let upgraded = Database::open(database.url().expose(), settings(), migrations)
            .await
            .unwrap_or_else(|error| panic!("{service} upgrade: {error}"));
        let mut expected: Vec<i64> = migrations.iter().map(|migration| migration.version).collect();
        expected.sort_unstable();
        assert_eq!(applied_versions(&upgraded).await, expected, "{service}");
        assert_eq!(text_not_compared_bytewise(&upgraded).await, Vec::<String>::new(), "{service} upgraded");
        upgraded.close().await;
    }
}

/// Every table a service states (its columns, in the store) is the table its migrations made: a
/// column added to one and not the other fails here, not at the first write. Its retention targets
/// name columns those tables have.
#[tokio::test]
async fn every_stated_table_is_the_table_the_migrations_made() {
    for product in Product::ALL {
        let descriptor = switchboard::descriptor(product);
        let service = product.name();
        let database = TestDatabase::create(TestBackend::from_env(), service).await.expect("database");
        let migrated =
            Database::open(database.url().expose(), settings(), descriptor.migrations).await.expect(service);
        assert!(!descriptor.tables.is_empty(), "{service} states no table");
        for table in descriptor.tables {
            let (missing, extra) = schema_differences(&migrated, *table).await.expect("schema");
            assert!(missing.is_empty(), "{service}: {} lacks stated columns {missing:?}", table.name());
            assert!(extra.is_empty(), "{service}: {} has columns not stated: {extra:?}", table.name());
        }
        for target in descriptor.retention {
            assert!(
                descriptor.tables.iter().any(|table| table.name() == target.table.name()),
                "{service}: retention of {} which the service does not state",
                target.table.name()
            );
            assert_eq!(target.missing_columns(), Vec::<&str>::new(), "{service}: retention {target:?}");
        }
        assert_eq!(
            text_not_compared_bytewise(&migrated).await,
            Vec::<String>::new(),
            "{service}: a migration adds a text column without COLLATE \"C\""
        );
        migrated.close().await;
    }
}

/// sms migrations 2 (SQLite) and 3 (PostgreSQL, after text compares bytewise there) drop the request
/// index: messages stored before them are still found by request, now from the primary key.
#[tokio::test]
async fn sms_messages_stored_before_the_request_index_went_are_found_by_request() {
    let database = TestDatabase::create(TestBackend::from_env(), "sms_upgrade").await.expect("database");
    let old = Database::open(database.url().expose(), settings(), &first_release(store::MIGRATIONS))
        .await
        .expect("open");
    let rows: Vec<_> = ["order-7:1", "order-7:2", "order-70:1", "order-7:x"]
        .iter()
        .enumerate()
        .map(|(index, id)| {
            let body = serde_json::json!({"id": id, "mobile": "919000000040", "status": "DELIVRD",
                "sent_time": format!("2021-06-0{} 10:00:00", index + 1)})
            .to_string();
            let delivery = delivery(EventKind::SmsMessageStatus, index as u64 + 1, &body, 1);
            let status = decode_as(EventKind::SmsMessageStatus, body.as_bytes()).expect("valid report");
            report_row(&status, &delivery, TimeZoneSetting::default())
        })
        .collect();
    apply_in_batches(&old, &rows, &[rows.len()], store::write_reports).await;
    old.close().await;

    let upgraded =
        Database::open(database.url().expose(), settings(), store::MIGRATIONS).await.expect("upgrade");
    let catalogue = match upgraded.backend() {
        Backend::Sqlite => "SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'sms_messages_by_request'",
        Backend::Postgres => {
            "SELECT COUNT(*) AS n FROM pg_indexes WHERE indexname = 'sms_messages_by_request'"
        }
    };
    let index_left: i64 = sqlx::query(catalogue)
        .fetch_one(upgraded.pool())
        .await
        .expect("catalogue")
        .try_get("n")
        .expect("count");
    assert_eq!(index_left, 0, "the request index after migrations 2 and 3");

    let mut conditions = Conditions::new();
    store::request_condition(&mut conditions, "order-7");
    let listed = store::list_messages(&upgraded, conditions, None, 10).await.expect("list");
    let ids: Vec<&str> = listed.iter().map(|message| message.id.as_str()).collect();
    assert_eq!(ids, ["order-7:2", "order-7:1"], "newest first, only request order-7");
    upgraded.close().await;
}
