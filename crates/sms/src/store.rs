//! The sms tables: writing a batch of reports, and the queries behind the API.

use std::borrow::Borrow;

use switchboard_store::sqlx::{self, AnyConnection, Row, any::AnyRow};
use switchboard_store::{Conditions, Database, Keyset, MigrationFiles, Table, columns, epoch_day_sql};

use crate::model::{Precedence, WINNER};

pub const MIGRATIONS: &[MigrationFiles] = &[
    MigrationFiles {
        version: 1,
        description: "sms messages and status history",
        sqlite: include_str!("../migrations/sqlite/0001_messages.sql"),
        postgres: include_str!("../migrations/postgres/0001_messages.sql"),
    },
    MigrationFiles {
        version: 2,
        description: "request filter from the primary key on SQLite",
        sqlite: include_str!("../migrations/sqlite/0002_request_by_primary_key.sql"),
        postgres: include_str!("../migrations/postgres/0002_request_by_primary_key.sql"),
    },
    MigrationFiles {
        version: 3,
        description: "request filter from the primary key on PostgreSQL too",
        sqlite: include_str!("../migrations/sqlite/0003_request_by_primary_key_everywhere.sql"),
        postgres: include_str!("../migrations/postgres/0003_request_by_primary_key_everywhere.sql"),
    },
    switchboard_service::optouts::MIGRATION,
    switchboard_store::BYTEWISE_TEXT,
];

/// The tables the service writes.
pub const TABLES: &[&dyn switchboard_store::TableShape] =
    &[&MESSAGES, &STATUS_EVENTS, &switchboard_service::optouts::OPT_OUTS];

/// What the retention job may expire: history by receive time, and the raw JSON of messages whose
/// last report is old.
pub const RETENTION: &[switchboard_service::retention::Target] = {
    use switchboard_service::retention::Target;
    &[
        Target::delete_history(&STATUS_EVENTS),
        Target::clear_raw_json(&STATUS_EVENTS, "received_at"),
        Target::clear_raw_json(&MESSAGES, "last_received_at"),
    ]
};

/// One report as stored: the message row it proposes, and its history row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub id: String,
    pub request_id: String,
    pub recipient_index: Option<i64>,
    pub mobile: String,
    pub status: String,
    pub status_class: i64,
    pub status_rank: i64,
    pub status_time_key: i64,
    pub digest: String,
    pub credits: Option<String>,
    pub units: Option<i64>,
    pub submitted_at: Option<i64>,
    pub sent_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub cid: Option<String>,
    pub custom: Option<String>,
    pub sender: Option<String>,
    pub listed_at: i64,
    pub received_at: i64,
    pub first_received_at: i64,
    pub last_received_at: i64,
    pub stream_sequence: i64,
    pub raw_json: String,
}

impl MessageRow {
    pub fn precedence(&self) -> Precedence {
        Precedence {
            keys: [self.status_rank, self.status_time_key],
            digest: self.digest.clone(),
            stream_sequence: self.stream_sequence,
        }
    }
}

/// The current state of every message: the winning report (the service's precedence rule) and the
/// first and last receive time of all its reports.
const MESSAGES: Table<MessageRow> = Table {
    name: "sms_messages",
    key: &["id"],
    columns: columns!(MessageRow {
        id,
        request_id,
        recipient_index,
        mobile,
        status,
        status_class,
        status_rank,
        status_time_key,
        digest,
        credits,
        units,
        submitted_at,
        sent_at,
        delivered_at,
        cid,
        custom,
        sender,
        listed_at,
        received_at,
        first_received_at,
        last_received_at,
        stream_sequence,
        raw_json,
    }),
};

/// Every distinct report of a message, at its earliest delivery.
const STATUS_EVENTS: Table<MessageRow> = Table {
    name: "sms_status_events",
    key: &["message_id", "digest"],
    columns: columns!(MessageRow {
        message_id: |query, report| query.bind(report.id.as_str()),
        digest,
        status,
        status_class,
        delivered_at,
        received_at,
        stream_sequence,
        raw_json,
    }),
};

/// Writes a batch of reports inside the caller's transaction and returns the message rows that
/// changed. History first, then messages, each sorted by key: every writer takes row locks in the
/// same order, so concurrent replicas cannot deadlock.
pub async fn write_reports(
    connection: &mut AnyConnection,
    reports: &[impl Borrow<MessageRow>],
) -> Result<Vec<MessageRow>, sqlx::Error> {
    if reports.is_empty() {
        return Ok(Vec::new());
    }
    let reports: Vec<&MessageRow> = reports.iter().map(Borrow::borrow).collect();
    STATUS_EVENTS
        .write_history(connection, &reports, |report| (report.id.as_str(), report.digest.as_str()), &[])
        .await?;
    MESSAGES
        .write_current(
            connection,
            &reports,
            |report| report.id.as_str(),
            &WINNER.beats_sql(MESSAGES.name),
            message_from_sql,
        )
        .await
}

switchboard_store::current_row!(MessageRow);

fn message_from_sql(row: &AnyRow) -> Result<MessageRow, sqlx::Error> {
    Ok(MessageRow {
        id: row.try_get("id")?,
        request_id: row.try_get("request_id")?,
        recipient_index: row.try_get("recipient_index")?,
        mobile: row.try_get("mobile")?,
        status: row.try_get("status")?,
        status_class: row.try_get("status_class")?,
        status_rank: row.try_get("status_rank")?,
        status_time_key: row.try_get("status_time_key")?,
        digest: row.try_get("digest")?,
        credits: row.try_get("credits")?,
        units: row.try_get("units")?,
        submitted_at: row.try_get("submitted_at")?,
        sent_at: row.try_get("sent_at")?,
        delivered_at: row.try_get("delivered_at")?,
        cid: row.try_get("cid")?,
        custom: row.try_get("custom")?,
        sender: row.try_get("sender")?,
        listed_at: row.try_get("listed_at")?,
        received_at: row.try_get("received_at")?,
        first_received_at: row.try_get("first_received_at")?,
        last_received_at: row.try_get("last_received_at")?,
        stream_sequence: row.try_get("stream_sequence")?,
        raw_json: row.try_get("raw_json")?,
    })
}

/// One history row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub status: String,
    pub status_class: i64,
    pub delivered_at: Option<i64>,
    pub received_at: i64,
    pub stream_sequence: i64,
    pub raw_json: String,
}

/// A message and its history, read in one statement so that both come from the same snapshot (two
/// reads could straddle a commit and show a history the message does not reflect yet).
pub async fn get_message(
    database: &Database,
    id: &str,
) -> Result<Option<(MessageRow, Vec<EventRow>)>, sqlx::Error> {
    let message_columns: Vec<String> = MESSAGES.names().map(|column| format!("m.{column}")).collect();
    let sql = format!(
        "SELECT {}, e.status AS event_status, e.status_class AS event_status_class, \
         e.delivered_at AS event_delivered_at, e.received_at AS event_received_at, \
         e.stream_sequence AS event_stream_sequence, e.raw_json AS event_raw_json \
         FROM sms_messages m LEFT JOIN sms_status_events e ON e.message_id = m.id \
         WHERE m.id = $1 ORDER BY e.received_at, e.stream_sequence",
        message_columns.join(", ")
    );
    let rows = sqlx::query(&sql).bind(id.to_owned()).fetch_all(database.pool()).await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let message = message_from_sql(first)?;
    let mut history = Vec::with_capacity(rows.len());
    for row in &rows {
        let Some(status) = row.try_get::<Option<String>, _>("event_status")? else {
            continue;
        };
        history.push(EventRow {
            status,
            status_class: row.try_get("event_status_class")?,
            delivered_at: row.try_get("event_delivered_at")?,
            received_at: row.try_get("event_received_at")?,
            stream_sequence: row.try_get("event_stream_sequence")?,
            raw_json: row.try_get("event_raw_json")?,
        });
    }
    Ok(Some((message, history)))
}

/// Limits `conditions` to the messages of request `request_id`.
///
/// A message's request id is its id up to a final `:<recipient index>`, or the whole id when there
/// is none (`switchboard_events::sms::SmsStatus::request_id`), so a request's messages have the id
/// `request_id` itself or one starting with `request_id:`. Text compares bytewise on both backends
/// (migration 901 on PostgreSQL), so those are one key plus a range of the primary key (`:` + 1 is
/// `;`), read without an index of their own (migrations 2 and 3 dropped it: every insert wrote it
/// at a random place). The equality keeps ids like `request:x` or `request:1:2` (other requests)
/// out.
pub fn request_condition(conditions: &mut Conditions, request_id: &str) {
    if request_id.is_empty() {
        return;
    }
    let equal = conditions.bind(request_id);
    let whole = conditions.bind(request_id);
    let (from, to) = (conditions.bind(format!("{request_id}:")), conditions.bind(format!("{request_id};")));
    conditions.push(format!("request_id = {equal} AND (id = {whole} OR (id >= {from} AND id < {to}))"));
}

/// Messages matching `conditions`, newest first, at most `limit`.
pub async fn list_messages(
    database: &Database,
    conditions: Conditions,
    cursor: Option<(i64, String)>,
    limit: i64,
) -> Result<Vec<MessageRow>, sqlx::Error> {
    MESSAGES
        .page(database, conditions, Keyset::new(&["listed_at", "id"], cursor, limit), message_from_sql)
        .await
}

/// One delivery-report cell: messages of one day, sender and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportCell {
    pub epoch_day: i64,
    pub sender: String,
    pub status: String,
    pub status_class: i64,
    pub count: i64,
}

/// Counts per day (in the zone `offset_micros` east of UTC), sender and status.
pub async fn delivery_report(
    database: &Database,
    mut conditions: Conditions,
    offset_micros: i64,
) -> Result<Vec<ReportCell>, sqlx::Error> {
    let offset = conditions.bind(offset_micros);
    let epoch_day = epoch_day_sql("listed_at", &offset);
    let sql = format!(
        "SELECT {epoch_day} AS epoch_day, COALESCE(sender, '') AS sender, \
         status, status_class, COUNT(*) AS count FROM sms_messages{} \
         GROUP BY epoch_day, COALESCE(sender, ''), status, status_class \
         ORDER BY epoch_day, sender, status",
        conditions.where_clause()
    );
    let rows = conditions.bind_to(sqlx::query(&sql)).fetch_all(database.pool()).await?;
    rows.iter()
        .map(|row| {
            Ok(ReportCell {
                epoch_day: row.try_get("epoch_day")?,
                sender: row.try_get("sender")?,
                status: row.try_get("status")?,
                status_class: row.try_get("status_class")?,
                count: row.try_get("count")?,
            })
        })
        .collect()
}
