//! Secrets in configuration: tokens, passwords, HMAC keys, database URLs.
//!
//! A secret is written in the config as a literal, as `env:NAME` (read from the environment) or as
//! `file:/path` (read from a file, trailing newline removed, as Kubernetes mounts Secrets). The value
//! never appears in `Debug` output or logs; reach it with [`Secret::expose`] where it is used.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// A configured secret value. `Debug` prints `Secret(<redacted>)`; there is no `Display`.
#[derive(Clone)]
pub struct Secret {
    value: String,
    /// Where it came from (`literal`, `env:NAME`, `file:/path`), for error messages: never the value.
    origin: String,
}

impl Secret {
    /// A secret from code (tests, generated tokens).
    pub fn new(value: impl Into<String>) -> Secret {
        Secret { value: value.into(), origin: "literal".to_owned() }
    }

    /// Resolves `env:` and `file:` references.
    pub fn resolve(reference: &str) -> Result<Secret, String> {
        if let Some(name) = reference.strip_prefix("env:") {
            let value = std::env::var(name)
                .map_err(|_| format!("environment variable {name} (named by `env:{name}`) is not set"))?;
            return Ok(Secret { value, origin: format!("env:{name}") });
        }
        if let Some(path) = reference.strip_prefix("file:") {
            let contents = std::fs::read_to_string(path)
                .map_err(|error| format!("cannot read secret file {path}: {error}"))?;
            let value = contents.trim_end_matches(['\n', '\r']).to_owned();
            return Ok(Secret { value, origin: format!("file:{path}") });
        }
        Ok(Secret::new(reference))
    }

    /// The secret itself. Call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Where the value came from, safe to print.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// The SHA-256 digest a configured token or password is compared by: `sha256:<hex>` as given,
    /// anything else hashed. `what` names it in errors ("token", "password"), never its value.
    pub fn sha256_digest(&self, what: &str) -> Result<[u8; 32], String> {
        match self.value.strip_prefix("sha256:") {
            Some(hex_digest) => {
                let bytes = hex::decode(hex_digest.trim())
                    .map_err(|_| format!("a sha256: {what} is not hex ({})", self.origin))?;
                <[u8; 32]>::try_from(bytes.as_slice())
                    .map_err(|_| format!("a sha256: {what} is not 32 bytes ({})", self.origin))
            }
            None if self.value.is_empty() => Err(format!("empty {what} ({})", self.origin)),
            None => Ok(Sha256::digest(self.value.as_bytes()).into()),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Secret({}, <redacted>)", self.origin)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Environment overrides are parsed as TOML values, so a password of digits arrives as a
        // number: accept any scalar as its text.
        let reference = switchboard_events::value::lenient_string(deserializer)?
            .ok_or_else(|| de::Error::custom("a secret must not be null"))?;
        Secret::resolve(&reference).map_err(de::Error::custom)
    }
}

/// Secrets serialise as their origin only, so an effective configuration can be printed safely.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("<redacted:{}>", self.origin))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("hunter2-very-secret");
        let printed = format!("{secret:?} {:?}", Some(&secret));
        assert!(!printed.contains("hunter2"), "{printed}");
    }

    #[test]
    fn file_references_are_read_and_trimmed() {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        writeln!(file, "from-a-file").expect("write");
        let path = file.path().display().to_string();
        let secret = Secret::resolve(&format!("file:{path}")).expect("readable");
        assert_eq!(secret.expose(), "from-a-file");
        assert_eq!(secret.origin(), format!("file:{path}"));
        assert!(Secret::resolve("file:/nonexistent/secret").is_err());
    }

    #[test]
    fn numbers_and_booleans_are_secrets_too() {
        #[derive(serde::Deserialize)]
        struct Holder {
            secret: Secret,
        }
        let holder: Holder = serde_json::from_str(r#"{"secret": 123456}"#).expect("a number is accepted");
        assert_eq!(holder.secret.expose(), "123456");
    }

    #[test]
    fn missing_environment_variables_are_errors() {
        let error = Secret::resolve("env:SWITCHBOARD_TEST_SURELY_UNSET_VARIABLE").expect_err("unset");
        assert!(error.contains("SWITCHBOARD_TEST_SURELY_UNSET_VARIABLE"));
        assert_eq!(Secret::resolve("plain").map(|secret| secret.expose().to_owned()), Ok("plain".into()));
    }
}
