//! The rules of the contacts projection: which version of a contact is the current one, and how
//! names and identities are compared.
//!
//! Last writer wins (BRIEF §5): the version with the later `updated_at` is current; a version
//! without a readable `updated_at` loses to any that has one. Versions updated at the same instant
//! are ordered by body digest (the larger wins), so the outcome depends only on the set of versions,
//! never on their arrival order. Identical bodies (the same version delivered twice) keep the
//! earliest stream sequence.

use std::cmp::Ordering;

use switchboard_events::value::normalize_phone;

/// A version's place in the precedence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Precedence {
    /// `updated_at` in microseconds, or `i64::MIN` when the version has none.
    pub updated_key: i64,
    pub digest: String,
    pub stream_sequence: i64,
}

impl Precedence {
    /// Whether `self` should replace `current` as the contact's state.
    pub fn beats(&self, current: &Precedence) -> bool {
        self.cmp_key(current) == Ordering::Greater
    }

    fn cmp_key(&self, other: &Precedence) -> Ordering {
        (self.updated_key, &self.digest)
            .cmp(&(other.updated_key, &other.digest))
            // The same body twice: the earlier delivery stands.
            .then_with(|| other.stream_sequence.cmp(&self.stream_sequence))
    }
}

/// The SQL form of [`Precedence::beats`]: `excluded` (the new version) against `table` (the stored
/// one). Kept next to the Rust rule so the two are read and changed together.
pub fn beats_sql(table: &str) -> String {
    format!(
        "((excluded.updated_key, excluded.digest) > ({table}.updated_key, {table}.digest) \
          OR ((excluded.updated_key, excluded.digest) = ({table}.updated_key, {table}.digest) \
              AND excluded.stream_sequence < {table}.stream_sequence))"
    )
}

/// The form identities are stored and looked up in: phone numbers as digits (`+91 700-208 8123` =
/// `917002088123`), anything else (e-mail addresses) trimmed and lower-cased.
pub fn identity_key(identity: &str) -> String {
    normalize_phone(identity).to_lowercase()
}

/// The form names are searched in: trimmed and lower-cased, so prefixes match case-insensitively.
pub fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn precedence(updated_key: i64, digest: &str, stream_sequence: i64) -> Precedence {
        Precedence { updated_key, digest: digest.into(), stream_sequence }
    }

    #[test]
    fn the_latest_update_wins_then_the_larger_digest_then_the_first_delivery() {
        let created = precedence(100, "f", 1);
        let updated = precedence(200, "a", 2);
        let undated = precedence(i64::MIN, "z", 3);
        assert!(updated.beats(&created));
        assert!(!created.beats(&updated), "an older update never replaces a newer one");
        assert!(created.beats(&undated), "a version without updated_at loses to any dated one");
        assert!(precedence(200, "b", 9).beats(&updated), "same instant: the larger digest wins");
        let redelivered = precedence(200, "a", 7);
        assert!(!redelivered.beats(&updated), "the first delivery of a body stands");
        assert!(updated.beats(&redelivered));
    }

    #[test]
    fn identities_and_names_compare_loosely() {
        assert_eq!(identity_key(" Demo@Gmail.com "), "demo@gmail.com");
        assert_eq!(identity_key("+91 700-208 8123"), "917002088123");
        assert_eq!(name_key(" Ünal "), "ünal");
    }

    proptest! {
        /// Folding any permutation of the same versions picks the same winner.
        #[test]
        fn the_winner_does_not_depend_on_order(
            (versions, shuffled) in proptest::collection::vec((0i64..4, "[a-c]", 0i64..50), 1..12)
                .prop_flat_map(|versions| (Just(versions.clone()), Just(versions).prop_shuffle())),
        ) {
            let fold = |items: &[(i64, String, i64)]| {
                let precedences: Vec<Precedence> = items
                    .iter()
                    .map(|(updated, digest, sequence)| precedence(*updated, digest, *sequence))
                    .collect();
                precedences.iter().skip(1).fold(precedences[0].clone(), |current, next| {
                    if next.beats(&current) { next.clone() } else { current }
                })
            };
            prop_assert_eq!(fold(&versions), fold(&shuffled));
        }
    }
}
