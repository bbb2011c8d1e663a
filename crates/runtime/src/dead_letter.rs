//! Dead letters: events a component could not process, kept in the dead-letter stream with why.
//!
//! A dead letter carries the original body byte for byte, the original headers, and
//! `Switchboard-Dlq-*` headers naming the reason, the component, the original subject and (for events
//! that were in the main stream) the original sequence. Its `Nats-Msg-Id` is the original's, so an
//! event dead-lettered twice (after a redelivery) is stored once.

use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;
use switchboard_events::{Subjects, headers};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Dead letters are for people to read; keep reasons short enough for a header line.
const MAX_REASON_BYTES: usize = 1024;

#[derive(Debug, Clone)]
pub struct DeadLetters {
    jetstream: jetstream::Context,
    subjects: Subjects,
    component: String,
}

/// What went wrong with one event and where it came from.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    pub original_subject: &'a str,
    pub original_sequence: Option<u64>,
    pub original_headers: Option<&'a HeaderMap>,
    pub body: Bytes,
    pub reason: &'a str,
}

impl DeadLetters {
    pub fn new(
        jetstream: jetstream::Context,
        subjects: Subjects,
        component: impl Into<String>,
    ) -> DeadLetters {
        DeadLetters { jetstream, subjects, component: component.into() }
    }

    /// Stores a dead letter and waits for the dead-letter stream's acknowledgement. Returns the
    /// dead letter's sequence in that stream.
    pub async fn store(&self, letter: DeadLetter<'_>) -> Result<u64, async_nats::Error> {
        let subject = self.subjects.dead_letter(&self.component, letter.original_subject);
        let mut header_map = letter.original_headers.cloned().unwrap_or_default();
        let reason = truncate_to_char_boundary(&single_line(letter.reason), MAX_REASON_BYTES);
        header_map.insert(headers::DLQ_REASON, reason.as_str());
        header_map.insert(headers::DLQ_COMPONENT, self.component.as_str());
        header_map.insert(headers::DLQ_ORIGINAL_SUBJECT, letter.original_subject);
        if let Some(sequence) = letter.original_sequence {
            header_map.insert(headers::DLQ_ORIGINAL_SEQUENCE, sequence.to_string().as_str());
        }
        let now = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
        header_map.insert(headers::DLQ_AT, now.as_str());
        if header_map.get(headers::MSG_ID).is_none() {
            let id = headers::message_id(letter.original_subject, &letter.body);
            header_map.insert(headers::MSG_ID, id.as_str());
        }
        let ack = self.jetstream.publish_with_headers(subject, header_map, letter.body).await?.await?;
        metrics::counter!("switchboard_dead_letters_total", "component" => self.component.clone())
            .increment(1);
        tracing::warn!(
            component = %self.component,
            original_subject = letter.original_subject,
            original_sequence = letter.original_sequence,
            dead_letter_sequence = ack.sequence,
            reason = %reason,
            "event dead-lettered"
        );
        Ok(ack.sequence)
    }
}

/// Header values cannot hold line breaks.
fn single_line(text: &str) -> String {
    text.split(['\r', '\n']).map(str::trim).filter(|part| !part.is_empty()).collect::<Vec<_>>().join(" ")
}

fn truncate_to_char_boundary(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_become_one_bounded_line() {
        assert_eq!(single_line("a\nb\r\n  c "), "a b c");
        let long = "é".repeat(1000);
        let truncated = truncate_to_char_boundary(&long, 1023);
        assert!(truncated.len() <= 1023 + '…'.len_utf8());
        assert!(truncated.ends_with('…'));
    }
}
