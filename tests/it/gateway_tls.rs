//! The gateway serving HTTPS itself (no ingress): a TLS client is answered and the event stored.

use std::sync::Arc;

use rustls_pki_types::ServerName;
use switchboard_tests::{TEST_TOKEN, TestSystem, fixture};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

#[tokio::test]
async fn https_deliveries_are_stored() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("a certificate");
    let directory = tempfile::tempdir().expect("temp dir");
    let cert_file = directory.path().join("tls.crt");
    let key_file = directory.path().join("tls.key");
    std::fs::write(&cert_file, certified.cert.pem()).expect("write cert");
    std::fs::write(&key_file, certified.signing_key.serialize_pem()).expect("write key");
    let (cert_path, key_path) = (cert_file.clone(), key_file.clone());
    let system = TestSystem::builder()
        .components(&[switchboard::Component::Gateway])
        .configure(move |config| {
            config.gateway.tls.cert_file = Some(cert_path);
            config.gateway.tls.key_file = Some(key_path);
        })
        .start()
        .await
        .expect("system starts");

    let mut roots = RootCertStore::empty();
    roots.add(certified.cert.der().clone()).expect("a root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client_config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let address = system.gateway_url.trim_start_matches("http://").to_owned();
    let connector = TlsConnector::from(Arc::new(client_config));
    let tcp = tokio::net::TcpStream::connect(&address).await.expect("connects");
    let mut tls = connector
        .connect(ServerName::try_from("localhost").expect("a name"), tcp)
        .await
        .expect("the handshake completes");
    let body = fixture("events", "sms.message.status.json");
    let head = format!(
        "POST /v1/events/sms:message:status HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {TEST_TOKEN}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.expect("writes");
    tls.write_all(&body).await.expect("writes");
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"accepted\":true"), "{answer}");

    // Plain HTTP on the HTTPS port gets no answer.
    let plain = system.http.get(format!("{}/v1/events/sms:message:status", system.gateway_url)).send().await;
    assert!(plain.is_err() || plain.is_ok_and(|response| response.status() != 200));
    system.stop().await.expect("clean stop");
}
