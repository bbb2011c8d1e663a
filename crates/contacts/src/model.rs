//! The rules of the contacts projection: which version of a contact is the current one, and how
//! names and identities are compared.
//!
//! Last writer wins (BRIEF §5): the version with the later `updated_at` is current; a version
//! without a readable `updated_at` loses to any that has one. Versions updated at the same instant
//! are ordered by body digest (the larger wins), so the outcome depends only on the set of versions,
//! never on their arrival order. Identical bodies (the same version delivered twice) keep the
//! earliest stream sequence.

use switchboard_store::WinnerRule;

use switchboard_events::value::normalize_phone;

/// A version's place in the precedence order: keys `[updated_at in microseconds, or i64::MIN]`, then the digest
/// (`switchboard_store::Precedence`, where the rule and its property test live).
pub type Precedence = switchboard_store::Precedence<1>;

/// The columns the current-state table keeps the keys in; `WINNER.beats_sql(table)` is the
/// upsert's form of [`Precedence::beats`].
pub const WINNER: WinnerRule<1> = WinnerRule { key_columns: ["updated_key"] };

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
    use super::*;

    fn precedence(updated_key: i64, digest: &str, stream_sequence: i64) -> Precedence {
        Precedence { keys: [updated_key], digest: digest.into(), stream_sequence }
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
}
