//! The body of the gateway's fuzz target in `fuzz/` (cargo-fuzz, nightly), kept here so the same
//! checks run on stable: `tests/fuzz_seeds.rs` feeds it the committed seed corpus and random inputs
//! on every test run. It panics when an invariant breaks, which is what a fuzzer reports.

use axum::http::{HeaderMap, HeaderValue, Method, header};
use bytes::Bytes;
use serde::de::IgnoredAny;
use switchboard_events::EventKind;
use switchboard_events::tolerant::{self, DEFAULT_MAX_DEPTH};

use crate::ingest::{Limits, prepare};

/// Body normalisation: whatever the path, the content type and the body, [`prepare`] never panics;
/// what it accepts is a strict JSON object for the path's event, byte for byte the body as received
/// unless trailing commas were removed (and then exactly the tolerant reader's output); what it
/// refuses is refused with a 4xx, never a 2xx or a 5xx.
pub fn body_normalisation(data: &[u8]) {
    let limits = Limits {
        max_body_bytes: 1 << 20,
        max_json_depth: DEFAULT_MAX_DEPTH,
        max_header_bytes: 16 * 1024,
        retry_after: std::time::Duration::from_secs(1),
    };
    let raw = Bytes::copy_from_slice(data);
    let mut paths: Vec<Option<&str>> = vec![None, Some("unknown:event"), Some("")];
    for kind in EventKind::ALL {
        paths.push(Some(kind.as_str()));
        paths.push(Some(kind.subject_suffix()));
    }
    let content_types =
        [None, Some("application/json"), Some("application/x-www-form-urlencoded"), Some("image/png")];
    for content_type in content_types {
        let mut headers = HeaderMap::new();
        if let Some(content_type) = content_type {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        for path in &paths {
            match prepare(&limits, &Method::POST, *path, &headers, &raw) {
                Ok(outgoing) => {
                    // JSON by the grammar, an object. Not necessarily representable: a number such
                    // as 1e999999 is valid JSON that serde_json's `Value` refuses; the gateway stores
                    // it and a service dead-letters it with the reason (seed `huge-exponent`).
                    let grammatical = serde_json::from_slice::<IgnoredAny>(&outgoing.body).is_ok();
                    let object = outgoing.body.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{');
                    assert!(grammatical && object, "published bytes that are not a JSON object");
                    if let Some(name) = path {
                        assert_eq!(
                            EventKind::parse(name),
                            Some(outgoing.kind),
                            "published under another event"
                        );
                    }
                    match outgoing.normalized {
                        None => assert_eq!(
                            outgoing.body, raw,
                            "an unchanged body must be published byte for byte"
                        ),
                        // A form body becomes a JSON object of its fields: checked above.
                        Some("form") => {}
                        Some(_) => {
                            let normalized =
                                tolerant::normalize(&raw, limits.max_json_depth).expect("it was normalised");
                            assert_eq!(
                                &outgoing.body[..],
                                &normalized.body[..],
                                "published other bytes than the normalised body"
                            );
                        }
                    }
                }
                Err(rejection) => {
                    let status = rejection.refusal.status();
                    assert!(status.is_client_error(), "refused with {status}");
                }
            }
        }
    }
}
