//! The chat tables: writing batches of events, and the queries behind the API.
//!
//! * [`outbound`]: status events → `chat_outbound` (current state and milestones) and
//!   `chat_status_events` (history);
//! * [`inbound`]: inbound messages → `chat_inbound`;
//! * [`conversation`]: both, interleaved, for one user on one channel;
//! * [`rates`]: delivery and read counts per channel per day.
//!
//! Opt-outs live in the shared `opt_outs` table (`switchboard_service::optouts`).

pub mod conversation;
pub mod inbound;
pub mod outbound;
pub mod rates;

use switchboard_store::MigrationFiles;

pub use conversation::{ConversationEntry, conversation};
pub use inbound::{InboundRow, get_inbound, list_inbound, write_inbound};
pub use outbound::{OutboundRow, StatusEventRow, get_outbound, list_outbound, write_statuses};
pub use rates::{RatesCell, rates};

pub const MIGRATIONS: &[MigrationFiles] = &[
    MigrationFiles {
        version: 1,
        description: "chat outbound messages with status history, inbound messages",
        sqlite: include_str!("../../migrations/sqlite/0001_chat.sql"),
        postgres: include_str!("../../migrations/postgres/0001_chat.sql"),
    },
    switchboard_service::optouts::MIGRATION,
    switchboard_store::BYTEWISE_TEXT,
];

/// The tables the service writes.
pub const TABLES: &[&dyn switchboard_store::TableShape] = &[
    &outbound::OUTBOUND,
    &outbound::STATUS_EVENTS,
    &inbound::INBOUND,
    &switchboard_service::optouts::OPT_OUTS,
];

/// What the retention job may expire: status history by receive time, and the raw JSON of messages
/// whose last event is old.
pub const RETENTION: &[switchboard_service::retention::Target] = {
    use switchboard_service::retention::Target;
    &[
        Target::delete_history(&outbound::STATUS_EVENTS),
        Target::clear_raw_json(&outbound::STATUS_EVENTS, "received_at"),
        Target::clear_raw_json(&outbound::OUTBOUND, "last_received_at"),
        Target::clear_raw_json(&inbound::INBOUND, "received_at"),
    ]
};

/// `columns` (`"a, b"`) read from `table` and renamed with `alias_prefix`:
/// `t.a AS p_a, t.b AS p_b`. Lets one statement read two tables whose column names collide.
fn prefixed(columns: &str, table: &str, alias_prefix: &str) -> String {
    columns
        .split(',')
        .map(|column| {
            let column = column.trim();
            format!("{table}.{column} AS {alias_prefix}{column}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefixed_renames_every_column() {
        assert_eq!(super::prefixed("a, b", "t", "p_"), "t.a AS p_a, t.b AS p_b");
    }
}
