//! "Which event wins" for a key (a message, a call, a contact): the rule every service's current
//! state follows, written once with its SQL twin.
//!
//! A candidate carries ordering keys (a status rank, a time; `i64::MIN` when unknown), its body's
//! digest and its stream sequence. The larger keys win, then the larger digest, so the outcome
//! depends only on the set of events, never on their order; the same body delivered twice keeps its
//! earliest delivery. [`WinnerRule::beats_sql`] says the same in SQL, for the upsert that compares a
//! proposed row (`excluded`) with the stored one.

use std::cmp::Ordering;

/// An event's place in a service's precedence order: `N` ordering keys, then the digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Precedence<const N: usize> {
    /// The ordering keys, most significant first (e.g. status rank, then status time).
    pub keys: [i64; N],
    pub digest: String,
    pub stream_sequence: i64,
}

impl<const N: usize> Precedence<N> {
    /// Whether `self` should replace `current` as the key's state.
    pub fn beats(&self, current: &Precedence<N>) -> bool {
        self.order(current) == Ordering::Greater
    }

    fn order(&self, other: &Precedence<N>) -> Ordering {
        (self.keys, &self.digest)
            .cmp(&(other.keys, &other.digest))
            // The same body twice: the earlier delivery stands.
            .then_with(|| other.stream_sequence.cmp(&self.stream_sequence))
    }
}

/// The columns a service's current-state table keeps [`Precedence::keys`] in, in order; with
/// `digest` and `stream_sequence` they decide an upsert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WinnerRule<const N: usize> {
    pub key_columns: [&'static str; N],
}

impl<const N: usize> WinnerRule<N> {
    /// The SQL form of [`Precedence::beats`]: `excluded` (the proposed row) against `table` (the
    /// stored one), as row-value comparisons (SQLite ≥ 3.15 and PostgreSQL).
    pub fn beats_sql(&self, table: &str) -> String {
        let tuple = |side: &str| {
            let columns: Vec<String> =
                self.key_columns.iter().chain(&["digest"]).map(|column| format!("{side}.{column}")).collect();
            format!("({})", columns.join(", "))
        };
        let (proposed, stored) = (tuple("excluded"), tuple(table));
        format!(
            "({proposed} > {stored} OR ({proposed} = {stored} AND excluded.stream_sequence < {table}.stream_sequence))"
        )
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn precedence(rank: i64, time: i64, digest: &str, stream_sequence: i64) -> Precedence<2> {
        Precedence { keys: [rank, time], digest: digest.into(), stream_sequence }
    }

    #[test]
    fn larger_keys_then_larger_digests_win_and_a_repeat_keeps_its_first_delivery() {
        let pending_late = precedence(0, 900, "a", 1);
        let final_early = precedence(2, 200, "c", 3);
        let final_late = precedence(2, 300, "d", 4);
        assert!(final_early.beats(&pending_late));
        assert!(final_late.beats(&final_early) && !final_early.beats(&final_late));
        assert!(precedence(2, 300, "e", 2).beats(&final_late), "equal keys: the larger digest");
        let unknown_time = precedence(2, i64::MIN, "z", 5);
        assert!(final_early.beats(&unknown_time), "an unknown time ranks below every known one");
        let repeat = precedence(2, 300, "d", 9);
        assert!(!repeat.beats(&final_late) && final_late.beats(&repeat));
    }

    #[test]
    fn the_sql_twin_names_the_columns_in_order() {
        let rule = WinnerRule { key_columns: ["status_rank", "status_time_key"] };
        assert_eq!(
            rule.beats_sql("sms_messages"),
            "((excluded.status_rank, excluded.status_time_key, excluded.digest) > \
             (sms_messages.status_rank, sms_messages.status_time_key, sms_messages.digest) OR \
             ((excluded.status_rank, excluded.status_time_key, excluded.digest) = \
             (sms_messages.status_rank, sms_messages.status_time_key, sms_messages.digest) AND \
             excluded.stream_sequence < sms_messages.stream_sequence))"
        );
        let one = WinnerRule { key_columns: ["end_time_key"] };
        assert!(one.beats_sql("voice_calls").starts_with("((excluded.end_time_key, excluded.digest) > "));
    }

    /// The SQL twin decides as the Rust rule does, on SQLite, for every pair of candidates.
    #[tokio::test]
    async fn the_sql_twin_agrees_with_the_rule() {
        use sqlx::Connection as _;
        let mut connection = sqlx::SqliteConnection::connect("sqlite::memory:").await.expect("sqlite");
        sqlx::query("CREATE TABLE t (id TEXT PRIMARY KEY, rank INTEGER, time INTEGER, digest TEXT, stream_sequence INTEGER)")
            .execute(&mut connection)
            .await
            .expect("table");
        let rule = WinnerRule { key_columns: ["rank", "time"] };
        let upsert = format!(
            "INSERT INTO t VALUES ('k', ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET rank = excluded.rank, \
             time = excluded.time, digest = excluded.digest, stream_sequence = excluded.stream_sequence \
             WHERE {}",
            rule.beats_sql("t")
        );
        let mut candidates = Vec::new();
        for rank in [0, 2] {
            for time in [i64::MIN, 100, 300] {
                for digest in ["a", "b"] {
                    for sequence in [1, 7] {
                        candidates.push(precedence(rank, time, digest, sequence));
                    }
                }
            }
        }
        for stored in &candidates {
            for proposed in &candidates {
                sqlx::query("DELETE FROM t").execute(&mut connection).await.expect("delete");
                for row in [stored, proposed] {
                    sqlx::query(&upsert)
                        .bind(row.keys[0])
                        .bind(row.keys[1])
                        .bind(&row.digest)
                        .bind(row.stream_sequence)
                        .execute(&mut connection)
                        .await
                        .expect("upsert");
                }
                let (digest, sequence): (String, i64) =
                    sqlx::query_as("SELECT digest, stream_sequence FROM t")
                        .fetch_one(&mut connection)
                        .await
                        .expect("row");
                let winner = if proposed.beats(stored) { proposed } else { stored };
                assert_eq!(
                    (digest.as_str(), sequence),
                    (winner.digest.as_str(), winner.stream_sequence),
                    "{stored:?} then {proposed:?}"
                );
            }
        }
    }

    proptest! {
        /// Folding any order of the same candidates picks the same winner.
        #[test]
        fn the_winner_does_not_depend_on_order(
            candidates in proptest::collection::vec((0i64..3, 0i64..4, "[a-c]", 0i64..50), 1..12),
            seed in any::<u64>(),
        ) {
            let candidates: Vec<Precedence<2>> = candidates
                .into_iter()
                .map(|(rank, time, digest, sequence)| {
                    precedence(rank, if time == 0 { i64::MIN } else { time }, &digest, sequence)
                })
                .collect();
            let fold = |items: &[Precedence<2>]| {
                items.iter().skip(1).fold(items[0].clone(), |current, next| {
                    if next.beats(&current) { next.clone() } else { current }
                })
            };
            let mut shuffled = candidates.clone();
            // A deterministic shuffle from the seed.
            let mut state = seed | 1;
            for index in (1..shuffled.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                shuffled.swap(index, (state % (index as u64 + 1)) as usize);
            }
            prop_assert_eq!(fold(&candidates), fold(&shuffled));
        }
    }
}
