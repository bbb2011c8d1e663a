//! Who may deliver events, and the proof that a request passed.
//!
//! Each configured source combines checks (header token, query token, HTTP Basic, the provider's
//! `Signature`, Standard Webhooks, an address list): a request is authenticated when it passes
//! **every** check of at least one source. [`Authenticated`] is the only way to hold its body
//! afterwards, and it has no public constructor, so code that publishes cannot be written for a
//! request that skipped this.
//!
//! Tokens and passwords are kept as SHA-256 digests (configured literally or as `sha256:<hex>`),
//! signature keys as keyed MACs; comparisons are constant-time over every configured secret, and
//! nothing here prints a secret (`Debug` shows kinds and counts).

mod address;
mod checks;

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::HeaderName;
use ipnet::IpNet;
use switchboard_runtime::config::{SourceConfig, parse_network};

pub use self::address::TrustedProxies;
use self::checks::Check;
pub use self::checks::{Presented, Verdict};

/// Why a request was not authenticated. Callers answer `Missing` and `Rejected` with the same 401
/// and `AddressRefused` with 403: the reasons are for logs only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials presented")]
    Missing,
    #[error("credentials not accepted: {0}")]
    Rejected(&'static str),
    #[error("credentials accepted but the address is not allowed")]
    AddressRefused,
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

#[derive(Debug)]
struct Source {
    name: Arc<str>,
    checks: Vec<Check>,
    /// Empty: any address.
    allowed: Vec<IpNet>,
}

/// The configured sources.
#[derive(Debug)]
pub struct Authenticator {
    sources: Vec<Source>,
    /// Every query parameter that carries a token: removed before a query becomes the event body.
    query_parameters: Vec<String>,
}

impl Authenticator {
    /// Builds the sources. Fails closed: no source, a source without credentials, or a secret that
    /// cannot be used is an error.
    pub fn from_config(sources: &[SourceConfig]) -> Result<Authenticator, String> {
        if sources.is_empty() {
            return Err(
                "gateway.sources: no source is configured, so every request would be refused".to_owned()
            );
        }
        let mut built = Vec::with_capacity(sources.len());
        let mut query_parameters = Vec::new();
        for source in sources {
            let checks =
                build_checks(source).map_err(|error| format!("gateway source {:?}: {error}", source.name))?;
            if checks.is_empty() {
                return Err(format!("gateway source {:?} has no credentials", source.name));
            }
            if !source.query_tokens.is_empty() && !query_parameters.contains(&source.query_parameter) {
                query_parameters.push(source.query_parameter.clone());
            }
            let allowed = source
                .allow_ips
                .iter()
                .map(|text| {
                    parse_network(text).ok_or_else(|| {
                        format!("gateway source {:?}: {text:?} is not an address", source.name)
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            built.push(Source { name: Arc::from(source.name.as_str()), checks, allowed });
        }
        Ok(Authenticator { sources: built, query_parameters })
    }

    /// The query parameters that carry tokens (never part of an event body).
    pub fn query_parameters(&self) -> &[String] {
        &self.query_parameters
    }

    /// Checks `request` against every source; the payload comes back wrapped as proof. `client` is
    /// the caller's address when known (see [`TrustedProxies`]).
    pub fn authenticate<T>(
        &self,
        request: &Presented<'_>,
        client: Option<IpAddr>,
        payload: T,
    ) -> Result<Authenticated<T>, AuthError> {
        let mut presented_any = false;
        let mut first_failure: Option<&'static str> = None;
        let mut accepted: Option<&Arc<str>> = None;
        let mut refused_address = false;
        // Every source and every check is evaluated (no early exit), so timing does not tell
        // which source or check a guess came close to.
        for source in &self.sources {
            let mut passed_all = true;
            for check in &source.checks {
                match check.verify(request) {
                    Verdict::Passed => presented_any = true,
                    Verdict::Absent => passed_all = false,
                    Verdict::Failed(reason) => {
                        presented_any = true;
                        passed_all = false;
                        first_failure.get_or_insert(reason);
                    }
                }
            }
            if !passed_all {
                continue;
            }
            let address_allowed = source.allowed.is_empty()
                || client.is_some_and(|address| address::contains(&source.allowed, address));
            if !address_allowed {
                refused_address = true;
                continue;
            }
            if accepted.is_none() {
                accepted = Some(&source.name);
            }
        }
        match (accepted, refused_address) {
            (Some(name), _) => Ok(Authenticated { source: name.clone(), payload }),
            (None, true) => Err(AuthError::AddressRefused),
            (None, false) if presented_any => Err(AuthError::Rejected(
                first_failure.unwrap_or("a credential the source requires is missing"),
            )),
            (None, false) => Err(AuthError::Missing),
        }
    }
}

fn build_checks(source: &SourceConfig) -> Result<Vec<Check>, String> {
    let mut built = Vec::new();
    if !source.tokens.is_empty() {
        let header = header_name(&source.token_header, "token_header")?;
        let bearer = header == axum::http::header::AUTHORIZATION;
        let digests =
            source.tokens.iter().map(|token| token.sha256_digest("token")).collect::<Result<_, _>>()?;
        built.push(Check::HeaderToken { header, bearer, digests });
    }
    if !source.query_tokens.is_empty() {
        if source.query_parameter.is_empty() {
            return Err("query_parameter is empty".to_owned());
        }
        let digests = source
            .query_tokens
            .iter()
            .map(|token| token.sha256_digest("query token"))
            .collect::<Result<_, _>>()?;
        built.push(Check::QueryToken { parameter: source.query_parameter.clone(), digests });
    }
    if !source.basic.is_empty() {
        let mut users = Vec::with_capacity(source.basic.len());
        for basic in &source.basic {
            if basic.user.is_empty() || basic.user.contains(':') {
                return Err(format!("basic user {:?} must be non-empty without ':'", basic.user));
            }
            users.push((checks::digest(basic.user.as_bytes()), basic.password.sha256_digest("password")?));
        }
        built.push(Check::Basic { users });
    }
    if !source.signature_keys.is_empty() {
        let header = header_name(&source.signature_header, "signature_header")?;
        let keys = source.signature_keys.iter().map(checks::signature_key).collect::<Result<_, _>>()?;
        built.push(Check::Signature { header, keys });
    }
    if !source.standard_webhooks_secrets.is_empty() {
        let keys = source
            .standard_webhooks_secrets
            .iter()
            .map(checks::standard_webhooks_key)
            .collect::<Result<_, _>>()?;
        built.push(Check::StandardWebhooks { keys, tolerance: source.standard_webhooks_tolerance });
    }
    Ok(built)
}

fn header_name(name: &str, field: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes())
        .map_err(|_| format!("{field} {name:?} is not a header name"))
}

#[cfg(test)]
mod tests;
