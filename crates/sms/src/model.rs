//! The rules of the sms projection: how a status code is classified, and which of several reports
//! for one message is the current one.
//!
//! Precedence (BRIEF §5): pending (`AWAITING-DLR`, `ENROUTE`, `ACCEPTD`, unknown codes) <
//! `TIMEOUT-DLR` < final (`DELIVRD`, `UNDELIV`, `EXPIRED`, `REJECTD`, `DELETED` and the provider's
//! failure codes). Among reports of equal rank the later `deliv_time` wins; remaining ties go to the
//! larger body digest, so the outcome depends only on the set of reports, never on their order.
//! Identical bodies (the same report delivered twice) keep the earliest stream sequence.

use std::cmp::Ordering;

use switchboard_proto::sms::StatusClass;

/// Failure codes beyond the standard SMPP final states, as the provider reports them.
const FAILURE_CODES: &[&str] = &[
    "UNDELIV",
    "UNDELIVERED",
    "EXPIRED",
    "REJECTD",
    "REJECTED",
    "DELETED",
    "FAILED",
    "FAIL",
    "DND",
    "NDNC",
    "NCPR",
    "BLACKLIST",
    "BLACKLISTED",
    "BLOCKED",
    "SPAM",
    "INVALID",
    "INVALID-NUM",
    "INVALIDNUM",
    "ABSENT-SUB",
    "OPTOUT",
];

/// The class of a status code as sent (case and surrounding spaces ignored).
pub fn classify(status: &str) -> StatusClass {
    let code = status.trim().to_ascii_uppercase();
    match code.as_str() {
        "DELIVRD" | "DELIVERED" => StatusClass::Delivered,
        "TIMEOUT-DLR" | "TIMEOUT" => StatusClass::Timeout,
        _ if FAILURE_CODES.contains(&code.as_str()) || code.starts_with("ERR") => StatusClass::Failed,
        _ => StatusClass::Pending,
    }
}

/// Precedence rank: pending 0 < timeout 1 < final 2.
pub fn rank(class: StatusClass) -> i64 {
    match class {
        StatusClass::Unspecified | StatusClass::Pending => 0,
        StatusClass::Timeout => 1,
        StatusClass::Delivered | StatusClass::Failed => 2,
    }
}

/// A report's place in the precedence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Precedence {
    pub rank: i64,
    /// `deliv_time` in microseconds, or `i64::MIN` when the report has none.
    pub time_key: i64,
    pub digest: String,
    pub stream_sequence: i64,
}

impl Precedence {
    /// Whether `self` should replace `current` as the message's state.
    pub fn beats(&self, current: &Precedence) -> bool {
        self.cmp_key(current) == Ordering::Greater
    }

    fn cmp_key(&self, other: &Precedence) -> Ordering {
        (self.rank, self.time_key, &self.digest)
            .cmp(&(other.rank, other.time_key, &other.digest))
            // The same body twice: the earlier delivery stands.
            .then_with(|| other.stream_sequence.cmp(&self.stream_sequence))
    }
}

/// The SQL form of [`Precedence::beats`]: `excluded` (the new report) against `table` (the stored
/// one). Kept next to the Rust rule so the two are read and changed together.
pub fn beats_sql(table: &str) -> String {
    format!(
        "((excluded.status_rank, excluded.status_time_key, excluded.digest) > \
          ({table}.status_rank, {table}.status_time_key, {table}.digest) \
          OR ((excluded.status_rank, excluded.status_time_key, excluded.digest) = \
              ({table}.status_rank, {table}.status_time_key, {table}.digest) \
              AND excluded.stream_sequence < {table}.stream_sequence))"
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn classes() {
        assert_eq!(classify("DELIVRD"), StatusClass::Delivered);
        assert_eq!(classify(" delivrd "), StatusClass::Delivered);
        assert_eq!(classify("UNDELIV"), StatusClass::Failed);
        assert_eq!(classify("EXPIRED"), StatusClass::Failed);
        assert_eq!(classify("ERR-102"), StatusClass::Failed);
        assert_eq!(classify("TIMEOUT-DLR"), StatusClass::Timeout);
        assert_eq!(classify("AWAITING-DLR"), StatusClass::Pending);
        assert_eq!(classify("ENROUTE"), StatusClass::Pending);
        assert_eq!(classify("SOMETHING-NEW"), StatusClass::Pending, "unknown codes rank lowest");
    }

    fn precedence(rank: i64, time_key: i64, digest: &str, stream_sequence: i64) -> Precedence {
        Precedence { rank, time_key, digest: digest.into(), stream_sequence }
    }

    #[test]
    fn final_beats_timeout_beats_pending_and_later_finals_win() {
        let pending_late = precedence(0, 900, "a", 1);
        let timeout = precedence(1, 100, "b", 2);
        let final_early = precedence(2, 200, "c", 3);
        let final_late = precedence(2, 300, "d", 4);
        assert!(timeout.beats(&pending_late));
        assert!(final_early.beats(&timeout));
        assert!(final_late.beats(&final_early));
        assert!(!final_early.beats(&final_late));
        let duplicate_later = precedence(2, 300, "d", 9);
        assert!(!duplicate_later.beats(&final_late), "the first delivery of a body stands");
        assert!(final_late.beats(&duplicate_later));
    }

    proptest! {
        /// Folding any order of the same reports picks the same winner.
        #[test]
        fn the_winner_does_not_depend_on_order(
            reports in proptest::collection::vec((0i64..3, 0i64..4, "[a-c]", 0i64..50), 1..12),
            seed in any::<u64>(),
        ) {
            let reports: Vec<Precedence> = reports
                .into_iter()
                .map(|(rank, time, digest, sequence)| precedence(rank, time, &digest, sequence))
                .collect();
            let fold = |items: &[Precedence]| {
                items.iter().skip(1).fold(items[0].clone(), |current, next| {
                    if next.beats(&current) { next.clone() } else { current }
                })
            };
            let mut shuffled = reports.clone();
            // A deterministic shuffle from the seed.
            let mut state = seed | 1;
            for index in (1..shuffled.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                shuffled.swap(index, (state % (index as u64 + 1)) as usize);
            }
            prop_assert_eq!(fold(&reports), fold(&shuffled));
        }
    }
}
