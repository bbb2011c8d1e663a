//! The rules of the voice projection: which of several call records for one `mid` is the current
//! one, and which calls count as answered.
//!
//! Precedence (BRIEF §5): one record per `mid`; a repeated record replaces the stored one only when
//! its `end_at` is not older. Records with equal `end_at` (or none) are ordered by body digest, so the
//! outcome depends only on the set of records, never on their order. Identical bodies (the same
//! record delivered twice) keep the earliest stream sequence. A record without a readable `end_at`
//! ranks below every record that has one.

use std::cmp::Ordering;

/// Statuses that mean the call was answered (compared case-insensitively).
const ANSWERED_STATUSES: &[&str] = &["ANSWER", "ANSWERED", "COMPLETED"];

/// Whether a status, as sent, means the call was answered.
pub fn is_answered(status: &str) -> bool {
    let code = status.trim().to_ascii_uppercase();
    ANSWERED_STATUSES.contains(&code.as_str())
}

/// A record's place in the precedence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Precedence {
    /// `end_at` in microseconds, or `i64::MIN` when the record has none.
    pub end_time_key: i64,
    pub digest: String,
    pub stream_sequence: i64,
}

impl Precedence {
    /// Whether `self` should replace `current` as the call's record.
    pub fn beats(&self, current: &Precedence) -> bool {
        self.cmp_key(current) == Ordering::Greater
    }

    fn cmp_key(&self, other: &Precedence) -> Ordering {
        (self.end_time_key, &self.digest)
            .cmp(&(other.end_time_key, &other.digest))
            // The same body twice: the earlier delivery stands.
            .then_with(|| other.stream_sequence.cmp(&self.stream_sequence))
    }
}

/// The SQL form of [`Precedence::beats`]: `excluded` (the new record) against `table` (the stored
/// one). Kept next to the Rust rule so the two are read and changed together.
pub fn beats_sql(table: &str) -> String {
    format!(
        "((excluded.end_time_key, excluded.digest) > ({table}.end_time_key, {table}.digest) \
          OR ((excluded.end_time_key, excluded.digest) = ({table}.end_time_key, {table}.digest) \
              AND excluded.stream_sequence < {table}.stream_sequence))"
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

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
        Precedence { end_time_key, digest: digest.into(), stream_sequence }
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

    proptest! {
        /// Folding any order of the same records picks the same winner.
        #[test]
        fn the_winner_does_not_depend_on_order(
            records in proptest::collection::vec((0i64..4, "[a-c]", 0i64..50), 1..12),
            seed in any::<u64>(),
        ) {
            let records: Vec<Precedence> = records
                .into_iter()
                .map(|(end, digest, sequence)| precedence(if end == 0 { i64::MIN } else { end }, &digest, sequence))
                .collect();
            let fold = |items: &[Precedence]| {
                items.iter().skip(1).fold(items[0].clone(), |current, next| {
                    if next.beats(&current) { next.clone() } else { current }
                })
            };
            let mut shuffled = records.clone();
            // A deterministic shuffle from the seed.
            let mut state = seed | 1;
            for index in (1..shuffled.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                shuffled.swap(index, (state % (index as u64 + 1)) as usize);
            }
            prop_assert_eq!(fold(&records), fold(&shuffled));
        }
    }
}
