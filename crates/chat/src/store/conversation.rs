//! The conversation with one user on one channel: inbound messages from their number and outbound
//! messages to it, interleaved in time order, read in one statement.

use switchboard_store::sqlx::{self, Row};
use switchboard_store::{Conditions, Database};

use super::inbound::{INBOUND, InboundRow, inbound_from_sql};
use super::outbound::{OUTBOUND, OutboundRow, outbound_from_sql};
use super::prefixed;

/// One message of a conversation, at its place in time (`conversation_at`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConversationEntry {
    Inbound(InboundRow),
    Outbound(OutboundRow),
}

/// How an entry sorts among others of the same time: by kind, then id.
const INBOUND_KIND: &str = "in";
const OUTBOUND_KIND: &str = "out";

impl ConversationEntry {
    pub fn time(&self) -> i64 {
        match self {
            ConversationEntry::Inbound(row) => row.conversation_at,
            ConversationEntry::Outbound(row) => row.conversation_at,
        }
    }

    /// The keyset position: (time, kind, id).
    pub fn cursor(&self) -> (i64, String, String) {
        match self {
            ConversationEntry::Inbound(row) => (row.conversation_at, INBOUND_KIND.to_owned(), row.id.clone()),
            ConversationEntry::Outbound(row) => {
                (row.conversation_at, OUTBOUND_KIND.to_owned(), row.id.clone())
            }
        }
    }
}

/// The conversation with `phone` on `channel`, oldest first, within `[start, end)` of
/// `conversation_at`, after `cursor`, at most `limit` entries.
pub async fn conversation(
    database: &Database,
    channel: &str,
    phone: &str,
    range: (Option<i64>, Option<i64>),
    cursor: Option<(i64, String, String)>,
    limit: i64,
) -> Result<Vec<ConversationEntry>, sqlx::Error> {
    // The same filter on both sides, reusing the placeholders; only the user's column differs.
    let mut sides = Conditions::new();
    let channel = sides.bind(channel);
    let phone = sides.bind(phone);
    sides.push(format!("channel = {channel}"));
    sides.range("conversation_at", range);
    let side_filter = sides.where_clause();
    let mut outer = Vec::new();
    if let Some((time, kind, id)) = cursor {
        let (time, kind, id) = (sides.bind(time), sides.bind(kind), sides.bind(id));
        outer.push(format!("(items.conversation_at, items.kind, items.id) > ({time}, {kind}, {id})"));
    }
    let limit = sides.bind(limit);
    let outer_filter =
        if outer.is_empty() { String::new() } else { format!(" WHERE {}", outer.join(" AND ")) };
    let sql = format!(
        "SELECT items.kind AS item_kind, {}, {} FROM ( \
           SELECT '{INBOUND_KIND}' AS kind, channel, id, conversation_at FROM chat_inbound{side_filter} \
             AND sender = {phone} \
           UNION ALL \
           SELECT '{OUTBOUND_KIND}' AS kind, channel, id, conversation_at FROM chat_outbound{side_filter} \
             AND recipient = {phone} \
         ) items \
         LEFT JOIN chat_inbound i ON items.kind = '{INBOUND_KIND}' AND i.channel = items.channel AND i.id = items.id \
         LEFT JOIN chat_outbound o ON items.kind = '{OUTBOUND_KIND}' AND o.channel = items.channel AND o.id = items.id\
         {outer_filter} \
         ORDER BY items.conversation_at, items.kind, items.id LIMIT {limit}",
        prefixed(&INBOUND.column_list(), "i", "in_"),
        prefixed(&OUTBOUND.column_list(), "o", "out_"),
    );
    let rows = sides.bind_to(sqlx::query(&sql)).fetch_all(database.pool()).await?;
    rows.iter()
        .map(|row| {
            let kind: String = row.try_get("item_kind")?;
            if kind == INBOUND_KIND {
                inbound_from_sql(row, "in_").map(ConversationEntry::Inbound)
            } else {
                outbound_from_sql(row, "out_").map(ConversationEntry::Outbound)
            }
        })
        .collect()
}
