use axum::http::{HeaderMap, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use sha2::Sha256;
use switchboard_runtime::Secret;
use switchboard_runtime::config::BasicCredential;

use super::*;

const NOW: i64 = 1_700_000_000;

fn source(name: &str) -> SourceConfig {
    SourceConfig { name: name.into(), ..SourceConfig::default() }
}

fn secrets(values: &[&str]) -> Vec<Secret> {
    values.iter().map(|value| Secret::new(*value)).collect()
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(*name, HeaderValue::from_str(value).expect("valid header"));
    }
    headers
}

fn check(
    authenticator: &Authenticator,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<String, AuthError> {
    let request = Presented { headers, query, body, now: NOW };
    authenticator.authenticate(&request, None, ()).map(|ok| ok.source().to_owned())
}

fn hex_hmac(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn standard_signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

#[test]
fn bearer_tokens_including_rotations_and_hashes() {
    let hashed = format!("sha256:{}", hex::encode(checks::digest(b"third")));
    let authenticator = Authenticator::from_config(&[SourceConfig::with_tokens(
        "provider",
        secrets(&["first", "second", &hashed]),
    )])
    .expect("valid");
    for token in ["first", "second", "third"] {
        let outcome =
            check(&authenticator, &headers(&[("authorization", &format!("Bearer {token}"))]), None, b"");
        assert_eq!(outcome.ok().as_deref(), Some("provider"), "{token}");
    }
    let auth = |value: &str| check(&authenticator, &headers(&[("authorization", value)]), None, b"");
    assert!(auth("bearer first").is_ok());
    assert!(matches!(auth("Bearer wrong"), Err(AuthError::Rejected(_))));
    assert_eq!(auth("Basic first"), Err(AuthError::Missing));
    assert_eq!(auth("Bearer "), Err(AuthError::Missing));
    assert_eq!(check(&authenticator, &HeaderMap::new(), None, b""), Err(AuthError::Missing));
    assert!(auth(&format!("Bearer {hashed}")).is_err(), "the hash itself is not the token");
}

#[test]
fn api_key_headers_and_several_sources() {
    let mut crm = SourceConfig::with_tokens("crm", secrets(&["c-token"]));
    crm.token_header = "X-Api-Key".into();
    let authenticator =
        Authenticator::from_config(&[SourceConfig::with_tokens("provider", secrets(&["p-token"])), crm])
            .expect("valid");
    assert_eq!(check(&authenticator, &headers(&[("x-api-key", "c-token")]), None, b"").as_deref(), Ok("crm"));
    assert!(
        check(&authenticator, &headers(&[("x-api-key", "p-token")]), None, b"").is_err(),
        "tokens belong to their source"
    );
}

#[test]
fn query_tokens() {
    let mut provider = source("provider");
    provider.query_tokens = secrets(&["q-secret"]);
    provider.query_parameter = "key".into();
    let authenticator = Authenticator::from_config(&[provider]).expect("valid");
    let none = HeaderMap::new();
    assert_eq!(check(&authenticator, &none, Some("a=1&key=q-secret"), b"").as_deref(), Ok("provider"));
    assert_eq!(check(&authenticator, &none, Some("key=q%2Dsecret"), b"").as_deref(), Ok("provider"));
    assert!(matches!(check(&authenticator, &none, Some("key=nope"), b""), Err(AuthError::Rejected(_))));
    assert_eq!(check(&authenticator, &none, Some("token=q-secret"), b""), Err(AuthError::Missing));
    assert_eq!(authenticator.query_parameters(), ["key"]);
}

#[test]
fn basic_with_plain_and_hashed_passwords() {
    let mut provider = source("provider");
    provider.basic = vec![
        BasicCredential { user: "mob".into(), password: Secret::new("pa:ss") },
        BasicCredential {
            user: "mob2".into(),
            password: Secret::new(format!("sha256:{}", hex::encode(checks::digest(b"hashed")))),
        },
    ];
    let authenticator = Authenticator::from_config(&[provider]).expect("valid");
    let basic = |user_password: &str| {
        let value = format!("Basic {}", BASE64.encode(user_password));
        check(&authenticator, &headers(&[("authorization", &value)]), None, b"")
    };
    assert!(basic("mob:pa:ss").is_ok(), "a password may contain ':'");
    assert!(basic("mob2:hashed").is_ok());
    assert!(basic("mob:hashed").is_err(), "passwords belong to their user");
    assert!(basic("mob2:wrong").is_err());
    assert!(basic("nobody").is_err());
}

#[test]
fn provider_signature_with_either_key() {
    let mut provider = source("provider");
    provider.signature_keys = secrets(&["webhook-id-123", "webhook-secret"]);
    let authenticator = Authenticator::from_config(&[provider]).expect("valid");
    let body = br#"{"id":"1"}"#;
    for key in ["webhook-id-123", "webhook-secret"] {
        let signature = hex_hmac(key.as_bytes(), body);
        assert!(check(&authenticator, &headers(&[("signature", &signature)]), None, body).is_ok(), "{key}");
    }
    let signature = hex_hmac(b"webhook-secret", body);
    assert!(check(&authenticator, &headers(&[("signature", &signature)]), None, br#"{"id":"2"}"#).is_err());
    assert!(check(&authenticator, &headers(&[("signature", &signature[..10])]), None, body).is_err());
    assert!(check(&authenticator, &headers(&[("signature", "")]), None, body).is_err(), "empty");
    assert!(check(&authenticator, &headers(&[("signature", "zz")]), None, body).is_err());
    // Hex is read in either case, as docs/gateway.md says: the provider documents lowercase.
    let upper = hex_hmac(b"webhook-secret", body).to_uppercase();
    assert!(check(&authenticator, &headers(&[("signature", &upper)]), None, body).is_ok(), "uppercase hex");
    assert_eq!(check(&authenticator, &HeaderMap::new(), None, body), Err(AuthError::Missing));
}

#[test]
fn standard_webhooks_signatures_and_tolerance() {
    let key = b"a standard webhooks key";
    let mut provider = source("provider");
    provider.standard_webhooks_secrets = secrets(&[&format!("whsec_{}", BASE64.encode(key))]);
    let authenticator = Authenticator::from_config(&[provider]).expect("valid");
    let body = br#"{"id":"1"}"#;
    let deliver = |timestamp: i64, signature: &str, body: &[u8]| {
        let timestamp = timestamp.to_string();
        let headers = headers(&[
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", &timestamp),
            ("webhook-signature", signature),
        ]);
        check(&authenticator, &headers, None, body)
    };
    let good = standard_signature(key, "msg_1", NOW - 10, body);
    assert!(deliver(NOW - 10, &good, body).is_ok());
    assert!(deliver(NOW - 10, &format!("v1,bm9wZQ== {good}"), body).is_ok(), "any listed signature");
    assert!(deliver(NOW - 10, &good, br#"{"id":"2"}"#).is_err(), "tampered body");
    assert!(deliver(NOW - 11, &good, body).is_err(), "timestamp is signed");
    let old = standard_signature(key, "msg_1", NOW - 301, body);
    assert_eq!(
        deliver(NOW - 301, &old, body),
        Err(AuthError::Rejected("webhook-timestamp outside the tolerance"))
    );
    let future = standard_signature(key, "msg_1", NOW + 301, body);
    assert!(deliver(NOW + 301, &future, body).is_err());
    assert!(deliver(NOW, "v1,", body).is_err(), "an empty signature never passes");
    assert!(deliver(NOW, "", body).is_err());
    let other_key = standard_signature(b"rotated out", "msg_1", NOW, body);
    assert!(deliver(NOW, &other_key, body).is_err());
    let partial = headers(&[("webhook-id", "msg_1")]);
    assert!(matches!(check(&authenticator, &partial, None, body), Err(AuthError::Rejected(_))));
}

#[test]
fn checks_combine_and_addresses_are_refused_with_their_own_error() {
    let mut provider = SourceConfig::with_tokens("provider", secrets(&["token"]));
    provider.signature_keys = secrets(&["key"]);
    provider.allow_ips = vec!["203.0.113.0/24".into()];
    let authenticator = Authenticator::from_config(&[provider]).expect("valid");
    let body = b"{}";
    let both = headers(&[("authorization", "Bearer token"), ("signature", &hex_hmac(b"key", body))]);
    let only_token = headers(&[("authorization", "Bearer token")]);
    let inside: IpAddr = "203.0.113.5".parse().expect("ip");
    let outside: IpAddr = "198.51.100.1".parse().expect("ip");
    let run = |headers: &HeaderMap, client: Option<IpAddr>| {
        let request = Presented { headers, query: None, body, now: NOW };
        authenticator.authenticate(&request, client, ()).map(|_| ())
    };
    assert_eq!(run(&both, Some(inside)), Ok(()));
    assert!(matches!(run(&only_token, Some(inside)), Err(AuthError::Rejected(_))), "every check must pass");
    assert_eq!(run(&both, Some(outside)), Err(AuthError::AddressRefused));
    assert_eq!(run(&both, None), Err(AuthError::AddressRefused), "unknown address is not allowed");
}

#[test]
fn fails_closed() {
    assert!(Authenticator::from_config(&[]).is_err());
    assert!(Authenticator::from_config(&[source("empty")]).is_err());
    let mut address_only = source("address-only");
    address_only.allow_ips = vec!["10.0.0.0/8".into()];
    assert!(Authenticator::from_config(&[address_only]).is_err(), "an address is not a credential");
    assert!(
        Authenticator::from_config(&[SourceConfig::with_tokens("bad", secrets(&["sha256:zz"]))]).is_err()
    );
    let mut bad_whsec = source("bad");
    bad_whsec.standard_webhooks_secrets = secrets(&["whsec_***"]);
    assert!(Authenticator::from_config(&[bad_whsec]).is_err());
}

#[test]
fn debug_shows_no_secret() {
    let mut provider = SourceConfig::with_tokens("provider", secrets(&["s3cr3t-token"]));
    provider.signature_keys = secrets(&["s3cr3t-key"]);
    provider.basic = vec![BasicCredential { user: "u".into(), password: Secret::new("s3cr3t-password") }];
    let authenticator = Authenticator::from_config(&[provider]).expect("valid");
    let printed = format!("{authenticator:?}");
    assert!(printed.contains("provider") && !printed.contains("s3cr3t"), "{printed}");
    let token_digest = hex::encode(checks::digest(b"s3cr3t-token"));
    assert!(!printed.contains(&token_digest[..16]), "not even the digest");
}

proptest! {
    #[test]
    fn a_signature_passes_only_for_its_exact_body(
        key in proptest::collection::vec(any::<u8>(), 1..64),
        body in proptest::collection::vec(any::<u8>(), 0..256),
        flip in any::<prop::sample::Index>(),
    ) {
        let key_text = String::from_utf8_lossy(&key).into_owned();
        let mut provider = source("provider");
        provider.signature_keys = vec![Secret::new(key_text.clone())];
        let authenticator = Authenticator::from_config(&[provider]).expect("valid");
        let signature = hex_hmac(key_text.as_bytes(), &body);
        let signed = headers(&[("signature", &signature)]);
        prop_assert!(check(&authenticator, &signed, None, &body).is_ok());
        if !body.is_empty() {
            let mut tampered = body.clone();
            tampered[flip.index(body.len())] ^= 1;
            prop_assert!(check(&authenticator, &signed, None, &tampered).is_err());
        }
    }
}
