//! gRPC authentication end to end: every service, called with no token, an unknown token, a token of
//! another service, a read-only token on Watch, and a valid token.

use std::time::Duration;

use switchboard_events::Product;
use switchboard_runtime::Secret;
use switchboard_runtime::config::GrpcClientConfig;
use switchboard_tests::{TestSystem, fixture, wait_until};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const WATCHER_TOKEN: &str = "watcher-token-9f8e7d6c5b4a";

fn reader_token(product: Product) -> String {
    format!("reader-{product}-token-0123456789")
}

/// The product after `product`, whose reader token must not open `product`.
fn other(product: Product) -> Product {
    let all = Product::ALL;
    let index = all.iter().position(|candidate| *candidate == product).expect("a product");
    all[(index + 1) % all.len()]
}

fn request<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("metadata"));
    }
    request
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Read,
    Watch,
}

/// Makes a unary read (a List call) or opens a Watch stream on `product`'s service; the error
/// status when refused.
async fn call(
    system: &TestSystem,
    product: Product,
    kind: Call,
    token: Option<&str>,
) -> Result<(), tonic::Status> {
    use switchboard_proto::{chat, contacts, interact, sms, voice};
    match (product, kind) {
        (Product::Sms, Call::Read) => system
            .sms()
            .await
            .list_messages(request(sms::ListMessagesRequest::default(), token))
            .await
            .map(drop),
        (Product::Sms, Call::Watch) => {
            system.sms().await.watch(request(sms::WatchRequest::default(), token)).await.map(drop)
        }
        (Product::Chat, Call::Read) => system
            .chat()
            .await
            .list_outbound_messages(request(chat::ListOutboundMessagesRequest::default(), token))
            .await
            .map(drop),
        (Product::Chat, Call::Watch) => {
            system.chat().await.watch(request(chat::WatchRequest::default(), token)).await.map(drop)
        }
        (Product::Voice, Call::Read) => system
            .voice()
            .await
            .list_calls(request(voice::ListCallsRequest::default(), token))
            .await
            .map(drop),
        (Product::Voice, Call::Watch) => {
            system.voice().await.watch(request(voice::WatchRequest::default(), token)).await.map(drop)
        }
        (Product::Interact, Call::Read) => system
            .interact()
            .await
            .list_messages(request(interact::ListMessagesRequest::default(), token))
            .await
            .map(drop),
        (Product::Interact, Call::Watch) => {
            system.interact().await.watch(request(interact::WatchRequest::default(), token)).await.map(drop)
        }
        (Product::Contacts, Call::Read) => system
            .contacts()
            .await
            .list_contacts(request(contacts::ListContactsRequest::default(), token))
            .await
            .map(drop),
        (Product::Contacts, Call::Watch) => {
            system.contacts().await.watch(request(contacts::WatchRequest::default(), token)).await.map(drop)
        }
    }
}

async fn secured_system(health_without_token: bool) -> TestSystem {
    TestSystem::builder()
        .configure(move |config| {
            let auth = &mut config.grpc.auth;
            auth.enabled = true;
            auth.health_without_token = health_without_token;
            auth.clients = Product::ALL
                .into_iter()
                .map(|product| GrpcClientConfig {
                    name: format!("{product}-reader"),
                    tokens: vec![Secret::new(reader_token(product))],
                    services: vec![product.name().to_owned()],
                    watch: false,
                })
                .collect();
            // Configured by hash, as a deployment that keeps no plain token would.
            let hashed = Secret::new(WATCHER_TOKEN).sha256_digest("token").expect("digest");
            auth.clients.push(GrpcClientConfig {
                name: "watcher".to_owned(),
                tokens: vec![Secret::new(format!("sha256:{}", hex::encode(hashed)))],
                services: vec!["*".to_owned()],
                watch: true,
            });
        })
        .start()
        .await
        .expect("system starts")
}

fn code(outcome: Result<(), tonic::Status>) -> Option<Code> {
    outcome.err().map(|status| status.code())
}

#[tokio::test]
async fn every_grpc_service_needs_a_token_scoped_to_it_and_to_watching() {
    let system = secured_system(false).await;
    for product in Product::ALL {
        let own = reader_token(product);
        let foreign = reader_token(other(product));
        for kind in [Call::Read, Call::Watch] {
            let missing = call(&system, product, kind, None).await.expect_err("no token is refused");
            assert_eq!(missing.code(), Code::Unauthenticated, "{product} {kind:?}: {missing:?}");
            assert!(missing.message().contains("missing bearer token"), "{}", missing.message());
            let unknown = call(&system, product, kind, Some("not-a-configured-token")).await;
            assert_eq!(
                code(unknown),
                Some(Code::Unauthenticated),
                "{product} {kind:?} with an unknown token"
            );
            let wrong_service =
                call(&system, product, kind, Some(&foreign)).await.expect_err("other service");
            assert_eq!(wrong_service.code(), Code::PermissionDenied, "{product} {kind:?}");
            assert!(
                wrong_service.message().contains(&format!("{}-reader", other(product))),
                "the message names the client: {}",
                wrong_service.message()
            );
            assert_eq!(
                code(call(&system, product, kind, Some(WATCHER_TOKEN)).await),
                None,
                "{product} {kind:?}"
            );
        }
        assert_eq!(code(call(&system, product, Call::Read, Some(&own)).await), None, "{product} read");
        let watch = call(&system, product, Call::Watch, Some(&own)).await.expect_err("read-only token");
        assert_eq!(watch.code(), Code::PermissionDenied, "{product} watch with a read-only token");
        assert!(watch.message().contains("not watch"), "{}", watch.message());
    }
    // Health checks need a token here.
    let mut health = HealthClient::new(
        tonic::transport::Channel::from_shared(system.grpc_url.clone())
            .expect("url")
            .connect()
            .await
            .expect("connects"),
    );
    let refused = health.check(HealthCheckRequest::default()).await.expect_err("no token");
    assert_eq!(refused.code(), Code::Unauthenticated);
    let served = health
        .check(request(HealthCheckRequest::default(), Some(&reader_token(Product::Sms))))
        .await
        .expect("any valid token may check health");
    assert_eq!(served.into_inner().status, 1, "SERVING");
}

#[tokio::test]
async fn a_scoped_token_reads_real_data_and_public_health_needs_none() {
    let system = secured_system(true).await;
    system.post_ok("sms:message:status", fixture("events", "sms.message.status.json")).await;
    let token = reader_token(Product::Sms);
    let system = &system;
    let id = "b34e35ad-fe34-4a8b-977c-b21cd76cd7d6:1";
    let message = wait_until("the message over an authenticated call", Duration::from_secs(15), || {
        let token = token.clone();
        async move {
            let mut client = system.sms().await;
            let get = switchboard_proto::sms::GetMessageRequest { id: id.to_owned() };
            client.get_message(request(get, Some(&token))).await.ok().map(|response| response.into_inner())
        }
    })
    .await;
    assert_eq!(message.status, "DELIVRD");
    assert_eq!(message.mobile, "918921269123");
    let mut health = HealthClient::new(
        tonic::transport::Channel::from_shared(system.grpc_url.clone())
            .expect("url")
            .connect()
            .await
            .expect("connects"),
    );
    let served = health.check(HealthCheckRequest::default()).await.expect("health is public here");
    assert_eq!(served.into_inner().status, 1, "SERVING");
    // Public health opens nothing else.
    assert_eq!(code(call(system, Product::Sms, Call::Read, None).await), Some(Code::Unauthenticated));
}
