//! The rules of the interact projection: which words of a message are its keywords, and which of
//! several deliveries of one message id is kept.
//!
//! Keywords (the provider's `keyword1`/`keyword2`): the first and second words of the text,
//! case-folded. Words are separated by whitespace; punctuation around a word is not part of it
//! (`"Join!"` is `join`), and a "word" that is only punctuation is skipped.
//!
//! Deliveries: a message id names one message, so a re-sent id (a provider retry outside
//! JetStream's duplicate window) keeps the earliest delivery by stream sequence, whatever order the
//! deliveries are applied in.

/// One word as a keyword: punctuation around it removed, case-folded. Also applied to keyword
/// filters, so `JOIN`, `join` and `Join!` all find the messages whose keyword1 is `join`.
pub fn fold_keyword(word: &str) -> String {
    word.trim_matches(|character: char| !character.is_alphanumeric()).to_lowercase()
}

/// The first and second keywords of `text` (empty when the text has fewer words).
pub fn keywords(text: &str) -> (String, String) {
    let mut words = text.split_whitespace().map(fold_keyword).filter(|word| !word.is_empty());
    let first = words.next().unwrap_or_default();
    let second = words.next().unwrap_or_default();
    (first, second)
}

/// Whether a delivery at `candidate_sequence` replaces the stored one at `stored_sequence`: the
/// earliest delivery of an id stands.
pub fn replaces(candidate_sequence: i64, stored_sequence: i64) -> bool {
    candidate_sequence < stored_sequence
}

/// The SQL form of [`replaces`]: `excluded` (the new delivery) against `table` (the stored one).
/// Kept next to the Rust rule so the two are read and changed together.
pub fn replaces_sql(table: &str) -> String {
    format!("excluded.stream_sequence < {table}.stream_sequence")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn keywords_are_the_first_two_words_case_folded() {
        assert_eq!(keywords("JOIN Offers now"), ("join".into(), "offers".into()));
        assert_eq!(keywords("  stop\tALL "), ("stop".into(), "all".into()));
        assert_eq!(keywords("Join! please."), ("join".into(), "please".into()));
        assert_eq!(keywords("-- HELP"), ("help".into(), String::new()), "punctuation alone is no word");
        assert_eq!(keywords("ÉTÉ Ünïcode"), ("été".into(), "ünïcode".into()));
        assert_eq!(keywords(""), (String::new(), String::new()));
        assert_eq!(fold_keyword(" JoIn "), "join");
    }

    proptest! {
        /// Folding any permutation of the same deliveries keeps the same one: the earliest.
        #[test]
        fn the_kept_delivery_does_not_depend_on_order(
            (sequences, shuffled) in proptest::collection::vec(1i64..1000, 1..12)
                .prop_flat_map(|sequences| (Just(sequences.clone()), Just(sequences).prop_shuffle())),
        ) {
            let fold = |items: &[i64]| {
                items.iter().skip(1).fold(items[0], |kept, next| if replaces(*next, kept) { *next } else { kept })
            };
            prop_assert_eq!(fold(&sequences), fold(&shuffled));
            prop_assert_eq!(Some(fold(&sequences)), sequences.iter().copied().min());
        }
    }
}
