//! The opt-out list kept by sms, chat and voice: one table per service database, the same rows,
//! the same queries.
//!
//! The list is append-only and keyed by (channel, provider id). Should the same id arrive twice (a
//! provider retry outside JetStream's duplicate window), the row from the earliest stream sequence
//! is kept, so the stored list is the same whatever order the events arrive in.

use std::borrow::Borrow;

use crate::grpc;
use switchboard_events::TimeZoneSetting;
use switchboard_events::sms::Unsubscription;
use switchboard_events::value::normalize_phone;
use switchboard_proto::common::{
    CheckOptOutRequest, CheckOptOutResponse, ListOptOutsRequest, ListOptOutsResponse, OptOut,
};
use switchboard_runtime::consumer::StoredEvent;
use switchboard_store::sqlx::{self, AnyConnection, Row};
use switchboard_store::{Conditions, Database, Keyset, MigrationFiles, Table, columns};
use tonic::Status;

use crate::status::from_query_error;

/// The opt-out table, for a service's migration list.
pub const MIGRATION: MigrationFiles = MigrationFiles {
    version: 900,
    description: "opt-out list",
    sqlite: include_str!("../migrations/sqlite/optouts.sql"),
    postgres: include_str!("../migrations/postgres/optouts.sql"),
};

/// One stored opt-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOutRow {
    pub channel: String,
    pub id: String,
    pub receiver: String,
    pub scope: String,
    pub value: String,
    pub created_at: Option<i64>,
    pub status: Option<String>,
    pub received_at: i64,
    pub stream_sequence: i64,
    pub raw_json: String,
}

impl OptOutRow {
    pub fn new(
        channel: &str,
        event: &Unsubscription,
        delivery: &StoredEvent,
        zone: TimeZoneSetting,
    ) -> OptOutRow {
        OptOutRow {
            channel: channel.to_owned(),
            id: event.id.clone(),
            receiver: normalize_phone(&event.receiver),
            scope: event.scope.as_deref().unwrap_or_default().trim().to_lowercase(),
            value: event.value.clone().unwrap_or_default(),
            created_at: event.created_at.as_ref().and_then(|time| time.unix_micros(zone)),
            status: event.status.clone(),
            received_at: delivery.received_at,
            stream_sequence: i64::try_from(delivery.stream_sequence).unwrap_or(i64::MAX),
            raw_json: String::from_utf8_lossy(&delivery.body).into_owned(),
        }
    }

    fn listed_at(&self) -> i64 {
        self.created_at.unwrap_or(self.received_at)
    }

    /// Whether this opt-out covers a message from `sender` in `category` (see `CheckOptOutRequest`).
    pub fn covers(&self, sender: &str, category: &str) -> bool {
        let matches = |wanted: &str| {
            !wanted.is_empty() && (self.value == "*" || self.value.eq_ignore_ascii_case(wanted))
        };
        match self.scope.as_str() {
            "all" => true,
            "sender" => matches(sender),
            "category" => matches(category),
            _ => false,
        }
    }

    pub fn to_proto(&self) -> OptOut {
        OptOut {
            id: self.id.clone(),
            channel: self.channel.clone(),
            receiver: self.receiver.clone(),
            r#type: self.scope.clone(),
            value: self.value.clone(),
            created_at: grpc::optional_timestamp(self.created_at),
            status: self.status.clone().unwrap_or_default(),
            received_at: Some(grpc::timestamp(self.received_at)),
            stream_sequence: u64::try_from(self.stream_sequence).unwrap_or_default(),
            raw_json: self.raw_json.clone(),
        }
    }
}

switchboard_store::delivered!(OptOutRow);

/// One row per opt-out (channel and the provider's id), at its earliest delivery.
pub const OPT_OUTS: Table<OptOutRow> = Table {
    name: "opt_outs",
    key: &["channel", "id"],
    columns: columns!(OptOutRow {
        channel,
        id,
        receiver,
        scope,
        value,
        created_at,
        listed_at: |query, row| query.bind(row.listed_at()),
        status,
        received_at,
        stream_sequence,
        raw_json,
    }),
};

/// Stores opt-outs inside the caller's transaction; returns the rows that were inserted or replaced
/// (for watchers).
pub async fn store(
    connection: &mut AnyConnection,
    rows: &[impl Borrow<OptOutRow>],
) -> Result<Vec<OptOutRow>, sqlx::Error> {
    let rows: Vec<&OptOutRow> = rows.iter().map(Borrow::borrow).collect();
    OPT_OUTS.write_earliest(connection, &rows, |row| (row.channel.clone(), row.id.clone())).await
}

fn row_from_sql(row: &sqlx::any::AnyRow) -> Result<OptOutRow, sqlx::Error> {
    Ok(OptOutRow {
        channel: row.try_get("channel")?,
        id: row.try_get("id")?,
        receiver: row.try_get("receiver")?,
        scope: row.try_get("scope")?,
        value: row.try_get("value")?,
        created_at: row.try_get("created_at")?,
        status: row.try_get("status")?,
        received_at: row.try_get("received_at")?,
        stream_sequence: row.try_get("stream_sequence")?,
        raw_json: row.try_get("raw_json")?,
    })
}

/// The channels a request may name: `requested` when set (it must be one of `served`), else all.
fn channels<'a>(requested: &'a str, served: &'a [&'a str]) -> Result<Vec<&'a str>, Status> {
    if requested.is_empty() {
        return Ok(served.to_vec());
    }
    if served.contains(&requested) {
        Ok(vec![requested])
    } else {
        let served: Vec<String> = served.iter().map(|channel| format!("{channel:?}")).collect();
        Err(Status::invalid_argument(format!(
            "channel must be empty or {}, not {requested:?}",
            served.join(" or ")
        )))
    }
}

fn channel_condition(conditions: &mut Conditions, channels: &[&str]) {
    let placeholders: Vec<String> = channels.iter().map(|channel| conditions.bind(*channel)).collect();
    conditions.push(format!("channel IN ({})", placeholders.join(", ")));
}

/// `CheckOptOut` for a service that keeps opt-outs of `served` channels.
pub async fn check(
    database: &Database,
    served: &[&str],
    request: &CheckOptOutRequest,
) -> Result<CheckOptOutResponse, Status> {
    let receiver = normalize_phone(&request.receiver);
    if receiver.is_empty() {
        return Err(Status::invalid_argument("receiver is required"));
    }
    let channels = channels(&request.channel, served)?;
    let mut conditions = Conditions::new();
    let placeholder = conditions.bind(receiver);
    conditions.push(format!("receiver = {placeholder}"));
    channel_condition(&mut conditions, &channels);
    let sql = format!(
        "SELECT {} FROM opt_outs{} ORDER BY listed_at DESC, channel, id",
        OPT_OUTS.column_list(),
        conditions.where_clause()
    );
    let rows =
        conditions.bind_to(sqlx::query(&sql)).fetch_all(database.pool()).await.map_err(from_query_error)?;
    let mut matches = Vec::new();
    for row in &rows {
        let row = row_from_sql(row).map_err(from_query_error)?;
        if row.covers(request.sender.trim(), request.category.trim()) {
            matches.push(row.to_proto());
        }
    }
    Ok(CheckOptOutResponse { opted_out: !matches.is_empty(), matches })
}

/// `ListOptOuts`, newest first, paged by (listed_at, channel, id).
pub async fn list(
    database: &Database,
    served: &[&str],
    request: &ListOptOutsRequest,
) -> Result<ListOptOutsResponse, Status> {
    let page_size = grpc::page_size(request.page_size)?;
    let channels = channels(&request.channel, served)?;
    let cursor: Option<(i64, String, String)> = grpc::decode_page_token(&request.page_token)?;
    let mut conditions = Conditions::new();
    channel_condition(&mut conditions, &channels);
    conditions.equal_if_set("receiver", &normalize_phone(&request.receiver));
    conditions.equal_if_set("scope", &request.r#type.trim().to_lowercase());
    conditions.range("listed_at", grpc::time_range(request.created.as_ref(), "created")?);
    let keyset = Keyset::new(&["listed_at", "channel", "id"], cursor, i64::from(page_size) + 1);
    let mut rows =
        OPT_OUTS.page(database, conditions, keyset, row_from_sql).await.map_err(from_query_error)?;
    let next_page_token = grpc::next_page_token(&mut rows, page_size, |last| {
        (last.listed_at(), last.channel.clone(), last.id.clone())
    });
    Ok(ListOptOutsResponse { opt_outs: rows.iter().map(OptOutRow::to_proto).collect(), next_page_token })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt_out(scope: &str, value: &str) -> OptOutRow {
        OptOutRow {
            channel: "sms".into(),
            id: "1".into(),
            receiver: "9170".into(),
            scope: scope.into(),
            value: value.into(),
            created_at: None,
            status: None,
            received_at: 0,
            stream_sequence: 1,
            raw_json: "{}".into(),
        }
    }

    #[test]
    fn coverage_rules() {
        assert!(opt_out("all", "*").covers("", ""), "all covers everything, even with no sender given");
        assert!(opt_out("all", "anything").covers("DEMO12", ""));
        assert!(opt_out("sender", "Demo12").covers("DEMO12", ""), "sender ids compare case-insensitively");
        assert!(!opt_out("sender", "Demo12").covers("OTHER", ""));
        assert!(!opt_out("sender", "Demo12").covers("", ""), "without a sender only `all` counts");
        assert!(opt_out("sender", "*").covers("ANY", ""));
        assert!(opt_out("category", "WUC").covers("", "wuc"));
        assert!(!opt_out("category", "WUC").covers("WUC", ""), "a sender is not a category");
        assert!(!opt_out("template", "x").covers("x", "x"), "unknown scopes cover nothing");
    }

    #[test]
    fn channels_are_validated() {
        assert_eq!(channels("", &["whatsapp", "rcs"]).ok(), Some(vec!["whatsapp", "rcs"]));
        assert_eq!(channels("rcs", &["whatsapp", "rcs"]).ok(), Some(vec!["rcs"]));
        let refused = channels("sms", &["whatsapp", "rcs"]).expect_err("not served");
        assert_eq!(refused.message(), r#"channel must be empty or "whatsapp" or "rcs", not "sms""#);
    }
}
