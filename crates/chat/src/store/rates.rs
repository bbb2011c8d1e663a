//! Delivery and read counts per channel per day, by the rules of `model::counts_as_*`.

use switchboard_store::sqlx::{self, Row};
use switchboard_store::{Conditions, Database, epoch_day_sql};

use crate::model::{counts_as_delivered_sql, counts_as_failed_sql, counts_as_read_sql};

/// Outbound messages of one day (of their current status) and channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatesCell {
    pub epoch_day: i64,
    pub channel: String,
    pub total: i64,
    pub delivered: i64,
    pub read: i64,
    pub failed: i64,
}

/// Counts per day (in the zone `offset_micros` east of UTC) and channel, ordered by day, then channel.
pub async fn rates(
    database: &Database,
    mut conditions: Conditions,
    offset_micros: i64,
) -> Result<Vec<RatesCell>, sqlx::Error> {
    let offset = conditions.bind(offset_micros);
    let epoch_day = epoch_day_sql("listed_at", &offset);
    let count = |condition: String| format!("CAST(SUM(CASE WHEN {condition} THEN 1 ELSE 0 END) AS BIGINT)");
    let sql = format!(
        "SELECT {epoch_day} AS epoch_day, channel, COUNT(*) AS total, \
         {} AS delivered_count, {} AS read_count, {} AS failed_count \
         FROM chat_outbound{} GROUP BY epoch_day, channel ORDER BY epoch_day, channel",
        count(counts_as_delivered_sql()),
        count(counts_as_read_sql()),
        count(counts_as_failed_sql()),
        conditions.where_clause()
    );
    let rows = conditions.bind_to(sqlx::query(&sql)).fetch_all(database.pool()).await?;
    rows.iter()
        .map(|row| {
            Ok(RatesCell {
                epoch_day: row.try_get("epoch_day")?,
                channel: row.try_get("channel")?,
                total: row.try_get("total")?,
                delivered: row.try_get("delivered_count")?,
                read: row.try_get("read_count")?,
                failed: row.try_get("failed_count")?,
            })
        })
        .collect()
}
