//! TLS on the gRPC port: mutual TLS with trusted, untrusted and not-allowed client certificates, and
//! certificates reloaded without a restart. Certificates are made here with rcgen.

use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use switchboard::Component;
use switchboard_events::Product;
use switchboard_proto::sms::ListMessagesRequest;
use switchboard_proto::sms::sms_service_client::SmsServiceClient;
use switchboard_tests::{TestSystem, wait_until};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// A certificate authority that signs the test's certificates.
pub(crate) struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pub(crate) pem: String,
}

impl Authority {
    pub(crate) fn new(name: &str) -> Authority {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let pem = params.self_signed(&key).expect("self-signed").pem();
        Authority { issuer: Issuer::new(params, key), pem }
    }

    /// A leaf certificate and its key (PEM) for `common_name`, valid for `names`.
    pub(crate) fn issue(
        &self,
        common_name: &str,
        names: &[&str],
        purpose: ExtendedKeyUsagePurpose,
    ) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(names.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>())
                .expect("params");
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![purpose];
        let certificate = params.signed_by(&key, &self.issuer).expect("signed");
        (certificate.pem(), key.serialize_pem())
    }
}

fn write(directory: &Path, name: &str, contents: &str) {
    std::fs::write(directory.join(name), contents).expect("write");
}

/// A client of the sms service over TLS trusting `server_ca`, presenting `identity` when given.
async fn list(address: &str, server_ca: &str, identity: Option<&(String, String)>) -> Result<(), String> {
    let mut tls =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(server_ca)).domain_name("localhost");
    if let Some((certificate, key)) = identity {
        tls = tls.identity(Identity::from_pem(certificate, key));
    }
    let channel = Channel::from_shared(format!("https://{address}"))
        .map_err(|error| error.to_string())?
        .tls_config(tls)
        .map_err(|error| error.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|error| format!("connect: {error:?}"))?;
    SmsServiceClient::new(channel)
        .list_messages(ListMessagesRequest::default())
        .await
        .map(drop)
        .map_err(|status| format!("call: {status:?}"))
}

#[tokio::test]
async fn mutual_tls_admits_allowed_client_certificates_and_reloads_server_certificates() {
    let directory = tempfile::tempdir().expect("temp dir");
    let server_ca = Authority::new("switchboard test server CA");
    let client_ca = Authority::new("switchboard test client CA");
    let stranger_ca = Authority::new("somebody else's CA");
    let (server_cert, server_key) =
        server_ca.issue("switchboard-sms", &["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    write(directory.path(), "server.crt", &server_cert);
    write(directory.path(), "server.key", &server_key);
    write(directory.path(), "client-ca.crt", &client_ca.pem);
    let dashboard =
        client_ca.issue("dashboard", &["dashboard.internal"], ExtendedKeyUsagePurpose::ClientAuth);
    let by_san = client_ca.issue("some-pod", &["reporting.internal"], ExtendedKeyUsagePurpose::ClientAuth);
    let not_listed = client_ca.issue("intruder", &["intruder.internal"], ExtendedKeyUsagePurpose::ClientAuth);
    let untrusted =
        stranger_ca.issue("dashboard", &["dashboard.internal"], ExtendedKeyUsagePurpose::ClientAuth);

    let files = directory.path().to_path_buf();
    let system = TestSystem::builder()
        .components(&[Component::Service(Product::Sms)])
        .configure(move |config| {
            let tls = &mut config.grpc.tls;
            tls.enabled = true;
            tls.cert_file = Some(files.join("server.crt"));
            tls.key_file = Some(files.join("server.key"));
            tls.client_ca_file = Some(files.join("client-ca.crt"));
            tls.client_subjects = vec!["dashboard".to_owned(), "reporting.internal".to_owned()];
            tls.reload_interval = Duration::from_millis(100);
        })
        .start()
        .await
        .expect("system starts");
    let address = system.grpc_url.trim_start_matches("http://").to_owned();

    list(&address, &server_ca.pem, Some(&dashboard)).await.expect("an allowed CN is served");
    list(&address, &server_ca.pem, Some(&by_san)).await.expect("an allowed DNS SAN is served");
    let refused = list(&address, &server_ca.pem, Some(&untrusted)).await;
    assert!(refused.is_err(), "a certificate from another CA must be refused");
    let refused = list(&address, &server_ca.pem, None).await;
    assert!(refused.is_err(), "a client without a certificate must be refused");
    let refused = list(&address, &server_ca.pem, Some(&not_listed)).await;
    assert!(refused.is_err(), "a trusted certificate whose subject is not listed must be refused");
    let plaintext = SmsServiceClient::connect(system.grpc_url.clone()).await;
    let plaintext_refused = match plaintext {
        Ok(mut client) => client.list_messages(ListMessagesRequest::default()).await.is_err(),
        Err(_) => true,
    };
    assert!(plaintext_refused, "plaintext gRPC must not be served");

    // Renew the server certificate from a new CA: new connections get it without a restart.
    let renewed_ca = Authority::new("switchboard renewed server CA");
    let (renewed_cert, renewed_key) =
        renewed_ca.issue("switchboard-sms", &["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    write(directory.path(), "server.key", &renewed_key);
    write(directory.path(), "server.crt", &renewed_cert);
    wait_until("the renewed certificate to be served", Duration::from_secs(10), || {
        let address = address.clone();
        let pem = renewed_ca.pem.clone();
        let dashboard = dashboard.clone();
        async move { list(&address, &pem, Some(&dashboard)).await.ok() }
    })
    .await;
    assert!(
        list(&address, &server_ca.pem, Some(&dashboard)).await.is_err(),
        "the old certificate is no longer served"
    );
    system.stop().await.expect("stops cleanly");
}
