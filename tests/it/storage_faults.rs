//! A store that stops taking writes while a backlog is consumed: SQLite on a filesystem that fills
//! up (a real, small tmpfs), PostgreSQL refusing writes (read-only transactions by default).
//!
//! What must hold, as an operator would check it: no event is acknowledged to JetStream before its
//! batch is committed (every event at or below the consumer's acknowledgement floor is in the
//! database); nothing is dead-lettered for it; `/readyz` answers 503 naming the cause while it
//! lasts and the `switchboard_consumer_store_unavailable` gauge is 1; and once the store takes
//! writes again the service catches up by itself, without a restart, to every event.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use switchboard::Component;
use switchboard_events::{EventKind, Product};
use switchboard_runtime::Secret;
use switchboard_store::sqlx::{self, Connection, Executor};
use switchboard_tests::workload::{sms_id, sms_status};
use switchboard_tests::{TestBackend, TestDatabase, TestSystem};

/// Distinct messages posted: far more than the small filesystem holds.
const MESSAGES: usize = 6_000;

#[tokio::test]
async fn sqlite_on_a_full_disk_acknowledges_nothing_it_did_not_store_and_catches_up() {
    if TestBackend::from_env() != TestBackend::Sqlite {
        return;
    }
    // Room for the migrated database and a few hundred events, not for the backlog.
    let disk = SmallFilesystem::mount("2m").expect("a tmpfs of 2 MiB (the tests run as root)");
    let url = Secret::new(format!("sqlite://{}?mode=rwc", disk.path().join("sms.db").display()));
    let system = sms_service(url.clone()).await;
    let sequences = publish_backlog(&system).await;

    let reason = wait_until_not_ready(&system, &url, &sequences).await;
    assert!(reason.contains("full"), "readiness names the cause: {reason}");

    disk.grow("256m").expect("the tmpfs grows");
    catch_up(&system, &url).await;
    system.stop().await.expect("stops");
}

#[tokio::test]
async fn postgres_refusing_writes_acknowledges_nothing_it_did_not_store_and_catches_up() {
    if TestBackend::from_env() != TestBackend::Postgres {
        return;
    }
    let database = TestDatabase::create(TestBackend::Postgres, "refusing").await.expect("database");
    let url = database.url();
    let system = sms_service(url.clone()).await;
    let name = database_name(url.expose());

    // From now on every new session of the database is read-only; the service's sessions are cut
    // so that it has to open new ones (as after a failover to a standby).
    let mut admin = sqlx::AnyConnection::connect(url.expose()).await.expect("admin connection");
    admin
        .execute(format!("ALTER DATABASE {name} SET default_transaction_read_only = on").as_str())
        .await
        .expect("read-only by default");
    admin
        .execute(
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
            .as_str(),
        )
        .await
        .expect("sessions cut");
    let sequences = publish_backlog(&system).await;

    let reason = wait_until_not_ready(&system, &url, &sequences).await;
    assert!(reason.contains("read-only"), "readiness names the cause: {reason}");

    // Writes are allowed again for new sessions; the service's sessions that failed were closed,
    // so the next ones take writes without anyone restarting or cutting anything.
    admin
        .execute(format!("ALTER DATABASE {name} RESET default_transaction_read_only").as_str())
        .await
        .expect("writable again");
    admin.close().await.expect("closes");
    catch_up(&system, &url).await;
    system.stop().await.expect("stops");
}

/// An sms service on `url` with quick retries, its own NATS server, and no gateway (the backlog is
/// published straight into the stream).
async fn sms_service(url: Secret) -> TestSystem {
    TestSystem::builder()
        .components(&[Component::Service(Product::Sms)])
        .database(Product::Sms, url)
        .configure(|config| {
            let service = config.service_mut(Product::Sms);
            service.consumer.batch_size = Some(200);
            service.consumer.retry_initial = Duration::from_millis(100);
            service.consumer.retry_max = Duration::from_millis(500);
            service.consumer.max_attempts = 2;
            service.acquire_timeout = Duration::from_secs(2);
        })
        .start()
        .await
        .expect("the sms service starts")
}

/// Publishes one delivery report for each of [`MESSAGES`] messages; returns each message's stream
/// sequence.
async fn publish_backlog(system: &TestSystem) -> Vec<u64> {
    let mut sequences = Vec::with_capacity(MESSAGES);
    for message in 0..MESSAGES {
        sequences.push(
            system.publish_direct(EventKind::SmsMessageStatus, sms_status(message, "DELIVRD"), None).await,
        );
    }
    sequences
}

/// Waits for `/readyz` to answer 503, and returns its body; meanwhile, and for a while after,
/// every event the consumer has acknowledged must be stored. Nothing may be dead-lettered for it,
/// and the gauge must say the store is unavailable.
async fn wait_until_not_ready(system: &TestSystem, url: &Secret, sequences: &[u64]) -> String {
    let readyz = format!("{}/readyz", system.admin_url);
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        check_acknowledged_events_are_stored(system, url, sequences).await;
        let response = system.http.get(&readyz).send().await.expect("readyz answers");
        if response.status() == 503 {
            break response.text().await.expect("readyz body");
        }
        assert!(Instant::now() < deadline, "/readyz still answers {} after 60 s", response.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(body.contains("consumer:sms"), "the failing check is the consumer's: {body}");
    let metrics = system.http.get(format!("{}/metrics", system.admin_url)).send().await.expect("metrics");
    let metrics = metrics.text().await.expect("metrics text");
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("switchboard_consumer_store_unavailable{consumer=\"sms\"} 1")),
        "the gauge shows the store unavailable:\n{metrics}"
    );
    for _ in 0..5 {
        check_acknowledged_events_are_stored(system, url, sequences).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let stored = stored_ids(url).await;
    assert!(stored.len() < MESSAGES, "the store kept taking writes: {} stored", stored.len());
    assert_eq!(dead_letters(system).await, 0, "nothing is dead-lettered for an unavailable store");
    body
}

/// Every event at or below the consumer's acknowledgement floor is in the database.
async fn check_acknowledged_events_are_stored(system: &TestSystem, url: &Secret, sequences: &[u64]) {
    let acknowledged = acknowledged_floor(system).await;
    let stored = stored_ids(url).await;
    let missing: Vec<usize> = (0..MESSAGES)
        .filter(|message| sequences[*message] <= acknowledged && !stored.contains(&sms_id(*message)))
        .collect();
    assert!(
        missing.is_empty(),
        "{} events acknowledged (floor {acknowledged}) but not stored, e.g. message {}",
        missing.len(),
        missing[0]
    );
}

/// Once the store takes writes again: every event is stored and acknowledged, readiness is back,
/// nothing was dead-lettered.
async fn catch_up(system: &TestSystem, url: &Secret) {
    system.wait_applied("sms", Duration::from_secs(120)).await;
    let stored = stored_ids(url).await;
    assert_eq!(stored.len(), MESSAGES, "every event is stored");
    for message in 0..MESSAGES {
        assert!(stored.contains(&sms_id(message)), "message {message} is stored");
    }
    system.wait_ready().await.expect("ready again");
    assert_eq!(dead_letters(system).await, 0, "nothing was dead-lettered");
}

/// The consumer's acknowledgement floor: every event at or below it was acknowledged.
async fn acknowledged_floor(system: &TestSystem) -> u64 {
    let jetstream = system.jetstream().await.expect("jetstream");
    let stream = jetstream.get_stream(&system.config.nats.stream.name).await.expect("stream");
    stream.consumer_info("sms").await.expect("consumer info").ack_floor.stream_sequence
}

async fn dead_letters(system: &TestSystem) -> u64 {
    let jetstream = system.jetstream().await.expect("jetstream");
    let mut stream =
        jetstream.get_stream(&system.config.nats.dead_letter_stream.name).await.expect("dead-letter stream");
    stream.info().await.expect("stream info").state.messages
}

/// The ids of the messages in the database, read over a connection of the test's own.
async fn stored_ids(url: &Secret) -> BTreeSet<String> {
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(url.expose()).await.expect("connects");
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM sms_messages").fetch_all(&mut connection).await.expect("ids");
    connection.close().await.expect("closes");
    ids.into_iter().collect()
}

fn database_name(url: &str) -> String {
    let path = url.split('?').next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or_default().to_owned()
}

/// A tmpfs of a fixed size mounted on a temporary directory; unmounted when dropped.
struct SmallFilesystem {
    directory: tempfile::TempDir,
}

impl SmallFilesystem {
    fn mount(size: &str) -> anyhow::Result<SmallFilesystem> {
        let directory = tempfile::Builder::new().prefix("switchboard-small-disk-").tempdir()?;
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "switchboard-test"])
            .arg(directory.path()))?;
        Ok(SmallFilesystem { directory })
    }

    fn path(&self) -> &Path {
        self.directory.path()
    }

    /// Makes room: the filesystem is resized in place, as when an operator frees or adds space.
    fn grow(&self, size: &str) -> anyhow::Result<()> {
        run(Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(self.path()))
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let path: PathBuf = self.path().to_path_buf();
        let _ = Command::new("umount").arg("-l").arg(&path).status();
    }
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command.output()?;
    anyhow::ensure!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}
