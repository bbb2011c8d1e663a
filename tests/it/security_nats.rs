//! NATS credentials and permissions end to end, with the users and permissions of the Kubernetes
//! manifests (deploy/k8s/base/nats/auth.conf): components connect only with their credentials, work
//! with no more than their permissions, and NATS itself refuses what a user may not do.

use std::time::Duration;

use switchboard::Component;
use switchboard_events::Product;
use switchboard_proto::sms::GetMessageRequest;
use switchboard_runtime::config::NatsConfig;
use switchboard_runtime::{Secret, nats};
use switchboard_tests::{NatsServer, TestSystem, fixture, wait_until};

const USERS: [(&str, &str); 8] = [
    ("NATS_GATEWAY_PASSWORD", "gateway-pw-1f2e3d"),
    ("NATS_SMS_PASSWORD", "sms-pw-4c5b6a"),
    ("NATS_CHAT_PASSWORD", "chat-pw-7d8e9f"),
    ("NATS_VOICE_PASSWORD", "voice-pw-0a1b2c"),
    ("NATS_INTERACT_PASSWORD", "interact-pw-3d4e5f"),
    ("NATS_CONTACTS_PASSWORD", "contacts-pw-6a7b8c"),
    ("NATS_SUBSCRIBER_PASSWORD", "subscriber-pw-9d0e1f"),
    ("NATS_OPERATOR_PASSWORD", "operator-pw-2a3b4c"),
];

fn password(user: &str) -> &'static str {
    let variable = format!("NATS_{}_PASSWORD", user.to_ascii_uppercase());
    USERS.iter().find(|(name, _)| *name == variable).map(|(_, password)| *password).expect("a known user")
}

/// A nats-server with the manifests' users and permissions.
fn secured_nats() -> NatsServer {
    let auth = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/k8s/base/nats/auth.conf"),
    )
    .expect("the manifests' NATS users");
    NatsServer::start_with_config(&auth, &USERS).expect("nats-server starts")
}

fn as_user(url: &str, user: &str) -> NatsConfig {
    let mut config = NatsConfig { url: url.to_owned(), ..NatsConfig::default() };
    config.auth.user = Some(user.to_owned());
    config.auth.password = Some(Secret::new(password(user)));
    config.connect_timeout = Duration::from_secs(2);
    config
}

/// A plain client that records the server's errors (permission violations arrive that way).
async fn recording_client(
    url: &str,
    user: &str,
) -> (async_nats::Client, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let client =
        async_nats::ConnectOptions::with_user_and_password(user.to_owned(), password(user).to_owned())
            .event_callback(move |event| {
                let sender = sender.clone();
                async move {
                    if let async_nats::Event::ServerError(error) = event {
                        let _ = sender.send(error.to_string());
                    }
                }
            })
            .connect(url)
            .await
            .expect("connects with its credentials");
    (client, receiver)
}

/// The answer to a request, if one comes within a second (a refused request gets none).
async fn answer(client: &async_nats::Client, subject: &'static str) -> Option<async_nats::Message> {
    tokio::time::timeout(Duration::from_secs(1), client.request(subject, "1".into())).await.ok()?.ok()
}

async fn refusal(receiver: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(5), receiver.recv())
        .await
        .expect("NATS reports the violation")
        .expect("an error")
}

#[tokio::test]
async fn components_connect_with_their_credentials_and_nats_enforces_their_permissions() {
    let server = secured_nats();
    let url = server.url();

    // Without credentials, or with another user's password, NATS refuses the connection.
    let anonymous =
        NatsConfig { url: url.clone(), connect_timeout: Duration::from_secs(2), ..NatsConfig::default() };
    assert!(nats::connect_once(&anonymous, "sms").await.is_err(), "no credentials");
    let mut wrong = as_user(&url, "sms");
    wrong.auth.password = Some(Secret::new(password("gateway")));
    assert!(nats::connect_once(&wrong, "sms").await.is_err(), "wrong password");

    // With their own credentials, and no more than their permissions, the components work: the sms
    // service (which provisions the streams) and the gateway, each as its own NATS user.
    let sms_url = url.clone();
    let sms = TestSystem::builder()
        .components(&[Component::Service(Product::Sms)])
        .nats(url.clone())
        .configure(move |config| config.nats = as_user(&sms_url, "sms"))
        .start()
        .await
        .expect("the sms service runs as NATS user sms");
    let gateway_url = url.clone();
    let gateway = TestSystem::builder()
        .components(&[Component::Gateway])
        .nats(url.clone())
        .configure(move |config| config.nats = as_user(&gateway_url, "gateway"))
        .start()
        .await
        .expect("the gateway runs as NATS user gateway");
    gateway.post_ok("sms:message:status", fixture("events", "sms.message.status.json")).await;
    let message = wait_until("the event through both users", Duration::from_secs(15), || async {
        let request = GetMessageRequest { id: "b34e35ad-fe34-4a8b-977c-b21cd76cd7d6:1".to_owned() };
        sms.sms().await.get_message(request).await.ok().map(|response| response.into_inner())
    })
    .await;
    assert_eq!(message.status, "DELIVRD");

    // NATS itself refuses what a user may not do.
    let (gateway_client, mut gateway_errors) = recording_client(&url, "gateway").await;
    gateway_client.publish("switchboard.changes.sms", "forged".into()).await.expect("sent");
    gateway_client.flush().await.expect("flushed");
    let error = refusal(&mut gateway_errors).await;
    assert!(error.contains("Permissions Violation") && error.contains("switchboard.changes.sms"), "{error}");
    let deleting = answer(&gateway_client, "$JS.API.STREAM.DELETE.SWITCHBOARD").await;
    assert!(deleting.is_none(), "the gateway cannot delete the stream");
    let error = refusal(&mut gateway_errors).await;
    assert!(error.contains("$JS.API.STREAM.DELETE.SWITCHBOARD"), "{error}");

    // The read-only subscriber sees events but cannot publish one, nor read a service's consumer.
    let (subscriber, mut subscriber_errors) = recording_client(&url, "subscriber").await;
    subscriber.publish("sms.message.status", "{}".into()).await.expect("sent");
    subscriber.flush().await.expect("flushed");
    let error = refusal(&mut subscriber_errors).await;
    assert!(error.contains("Permissions Violation") && error.contains("sms.message.status"), "{error}");
    let stealing = answer(&subscriber, "$JS.API.CONSUMER.MSG.NEXT.SWITCHBOARD.sms").await;
    assert!(stealing.is_none(), "the subscriber cannot pull from the sms service's consumer");
    let error = refusal(&mut subscriber_errors).await;
    assert!(error.contains("CONSUMER.MSG.NEXT.SWITCHBOARD.sms"), "{error}");

    // The stream is intact and still holds the event.
    let operator = nats::connect_once(&as_user(&url, "operator"), "test").await.expect("operator connects");
    let mut stream =
        async_nats::jetstream::new(operator).get_stream("SWITCHBOARD").await.expect("the stream exists");
    assert_eq!(stream.info().await.expect("info").state.messages, 1);
    gateway.stop().await.expect("gateway stops");
    sms.stop().await.expect("sms stops");
}

#[tokio::test]
async fn tokens_and_nkeys_are_presented_and_required() {
    let token_server = NatsServer::start_with_config(
        "authorization { token: $NATS_TOKEN }\n",
        &[("NATS_TOKEN", "t0ken-5e6f7a")],
    )
    .expect("nats-server starts");
    let mut config = NatsConfig {
        url: token_server.url(),
        connect_timeout: Duration::from_secs(2),
        ..NatsConfig::default()
    };
    assert!(nats::connect_once(&config, "sms").await.is_err(), "no token");
    config.auth.token = Some(Secret::new("not-the-token"));
    assert!(nats::connect_once(&config, "sms").await.is_err(), "wrong token");
    config.auth.token = Some(Secret::new("t0ken-5e6f7a"));
    nats::connect_once(&config, "sms").await.expect("the token is accepted");

    let user = nkeys::KeyPair::new_user();
    let stranger = nkeys::KeyPair::new_user();
    let nkey_server = NatsServer::start_with_config(
        &format!("authorization {{ users: [ {{ nkey: {} }} ] }}\n", user.public_key()),
        &[],
    )
    .expect("nats-server starts");
    let mut config = NatsConfig {
        url: nkey_server.url(),
        connect_timeout: Duration::from_secs(2),
        ..NatsConfig::default()
    };
    assert!(nats::connect_once(&config, "sms").await.is_err(), "no nkey");
    config.auth.nkey_seed = Some(Secret::new(stranger.seed().expect("seed")));
    assert!(nats::connect_once(&config, "sms").await.is_err(), "another nkey");
    config.auth.nkey_seed = Some(Secret::new(user.seed().expect("seed")));
    nats::connect_once(&config, "sms").await.expect("the nkey is accepted");
}

#[tokio::test]
async fn a_component_connects_to_nats_over_mutual_tls() {
    use crate::security_tls::Authority;
    use rcgen::ExtendedKeyUsagePurpose;

    let directory = tempfile::tempdir().expect("temp dir");
    let path = |name: &str| directory.path().join(name);
    let write = |name: &str, contents: &str| std::fs::write(path(name), contents).expect("write");
    let server_ca = Authority::new("nats test server CA");
    let client_ca = Authority::new("nats test client CA");
    let (server_cert, server_key) =
        server_ca.issue("nats", &["127.0.0.1", "localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let (client_cert, client_key) =
        client_ca.issue("sms", &["sms.internal"], ExtendedKeyUsagePurpose::ClientAuth);
    write("server.crt", &server_cert);
    write("server.key", &server_key);
    write("server-ca.crt", &server_ca.pem);
    write("client-ca.crt", &client_ca.pem);
    write("client.crt", &client_cert);
    write("client.key", &client_key);
    let server = NatsServer::start_with_config(
        &format!(
            "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  verify: true\n}}\n",
            path("server.crt").display(),
            path("server.key").display(),
            path("client-ca.crt").display()
        ),
        &[],
    )
    .expect("nats-server starts");

    let mut without_certificate =
        NatsConfig { url: server.url(), connect_timeout: Duration::from_secs(2), ..NatsConfig::default() };
    without_certificate.tls.required = true;
    without_certificate.tls.ca_file = Some(path("server-ca.crt"));
    assert!(nats::connect_once(&without_certificate, "sms").await.is_err(), "no client certificate");

    let mut tls = without_certificate.tls.clone();
    tls.cert_file = Some(path("client.crt"));
    tls.key_file = Some(path("client.key"));
    let url = server.url();
    let system = TestSystem::builder()
        .components(&[Component::Service(Product::Sms)])
        .nats(url)
        .configure(move |config| config.nats.tls = tls)
        .start()
        .await
        .expect("the sms service connects over mutual TLS");
    let mut client = system.sms().await;
    client
        .list_messages(switchboard_proto::sms::ListMessagesRequest::default())
        .await
        .expect("the service runs");
    system.stop().await.expect("stops");
}
