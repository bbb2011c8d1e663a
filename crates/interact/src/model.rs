//! The rules of the interact projection: which words of a message are its keywords, and which of
//! several deliveries of one message id is kept.
//!
//! Keywords (the provider's `keyword1`/`keyword2`): the first and second words of the text,
//! case-folded. Words are separated by whitespace; punctuation around a word is not part of it
//! (`"Join!"` is `join`), and a "word" that is only punctuation is skipped.
//!
//! Deliveries: a message id names one message, so a re-sent id (a provider retry outside
//! JetStream's duplicate window) keeps the earliest delivery by stream sequence, whatever order the
//! deliveries are applied in (`switchboard_store::Table::write_earliest`).

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

#[cfg(test)]
mod tests {
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
}
