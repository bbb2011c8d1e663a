//! Who may deliver events, and the proof that a request passed.
//!
//! Each configured source lists the credentials it accepts. A request is authenticated when it
//! satisfies a source; [`Authenticated`] is the only way to hold its body afterwards, and it has no
//! public constructor, so code that publishes cannot be written for a request that skipped this.
//!
//! Tokens are kept as SHA-256 digests (configured literally or as `sha256:<hex>`), the presented
//! token is hashed, and every digest of every source is compared in constant time, so neither
//! timing nor the length of a guess tells anything about a token.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use switchboard_runtime::config::SourceConfig;

/// Why a request was not authenticated. Callers answer every variant with the same 401: the
/// distinction is for logs only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials presented")]
    Missing,
    #[error("credentials not accepted")]
    Rejected,
}

/// A request body (or anything derived from it) that passed authentication.
#[derive(Debug)]
pub struct Authenticated<T> {
    source: Arc<str>,
    payload: T,
}

impl<T> Authenticated<T> {
    /// The name of the source whose credentials were accepted.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn payload(&self) -> &T {
        &self.payload
    }

    /// Transforms the payload, keeping the proof.
    pub fn map<U>(self, transform: impl FnOnce(T) -> U) -> Authenticated<U> {
        Authenticated { source: self.source, payload: transform(self.payload) }
    }
}

struct Source {
    name: Arc<str>,
    token_digests: Vec<[u8; 32]>,
    token_header: HeaderName,
    /// With the `Authorization` header the token follows a `Bearer ` scheme.
    bearer: bool,
}

/// The configured sources.
pub struct Authenticator {
    sources: Vec<Source>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.sources.iter().map(|source| &*source.name).collect();
        formatter.debug_struct("Authenticator").field("sources", &names).finish_non_exhaustive()
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Authenticator {
    /// Builds the sources. Fails closed: no source, or a source without credentials, is an error.
    pub fn from_config(sources: &[SourceConfig]) -> Result<Authenticator, String> {
        if sources.is_empty() {
            return Err(
                "gateway.sources: no source is configured, so every request would be refused".to_owned()
            );
        }
        let mut built = Vec::with_capacity(sources.len());
        for source in sources {
            if source.tokens.is_empty() {
                return Err(format!("gateway source {:?} has no credentials", source.name));
            }
            let mut token_digests = Vec::with_capacity(source.tokens.len());
            for token in &source.tokens {
                let value = token.expose();
                let token_digest = match value.strip_prefix("sha256:") {
                    Some(hex_digest) => {
                        let bytes = hex::decode(hex_digest.trim()).map_err(|_| {
                            format!(
                                "gateway source {:?}: a sha256: token is not hex ({})",
                                source.name,
                                token.origin()
                            )
                        })?;
                        <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                            format!(
                                "gateway source {:?}: a sha256: token is not 32 bytes ({})",
                                source.name,
                                token.origin()
                            )
                        })?
                    }
                    None if value.is_empty() => {
                        return Err(format!(
                            "gateway source {:?}: empty token ({})",
                            source.name,
                            token.origin()
                        ));
                    }
                    None => digest(value.as_bytes()),
                };
                token_digests.push(token_digest);
            }
            let token_header = HeaderName::from_bytes(source.token_header.to_ascii_lowercase().as_bytes())
                .map_err(|_| {
                    format!("gateway source {:?}: token_header is not a header name", source.name)
                })?;
            let bearer = token_header == axum::http::header::AUTHORIZATION;
            built.push(Source { name: Arc::from(source.name.as_str()), token_digests, token_header, bearer });
        }
        Ok(Authenticator { sources: built })
    }

    /// Checks `headers` against every source; the payload comes back wrapped as proof.
    pub fn authenticate<T>(&self, headers: &HeaderMap, payload: T) -> Result<Authenticated<T>, AuthError> {
        let mut presented_any = false;
        let mut accepted: Option<&Arc<str>> = None;
        for source in &self.sources {
            let Some(token) = presented_token(headers, &source.token_header, source.bearer) else {
                continue;
            };
            presented_any = true;
            let candidate = digest(token);
            // Compare with every digest (no early exit) so timing does not reveal which matched.
            let mut matched = subtle::Choice::from(0u8);
            for known in &source.token_digests {
                matched |= candidate.ct_eq(known);
            }
            if bool::from(matched) && accepted.is_none() {
                accepted = Some(&source.name);
            }
        }
        match accepted {
            Some(name) => Ok(Authenticated { source: name.clone(), payload }),
            None if presented_any => Err(AuthError::Rejected),
            None => Err(AuthError::Missing),
        }
    }
}

/// The token a request presents in `header`: after `Bearer ` for `Authorization`, whole otherwise.
fn presented_token<'a>(headers: &'a HeaderMap, header: &HeaderName, bearer: bool) -> Option<&'a [u8]> {
    let value = headers.get(header)?.as_bytes();
    let token = if bearer {
        let scheme = b"bearer ";
        if value.len() <= scheme.len() || !value[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return None;
        }
        &value[scheme.len()..]
    } else {
        value
    };
    let token = token.trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use switchboard_runtime::Secret;

    use super::*;

    fn source(name: &str, tokens: &[&str], header: &str) -> SourceConfig {
        SourceConfig {
            name: name.into(),
            tokens: tokens.iter().map(|token| Secret::new(*token)).collect(),
            token_header: header.into(),
        }
    }

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).expect("valid header"));
        headers
    }

    #[test]
    fn bearer_tokens_including_rotations_and_hashes() {
        let hashed = format!("sha256:{}", hex::encode(digest(b"third")));
        let authenticator =
            Authenticator::from_config(&[source("provider", &["first", "second", &hashed], "authorization")])
                .expect("valid");
        for token in ["first", "second", "third"] {
            let outcome =
                authenticator.authenticate(&headers("authorization", &format!("Bearer {token}")), ());
            assert_eq!(outcome.map(|ok| ok.source().to_owned()).ok().as_deref(), Some("provider"), "{token}");
        }
        assert!(authenticator.authenticate(&headers("authorization", "bearer first"), ()).is_ok());
        assert_eq!(
            authenticator.authenticate(&headers("authorization", "Bearer wrong"), ()).err(),
            Some(AuthError::Rejected)
        );
        assert_eq!(
            authenticator.authenticate(&headers("authorization", "Basic first"), ()).err(),
            Some(AuthError::Missing)
        );
        assert_eq!(
            authenticator.authenticate(&headers("authorization", "Bearer "), ()).err(),
            Some(AuthError::Missing)
        );
        assert_eq!(authenticator.authenticate(&HeaderMap::new(), ()).err(), Some(AuthError::Missing));
        assert_eq!(
            authenticator.authenticate(&headers("authorization", &format!("Bearer {hashed}")), ()).err(),
            Some(AuthError::Rejected),
            "the hash itself is not the token"
        );
    }

    #[test]
    fn api_key_headers_and_several_sources() {
        let authenticator = Authenticator::from_config(&[
            source("provider", &["p-token"], "authorization"),
            source("crm", &["c-token"], "X-Api-Key"),
        ])
        .expect("valid");
        let crm = authenticator.authenticate(&headers("x-api-key", "c-token"), ());
        assert_eq!(crm.map(|ok| ok.source().to_owned()).ok().as_deref(), Some("crm"));
        assert!(
            authenticator.authenticate(&headers("x-api-key", "p-token"), ()).is_err(),
            "tokens belong to their source"
        );
    }

    #[test]
    fn fails_closed() {
        assert!(Authenticator::from_config(&[]).is_err());
        assert!(Authenticator::from_config(&[source("empty", &[], "authorization")]).is_err());
        assert!(Authenticator::from_config(&[source("bad", &["sha256:zz"], "authorization")]).is_err());
    }

    #[test]
    fn debug_shows_no_token() {
        let authenticator =
            Authenticator::from_config(&[source("provider", &["s3cr3t-token"], "authorization")])
                .expect("valid");
        let printed = format!("{authenticator:?}");
        assert!(printed.contains("provider") && !printed.contains("s3cr3t"), "{printed}");
    }
}
