//! Inbound messages: one row per (channel, id); a re-sent id keeps its earliest delivery.

use std::borrow::Borrow;

use switchboard_store::sqlx::{self, AnyConnection, Row, any::AnyRow};
use switchboard_store::{
    Backend, Conditions, Database, one_row_per_key, values_rows, write_rows, written_rows_returned,
};

/// One inbound message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRow {
    pub channel: String,
    pub id: String,
    /// The user's number (`recipient.from`).
    pub sender: String,
    /// The company number it came to (`channels[].to`).
    pub recipient: String,
    /// `message.type` as sent.
    pub kind: String,
    pub text: Option<String>,
    pub url: Option<String>,
    pub caption: Option<String>,
    pub filename: Option<String>,
    pub mime_type: Option<String>,
    /// `recipient.user`, as JSON.
    pub profile_json: Option<String>,
    pub message_id: Option<String>,
    pub message_at: Option<i64>,
    pub conversation_at: i64,
    pub received_at: i64,
    pub stream_sequence: i64,
    /// `message.payload`, as JSON.
    pub payload_json: String,
    pub raw_json: String,
}

pub(crate) const INBOUND_COLUMNS: &str = "channel, id, sender, recipient, type, text, url, caption, filename, \
    mime_type, profile_json, message_id, message_at, conversation_at, received_at, stream_sequence, \
    payload_json, raw_json";
const INBOUND_COLUMN_COUNT: usize = 18;
/// Every column but the key, replaced together when an earlier delivery of the id turns up.
const REPLACED_COLUMNS: &[&str] = &[
    "sender",
    "recipient",
    "type",
    "text",
    "url",
    "caption",
    "filename",
    "mime_type",
    "profile_json",
    "message_id",
    "message_at",
    "conversation_at",
    "received_at",
    "stream_sequence",
    "payload_json",
    "raw_json",
];

/// Stores inbound messages inside the caller's transaction; returns the rows that were inserted or
/// replaced (for watchers). Of several deliveries of one id, the earliest stream sequence is kept,
/// so the outcome does not depend on their order.
pub async fn write_inbound(
    connection: &mut AnyConnection,
    rows: &[impl Borrow<InboundRow>],
) -> Result<Vec<InboundRow>, sqlx::Error> {
    // One row per key per statement, sorted by key (a stable lock order across replicas).
    let earliest = one_row_per_key(
        rows.iter().map(Borrow::borrow),
        |row: &InboundRow| (row.channel.as_str(), row.id.as_str()),
        |candidate, kept| candidate.stream_sequence < kept.stream_sequence,
    );
    if earliest.is_empty() {
        return Ok(Vec::new());
    }
    let assignments: Vec<String> =
        REPLACED_COLUMNS.iter().map(|column| format!("{column} = excluded.{column}")).collect();
    let backend = Backend::of(connection);
    let rows: Vec<_> = earliest.values().collect();
    let returned = write_rows(
        connection,
        &rows,
        |size| {
            format!(
                "INSERT INTO chat_inbound ({INBOUND_COLUMNS}) VALUES {} \
                 ON CONFLICT (channel, id) DO UPDATE SET {} \
                 WHERE excluded.stream_sequence < chat_inbound.stream_sequence \
                 RETURNING channel, id",
                values_rows(backend, size, INBOUND_COLUMN_COUNT),
                assignments.join(", ")
            )
        },
        |query, row| {
            query
                .bind(row.channel.as_str())
                .bind(row.id.as_str())
                .bind(row.sender.as_str())
                .bind(row.recipient.as_str())
                .bind(row.kind.as_str())
                .bind(row.text.as_deref())
                .bind(row.url.as_deref())
                .bind(row.caption.as_deref())
                .bind(row.filename.as_deref())
                .bind(row.mime_type.as_deref())
                .bind(row.profile_json.as_deref())
                .bind(row.message_id.as_deref())
                .bind(row.message_at)
                .bind(row.conversation_at)
                .bind(row.received_at)
                .bind(row.stream_sequence)
                .bind(row.payload_json.as_str())
                .bind(row.raw_json.as_str())
        },
    )
    .await?;
    written_rows_returned(
        earliest.into_values(),
        |row| (row.channel.clone(), row.id.clone()),
        &returned,
        |row| Ok((row.try_get("channel")?, row.try_get("id")?)),
    )
}

/// Reads an inbound row whose columns carry `prefix` (empty for a plain `SELECT`).
pub(crate) fn inbound_from_sql(row: &AnyRow, prefix: &str) -> Result<InboundRow, sqlx::Error> {
    let column = |name: &str| format!("{prefix}{name}");
    Ok(InboundRow {
        channel: row.try_get(column("channel").as_str())?,
        id: row.try_get(column("id").as_str())?,
        sender: row.try_get(column("sender").as_str())?,
        recipient: row.try_get(column("recipient").as_str())?,
        kind: row.try_get(column("type").as_str())?,
        text: row.try_get(column("text").as_str())?,
        url: row.try_get(column("url").as_str())?,
        caption: row.try_get(column("caption").as_str())?,
        filename: row.try_get(column("filename").as_str())?,
        mime_type: row.try_get(column("mime_type").as_str())?,
        profile_json: row.try_get(column("profile_json").as_str())?,
        message_id: row.try_get(column("message_id").as_str())?,
        message_at: row.try_get(column("message_at").as_str())?,
        conversation_at: row.try_get(column("conversation_at").as_str())?,
        received_at: row.try_get(column("received_at").as_str())?,
        stream_sequence: row.try_get(column("stream_sequence").as_str())?,
        payload_json: row.try_get(column("payload_json").as_str())?,
        raw_json: row.try_get(column("raw_json").as_str())?,
    })
}

pub async fn get_inbound(
    database: &Database,
    channel: &str,
    id: &str,
) -> Result<Option<InboundRow>, sqlx::Error> {
    let sql = format!("SELECT {INBOUND_COLUMNS} FROM chat_inbound WHERE channel = $1 AND id = $2");
    let row = sqlx::query(&sql)
        .bind(channel.to_owned())
        .bind(id.to_owned())
        .fetch_optional(database.pool())
        .await?;
    row.as_ref().map(|row| inbound_from_sql(row, "")).transpose()
}

/// Inbound messages matching `conditions`, newest first by receive time, at most `limit`, after the
/// keyset `cursor` (received_at, channel, id) when given.
pub async fn list_inbound(
    database: &Database,
    mut conditions: Conditions,
    cursor: Option<(i64, String, String)>,
    limit: i64,
) -> Result<Vec<InboundRow>, sqlx::Error> {
    if let Some((received_at, channel, id)) = cursor {
        let (received_at, channel, id) =
            (conditions.bind(received_at), conditions.bind(channel), conditions.bind(id));
        conditions.push(format!("(received_at, channel, id) < ({received_at}, {channel}, {id})"));
    }
    let limit = conditions.bind(limit);
    let sql = format!(
        "SELECT {INBOUND_COLUMNS} FROM chat_inbound{} \
         ORDER BY received_at DESC, channel DESC, id DESC LIMIT {limit}",
        conditions.where_clause()
    );
    let rows = conditions.bind_to(sqlx::query(&sql)).fetch_all(database.pool()).await?;
    rows.iter().map(|row| inbound_from_sql(row, "")).collect()
}
