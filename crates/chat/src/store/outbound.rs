//! Outbound messages: writing a batch of status events (history and current state), and reading
//! messages back.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use switchboard_store::sqlx::{self, AnyConnection, Row, any::AnyRow};
use switchboard_store::{
    Backend, BatchWinner, Conditions, Database, Keyset, Table, columns, current_rows_returned,
    current_state_update, received_bounds, values_rows, write_rows,
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

/// The current state of every outbound message: the winning event (the service's precedence rule),
/// the earliest time of each milestone and of the conversation, and the first and last receive time
/// of all its events.
pub(crate) const OUTBOUND: Table<OutboundRow> = Table {
    name: "chat_outbound",
    key: &["channel", "id"],
    columns: columns!(OutboundRow {
        channel,
        id,
        sender,
        recipient,
        status,
        status_rank,
        status_time_key,
        digest,
        status_at,
        foreign_id,
        processed_at: |query, row| query.bind(row.milestones.processed_at),
        sent_at: |query, row| query.bind(row.milestones.sent_at),
        delivered_at: |query, row| query.bind(row.milestones.delivered_at),
        read_at: |query, row| query.bind(row.milestones.read_at),
        failed_at: |query, row| query.bind(row.milestones.failed_at),
        deleted_at: |query, row| query.bind(row.milestones.deleted_at),
        listed_at,
        conversation_at,
        received_at,
        first_received_at,
        last_received_at,
        stream_sequence,
        raw_json,
    }),
};

/// Every distinct status event of a message, at its earliest delivery.
pub(crate) const STATUS_EVENTS: Table<OutboundRow> = Table {
    name: "chat_status_events",
    key: &["channel", "message_id", "digest"],
    columns: columns!(OutboundRow {
        channel,
        message_id: |query, event| query.bind(event.id.as_str()),
        digest,
        status,
        status_at,
        received_at,
        stream_sequence,
        raw_json,
    }),
};

/// Columns the database merges rather than takes from the winning event.
const MERGED_COLUMNS: &[&str] = &["conversation_at", "first_received_at", "last_received_at"];

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
    STATUS_EVENTS
        .write_history(
            connection,
            &events,
            |event| (event.channel.as_str(), event.id.as_str(), event.digest.as_str()),
            &[],
        )
        .await?;
    write_messages(connection, &events).await
}

/// The `ON CONFLICT` assignments and the condition under which the stored row changes.
fn upsert_clauses() -> (String, String) {
    let table = OUTBOUND.name;
    let winners: Vec<&str> = OUTBOUND
        .non_key()
        .filter(|column| !MILESTONE_COLUMNS.contains(column) && !MERGED_COLUMNS.contains(column))
        .collect();
    let earliest: Vec<&str> =
        MILESTONE_COLUMNS.iter().copied().chain(["conversation_at", "first_received_at"]).collect();
    current_state_update(table, &WINNER.beats_sql(table), &winners, &earliest, &["last_received_at"])
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
    let proposed: BTreeMap<(String, String), OutboundRow> = reduced
        .into_iter()
        .map(|((channel, id), reduced)| ((channel.to_owned(), id.to_owned()), reduced.into_row()))
        .collect();
    let (assignments, changed) = upsert_clauses();
    let backend = Backend::of(connection);
    let returning: Vec<&str> = ["channel", "id", "stream_sequence"]
        .into_iter()
        .chain(MILESTONE_COLUMNS.iter().copied())
        .chain(MERGED_COLUMNS.iter().copied())
        .collect();
    let rows: Vec<&OutboundRow> = proposed.values().collect();
    let returned = write_rows(
        connection,
        &rows,
        |size| {
            format!(
                "{} ON CONFLICT (channel, id) DO UPDATE SET {assignments} WHERE {changed} RETURNING {}",
                OUTBOUND.insert(backend, size),
                returning.join(", ")
            )
        },
        |query, row| OUTBOUND.bind(query, row),
    )
    .await?;
    let (mut changed, kept_their_status) = current_rows_returned(
        proposed,
        &returned,
        |row| Ok((row.try_get("channel")?, row.try_get("id")?)),
        |row| row.stream_sequence,
        |proposed, row| {
            proposed.milestones = milestones_from_sql(row, "")?;
            proposed.conversation_at = row.try_get("conversation_at")?;
            (proposed.first_received_at, proposed.last_received_at) = received_bounds(row)?;
            Ok(())
        },
    )?;
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
                "SELECT {} FROM chat_outbound WHERE (channel, id) IN (VALUES {})",
                OUTBOUND.column_list(),
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
        prefixed(&OUTBOUND.column_list(), "m", "")
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
    conditions: Conditions,
    cursor: Option<(i64, String, String)>,
    limit: i64,
) -> Result<Vec<OutboundRow>, sqlx::Error> {
    OUTBOUND
        .page(database, conditions, Keyset::new(&["listed_at", "channel", "id"], cursor, limit), |row| {
            outbound_from_sql(row, "")
        })
        .await
}
