//! A tolerant reader for the provider's JSON.
//!
//! The provider's documented payloads end objects with a trailing comma (`"custom": "9882",}`), which
//! strict JSON refuses. [`normalize`] removes exactly those commas (outside strings) and measures the
//! nesting depth in the same pass, so the gateway can refuse deep bodies before a parser recurses.
//! Everything else must be valid JSON: [`parse`] reports the first problem with its line and column,
//! and says so plainly when a documentation placeholder such as `91806828XXXX` sits where a number
//! belongs.

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use thiserror::Error;

/// The default nesting limit: the provider's deepest payload nests 5 levels.
pub const DEFAULT_MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JsonError {
    #[error("the body is empty")]
    Empty,
    #[error("the JSON nests deeper than the limit of {limit} levels")]
    TooDeep { limit: usize },
    #[error("the body is not valid JSON: {message} at line {line}, column {column}")]
    Syntax { message: String, line: usize, column: usize },
    #[error(
        "the body is not valid JSON: a placeholder ({placeholder:?}) stands where a number is expected at line {line}, column {column}"
    )]
    Placeholder { placeholder: String, line: usize, column: usize },
    #[error("the JSON does not match the expected shape: {message}")]
    Shape { message: String },
}

/// The result of [`normalize`]: the body with trailing commas removed (borrowed when there were
/// none) and what was found on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized<'a> {
    pub body: Cow<'a, [u8]>,
    /// How many trailing commas were removed; non-zero means the body was changed.
    pub removed_trailing_commas: usize,
    /// The deepest nesting of objects and arrays seen.
    pub depth: usize,
}

impl Normalized<'_> {
    pub fn was_changed(&self) -> bool {
        self.removed_trailing_commas > 0
    }
}

/// Removes trailing commas before `}` and `]` outside strings and checks the nesting depth.
///
/// This does not validate the JSON; parse the result with [`parse`] or `serde_json`.
pub fn normalize(input: &[u8], max_depth: usize) -> Result<Normalized<'_>, JsonError> {
    let mut removed: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let mut deepest = 0usize;
    // The last byte outside strings that is not whitespace: a comma only counts as trailing when it
    // follows a value, so `[,]` and `1,,}` stay errors.
    let mut previous_significant: Option<u8> = None;
    let mut index = 0;
    while index < input.len() {
        let byte = input[index];
        match byte {
            b'"' => {
                // Strings are most of a body: jump from quote or backslash to the next.
                index = string_end(input, index + 1);
                previous_significant = Some(b'"');
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
                if depth > max_depth {
                    return Err(JsonError::TooDeep { limit: max_depth });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' => {
                let next = input[index + 1..].iter().find(|next| !next.is_ascii_whitespace());
                let follows_value = !matches!(previous_significant, None | Some(b'[' | b'{' | b','));
                if follows_value && matches!(next, Some(b'}') | Some(b']')) {
                    removed.push(index);
                }
            }
            _ => {}
        }
        if !byte.is_ascii_whitespace() {
            previous_significant = Some(byte);
        }
        index += 1;
    }
    let body = if removed.is_empty() {
        Cow::Borrowed(input)
    } else {
        let mut buffer = Vec::with_capacity(input.len() - removed.len());
        let mut kept_from = 0;
        for &comma in &removed {
            buffer.extend_from_slice(&input[kept_from..comma]);
            kept_from = comma + 1;
        }
        buffer.extend_from_slice(&input[kept_from..]);
        Cow::Owned(buffer)
    };
    Ok(Normalized { body, removed_trailing_commas: removed.len(), depth: deepest })
}

/// The index just past the quote that closes the string whose contents start at `start` (the end of
/// `input` when it is not closed).
fn string_end(input: &[u8], start: usize) -> usize {
    let mut cursor = start;
    while let Some(offset) = input.get(cursor..).and_then(|rest| memchr::memchr2(b'"', b'\\', rest)) {
        if input[cursor + offset] == b'"' {
            return cursor + offset + 1;
        }
        // A backslash escapes the byte after it, whatever it is.
        cursor += offset + 2;
    }
    input.len()
}

/// Normalises and parses `input` into `T`, with a clear error.
pub fn parse<T: DeserializeOwned>(input: &[u8], max_depth: usize) -> Result<T, JsonError> {
    let normalized = normalize(input, max_depth)?;
    from_normalized(&normalized.body)
}

/// Parses an already normalised body into `T`, with a clear error.
pub fn from_normalized<T: DeserializeOwned>(body: &[u8]) -> Result<T, JsonError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(JsonError::Empty);
    }
    serde_json::from_slice(body).map_err(|error| describe(body, &error))
}

/// Turns a `serde_json` error into a [`JsonError`], recognising documentation placeholders.
pub fn describe(body: &[u8], error: &serde_json::Error) -> JsonError {
    use serde_json::error::Category;
    let line = error.line();
    let column = error.column();
    match error.classify() {
        Category::Data => JsonError::Shape { message: strip_position(&error.to_string()) },
        Category::Io | Category::Syntax | Category::Eof => {
            if let Some(placeholder) = placeholder_at(body, line, column) {
                return JsonError::Placeholder { placeholder, line, column };
            }
            JsonError::Syntax { message: strip_position(&error.to_string()), line, column }
        }
    }
}

/// `serde_json` appends " at line L column C"; we report the position in fields of our own.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(position) => message[..position].to_owned(),
        None => message.to_owned(),
    }
}

/// If the error position sits inside a bare token that starts with digits and continues with
/// letters (`91806828XXXX`, `1234444XXXX`), returns that token.
fn placeholder_at(body: &[u8], line: usize, column: usize) -> Option<String> {
    let line_start = if line <= 1 {
        0
    } else {
        body.iter()
            .enumerate()
            .filter(|(_, byte)| **byte == b'\n')
            .nth(line - 2)
            .map(|(index, _)| index + 1)?
    };
    let offset = (line_start + column).checked_sub(1)?.min(body.len().checked_sub(1)?);
    let is_token = |byte: &u8| byte.is_ascii_alphanumeric();
    let mut start = offset;
    while start > 0 && is_token(&body[start - 1]) {
        start -= 1;
    }
    let mut end = offset;
    while end < body.len() && is_token(&body[end]) {
        end += 1;
    }
    let token = &body[start..end];
    let digits = token.iter().take_while(|byte| byte.is_ascii_digit()).count();
    let rest = &token[digits..];
    let looks_like_placeholder = digits > 0 && !rest.is_empty() && rest.iter().all(u8::is_ascii_alphabetic);
    looks_like_placeholder.then(|| String::from_utf8_lossy(token).into_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn removes_trailing_commas_outside_strings_only() {
        let input = br#"{"a": [1, 2, ], "b": "x,}", "c": {"d": 1,  }, "e": ["s",], }"#;
        let normalized = normalize(input, 8).expect("within depth");
        assert_eq!(normalized.removed_trailing_commas, 4);
        let value: Value = serde_json::from_slice(&normalized.body).expect("valid after normalising");
        assert_eq!(value["b"], "x,}");
        assert_eq!(value["c"]["d"], 1);
    }

    #[test]
    fn valid_json_is_borrowed_unchanged() {
        let input = br#"{"a": "b\",]"}"#;
        let normalized = normalize(input, 8).expect("within depth");
        assert!(matches!(normalized.body, Cow::Borrowed(_)));
        assert!(!normalized.was_changed());
        assert_eq!(normalized.depth, 1);
    }

    #[test]
    fn depth_is_limited() {
        let deep = format!("{}{}", "[".repeat(10), "]".repeat(10));
        assert_eq!(normalize(deep.as_bytes(), 10).map(|n| n.depth), Ok(10));
        assert_eq!(normalize(deep.as_bytes(), 9), Err(JsonError::TooDeep { limit: 9 }));
        let in_string = format!("\"{}\"", "[".repeat(100));
        assert!(normalize(in_string.as_bytes(), 2).is_ok());
    }

    #[test]
    fn placeholder_in_number_position_is_named() {
        let input = b"{\n  \"bridge\": 91806828XXXX,\n  \"x\": 1\n}";
        match parse::<Value>(input, 8) {
            Err(JsonError::Placeholder { placeholder, line, .. }) => {
                assert_eq!(placeholder, "91806828XXXX");
                assert_eq!(line, 2);
            }
            other => panic!("expected a placeholder error, got {other:?}"),
        }
    }

    #[test]
    fn other_syntax_errors_are_reported_with_position() {
        match parse::<Value>(b"{\"a\": tru}", 8) {
            Err(JsonError::Syntax { line: 1, .. }) => {}
            other => panic!("expected a syntax error, got {other:?}"),
        }
        assert_eq!(parse::<Value>(b"  \n", 8), Err(JsonError::Empty));
        assert!(matches!(parse::<Value>(b"{\"a\": ", 8), Err(JsonError::Syntax { .. })));
    }

    #[test]
    fn a_comma_that_is_not_trailing_stays_an_error() {
        assert!(parse::<Value>(b"{\"a\": 1,, }", 8).is_err());
        assert!(parse::<Value>(b"[,]", 8).is_err());
    }

    /// The rule byte by byte, as written first: [`normalize`] skips through strings instead.
    fn normalize_bytewise(input: &[u8], max_depth: usize) -> Result<(Vec<u8>, usize, usize), JsonError> {
        let (mut output, mut removed, mut depth, mut deepest) = (Vec::new(), 0, 0usize, 0);
        let (mut in_string, mut escaped, mut previous_significant) = (false, false, None);
        for (index, &byte) in input.iter().enumerate() {
            let mut keep = true;
            if in_string {
                if escaped {
                    escaped = false;
                } else if byte == b'\\' {
                    escaped = true;
                } else if byte == b'"' {
                    in_string = false;
                    previous_significant = Some(b'"');
                }
            } else {
                match byte {
                    b'"' => in_string = true,
                    b'{' | b'[' => {
                        depth += 1;
                        deepest = deepest.max(depth);
                        if depth > max_depth {
                            return Err(JsonError::TooDeep { limit: max_depth });
                        }
                    }
                    b'}' | b']' => depth = depth.saturating_sub(1),
                    b',' => {
                        let next = input[index + 1..].iter().find(|next| !next.is_ascii_whitespace());
                        let follows_value = !matches!(previous_significant, None | Some(b'[' | b'{' | b','));
                        if follows_value && matches!(next, Some(b'}') | Some(b']')) {
                            keep = false;
                            removed += 1;
                        }
                    }
                    _ => {}
                }
                if !byte.is_ascii_whitespace() {
                    previous_significant = Some(byte);
                }
            }
            if keep {
                output.push(byte);
            }
        }
        Ok((output, removed, deepest))
    }

    proptest::proptest! {
        #[test]
        fn skipping_through_strings_changes_nothing(
            input in proptest::collection::vec(proptest::sample::select(b"{}[],:\" \\a1 \n".to_vec()), 0..64),
            max_depth in 1usize..6,
        ) {
            let expected = normalize_bytewise(&input, max_depth);
            let actual = normalize(&input, max_depth)
                .map(|normalized| (normalized.body.into_owned(), normalized.removed_trailing_commas, normalized.depth));
            proptest::prop_assert_eq!(actual, expected, "{:?}", String::from_utf8_lossy(&input));
        }
    }
}
