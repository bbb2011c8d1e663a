//! Queries mirroring each service's gRPC API, through the generated clients.

pub mod chat;
pub mod contacts;
pub mod interact;
pub mod optout;
pub mod sms;
pub mod voice;

use std::future::Future;

use anyhow::Context as _;
use clap::Args;
use prost_types::Timestamp;
use switchboard_proto::common::TimeRange;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};
use tonic::transport::Channel;

/// Connects to a gRPC endpoint, saying which when it cannot.
pub async fn channel(endpoint: &str) -> anyhow::Result<Channel> {
    Channel::from_shared(endpoint.to_owned())
        .with_context(|| format!("invalid endpoint {endpoint:?}"))?
        .connect()
        .await
        .with_context(|| {
            format!("cannot reach {endpoint} (is the service running? --endpoint sets the address)")
        })
}

/// A gRPC error as a person reads it.
pub fn rpc_error(status: tonic::Status) -> anyhow::Error {
    match status.code() {
        tonic::Code::NotFound => anyhow::anyhow!("not found: {}", status.message()),
        tonic::Code::InvalidArgument => anyhow::anyhow!("invalid request: {}", status.message()),
        code => anyhow::anyhow!("{code:?}: {}", status.message()),
    }
}

/// A time window: `--since` and `--until` (each a duration back from now like `24h` or `7d`, an RFC
/// 3339 time, or a date).
#[derive(Debug, Clone, Args)]
pub struct Window {
    /// From this time: `24h`, `7d`, `2021-04-09`, or `2021-04-09T10:00:00Z`.
    #[arg(long, value_parser = parse_time)]
    pub since: Option<Timestamp>,
    /// Until this time (exclusive), in the same forms.
    #[arg(long, value_parser = parse_time)]
    pub until: Option<Timestamp>,
}

impl Window {
    pub fn range(&self) -> Option<TimeRange> {
        (self.since.is_some() || self.until.is_some())
            .then_some(TimeRange { start: self.since, end: self.until })
    }

    /// The window for a report: `--since`/`--until`, or the last `days` days.
    pub fn or_days(&self, days: u32) -> TimeRange {
        match self.range() {
            Some(range) => range,
            None => TimeRange { start: Some(ago(time::Duration::days(i64::from(days)))), end: None },
        }
    }
}

/// How many records a list prints.
#[derive(Debug, Clone, Args)]
pub struct Limit {
    /// Print at most this many records (pages are fetched as needed).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

fn ago(duration: time::Duration) -> Timestamp {
    let moment = OffsetDateTime::now_utc() - duration;
    Timestamp { seconds: moment.unix_timestamp(), nanos: 0 }
}

/// Parses `24h` / `7d` (back from now), an RFC 3339 time, or a `YYYY-MM-DD` date (UTC midnight).
pub fn parse_time(text: &str) -> Result<Timestamp, String> {
    if let Ok(duration) = humantime::parse_duration(text) {
        let duration = time::Duration::try_from(duration).map_err(|error| error.to_string())?;
        return Ok(ago(duration));
    }
    if let Ok(moment) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(Timestamp { seconds: moment.unix_timestamp(), nanos: 0 });
    }
    if let Ok(moment) =
        PrimitiveDateTime::parse(text, format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"))
    {
        return Ok(Timestamp { seconds: moment.assume_utc().unix_timestamp(), nanos: 0 });
    }
    if let Ok(date) = Date::parse(text, format_description!("[year]-[month]-[day]")) {
        return Ok(Timestamp { seconds: date.midnight().assume_utc().unix_timestamp(), nanos: 0 });
    }
    Err(format!("{text:?} is not a duration (24h, 7d), an RFC 3339 time or a date (2021-04-09)"))
}

/// Fetches pages until `limit` records or the last page. `fetch` takes a page token and a page
/// size and returns the page's records and the next token (empty at the end).
pub async fn collect<T, F, Fut>(limit: usize, mut fetch: F) -> anyhow::Result<Vec<T>>
where
    F: FnMut(String, i32) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, String), tonic::Status>>,
{
    let mut records = Vec::new();
    let mut token = String::new();
    while records.len() < limit {
        let page_size = i32::try_from((limit - records.len()).min(500)).unwrap_or(500);
        let (page, next) = fetch(token, page_size).await.map_err(rpc_error)?;
        records.extend(page);
        if next.is_empty() {
            break;
        }
        token = next;
    }
    records.truncate(limit);
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_every_form() {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let day_ago = parse_time("24h").expect("duration").seconds;
        assert!((now - 86_400 - day_ago).abs() <= 2);
        assert_eq!(parse_time("2021-04-09").expect("date").seconds, 1_617_926_400);
        assert_eq!(parse_time("2021-04-09T10:57:51Z").expect("rfc3339").seconds, 1_617_965_871);
        assert_eq!(parse_time("2021-04-09 10:57:51").expect("utc time").seconds, 1_617_965_871);
        assert!(parse_time("yesterday").is_err());
    }
}
