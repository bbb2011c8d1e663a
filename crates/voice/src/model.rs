//! The rules of the voice projection: which of several call records for one `mid` is the current
//! one, and which calls count as answered.
//!
//! Precedence (BRIEF §5): one record per `mid`; a repeated record replaces the stored one only when
//! its `end_at` is not older. Records with equal `end_at` (or none) are ordered by body digest, so the
//! outcome depends only on the set of records, never on their order. Identical bodies (the same
//! record delivered twice) keep the earliest stream sequence. A record without a readable `end_at`
//! ranks below every record that has one.

use switchboard_store::WinnerRule;

/// Statuses that mean the call was answered (compared case-insensitively).
const ANSWERED_STATUSES: &[&str] = &["ANSWER", "ANSWERED", "COMPLETED"];

/// Whether a status, as sent, means the call was answered.
pub fn is_answered(status: &str) -> bool {
    let code = status.trim().to_ascii_uppercase();
    ANSWERED_STATUSES.contains(&code.as_str())
}

/// A record's place in the precedence order: keys `[end_at in microseconds, or i64::MIN]`, then the digest
/// (`switchboard_store::Precedence`, where the rule and its property test live).
pub type Precedence = switchboard_store::Precedence<1>;

/// The columns the current-state table keeps the keys in; `WINNER.beats_sql(table)` is the
/// upsert's form of [`Precedence::beats`].
pub const WINNER: WinnerRule<1> = WinnerRule { key_columns: ["end_time_key"] };

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answered_statuses() {
        assert!(is_answered("ANSWER"));
        assert!(is_answered(" answered "));
        assert!(is_answered("Completed"));
        assert!(!is_answered("RECEIVED"));
        assert!(!is_answered("NOANSWER"));
        assert!(!is_answered("BUSY"));
        assert!(!is_answered(""));
    }

    fn precedence(end_time_key: i64, digest: &str, stream_sequence: i64) -> Precedence {
        Precedence { keys: [end_time_key], digest: digest.into(), stream_sequence }
    }

    #[test]
    fn a_later_end_replaces_an_older_one_never_the_reverse() {
        let early = precedence(100, "z", 1);
        let late = precedence(200, "a", 2);
        assert!(late.beats(&early));
        assert!(!early.beats(&late), "an older end_at never replaces a newer one");
        let no_end = precedence(i64::MIN, "zz", 3);
        assert!(early.beats(&no_end), "a record with an end time beats one without");
        assert!(!no_end.beats(&early));
        let same_end_larger_digest = precedence(200, "b", 0);
        assert!(same_end_larger_digest.beats(&late), "equal end times: the larger digest wins");
        let duplicate_later = precedence(200, "a", 9);
        assert!(!duplicate_later.beats(&late), "the first delivery of a body stands");
        assert!(late.beats(&duplicate_later));
        assert!(!late.beats(&late), "a record never beats itself");
    }
}
