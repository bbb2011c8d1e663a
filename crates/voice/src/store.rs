//! The voice tables: writing a batch of call records, and the queries behind the API.

use std::borrow::Borrow;

use switchboard_store::sqlx::{self, AnyConnection, Row, any::AnyRow};
use switchboard_store::{Conditions, Database, Keyset, MigrationFiles, Table, columns, epoch_day_sql};

use crate::model::{Precedence, WINNER};

pub const MIGRATIONS: &[MigrationFiles] = &[
    MigrationFiles {
        version: 1,
        description: "voice calls and record history",
        sqlite: include_str!("../migrations/sqlite/0001_calls.sql"),
        postgres: include_str!("../migrations/postgres/0001_calls.sql"),
    },
    switchboard_service::optouts::MIGRATION,
    switchboard_store::BYTEWISE_TEXT,
];

/// The tables the service writes.
pub const TABLES: &[&dyn switchboard_store::TableShape] =
    &[&CALLS, &CALL_EVENTS, &switchboard_service::optouts::OPT_OUTS];

/// What the retention job may expire: record history by receive time, and the raw JSON of calls
/// whose last record is old.
pub const RETENTION: &[switchboard_service::retention::Target] = {
    use switchboard_service::retention::Target;
    &[
        Target::delete_history(&CALL_EVENTS),
        Target::clear_raw_json(&CALL_EVENTS, "received_at"),
        Target::clear_raw_json(&CALLS, "last_received_at"),
    ]
};

/// One call record as stored: the call row it proposes, and its history row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRow {
    pub mid: String,
    pub bridge: Option<String>,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub source: Option<String>,
    pub flow_id: Option<String>,
    pub start_at: Option<i64>,
    pub end_at: Option<i64>,
    pub duration_seconds: Option<i64>,
    pub status: Option<String>,
    /// 1 when [`crate::model::is_answered`] holds for `status`, else 0 (no booleans in SQL).
    pub answered: i64,
    pub recording_url: Option<String>,
    pub status1: Option<String>,
    pub status2: Option<String>,
    pub billing: Option<String>,
    pub hangup_by: Option<String>,
    pub call_date: Option<String>,
    pub unixtime: Option<i64>,
    pub end_time_key: i64,
    pub digest: String,
    pub listed_at: i64,
    pub received_at: i64,
    pub first_received_at: i64,
    pub last_received_at: i64,
    pub stream_sequence: i64,
    pub raw_json: String,
}

switchboard_store::current_row!(CallRow);

impl CallRow {
    pub fn precedence(&self) -> Precedence {
        Precedence {
            keys: [self.end_time_key],
            digest: self.digest.clone(),
            stream_sequence: self.stream_sequence,
        }
    }
}

/// The current record of every call: the winning record (the service's precedence rule) and the
/// first and last receive time of all its records.
const CALLS: Table<CallRow> = Table {
    name: "voice_calls",
    key: &["mid"],
    columns: columns!(CallRow {
        mid,
        bridge,
        from_number,
        to_number,
        source,
        flow_id,
        start_at,
        end_at,
        duration_seconds,
        status,
        answered,
        recording_url,
        status1,
        status2,
        billing,
        hangup_by,
        call_date,
        unixtime,
        end_time_key,
        digest,
        listed_at,
        received_at,
        first_received_at,
        last_received_at,
        stream_sequence,
        raw_json,
    }),
};

/// Every distinct record of a call, at its earliest delivery.
const CALL_EVENTS: Table<CallRow> = Table {
    name: "voice_call_events",
    key: &["mid", "digest"],
    columns: columns!(CallRow {
        mid,
        digest,
        status,
        end_at,
        duration_seconds,
        received_at,
        stream_sequence,
        raw_json
    }),
};

/// Writes a batch of call records inside the caller's transaction and returns the call rows that
/// changed. History first, then calls, each sorted by key: every writer takes row locks in the same
/// order, so concurrent replicas cannot deadlock.
pub async fn write_calls(
    connection: &mut AnyConnection,
    records: &[impl Borrow<CallRow>],
) -> Result<Vec<CallRow>, sqlx::Error> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let records: Vec<&CallRow> = records.iter().map(Borrow::borrow).collect();
    CALL_EVENTS
        .write_history(connection, &records, |record| (record.mid.as_str(), record.digest.as_str()), &[])
        .await?;
    CALLS
        .write_current(
            connection,
            &records,
            |record| record.mid.as_str(),
            &WINNER.beats_sql(CALLS.name),
            call_from_sql,
        )
        .await
}

fn call_from_sql(row: &AnyRow) -> Result<CallRow, sqlx::Error> {
    Ok(CallRow {
        mid: row.try_get("mid")?,
        bridge: row.try_get("bridge")?,
        from_number: row.try_get("from_number")?,
        to_number: row.try_get("to_number")?,
        source: row.try_get("source")?,
        flow_id: row.try_get("flow_id")?,
        start_at: row.try_get("start_at")?,
        end_at: row.try_get("end_at")?,
        duration_seconds: row.try_get("duration_seconds")?,
        status: row.try_get("status")?,
        answered: row.try_get("answered")?,
        recording_url: row.try_get("recording_url")?,
        status1: row.try_get("status1")?,
        status2: row.try_get("status2")?,
        billing: row.try_get("billing")?,
        hangup_by: row.try_get("hangup_by")?,
        call_date: row.try_get("call_date")?,
        unixtime: row.try_get("unixtime")?,
        end_time_key: row.try_get("end_time_key")?,
        digest: row.try_get("digest")?,
        listed_at: row.try_get("listed_at")?,
        received_at: row.try_get("received_at")?,
        first_received_at: row.try_get("first_received_at")?,
        last_received_at: row.try_get("last_received_at")?,
        stream_sequence: row.try_get("stream_sequence")?,
        raw_json: row.try_get("raw_json")?,
    })
}

/// One history row: a distinct record received for a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub digest: String,
    pub status: Option<String>,
    pub end_at: Option<i64>,
    pub duration_seconds: Option<i64>,
    pub received_at: i64,
    pub stream_sequence: i64,
    pub raw_json: String,
}

/// The current record of a call.
pub async fn get_call(database: &Database, mid: &str) -> Result<Option<CallRow>, sqlx::Error> {
    let sql = format!("SELECT {} FROM voice_calls WHERE mid = $1", CALLS.column_list());
    let row = sqlx::query(&sql).bind(mid.to_owned()).fetch_optional(database.pool()).await?;
    row.as_ref().map(call_from_sql).transpose()
}

/// Every distinct record received for a call, in stream order. Not served over gRPC; kept for
/// audits and for checking that no version was lost.
pub async fn call_history(database: &Database, mid: &str) -> Result<Vec<EventRow>, sqlx::Error> {
    let sql = "SELECT digest, status, end_at, duration_seconds, received_at, stream_sequence, raw_json \
               FROM voice_call_events WHERE mid = $1 ORDER BY stream_sequence, digest";
    let rows = sqlx::query(sql).bind(mid.to_owned()).fetch_all(database.pool()).await?;
    rows.iter()
        .map(|row| {
            Ok(EventRow {
                digest: row.try_get("digest")?,
                status: row.try_get("status")?,
                end_at: row.try_get("end_at")?,
                duration_seconds: row.try_get("duration_seconds")?,
                received_at: row.try_get("received_at")?,
                stream_sequence: row.try_get("stream_sequence")?,
                raw_json: row.try_get("raw_json")?,
            })
        })
        .collect()
}

/// Calls matching `conditions`, newest first, at most `limit`.
pub async fn list_calls(
    database: &Database,
    conditions: Conditions,
    cursor: Option<(i64, String)>,
    limit: i64,
) -> Result<Vec<CallRow>, sqlx::Error> {
    CALLS.page(database, conditions, Keyset::new(&["listed_at", "mid"], cursor, limit), call_from_sql).await
}

/// Call figures of one day and source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsCell {
    pub epoch_day: i64,
    pub source: String,
    pub calls: i64,
    pub answered: i64,
    pub total_duration_seconds: i64,
    /// Calls that report a duration (the denominator of the average).
    pub with_duration: i64,
}

/// Figures per day (in the zone `offset_micros` east of UTC) and source. Sums are cast to BIGINT:
/// PostgreSQL sums BIGINT into NUMERIC, which sqlx `Any` cannot read.
pub async fn call_stats(
    database: &Database,
    mut conditions: Conditions,
    offset_micros: i64,
) -> Result<Vec<StatsCell>, sqlx::Error> {
    let offset = conditions.bind(offset_micros);
    let epoch_day = epoch_day_sql("listed_at", &offset);
    let sql = format!(
        "SELECT {epoch_day} AS epoch_day, COALESCE(source, '') AS source, \
         COUNT(*) AS calls, CAST(SUM(answered) AS BIGINT) AS answered, \
         CAST(COALESCE(SUM(duration_seconds), 0) AS BIGINT) AS total_duration_seconds, \
         COUNT(duration_seconds) AS with_duration FROM voice_calls{} \
         GROUP BY epoch_day, COALESCE(source, '') ORDER BY epoch_day, source",
        conditions.where_clause()
    );
    let rows = conditions.bind_to(sqlx::query(&sql)).fetch_all(database.pool()).await?;
    rows.iter()
        .map(|row| {
            Ok(StatsCell {
                epoch_day: row.try_get("epoch_day")?,
                source: row.try_get("source")?,
                calls: row.try_get("calls")?,
                answered: row.try_get("answered")?,
                total_duration_seconds: row.try_get("total_duration_seconds")?,
                with_duration: row.try_get("with_duration")?,
            })
        })
        .collect()
}
