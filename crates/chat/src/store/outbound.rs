//! Outbound messages: writing a batch of status events (history and current state), and reading
//! messages back.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use switchboard_store::sqlx::{self, AnyConnection, Row, any::AnyRow};
use switchboard_store::{
    Backend, BatchWinner, Conditions, Database, current_rows_returned, current_state_update, one_row_per_key,
    received_bounds, values_rows, write_rows,
};

use super::prefixed;
use crate::model::{MILESTONE_COLUMNS, Milestones, Precedence, WINNER};

/// One status event as stored: the outbound row it proposes (its milestones and times already
/// merged when a batch is reduced), and its history row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRow {
    pub channel: String,
    pub id: String,
    /// `from`: the business number or the RCS agent id.
    pub sender: String,
    /// `to`: the user's number.
    pub recipient: String,
    pub status: String,
    pub status_rank: i64,
    pub status_time_key: i64,
    pub digest: String,
    pub status_at: Option<i64>,
    pub foreign_id: Option<String>,
    pub milestones: Milestones,
    pub listed_at: i64,
    pub conversation_at: i64,
    pub received_at: i64,
    pub first_received_at: i64,
    pub last_received_at: i64,
    pub stream_sequence: i64,
    pub raw_json: String,
}

impl OutboundRow {
    pub fn precedence(&self) -> Precedence {
        Precedence {
            keys: [self.status_rank, self.status_time_key],
            digest: self.digest.clone(),
            stream_sequence: self.stream_sequence,
        }
    }
}

switchboard_store::current_row!(OutboundRow);

/// A batch's events for one message folded into one: the winning event and the receive times, and
/// the earliest milestones and conversation time.
struct Reduced<'a> {
    winner: BatchWinner<'a, OutboundRow>,
    milestones: Milestones,
    conversation_at: i64,
}

impl<'a> Reduced<'a> {
    fn new(event: &'a OutboundRow) -> Reduced<'a> {
        Reduced {
            winner: BatchWinner::new(event),
            milestones: event.milestones,
            conversation_at: event.conversation_at,
        }
    }

    /// Folds another event for the same message in.
    fn absorb(&mut self, other: &'a OutboundRow) {
        self.winner.meet(other);
        self.milestones.merge(&other.milestones);
        self.conversation_at = self.conversation_at.min(other.conversation_at);
    }

    /// The row the upsert proposes (and, when it is written, the row stored).
    fn into_row(self) -> OutboundRow {
        OutboundRow {
            milestones: self.milestones,
            conversation_at: self.conversation_at,
            ..self.winner.into_row()
        }
    }
}

/// Columns taken whole from the winning event.
const WINNER_COLUMNS: &[&str] = &[
    "sender",
    "recipient",
    "status",
    "status_rank",
    "status_time_key",
    "digest",
    "status_at",
    "foreign_id",
    "listed_at",
    "received_at",
    "stream_sequence",
    "raw_json",
];

pub(crate) const OUTBOUND_COLUMNS: &str = "channel, id, sender, recipient, status, status_rank, status_time_key, \
    digest, status_at, foreign_id, processed_at, sent_at, delivered_at, read_at, failed_at, deleted_at, \
    listed_at, conversation_at, received_at, first_received_at, last_received_at, stream_sequence, raw_json";
const OUTBOUND_COLUMN_COUNT: usize = 23;

const EVENT_COLUMNS: &str =
    "channel, message_id, digest, status, status_at, received_at, stream_sequence, raw_json";

/// Writes a batch of status events inside the caller's transaction and returns the outbound rows
/// that changed. History first, then messages, each sorted by key: every writer takes row locks in
/// the same order, so concurrent replicas cannot deadlock.
pub async fn write_statuses(
    connection: &mut AnyConnection,
    events: &[impl Borrow<OutboundRow>],
) -> Result<Vec<OutboundRow>, sqlx::Error> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let events: Vec<&OutboundRow> = events.iter().map(Borrow::borrow).collect();
    write_history(connection, &events).await?;
    write_messages(connection, &events).await
}

async fn write_history(connection: &mut AnyConnection, events: &[&OutboundRow]) -> Result<(), sqlx::Error> {
    let earliest = one_row_per_key(
        events.iter().copied(),
        |event| (event.channel.as_str(), event.id.as_str(), event.digest.as_str()),
        |candidate, kept| candidate.stream_sequence < kept.stream_sequence,
    );
    let backend = Backend::of(connection);
    let rows: Vec<_> = earliest.values().collect();
    write_rows(
        connection,
        &rows,
        |size| {
            format!(
                "INSERT INTO chat_status_events ({EVENT_COLUMNS}) VALUES {} \
                 ON CONFLICT (channel, message_id, digest) DO UPDATE SET received_at = excluded.received_at, \
                 stream_sequence = excluded.stream_sequence \
                 WHERE excluded.stream_sequence < chat_status_events.stream_sequence",
                values_rows(backend, size, 8)
            )
        },
        |query, event| {
            query
                .bind(event.channel.as_str())
                .bind(event.id.as_str())
                .bind(event.digest.as_str())
                .bind(event.status.as_str())
                .bind(event.status_at)
                .bind(event.received_at)
                .bind(event.stream_sequence)
                .bind(event.raw_json.as_str())
        },
    )
    .await?;
    Ok(())
}

/// The `ON CONFLICT` assignments and the condition under which the stored row changes.
fn upsert_clauses() -> (String, String) {
    let table = "chat_outbound";
    let earliest: Vec<&str> =
        MILESTONE_COLUMNS.iter().copied().chain(["conversation_at", "first_received_at"]).collect();
    current_state_update(table, &WINNER.beats_sql(table), WINNER_COLUMNS, &earliest, &["last_received_at"])
}

async fn write_messages(
    connection: &mut AnyConnection,
    events: &[&OutboundRow],
) -> Result<Vec<OutboundRow>, sqlx::Error> {
    // Reduce the batch to one row per message (PostgreSQL refuses to touch a row twice in one
    // statement), by the same rules the SQL applies against the stored row.
    let mut reduced: BTreeMap<(&str, &str), Reduced> = BTreeMap::new();
    for &event in events {
        match reduced.get_mut(&(event.channel.as_str(), event.id.as_str())) {
            None => {
                reduced.insert((event.channel.as_str(), event.id.as_str()), Reduced::new(event));
            }
            Some(kept) => kept.absorb(event),
        }
    }
    // Owned keys, once per message, for matching the rows the upsert returns.
    let reduced: BTreeMap<(String, String), Reduced> =
        reduced.into_iter().map(|((channel, id), row)| ((channel.to_owned(), id.to_owned()), row)).collect();
    let (assignments, changed) = upsert_clauses();
    let backend = Backend::of(connection);
    let milestone_columns = MILESTONE_COLUMNS.join(", ");
    let rows: Vec<&Reduced> = reduced.values().collect();
    let returned = write_rows(
        connection,
        &rows,
        |size| {
            format!(
                "INSERT INTO chat_outbound ({OUTBOUND_COLUMNS}) VALUES {} \
                 ON CONFLICT (channel, id) DO UPDATE SET {assignments} WHERE {changed} \
                 RETURNING channel, id, stream_sequence, {milestone_columns}, conversation_at, first_received_at, last_received_at",
                values_rows(backend, size, OUTBOUND_COLUMN_COUNT),
            )
        },
        |query, reduced| {
            let BatchWinner { row, received: (first_received_at, last_received_at) } = reduced.winner;
            let query = query
                .bind(row.channel.as_str())
                .bind(row.id.as_str())
                .bind(row.sender.as_str())
                .bind(row.recipient.as_str())
                .bind(row.status.as_str())
                .bind(row.status_rank)
                .bind(row.status_time_key)
                .bind(row.digest.as_str())
                .bind(row.status_at)
                .bind(row.foreign_id.as_deref());
            reduced
                .milestones
                .values()
                .into_iter()
                .fold(query, |query, milestone| query.bind(milestone))
                .bind(row.listed_at)
                .bind(reduced.conversation_at)
                .bind(row.received_at)
                .bind(first_received_at)
                .bind(last_received_at)
                .bind(row.stream_sequence)
                .bind(row.raw_json.as_str())
        },
    )
    .await?;
    let (changed, kept_their_status) = current_rows_returned(
        reduced,
        &returned,
        |row| Ok((row.try_get("channel")?, row.try_get("id")?)),
        |reduced| reduced.winner.row.stream_sequence,
        |reduced, row| {
            reduced.milestones = milestones_from_sql(row, "")?;
            reduced.conversation_at = row.try_get("conversation_at")?;
            reduced.winner.received = received_bounds(row)?;
            Ok(())
        },
    )?;
    let mut changed: Vec<OutboundRow> = changed.into_iter().map(Reduced::into_row).collect();
    changed.extend(read_outbound(connection, &kept_their_status).await?);
    changed.sort_by(|left, right| (&left.channel, &left.id).cmp(&(&right.channel, &right.id)));
    Ok(changed)
}

/// The stored rows of `keys` (channel, id), inside the caller's transaction.
async fn read_outbound(
    connection: &mut AnyConnection,
    keys: &[(String, String)],
) -> Result<Vec<OutboundRow>, sqlx::Error> {
    let backend = Backend::of(connection);
    let rows = write_rows(
        connection,
        keys,
        |size| {
            format!(
                "SELECT {OUTBOUND_COLUMNS} FROM chat_outbound WHERE (channel, id) IN (VALUES {})",
                values_rows(backend, size, 2)
            )
        },
        |query, (channel, id)| query.bind(channel.as_str()).bind(id.as_str()),
    )
    .await?;
    rows.iter().map(|row| outbound_from_sql(row, "")).collect()
}

/// Reads an outbound row whose columns carry `prefix` (empty for a plain `SELECT`).
pub(crate) fn outbound_from_sql(row: &AnyRow, prefix: &str) -> Result<OutboundRow, sqlx::Error> {
    let column = |name: &str| format!("{prefix}{name}");
    Ok(OutboundRow {
        channel: row.try_get(column("channel").as_str())?,
        id: row.try_get(column("id").as_str())?,
        sender: row.try_get(column("sender").as_str())?,
        recipient: row.try_get(column("recipient").as_str())?,
        status: row.try_get(column("status").as_str())?,
        status_rank: row.try_get(column("status_rank").as_str())?,
        status_time_key: row.try_get(column("status_time_key").as_str())?,
        digest: row.try_get(column("digest").as_str())?,
        status_at: row.try_get(column("status_at").as_str())?,
        foreign_id: row.try_get(column("foreign_id").as_str())?,
        milestones: milestones_from_sql(row, prefix)?,
        listed_at: row.try_get(column("listed_at").as_str())?,
        conversation_at: row.try_get(column("conversation_at").as_str())?,
        received_at: row.try_get(column("received_at").as_str())?,
        first_received_at: row.try_get(column("first_received_at").as_str())?,
        last_received_at: row.try_get(column("last_received_at").as_str())?,
        stream_sequence: row.try_get(column("stream_sequence").as_str())?,
        raw_json: row.try_get(column("raw_json").as_str())?,
    })
}

fn milestones_from_sql(row: &AnyRow, prefix: &str) -> Result<Milestones, sqlx::Error> {
    let column = |name: &str| format!("{prefix}{name}");
    Ok(Milestones {
        processed_at: row.try_get(column("processed_at").as_str())?,
        sent_at: row.try_get(column("sent_at").as_str())?,
        delivered_at: row.try_get(column("delivered_at").as_str())?,
        read_at: row.try_get(column("read_at").as_str())?,
        failed_at: row.try_get(column("failed_at").as_str())?,
        deleted_at: row.try_get(column("deleted_at").as_str())?,
    })
}

/// One history row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEventRow {
    pub status: String,
    pub status_at: Option<i64>,
    pub received_at: i64,
    pub stream_sequence: i64,
    pub raw_json: String,
}

/// A message and its history, read in one statement so that both come from the same snapshot (two
/// reads could straddle a commit and show a history the message does not reflect yet).
pub async fn get_outbound(
    database: &Database,
    channel: &str,
    id: &str,
) -> Result<Option<(OutboundRow, Vec<StatusEventRow>)>, sqlx::Error> {
    let sql = format!(
        "SELECT {}, e.status AS event_status, e.status_at AS event_status_at, \
         e.received_at AS event_received_at, e.stream_sequence AS event_stream_sequence, \
         e.raw_json AS event_raw_json \
         FROM chat_outbound m LEFT JOIN chat_status_events e \
         ON e.channel = m.channel AND e.message_id = m.id \
         WHERE m.channel = $1 AND m.id = $2 \
         ORDER BY COALESCE(e.status_at, e.received_at), e.stream_sequence",
        prefixed(OUTBOUND_COLUMNS, "m", "")
    );
    let rows =
        sqlx::query(&sql).bind(channel.to_owned()).bind(id.to_owned()).fetch_all(database.pool()).await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let message = outbound_from_sql(first, "")?;
    let mut history = Vec::with_capacity(rows.len());
    for row in &rows {
        let Some(status) = row.try_get::<Option<String>, _>("event_status")? else {
            continue;
        };
        history.push(StatusEventRow {
            status,
            status_at: row.try_get("event_status_at")?,
            received_at: row.try_get("event_received_at")?,
            stream_sequence: row.try_get("event_stream_sequence")?,
            raw_json: row.try_get("event_raw_json")?,
        });
    }
    Ok(Some((message, history)))
}

/// Outbound messages matching `conditions`, newest first by the time of their current status, at
/// most `limit`, after the keyset `cursor` (listed_at, channel, id) when given.
pub async fn list_outbound(
    database: &Database,
    mut conditions: Conditions,
    cursor: Option<(i64, String, String)>,
    limit: i64,
) -> Result<Vec<OutboundRow>, sqlx::Error> {
    if let Some((listed_at, channel, id)) = cursor {
        let (listed_at, channel, id) =
            (conditions.bind(listed_at), conditions.bind(channel), conditions.bind(id));
        conditions.push(format!("(listed_at, channel, id) < ({listed_at}, {channel}, {id})"));
    }
    let limit = conditions.bind(limit);
    let sql = format!(
        "SELECT {OUTBOUND_COLUMNS} FROM chat_outbound{} \
         ORDER BY listed_at DESC, channel DESC, id DESC LIMIT {limit}",
        conditions.where_clause()
    );
    let rows = conditions.bind_to(sqlx::query(&sql)).fetch_all(database.pool()).await?;
    rows.iter().map(|row| outbound_from_sql(row, "")).collect()
}
