//! The rules of the chat projection: which channel an event belongs to, which of several status
//! events for one outbound message is the current one, when each milestone happened, and what counts
//! as delivered or read in the rates.
//!
//! Precedence (BRIEF §5): unknown statuses < `queued` = `dispatched` < `sent` < `failed` <
//! `delivered` < `read` < `deleted`. Among events of equal rank the later event `timestamp` wins;
//! remaining ties go to the larger body digest, so the outcome depends only on the set of events,
//! never on their order. Identical bodies (the same event delivered twice) keep the earliest stream
//! sequence.
//!
//! Milestones are kept apart from the current status: each is the *earliest* time any event reported
//! it, which is also order-independent (the minimum of a set).
//!
//! Every rule has its SQL twin right below it: the Rust form reduces a batch to one row per message,
//! the SQL form decides against the stored row. They must be read and changed together.

use switchboard_store::WinnerRule;

use switchboard_events::EventKind;

pub const WHATSAPP: &str = "whatsapp";
pub const RCS: &str = "rcs";
/// The channels this service keeps, as the provider names them.
pub const CHANNELS: &[&str] = &[WHATSAPP, RCS];

/// The channel of a chat event; the subject it arrived on decides, not the payload's `channel`.
pub fn channel_of(kind: EventKind) -> Option<&'static str> {
    match kind {
        EventKind::WhatsappMessageStatus
        | EventKind::WhatsappMessageIn
        | EventKind::WhatsappUnsubscription => Some(WHATSAPP),
        EventKind::RcsMessageStatus | EventKind::RcsMessageIn | EventKind::RcsUnsubscription => Some(RCS),
        _ => None,
    }
}

/// Status ranks, lowest first. Unknown statuses (including the documentation's literal
/// `sent|delivered|read|failed|deleted`) rank lowest.
pub const RANK_UNKNOWN: i64 = 0;
pub const RANK_QUEUED: i64 = 1;
pub const RANK_SENT: i64 = 2;
pub const RANK_FAILED: i64 = 3;
pub const RANK_DELIVERED: i64 = 4;
pub const RANK_READ: i64 = 5;
pub const RANK_DELETED: i64 = 6;

/// The precedence rank of a status as sent (case and surrounding spaces ignored).
pub fn status_rank(status: &str) -> i64 {
    match status.trim().to_ascii_lowercase().as_str() {
        "queued" | "dispatched" => RANK_QUEUED,
        "sent" => RANK_SENT,
        "failed" => RANK_FAILED,
        "delivered" => RANK_DELIVERED,
        "read" => RANK_READ,
        "deleted" => RANK_DELETED,
        _ => RANK_UNKNOWN,
    }
}

/// A status event's place in the precedence order: keys `[status rank, timestamp]` (microseconds,
/// `i64::MIN` when absent), then the digest
/// (`switchboard_store::Precedence`, where the rule and its property test live).
pub type Precedence = switchboard_store::Precedence<2>;

/// The columns the current-state table keeps the keys in; `WINNER.beats_sql(table)` is the
/// upsert's form of [`Precedence::beats`].
pub const WINNER: WinnerRule<2> = WinnerRule { key_columns: ["status_rank", "status_time_key"] };

/// The earliest time each milestone of an outbound message was reported (microseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Milestones {
    pub processed_at: Option<i64>,
    pub sent_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub read_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub deleted_at: Option<i64>,
}

/// The milestone columns, in the order of [`Milestones::values`].
pub const MILESTONE_COLUMNS: [&str; 6] =
    ["processed_at", "sent_at", "delivered_at", "read_at", "failed_at", "deleted_at"];

/// The times one status event carries, as [`Milestones::of_event`] reads them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventTimes {
    pub timestamp: Option<i64>,
    pub processed_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub read_at: Option<i64>,
}

impl Milestones {
    /// The milestones one event reports: its `processed_at`, `delivered_at` and `read_at` fields
    /// whatever its status, and its `timestamp` for the milestone its status names.
    pub fn of_event(rank: i64, times: EventTimes) -> Milestones {
        let at_status = |wanted: i64| if rank == wanted { times.timestamp } else { None };
        Milestones {
            processed_at: times.processed_at,
            sent_at: at_status(RANK_SENT),
            delivered_at: earliest(times.delivered_at, at_status(RANK_DELIVERED)),
            read_at: earliest(times.read_at, at_status(RANK_READ)),
            failed_at: at_status(RANK_FAILED),
            deleted_at: at_status(RANK_DELETED),
        }
    }

    /// Keeps, for each milestone, the earlier of the two.
    pub fn merge(&mut self, other: &Milestones) {
        self.processed_at = earliest(self.processed_at, other.processed_at);
        self.sent_at = earliest(self.sent_at, other.sent_at);
        self.delivered_at = earliest(self.delivered_at, other.delivered_at);
        self.read_at = earliest(self.read_at, other.read_at);
        self.failed_at = earliest(self.failed_at, other.failed_at);
        self.deleted_at = earliest(self.deleted_at, other.deleted_at);
    }

    /// The values in [`MILESTONE_COLUMNS`] order.
    pub fn values(&self) -> [Option<i64>; 6] {
        [self.processed_at, self.sent_at, self.delivered_at, self.read_at, self.failed_at, self.deleted_at]
    }
}

/// The earlier of two optional times; an absent time never wins over a present one.
pub fn earliest(left: Option<i64>, right: Option<i64>) -> Option<i64> {
    match (left, right) {
        (Some(left), Some(right)) => Some(left.min(right)),
        (left, None) => left,
        (None, right) => right,
    }
}

/// When an outbound message belongs in a conversation: the earliest time one of its events reports
/// (its timestamp or any milestone field), else when the event was received. Stored as the minimum
/// over all events (the SQL twin is the `earliest` columns of `switchboard_store::current_state_update`).
pub fn conversation_time(times: EventTimes, received_at: i64) -> i64 {
    [times.timestamp, times.processed_at, times.delivered_at, times.read_at]
        .into_iter()
        .fold(None, earliest)
        .unwrap_or(received_at)
}

/// Whether a message counts as delivered in the rates: delivered or read, or deleted after it was
/// delivered or read.
pub fn counts_as_delivered(rank: i64, milestones: &Milestones) -> bool {
    rank == RANK_DELIVERED
        || rank == RANK_READ
        || (rank == RANK_DELETED && (milestones.delivered_at.is_some() || milestones.read_at.is_some()))
}

/// The SQL form of [`counts_as_delivered`].
pub fn counts_as_delivered_sql() -> String {
    format!(
        "(status_rank IN ({RANK_DELIVERED}, {RANK_READ}) OR (status_rank = {RANK_DELETED} \
         AND (delivered_at IS NOT NULL OR read_at IS NOT NULL)))"
    )
}

/// Whether a message counts as read in the rates: read, or deleted after it was read.
pub fn counts_as_read(rank: i64, milestones: &Milestones) -> bool {
    rank == RANK_READ || (rank == RANK_DELETED && milestones.read_at.is_some())
}

/// The SQL form of [`counts_as_read`].
pub fn counts_as_read_sql() -> String {
    format!("(status_rank = {RANK_READ} OR (status_rank = {RANK_DELETED} AND read_at IS NOT NULL))")
}

/// Whether a message counts as failed in the rates.
pub fn counts_as_failed(rank: i64) -> bool {
    rank == RANK_FAILED
}

/// The SQL form of [`counts_as_failed`].
pub fn counts_as_failed_sql() -> String {
    format!("(status_rank = {RANK_FAILED})")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ranks_follow_the_documented_order() {
        let order = ["whatever", "queued", "sent", "failed", "delivered", "read", "deleted"];
        let ranks: Vec<i64> = order.iter().map(|status| status_rank(status)).collect();
        assert!(ranks.windows(2).all(|pair| pair[0] < pair[1]), "{ranks:?}");
        assert_eq!(status_rank("dispatched"), status_rank("queued"));
        assert_eq!(status_rank(" READ "), RANK_READ);
        assert_eq!(status_rank("sent|delivered|read|failed|deleted"), RANK_UNKNOWN);
    }

    fn precedence(rank: i64, time_key: i64, digest: &str, stream_sequence: i64) -> Precedence {
        Precedence { keys: [rank, time_key], digest: digest.into(), stream_sequence }
    }

    #[test]
    fn higher_ranks_win_then_later_timestamps_then_digests() {
        let read_early = precedence(RANK_READ, 100, "a", 5);
        let delivered_late = precedence(RANK_DELIVERED, 900, "b", 1);
        assert!(read_early.beats(&delivered_late));
        let read_late = precedence(RANK_READ, 200, "a", 6);
        assert!(read_late.beats(&read_early));
        let read_late_other_body = precedence(RANK_READ, 200, "b", 7);
        assert!(read_late_other_body.beats(&read_late));
        let duplicate_later = precedence(RANK_READ, 200, "b", 9);
        assert!(!duplicate_later.beats(&read_late_other_body), "the first delivery of a body stands");
    }

    #[test]
    fn milestones_come_from_fields_and_from_the_status_timestamp() {
        let times =
            EventTimes { timestamp: Some(50), processed_at: Some(10), delivered_at: Some(70), read_at: None };
        let delivered = Milestones::of_event(RANK_DELIVERED, times);
        assert_eq!(delivered.processed_at, Some(10));
        assert_eq!(delivered.delivered_at, Some(50), "the earlier of the field and the status time");
        assert_eq!((delivered.sent_at, delivered.read_at), (None, None));
        let sent = Milestones::of_event(RANK_SENT, times);
        assert_eq!(sent.sent_at, Some(50));
        assert_eq!(sent.delivered_at, Some(70));
        let unknown = Milestones::of_event(RANK_UNKNOWN, times);
        assert_eq!((unknown.sent_at, unknown.failed_at, unknown.deleted_at), (None, None, None));
    }

    #[test]
    fn rate_rules() {
        let none = Milestones::default();
        let delivered = Milestones { delivered_at: Some(1), ..Milestones::default() };
        let read = Milestones { read_at: Some(1), ..Milestones::default() };
        assert!(counts_as_delivered(RANK_DELIVERED, &none));
        assert!(counts_as_delivered(RANK_READ, &none));
        assert!(counts_as_delivered(RANK_DELETED, &delivered));
        assert!(!counts_as_delivered(RANK_DELETED, &none), "deleted before delivery");
        assert!(!counts_as_delivered(RANK_SENT, &delivered));
        assert!(counts_as_read(RANK_DELETED, &read));
        assert!(!counts_as_read(RANK_DELIVERED, &read), "a delivered status is not read");
        assert!(counts_as_failed(RANK_FAILED));
    }

    fn shuffle<T>(items: &mut [T], seed: u64) {
        let mut state = seed | 1;
        for index in (1..items.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            items.swap(index, (state % (index as u64 + 1)) as usize);
        }
    }

    proptest! {
        /// Folding any order of the same events picks the same winner and the same milestones.
        #[test]
        fn the_state_does_not_depend_on_order(
            events in proptest::collection::vec(
                (0i64..7, proptest::option::of(0i64..4), "[a-c]", 0i64..50, proptest::option::of(0i64..4)),
                1..12,
            ),
            seed in any::<u64>(),
        ) {
            let events: Vec<(Precedence, Milestones)> = events
                .into_iter()
                .map(|(rank, timestamp, digest, sequence, read_at)| {
                    let times = EventTimes { timestamp, read_at, ..EventTimes::default() };
                    (
                        precedence(rank, timestamp.unwrap_or(i64::MIN), &digest, sequence),
                        Milestones::of_event(rank, times),
                    )
                })
                .collect();
            let fold = |items: &[(Precedence, Milestones)]| {
                items.iter().skip(1).fold(items[0].clone(), |(winner, mut milestones), (next, reported)| {
                    milestones.merge(reported);
                    if next.beats(&winner) { (next.clone(), milestones) } else { (winner, milestones) }
                })
            };
            let mut shuffled = events.clone();
            shuffle(&mut shuffled, seed);
            prop_assert_eq!(fold(&events), fold(&shuffled));
        }
    }
}
