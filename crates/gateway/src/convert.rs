//! Deliveries that are not JSON: form bodies and query strings become a JSON object.
//!
//! Rules (documented in `docs/gateway.md`): every value stays a string, exactly as decoded (`+` and
//! `%XX` decoded); a key given once maps to its string, a key given several times to an array of its
//! strings in the order received; an empty value is an empty string. Keys are in the order JSON
//! objects are written by `serde_json` (sorted), so the same delivery always gives the same bytes
//! and JetStream's de-duplication still recognises a retry.

use serde_json::{Map, Value};

/// The JSON object for `application/x-www-form-urlencoded` bytes (a body or a query string),
/// without the parameters named in `skip` (those that carry tokens). `None` when nothing is left.
pub fn form_to_json(encoded: &[u8], skip: &[String]) -> Option<Vec<u8>> {
    let mut object = Map::new();
    for (key, value) in form_urlencoded::parse(encoded) {
        if skip.iter().any(|skipped| skipped.as_str() == key) {
            continue;
        }
        let value = Value::String(value.into_owned());
        match object.get_mut(key.as_ref()) {
            None => {
                object.insert(key.into_owned(), value);
            }
            Some(Value::Array(values)) => values.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
        }
    }
    if object.is_empty() {
        return None;
    }
    serde_json::to_vec(&Value::Object(object)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(encoded: &str) -> Option<Value> {
        form_to_json(encoded.as_bytes(), &["token".to_owned()])
            .map(|bytes| serde_json::from_slice(&bytes).expect("valid JSON"))
    }

    #[test]
    fn values_stay_strings_and_repeats_become_arrays() {
        let converted =
            convert("id=42&status=DELIVRD&mobile=%2B919876543210&tag=a&tag=b&tag=c&empty=&text=hi+there");
        assert_eq!(
            converted,
            Some(serde_json::json!({
                "id": "42",
                "status": "DELIVRD",
                "mobile": "+919876543210",
                "tag": ["a", "b", "c"],
                "empty": "",
                "text": "hi there",
            }))
        );
    }

    #[test]
    fn token_parameters_are_dropped_and_nothing_left_is_none() {
        assert_eq!(convert("token=secret&id=1"), Some(serde_json::json!({"id": "1"})));
        assert_eq!(convert("token=secret"), None);
        assert_eq!(convert(""), None);
    }

    #[test]
    fn the_same_delivery_gives_the_same_bytes() {
        let first = form_to_json(b"b=2&a=1", &[]);
        let second = form_to_json(b"a=1&b=2", &[]);
        assert_eq!(first, second);
    }
}
