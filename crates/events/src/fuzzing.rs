//! The bodies of the fuzz targets in `fuzz/` (cargo-fuzz, nightly), kept here so the same checks run
//! on stable too: `tests/fuzz_seeds.rs` feeds them the committed seed corpus and random inputs on
//! every test run. Each function panics when an invariant breaks, which is what a fuzzer reports.

use serde::de::IgnoredAny;

use crate::tolerant::{self, DEFAULT_MAX_DEPTH};
use crate::{EventKind, body_digest, decode};

/// The tolerant JSON reader: never panics, removes only commas, leaves strict JSON untouched, is
/// idempotent, and keeps to the depth limit.
pub fn tolerant_json(data: &[u8]) {
    for max_depth in [1, 4, DEFAULT_MAX_DEPTH] {
        let Ok(normalized) = tolerant::normalize(data, max_depth) else {
            continue;
        };
        assert!(normalized.depth <= max_depth, "depth {} beyond the limit {max_depth}", normalized.depth);
        assert_eq!(
            data.len() - normalized.body.len(),
            normalized.removed_trailing_commas,
            "only the counted commas are removed"
        );
        assert!(removes_only_commas(data, &normalized.body), "something other than a comma was removed");
        let again = tolerant::normalize(&normalized.body, max_depth).expect("a normalised body normalises");
        assert!(!again.was_changed(), "normalising twice changes the body");
        let strict = serde_json::from_slice::<IgnoredAny>(data).is_ok();
        if strict {
            assert!(!normalized.was_changed(), "strict JSON was changed");
        }
        let _ = tolerant::from_normalized::<serde_json::Value>(&normalized.body);
    }
    let _ = tolerant::parse::<serde_json::Value>(data, DEFAULT_MAX_DEPTH);
}

/// Every event decoder: decoding arbitrary bytes as each of the twelve events never panics, gives
/// the same answer twice, and a body that decodes is one the tolerant reader accepts.
pub fn decode_every_event(data: &[u8]) {
    let _ = body_digest(data);
    for kind in EventKind::ALL {
        let first = decode(kind, data);
        let second = decode(kind, data);
        assert_eq!(first, second, "decoding {} is not deterministic", kind.as_str());
        if first.is_ok() {
            assert!(
                tolerant::parse::<serde_json::Value>(data, DEFAULT_MAX_DEPTH).is_ok(),
                "{} decoded a body the tolerant reader refuses",
                kind.as_str()
            );
        }
    }
}

/// Whether `after` is `before` with some commas taken out (and nothing else changed).
fn removes_only_commas(before: &[u8], after: &[u8]) -> bool {
    let mut remaining = after.iter().peekable();
    for byte in before {
        match remaining.peek() {
            Some(next) if *next == byte => {
                remaining.next();
            }
            _ if *byte == b',' => {}
            _ => return false,
        }
    }
    remaining.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_only_commas_is_recognised() {
        assert!(removes_only_commas(b"[1,]", b"[1]"));
        assert!(removes_only_commas(b"[1]", b"[1]"));
        assert!(!removes_only_commas(b"[1]", b"[]"));
        assert!(!removes_only_commas(b"[1,]", b"[1,]x"));
    }
}
