//! Driving a service's store directly, as its consumer would: for the projection property tests.

use switchboard_events::EventKind;
use switchboard_runtime::consumer::Delivery;
use switchboard_store::Database;
use switchboard_store::sqlx::{self, AnyConnection};

/// `body` as the consumer hands it to a projection: the `sequence`th event of the stream, received
/// `spacing` microseconds after the previous one.
pub fn delivery(kind: EventKind, sequence: u64, body: &str, spacing: i64) -> Delivery {
    Delivery {
        kind,
        subject: kind.subject_suffix().to_owned(),
        stream_sequence: sequence,
        delivered: 1,
        received_at: 1_700_000_000_000_000 + i64::try_from(sequence).unwrap_or_default() * spacing,
        body: bytes::Bytes::from(body.to_owned()),
        headers: None,
    }
}

/// Writes `rows` with `write` in consecutive transactions of the given sizes (cycled), as the
/// consumer writes fetched batches.
pub async fn apply_in_batches<T, R>(
    database: &Database,
    rows: &[T],
    batch_sizes: &[usize],
    write: impl AsyncFn(&mut AnyConnection, &[T]) -> Result<R, sqlx::Error>,
) {
    let mut start = 0;
    let mut sizes = batch_sizes.iter().cycle();
    while start < rows.len() {
        let size = (*sizes.next().unwrap_or(&1)).max(1);
        let end = (start + size).min(rows.len());
        let mut transaction = database.pool().begin().await.expect("begin");
        write(&mut transaction, &rows[start..end]).await.expect("write");
        transaction.commit().await.expect("commit");
        start = end;
    }
}
