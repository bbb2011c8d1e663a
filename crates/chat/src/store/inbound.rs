//! Inbound messages: one row per (channel, id); a re-sent id keeps its earliest delivery.

use std::borrow::Borrow;

use switchboard_store::sqlx::{self, AnyConnection, Row, any::AnyRow};
use switchboard_store::{Conditions, Database, Keyset, Table, columns};

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

switchboard_store::delivered!(InboundRow);

/// One row per inbound message (channel and id), at its earliest delivery.
pub(crate) const INBOUND: Table<InboundRow> = Table {
    name: "chat_inbound",
    key: &["channel", "id"],
    columns: columns!(InboundRow {
        channel,
        id,
        sender,
        recipient,
        r#type: |query, row| query.bind(row.kind.as_str()),
        text,
        url,
        caption,
        filename,
        mime_type,
        profile_json,
        message_id,
        message_at,
        conversation_at,
        received_at,
        stream_sequence,
        payload_json,
        raw_json,
    }),
};

/// Stores inbound messages inside the caller's transaction; returns the rows that were inserted or
/// replaced (for watchers). Of several deliveries of one id, the earliest stream sequence is kept,
/// so the outcome does not depend on their order.
pub async fn write_inbound(
    connection: &mut AnyConnection,
    rows: &[impl Borrow<InboundRow>],
) -> Result<Vec<InboundRow>, sqlx::Error> {
    let rows: Vec<&InboundRow> = rows.iter().map(Borrow::borrow).collect();
    INBOUND.write_earliest(connection, &rows, |row| (row.channel.clone(), row.id.clone())).await
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
    let sql = format!("SELECT {} FROM chat_inbound WHERE channel = $1 AND id = $2", INBOUND.column_list());
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
    conditions: Conditions,
    cursor: Option<(i64, String, String)>,
    limit: i64,
) -> Result<Vec<InboundRow>, sqlx::Error> {
    INBOUND
        .page(database, conditions, Keyset::new(&["received_at", "channel", "id"], cursor, limit), |row| {
            inbound_from_sql(row, "")
        })
        .await
}
