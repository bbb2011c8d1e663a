//! The rules of the sms projection: how a status code is classified, and which of several reports
//! for one message is the current one.
//!
//! Precedence (BRIEF §5): pending (`AWAITING-DLR`, `ENROUTE`, `ACCEPTD`, unknown codes) <
//! `TIMEOUT-DLR` < final (`DELIVRD`, `UNDELIV`, `EXPIRED`, `REJECTD`, `DELETED` and the provider's
//! failure codes). Among reports of equal rank the later `deliv_time` wins; remaining ties go to the
//! larger body digest, so the outcome depends only on the set of reports, never on their order.
//! Identical bodies (the same report delivered twice) keep the earliest stream sequence.

use switchboard_store::WinnerRule;

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

/// A report's place in the precedence order: keys `[status rank, deliv_time]` (microseconds,
/// `i64::MIN` when absent), then the digest
/// (`switchboard_store::Precedence`, where the rule and its property test live).
pub type Precedence = switchboard_store::Precedence<2>;

/// The columns the current-state table keeps the keys in; `WINNER.beats_sql(table)` is the
/// upsert's form of [`Precedence::beats`].
pub const WINNER: WinnerRule<2> = WinnerRule { key_columns: ["status_rank", "status_time_key"] };

#[cfg(test)]
mod tests {
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
        Precedence { keys: [rank, time_key], digest: digest.into(), stream_sequence }
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
}
