//! Event string ↔ NATS subject mapping.
//!
//! The subject of an event is `prefix + event.replace(':', '.')`. The prefix is empty by default and
//! lets several installations share one NATS cluster (`acme.` → `acme.sms.message.status`). The
//! reverse mapping is exact: [`subject_to_event`] returns the event string [`event_to_subject`] was
//! given, for every valid event string and prefix.

use thiserror::Error;

use crate::{EventKind, Product};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SubjectError {
    #[error(
        "subject prefix {prefix:?} is not valid: it must be dot-separated tokens without spaces, `*` or `>`"
    )]
    InvalidPrefix { prefix: String },
    #[error(
        "event {event:?} is not valid: it must be non-empty `:`-separated tokens without `.`, spaces, `*` or `>`"
    )]
    InvalidEvent { event: String },
}

/// Whether `token` can be one token of a NATS subject (and of an event string).
fn is_valid_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .chars()
            .all(|character| !character.is_whitespace() && !matches!(character, '.' | '*' | '>' | ':'))
}

/// Normalises a configured prefix: empty stays empty, anything else ends with exactly one `.`.
fn normalize_prefix(prefix: &str) -> Result<String, SubjectError> {
    let trimmed = prefix.strip_suffix('.').unwrap_or(prefix);
    if trimmed.is_empty() {
        return if prefix.is_empty() {
            Ok(String::new())
        } else {
            Err(SubjectError::InvalidPrefix { prefix: prefix.to_owned() })
        };
    }
    if !trimmed.split('.').all(is_valid_token) {
        return Err(SubjectError::InvalidPrefix { prefix: prefix.to_owned() });
    }
    Ok(format!("{trimmed}."))
}

/// Maps any well-formed event string to its subject.
pub fn event_to_subject(prefix: &str, event: &str) -> Result<String, SubjectError> {
    let prefix = normalize_prefix(prefix)?;
    if !event.split(':').all(is_valid_token) {
        return Err(SubjectError::InvalidEvent { event: event.to_owned() });
    }
    Ok(format!("{prefix}{}", event.replace(':', ".")))
}

/// Maps a subject back to its event string; `None` when the subject does not carry the prefix or is
/// not a well-formed event subject.
pub fn subject_to_event(prefix: &str, subject: &str) -> Option<String> {
    let prefix = normalize_prefix(prefix).ok()?;
    let rest = subject.strip_prefix(prefix.as_str())?;
    if !rest.split('.').all(is_valid_token) {
        return None;
    }
    Some(rest.replace('.', ":"))
}

/// Every subject name Switchboard uses, for one prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    pub fn new(prefix: &str) -> Result<Subjects, SubjectError> {
        Ok(Subjects { prefix: normalize_prefix(prefix)? })
    }

    /// The normalised prefix: empty, or ending with `.`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The subject an event is published on.
    pub fn event(&self, kind: EventKind) -> String {
        format!("{}{}", self.prefix, kind.subject_suffix())
    }

    /// The event a subject carries, if it is one of the twelve.
    pub fn event_kind(&self, subject: &str) -> Option<EventKind> {
        let suffix = subject.strip_prefix(self.prefix.as_str())?;
        EventKind::ALL.into_iter().find(|kind| kind.subject_suffix() == suffix)
    }

    /// The filter for one subject root, e.g. `sms.>`.
    pub fn root_filter(&self, root: &str) -> String {
        format!("{}{root}.>", self.prefix)
    }

    /// The subjects of the main stream: every product's roots.
    pub fn stream_subjects(&self) -> Vec<String> {
        Product::ALL
            .into_iter()
            .flat_map(|product| product.subject_roots().iter())
            .map(|root| self.root_filter(root))
            .collect()
    }

    /// Where a component dead-letters a message that arrived on (or was meant for) `original`:
    /// `dlq.<component>.<original subject without prefix>`.
    pub fn dead_letter(&self, component: &str, original: &str) -> String {
        let original = original.strip_prefix(self.prefix.as_str()).unwrap_or(original);
        format!("{}dlq.{component}.{original}", self.prefix)
    }

    /// The subjects of the dead-letter stream.
    pub fn dead_letter_filter(&self) -> String {
        format!("{}dlq.>", self.prefix)
    }

    /// The core-NATS subject on which a product announces committed changes to its watchers on
    /// every replica. Not captured by any stream.
    pub fn changes(&self, product: Product) -> String {
        format!("{}switchboard.changes.{}", self.prefix, product.name())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn known_events_map_both_ways_with_and_without_prefix() {
        for prefix in ["", "acme", "acme.", "eu.acme."] {
            let subjects = Subjects::new(prefix).expect("valid prefix");
            for kind in EventKind::ALL {
                let subject = subjects.event(kind);
                assert_eq!(subjects.event_kind(&subject), Some(kind));
                assert_eq!(subject_to_event(prefix, &subject).as_deref(), Some(kind.as_str()));
                assert_eq!(event_to_subject(prefix, kind.as_str()).as_ref(), Ok(&subject));
            }
        }
        assert_eq!(Subjects::default().event(EventKind::SmsMessageStatus), "sms.message.status");
        assert_eq!(
            Subjects::new("acme").map(|subjects| subjects.event(EventKind::VmnMessageIn)),
            Ok("acme.vmn.message.in".to_owned())
        );
    }

    #[test]
    fn bad_prefixes_and_events_are_refused() {
        for prefix in [".", "a..b", "a b.", "a.*", ">", "a.>."] {
            assert!(Subjects::new(prefix).is_err(), "{prefix:?}");
        }
        for event in ["", "sms::status", "sms.message", "sms:*", "sms: x", ":sms"] {
            assert!(event_to_subject("", event).is_err(), "{event:?}");
        }
    }

    #[test]
    fn foreign_subjects_do_not_map() {
        let subjects = Subjects::new("acme").expect("valid prefix");
        assert_eq!(subjects.event_kind("sms.message.status"), None);
        assert_eq!(subjects.event_kind("acme.sms.message"), None);
        assert_eq!(subject_to_event("acme", "other.sms.message.status"), None);
    }

    #[test]
    fn stream_and_dead_letter_subjects() {
        let subjects = Subjects::new("p").expect("valid prefix");
        assert_eq!(
            subjects.stream_subjects(),
            ["p.sms.>", "p.whatsapp.>", "p.rcs.>", "p.voice.>", "p.vmn.>", "p.contacts.>"]
        );
        assert_eq!(subjects.dead_letter("sms", "p.sms.message.status"), "p.dlq.sms.sms.message.status");
        assert_eq!(subjects.dead_letter_filter(), "p.dlq.>");
        assert_eq!(subjects.changes(Product::Chat), "p.switchboard.changes.chat");
    }

    fn token() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_\\-]{1,12}"
    }

    proptest! {
        #[test]
        fn any_valid_event_round_trips(
            tokens in proptest::collection::vec(token(), 1..6),
            prefix_tokens in proptest::collection::vec(token(), 0..3),
        ) {
            let event = tokens.join(":");
            let prefix = prefix_tokens.join(".");
            let subject = event_to_subject(&prefix, &event).expect("valid event");
            prop_assert_eq!(subject_to_event(&prefix, &subject), Some(event.clone()));
            prop_assert!(!subject.contains(':'));
        }

        #[test]
        fn reverse_mapping_is_injective(
            left in proptest::collection::vec(token(), 1..4),
            right in proptest::collection::vec(token(), 1..4),
        ) {
            let left_event = left.join(":");
            let right_event = right.join(":");
            let left_subject = event_to_subject("", &left_event).expect("valid");
            let right_subject = event_to_subject("", &right_event).expect("valid");
            prop_assert_eq!(left_event == right_event, left_subject == right_subject);
        }
    }
}
