//! The credential checks a source can combine. Each looks at the request as presented and says
//! whether its credential is absent, wrong, or right; secrets are held as digests or keyed MACs and
//! every comparison runs in constant time over every configured secret.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use switchboard_runtime::Secret;

type HmacSha256 = Hmac<Sha256>;

/// What a check can see of a request. The body is the raw bytes as received.
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a> {
    pub headers: &'a HeaderMap,
    pub query: Option<&'a str>,
    pub body: &'a [u8],
    /// Now, in seconds since the Unix epoch (for signature timestamps).
    pub now: i64,
}

/// One check's verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The request does not carry this kind of credential.
    Absent,
    /// It does, and it is wrong; the reason is for logs only.
    Failed(&'static str),
    Passed,
}

pub(super) enum Check {
    /// `Authorization: Bearer <token>`, or a bare token in another header (API key).
    HeaderToken { header: HeaderName, bearer: bool, digests: Vec<[u8; 32]> },
    /// `?<parameter>=<token>`.
    QueryToken { parameter: String, digests: Vec<[u8; 32]> },
    /// `Authorization: Basic`, with the user's and password's digests.
    Basic { users: Vec<([u8; 32], [u8; 32])> },
    /// The provider's hex HMAC-SHA256 of the raw body.
    Signature { header: HeaderName, keys: Vec<HmacSha256> },
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    StandardWebhooks { keys: Vec<HmacSha256>, tolerance: Duration },
}

impl std::fmt::Debug for Check {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The kind and how many secrets, never a digest or key.
        match self {
            Check::HeaderToken { header, digests, .. } => {
                write!(formatter, "HeaderToken({header}, {} secrets)", digests.len())
            }
            Check::QueryToken { parameter, digests } => {
                write!(formatter, "QueryToken({parameter}, {} secrets)", digests.len())
            }
            Check::Basic { users } => write!(formatter, "Basic({} users)", users.len()),
            Check::Signature { header, keys } => {
                write!(formatter, "Signature({header}, {} keys)", keys.len())
            }
            Check::StandardWebhooks { keys, tolerance } => {
                write!(formatter, "StandardWebhooks({} keys, {tolerance:?})", keys.len())
            }
        }
    }
}

pub(super) fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// An HMAC-SHA256 key for the provider's `Signature` header: the secret's bytes as they are.
pub(super) fn signature_key(secret: &Secret) -> Result<HmacSha256, String> {
    if secret.is_empty() {
        return Err(format!("empty signature key ({})", secret.origin()));
    }
    HmacSha256::new_from_slice(secret.expose().as_bytes())
        .map_err(|_| format!("unusable signature key ({})", secret.origin()))
}

/// A Standard Webhooks key: the base64 after `whsec_`.
pub(super) fn standard_webhooks_key(secret: &Secret) -> Result<HmacSha256, String> {
    let value = secret.expose();
    let encoded = value.strip_prefix("whsec_").unwrap_or(value);
    let key = BASE64
        .decode(encoded.trim())
        .map_err(|_| format!("a Standard Webhooks secret must be whsec_<base64> ({})", secret.origin()))?;
    if key.is_empty() {
        return Err(format!("empty Standard Webhooks secret ({})", secret.origin()));
    }
    HmacSha256::new_from_slice(&key)
        .map_err(|_| format!("unusable Standard Webhooks secret ({})", secret.origin()))
}

/// Whether `candidate` equals any of `known`, looking at all of them (no early exit).
fn matches_any(candidate: &[u8; 32], known: &[[u8; 32]]) -> bool {
    let mut matched = Choice::from(0u8);
    for digest in known {
        matched |= candidate.ct_eq(digest);
    }
    bool::from(matched)
}

/// Whether any key's MAC over `parts` equals `tag`; `verify_slice` checks length and compares in
/// constant time, and every key is tried.
fn mac_matches(keys: &[HmacSha256], parts: &[&[u8]], tag: &[u8]) -> bool {
    let mut matched = false;
    for key in keys {
        let mut mac = key.clone();
        for part in parts {
            mac.update(part);
        }
        matched |= mac.verify_slice(tag).is_ok();
    }
    matched
}

impl Check {
    pub(super) fn verify(&self, request: &Presented<'_>) -> Verdict {
        match self {
            Check::HeaderToken { header, bearer, digests } => {
                match header_token(request.headers, header, *bearer) {
                    None => Verdict::Absent,
                    Some(token) if matches_any(&digest(token), digests) => Verdict::Passed,
                    Some(_) => Verdict::Failed("token not accepted"),
                }
            }
            Check::QueryToken { parameter, digests } => {
                let token = request.query.and_then(|query| {
                    form_urlencoded::parse(query.as_bytes())
                        .find(|(name, _)| name == parameter.as_str())
                        .map(|(_, value)| value.into_owned())
                });
                match token {
                    None => Verdict::Absent,
                    Some(token) if token.is_empty() => Verdict::Absent,
                    Some(token) if matches_any(&digest(token.as_bytes()), digests) => Verdict::Passed,
                    Some(_) => Verdict::Failed("query token not accepted"),
                }
            }
            Check::Basic { users } => verify_basic(request.headers, users),
            Check::Signature { header, keys } => {
                let Some(value) = request.headers.get(header) else {
                    return Verdict::Absent;
                };
                let Ok(tag) = hex::decode(value.as_bytes().trim_ascii()) else {
                    return Verdict::Failed("signature is not hex");
                };
                if mac_matches(keys, &[request.body], &tag) {
                    Verdict::Passed
                } else {
                    Verdict::Failed("signature does not match the body")
                }
            }
            Check::StandardWebhooks { keys, tolerance } => {
                verify_standard_webhooks(request, keys, *tolerance)
            }
        }
    }
}

/// The token a request presents in `header`: after `Bearer ` for `Authorization`, whole otherwise.
fn header_token<'a>(headers: &'a HeaderMap, header: &HeaderName, bearer: bool) -> Option<&'a [u8]> {
    let value = headers.get(header)?.as_bytes();
    let token = if bearer { strip_scheme(value, b"bearer ")? } else { value };
    let token = token.trim_ascii();
    (!token.is_empty()).then_some(token)
}

fn strip_scheme<'a>(value: &'a [u8], scheme: &[u8]) -> Option<&'a [u8]> {
    if value.len() <= scheme.len() || !value[..scheme.len()].eq_ignore_ascii_case(scheme) {
        return None;
    }
    Some(&value[scheme.len()..])
}

fn verify_basic(headers: &HeaderMap, users: &[([u8; 32], [u8; 32])]) -> Verdict {
    let Some(encoded) =
        headers.get(header::AUTHORIZATION).and_then(|value| strip_scheme(value.as_bytes(), b"basic "))
    else {
        return Verdict::Absent;
    };
    let Ok(decoded) = BASE64.decode(encoded.trim_ascii()) else {
        return Verdict::Failed("basic credentials are not base64");
    };
    let Some(colon) = decoded.iter().position(|byte| *byte == b':') else {
        return Verdict::Failed("basic credentials have no ':'");
    };
    let user = digest(&decoded[..colon]);
    let password = digest(&decoded[colon + 1..]);
    let mut matched = Choice::from(0u8);
    for (known_user, known_password) in users {
        matched |= user.ct_eq(known_user) & password.ct_eq(known_password);
    }
    if bool::from(matched) { Verdict::Passed } else { Verdict::Failed("basic credentials not accepted") }
}

fn verify_standard_webhooks(request: &Presented<'_>, keys: &[HmacSha256], tolerance: Duration) -> Verdict {
    let header = |name: &str| request.headers.get(name).map(|value| value.as_bytes());
    let (id, timestamp, signatures) =
        match (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature")) {
            (None, None, None) => return Verdict::Absent,
            (Some(id), Some(timestamp), Some(signatures)) => (id, timestamp, signatures),
            _ => return Verdict::Failed("incomplete Standard Webhooks headers"),
        };
    let Some(seconds) = std::str::from_utf8(timestamp).ok().and_then(|text| text.trim().parse::<i64>().ok())
    else {
        return Verdict::Failed("webhook-timestamp is not a number");
    };
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if request.now.abs_diff(seconds) > tolerance.unsigned_abs() {
        return Verdict::Failed("webhook-timestamp outside the tolerance");
    }
    let mut matched = false;
    for signature in signatures.split(|byte| byte.is_ascii_whitespace()).filter(|part| !part.is_empty()) {
        // `v1,<base64>`; other versions (v1a: asymmetric) are not ours to check.
        let Some(encoded) = signature.strip_prefix(b"v1,") else { continue };
        let Ok(tag) = BASE64.decode(encoded) else { continue };
        matched |= mac_matches(keys, &[id, b".", timestamp, b".", request.body], &tag);
    }
    if matched { Verdict::Passed } else { Verdict::Failed("webhook-signature does not match") }
}
