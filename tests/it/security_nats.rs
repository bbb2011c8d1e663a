//! NATS credentials and permissions end to end, with the accounts, users and permissions of the
//! Kubernetes manifests (deploy/k8s/base/nats/auth.conf): components connect only with their
//! credentials, work with no more than their permissions, and NATS itself refuses what a user may
//! not do, including requests whose subject is allowed in one form but whose body would reach
//! further (a consumer named in the body, a push consumer's delivery subject, a stream's limits) and
//! requests whose answer would be stored in a stream (a stream's subject as reply subject).

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use switchboard::Component;
use switchboard_events::Product;
use switchboard_proto::sms::GetMessageRequest;
use switchboard_runtime::config::NatsConfig;
use switchboard_runtime::nats::ConsumerSpec;
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
            .custom_inbox_prefix(nats::inbox_prefix(user))
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

/// The JetStream API prefix under which the SUBSCRIBERS account imports its read-only requests.
const SUBSCRIBER_API: &str = "$JS.SWITCHBOARD.API";

/// A user's client and the server errors it receives.
struct Client {
    user: &'static str,
    client: async_nats::Client,
    errors: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Client {
    async fn connect(url: &str, user: &'static str) -> Client {
        let (client, errors) = recording_client(url, user).await;
        Client { user, client, errors }
    }

    /// NATS refuses the request: no answer, and a permissions violation naming its subject.
    async fn refused(&mut self, subject: &str, body: serde_json::Value) {
        let request = self.client.request(subject.to_owned(), body.to_string().into());
        tokio::pin!(request);
        let error = tokio::select! {
            answer = &mut request => panic!("{}: {subject} was answered: {:?}", self.user, answer.map(|message| message.payload)),
            error = refusal(&mut self.errors) => error,
        };
        assert!(
            error.contains("Permissions Violation") && error.contains(subject),
            "{}: {subject}: {error}",
            self.user
        );
        let late = tokio::time::timeout(Duration::from_millis(100), request).await;
        assert!(!matches!(late, Ok(Ok(_))), "{}: {subject} was answered after all", self.user);
    }

    /// NATS refuses the publication with a permissions violation naming its subject.
    async fn refused_publish(&mut self, subject: &str) {
        self.client.publish(subject.to_owned(), "{}".into()).await.expect("sent");
        self.client.flush().await.expect("flushed");
        let error = refusal(&mut self.errors).await;
        assert!(
            error.contains("Permissions Violation") && error.contains(subject),
            "{}: {subject}: {error}",
            self.user
        );
    }

    /// NATS refuses the subscription with a permissions violation naming its subject.
    async fn refused_subscribe(&mut self, subject: &str) {
        let _subscription = self.client.subscribe(subject.to_owned()).await.expect("sent");
        self.client.flush().await.expect("flushed");
        let error = refusal(&mut self.errors).await;
        assert!(
            error.contains("Permissions Violation") && error.contains(subject),
            "{}: {subject}: {error}",
            self.user
        );
    }

    /// The JetStream API answers the request with an error: its description.
    async fn api_error(&self, subject: &str, body: serde_json::Value) -> String {
        let message = tokio::time::timeout(
            Duration::from_secs(5),
            self.client.request(subject.to_owned(), body.to_string().into()),
        )
        .await
        .expect("answered in time")
        .expect("answered");
        let answer: serde_json::Value = serde_json::from_slice(&message.payload).expect("JSON");
        answer["error"]["description"]
            .as_str()
            .unwrap_or_else(|| panic!("{subject}: not an error: {answer}"))
            .to_owned()
    }
}

/// The sms service's durable consumer, as the service declares it.
fn sms_consumer() -> ConsumerSpec {
    ConsumerSpec {
        stream: "SWITCHBOARD".to_owned(),
        durable_name: "sms".to_owned(),
        filter_subject: "sms.>".to_owned(),
        ack_wait: Duration::from_secs(30),
        max_ack_pending: 1000,
        max_batch: 100,
    }
}

/// A consumer request that would take over the consumer `name`: its filter matches no event. The
/// legacy subject $JS.API.CONSUMER.CREATE.<stream> carries the name in the body only.
fn hijack(name: &str) -> serde_json::Value {
    json!({
        "stream_name": "SWITCHBOARD",
        "config": {
            "name": name, "filter_subject": "sms.nothing.>", "ack_policy": "explicit", "deliver_policy": "all",
        },
    })
}

/// The same with a durable name, as $JS.API.CONSUMER.DURABLE.CREATE.<stream>.<name> wants it.
fn durable_hijack(name: &str) -> serde_json::Value {
    let mut request = hijack(name);
    request["config"]["durable_name"] = json!(name);
    request
}

/// What the attacks aim at, as the operator sees it.
#[derive(Debug, PartialEq)]
struct Targets {
    events: u64,
    event_limit: i64,
    dead_letters: u64,
    dead_letter_limit: i64,
    sms_filter: String,
    sms_deliver_subject: Option<String>,
    consumers: usize,
}

async fn targets(operator: &async_nats::jetstream::Context) -> Targets {
    let mut events = operator.get_stream("SWITCHBOARD").await.expect("the stream");
    let events_info = events.info().await.expect("info").clone();
    let mut dead_letters = operator.get_stream("SWITCHBOARD_DLQ").await.expect("the dead-letter stream");
    let dead_letters_info = dead_letters.info().await.expect("info").clone();
    let mut sms = events.get_consumer::<async_nats::jetstream::consumer::Config>("sms").await.expect("sms");
    let sms_info = sms.info().await.expect("info").clone();
    Targets {
        events: events_info.state.messages,
        event_limit: events_info.config.max_messages,
        dead_letters: dead_letters_info.state.messages,
        dead_letter_limit: dead_letters_info.config.max_messages,
        sms_filter: sms_info.config.filter_subject,
        sms_deliver_subject: sms_info.config.deliver_subject,
        consumers: events_info.state.consumer_count + dead_letters_info.state.consumer_count,
    }
}

/// A secured server on which the sms user created the streams and its consumer, the gateway
/// published an event and the sms user a dead letter, as they do in production; and the operator's
/// view of it.
async fn provisioned() -> (NatsServer, async_nats::jetstream::Context) {
    let server = secured_nats();
    let url = server.url();
    let sms_config = as_user(&url, "sms");
    let sms =
        nats::jetstream(nats::connect_once(&sms_config, "sms").await.expect("sms connects"), &sms_config);
    nats::provision_streams(&sms, &sms_config).await.expect("the sms user creates the streams");
    nats::ensure_consumer(&sms, &sms_consumer()).await.expect("the sms user creates its consumer");
    let gateway_config = as_user(&url, "gateway");
    let gateway = nats::jetstream(
        nats::connect_once(&gateway_config, "gateway").await.expect("the gateway connects"),
        &gateway_config,
    );
    gateway.publish("sms.message.status", "{}".into()).await.expect("sent").await.expect("stored");
    sms.publish("dlq.sms.message.status", "{}".into()).await.expect("sent").await.expect("stored");
    let operator_config = as_user(&url, "operator");
    let operator = nats::jetstream(
        nats::connect_once(&operator_config, "operator").await.expect("the operator connects"),
        &operator_config,
    );
    (server, operator)
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

    // The subscriber, in an account of its own, sees the events live (from well before they are
    // published: a subscription made across accounts may take a moment to receive).
    let (subscriber, mut subscriber_errors) = recording_client(&url, "subscriber").await;
    let mut live = subscriber.subscribe("sms.>").await.expect("the subscriber subscribes");
    let mut live_dead_letters = subscriber.subscribe("dlq.>").await.expect("the subscriber subscribes");
    subscriber.flush().await.expect("flushed");

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

    // The read-only subscriber saw the event live, replays what the streams stored through its
    // read-only JetStream API, but cannot publish an event, nor read a service's consumer.
    let seen = tokio::time::timeout(Duration::from_secs(5), live.next())
        .await
        .expect("the event arrives live")
        .expect("a message");
    assert_eq!(seen.subject.as_str(), "sms.message.status");
    let replay = async_nats::jetstream::with_prefix(subscriber.clone(), SUBSCRIBER_API);
    let mut stored = replay.get_stream("SWITCHBOARD").await.expect("the subscriber reads the stream's info");
    assert_eq!(stored.info().await.expect("info").state.messages, 1);
    let first = stored.get_first_raw_message_by_subject("sms.>", 1).await.expect("replays from the start");
    assert_eq!((first.sequence, first.payload.clone()), (1, seen.payload.clone()));
    assert!(stored.get_first_raw_message_by_subject("sms.>", 2).await.is_err(), "nothing after it");
    let sms_client = nats::connect_once(&as_user(&url, "sms"), "sms").await.expect("sms connects");
    let sms_js = nats::jetstream(sms_client.clone(), &as_user(&url, "sms"));
    sms_js.publish("dlq.sms.message.status", "{}".into()).await.expect("sent").await.expect("stored");
    sms_client.publish("switchboard.changes.sms", "{}".into()).await.expect("announced");
    let dead_letter = tokio::time::timeout(Duration::from_secs(5), live_dead_letters.next())
        .await
        .expect("the dead letter arrives live")
        .expect("a message");
    assert_eq!(dead_letter.subject.as_str(), "dlq.sms.message.status");
    let dead_letters = replay.get_stream("SWITCHBOARD_DLQ").await.expect("the dead letters' info");
    assert_eq!(
        dead_letters.get_raw_message(1).await.expect("replays a dead letter").subject.as_str(),
        "dlq.sms.message.status"
    );
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
    let operator = async_nats::jetstream::new(operator);
    let mut stream = operator.get_stream("SWITCHBOARD").await.expect("the stream exists");
    assert_eq!(stream.info().await.expect("info").state.messages, 1);
    gateway.stop().await.expect("gateway stops");
    sms.stop().await.expect("sms stops");

    // The operator replays dead letters and rebuilds a projection: reads any stream, deletes and
    // recreates a service's consumer.
    let dead_letters = operator.get_stream("SWITCHBOARD_DLQ").await.expect("the dead letters");
    let dead_letter = dead_letters.get_raw_message(1).await.expect("a dead letter");
    let replayed = operator
        .publish("sms.message.status", dead_letter.payload)
        .await
        .expect("sent")
        .await
        .expect("the replay is stored");
    assert_eq!((replayed.stream.as_str(), replayed.sequence), ("SWITCHBOARD", 2));
    assert!(stream.delete_consumer("sms").await.expect("deletes the consumer").success);
    let rebuilt = nats::ensure_consumer(&operator, &sms_consumer()).await.expect("recreates it");
    assert_eq!(rebuilt.cached_info().num_pending, 2, "from the start of the stream");
}

/// Each service, as its own user, does its whole job: creates its consumers, pulls and acknowledges
/// from them, dead-letters and announces changes to its replicas.
#[tokio::test]
async fn every_service_does_its_job_as_its_own_user() {
    let (server, operator) = provisioned().await;
    let url = server.url();
    let gateway_config = as_user(&url, "gateway");
    let gateway = nats::jetstream(
        nats::connect_once(&gateway_config, "gateway").await.expect("the gateway connects"),
        &gateway_config,
    );
    let services = [
        ("sms", vec![("sms", "sms")]),
        ("chat", vec![("chat-whatsapp", "whatsapp"), ("chat-rcs", "rcs")]),
        ("voice", vec![("voice", "voice")]),
        ("interact", vec![("interact", "vmn")]),
        ("contacts", vec![("contacts", "contacts")]),
    ];
    for (user, consumers) in services {
        let config = as_user(&url, user);
        let client = nats::connect_once(&config, user).await.expect("connects");
        let js = nats::jetstream(client.clone(), &config);
        nats::provision_streams(&js, &config).await.expect("finds the streams as they are");
        for (durable, root) in consumers {
            let spec = ConsumerSpec {
                durable_name: durable.to_owned(),
                filter_subject: format!("{root}.>"),
                ..sms_consumer()
            };
            let consumer = nats::ensure_consumer(&js, &spec).await.expect("creates its consumer");
            gateway
                .publish(format!("{root}.test.event"), "{}".into())
                .await
                .expect("sent")
                .await
                .expect("stored");
            let wanted = format!("{root}.test.event");
            let mut subjects = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while !subjects.contains(&wanted) {
                assert!(tokio::time::Instant::now() < deadline, "{durable}: {subjects:?}");
                let mut batch = consumer
                    .batch()
                    .max_messages(10)
                    .expires(Duration::from_millis(500))
                    .messages()
                    .await
                    .expect("pulls");
                while let Some(message) = batch.next().await {
                    let message = message.expect("delivered");
                    subjects.push(message.subject.to_string());
                    message.double_ack().await.expect("acknowledged");
                }
            }
            let mut info = operator
                .get_stream("SWITCHBOARD")
                .await
                .expect("stream")
                .get_consumer::<async_nats::jetstream::consumer::Config>(durable)
                .await
                .expect("consumer");
            let info = info.info().await.expect("info");
            assert_eq!((info.num_ack_pending, info.num_pending), (0, 0), "{durable}");
        }
        js.publish(format!("dlq.{user}.test.event"), "{}".into())
            .await
            .expect("sent")
            .await
            .expect("its dead letter is stored");
        let changes = format!("switchboard.changes.{user}");
        let mut announcements = client.subscribe(changes.clone()).await.expect("subscribes");
        client.publish(changes, "{}".into()).await.expect("announces");
        tokio::time::timeout(Duration::from_secs(5), announcements.next())
            .await
            .expect("its replicas hear it")
            .expect("an announcement");
    }
    let mut dead_letters = operator.get_stream("SWITCHBOARD_DLQ").await.expect("the dead letters");
    assert_eq!(
        dead_letters.info().await.expect("info").state.messages,
        6,
        "one from provisioning, one per service"
    );
}

#[tokio::test]
async fn the_subscriber_cannot_reconfigure_a_service_consumer() {
    let (server, operator) = provisioned().await;
    let before = targets(&operator).await;
    let mut subscriber = Client::connect(&server.url(), "subscriber").await;
    // The legacy create subject names only the stream; the consumer's name is in the body. In the
    // trial this changed the sms consumer's filter and the sms service stopped receiving events.
    subscriber.refused("$JS.API.CONSUMER.CREATE.SWITCHBOARD", hijack("sms")).await;
    subscriber.refused("$JS.API.CONSUMER.CREATE.SWITCHBOARD.sms", hijack("sms")).await;
    subscriber.refused("$JS.API.CONSUMER.CREATE.SWITCHBOARD.sms.sms.nothing.>", hijack("sms")).await;
    subscriber.refused("$JS.API.CONSUMER.DURABLE.CREATE.SWITCHBOARD.sms", durable_hijack("sms")).await;
    subscriber.refused(&format!("{SUBSCRIBER_API}.CONSUMER.CREATE.SWITCHBOARD"), hijack("sms")).await;
    assert_eq!(targets(&operator).await, before, "the sms consumer is unchanged");
    assert_eq!(before.sms_filter, "sms.>");
}

#[tokio::test]
async fn the_subscriber_cannot_make_the_server_write_into_a_stream() {
    let (server, operator) = provisioned().await;
    let before = targets(&operator).await;
    let mut subscriber = Client::connect(&server.url(), "subscriber").await;
    // A push consumer delivers the stream's messages to its deliver_subject, published by the
    // server in the stream's account: under dlq.> they were stored in the dead-letter stream.
    for stream in ["SWITCHBOARD", "SWITCHBOARD_DLQ"] {
        let push = json!({
            "stream_name": stream,
            "config": { "deliver_subject": "dlq.sms.forged", "ack_policy": "none", "deliver_policy": "all" },
        });
        subscriber.refused(&format!("$JS.API.CONSUMER.CREATE.{stream}"), push.clone()).await;
        subscriber.refused(&format!("$JS.API.CONSUMER.CREATE.{stream}.crm"), push.clone()).await;
        subscriber.refused(&format!("{SUBSCRIBER_API}.CONSUMER.CREATE.{stream}"), push).await;
    }
    // Nor by publishing, in either account's subjects.
    subscriber.refused_publish("dlq.sms.forged").await;
    subscriber.refused_publish("sms.message.status").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(targets(&operator).await, before, "nothing was written into the streams");
}

#[tokio::test]
async fn a_service_cannot_rewrite_a_stream() {
    let (server, operator) = provisioned().await;
    let before = targets(&operator).await;
    let mut sms = Client::connect(&server.url(), "sms").await;
    let mut config =
        operator.get_stream("SWITCHBOARD").await.expect("the stream").cached_info().config.clone();
    config.max_messages = 1;
    let shrunk = serde_json::to_value(&config).expect("JSON");
    // In the trial this dropped the stream to its last message.
    sms.refused("$JS.API.STREAM.UPDATE.SWITCHBOARD", shrunk.clone()).await;
    // Creating it again with other settings is refused by JetStream: a create never changes a
    // stream.
    let error = sms.api_error("$JS.API.STREAM.CREATE.SWITCHBOARD", shrunk).await;
    assert!(error.contains("different configuration"), "{error}");
    let mut dead_letter_config =
        operator.get_stream("SWITCHBOARD_DLQ").await.expect("the stream").cached_info().config.clone();
    dead_letter_config.max_messages = 1;
    let shrunk = serde_json::to_value(&dead_letter_config).expect("JSON");
    sms.refused("$JS.API.STREAM.UPDATE.SWITCHBOARD_DLQ", shrunk.clone()).await;
    let error = sms.api_error("$JS.API.STREAM.CREATE.SWITCHBOARD_DLQ", shrunk).await;
    assert!(error.contains("different configuration"), "{error}");
    for request in ["PURGE", "DELETE"] {
        sms.refused(&format!("$JS.API.STREAM.{request}.SWITCHBOARD"), json!({})).await;
        sms.refused(&format!("$JS.API.STREAM.{request}.SWITCHBOARD_DLQ"), json!({})).await;
    }
    sms.refused("$JS.API.STREAM.MSG.DELETE.SWITCHBOARD", json!({ "seq": 1 })).await;
    assert_eq!(targets(&operator).await, before, "the streams' messages and limits are unchanged");
    assert_eq!(before.event_limit, -1);

    // A service whose configured settings differ from the stream's does not start on them: it
    // says why and leaves the change to the operator.
    let mut wanted = as_user(&server.url(), "sms");
    wanted.request_timeout = Duration::from_secs(1);
    wanted.stream.max_age = Duration::from_secs(3600);
    let js = nats::jetstream(nats::connect_once(&wanted, "sms").await.expect("connects"), &wanted);
    let error = nats::provision_streams(&js, &wanted).await.expect_err("may not update the stream");
    assert!(error.to_string().contains("max_age") && error.to_string().contains("operator"), "{error}");
    assert_eq!(targets(&operator).await, before);
}

#[tokio::test]
async fn no_answer_to_a_request_is_stored_in_a_stream() {
    let (server, operator) = provisioned().await;
    let before = targets(&operator).await;
    let url = server.url();
    // A request names the subject of its answer, and no permission covers that subject. Were the
    // streams in the components' account, these answers (a stream's info, the sms consumer's
    // events) would be stored as dead letters of another component, or as an event.
    let sms = Client::connect(&url, "sms").await;
    let gateway = Client::connect(&url, "gateway").await;
    let requests = [
        (&sms, "$JS.API.STREAM.INFO.SWITCHBOARD", "dlq.chat.forged", ""),
        (&sms, "$JS.API.CONSUMER.INFO.SWITCHBOARD.sms", "sms.message.forged", ""),
        (&sms, "$JS.API.CONSUMER.MSG.NEXT.SWITCHBOARD.sms", "dlq.chat.forged", r#"{"batch":10}"#),
        (&gateway, "$JS.API.STREAM.INFO.SWITCHBOARD_DLQ", "dlq.sms.forged", ""),
        (&gateway, "$JS.API.INFO", "sms.message.forged", ""),
    ];
    for (user, subject, reply, body) in requests {
        user.client.publish_with_reply(subject, reply, body.into()).await.expect("sent");
        user.client.flush().await.expect("flushed");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(targets(&operator).await, before, "no answer was stored");

    // Nor delivered to another service's replicas as a change announcement.
    let mut chat = Client::connect(&url, "chat").await;
    let mut announcements = chat.client.subscribe("switchboard.changes.chat").await.expect("subscribes");
    chat.client.flush().await.expect("flushed");
    for (subject, body) in [
        ("$JS.API.STREAM.INFO.SWITCHBOARD", ""),
        ("$JS.API.CONSUMER.MSG.NEXT.SWITCHBOARD.sms", r#"{"batch":10}"#),
    ] {
        sms.client.publish_with_reply(subject, "switchboard.changes.chat", body.into()).await.expect("sent");
    }
    sms.client.flush().await.expect("flushed");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), announcements.next()).await.is_err(),
        "chat's replicas heard nothing"
    );
    chat.refused_publish("switchboard.changes.sms").await;
}

#[tokio::test]
async fn a_service_push_consumer_delivers_into_no_stream() {
    let (server, operator) = provisioned().await;
    let url = server.url();
    // A service may define its own consumer, and so, while it does not exist (here after an
    // operator's rebuild began), as a push consumer. Even with someone listening to the dead
    // letters live, the server delivers it in the streams' account, where nobody listens.
    let mut events = operator.get_stream("SWITCHBOARD").await.expect("the stream");
    assert!(events.delete_consumer("sms").await.expect("the operator deletes it").success);
    let before = events.info().await.expect("info").state.messages;
    let sms = Client::connect(&url, "sms").await;
    let push = json!({
        "stream_name": "SWITCHBOARD",
        "config": {
            "name": "sms", "durable_name": "sms", "deliver_subject": "dlq.chat.forged",
            "ack_policy": "explicit", "deliver_policy": "all",
        },
    });
    let answer = sms
        .client
        .request("$JS.API.CONSUMER.CREATE.SWITCHBOARD.sms", push.to_string().into())
        .await
        .expect("answered");
    assert!(!String::from_utf8_lossy(&answer.payload).contains("\"error\""), "{:?}", answer.payload);
    // A push consumer delivers once someone subscribes to its delivery subject.
    let (subscriber, _errors) = recording_client(&url, "subscriber").await;
    let mut live = subscriber.subscribe("dlq.chat.forged").await.expect("subscribes");
    subscriber.flush().await.expect("flushed");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut dead_letters = operator.get_stream("SWITCHBOARD_DLQ").await.expect("the dead letters");
    assert_eq!(dead_letters.info().await.expect("info").state.messages, 1, "only the one from provisioning");
    assert_eq!(events.info().await.expect("info").state.messages, before);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), live.next()).await.is_err(),
        "nothing was delivered to the live dead letters"
    );
}

/// Everything else a user might try on another's consumer, a stream or a subject not its own.
#[tokio::test]
async fn nats_refuses_every_user_what_is_not_its_job() {
    let (server, operator) = provisioned().await;
    let before = targets(&operator).await;
    let url = server.url();

    // The subscriber: no request on the streams but info and message reads, nothing published.
    let mut subscriber = Client::connect(&url, "subscriber").await;
    for subject in [
        "$JS.API.STREAM.DELETE.SWITCHBOARD",
        "$JS.API.STREAM.PURGE.SWITCHBOARD",
        "$JS.API.STREAM.PURGE.SWITCHBOARD_DLQ",
        "$JS.API.STREAM.UPDATE.SWITCHBOARD",
        "$JS.API.STREAM.CREATE.CRM",
        "$JS.API.STREAM.MSG.DELETE.SWITCHBOARD",
        "$JS.API.CONSUMER.DELETE.SWITCHBOARD.sms",
        "$JS.API.CONSUMER.MSG.NEXT.SWITCHBOARD.sms",
        "$JS.API.CONSUMER.INFO.SWITCHBOARD.sms",
        "$JS.ACK.SWITCHBOARD.sms.1.1.1.1.0",
        "$JS.SWITCHBOARD.API.STREAM.DELETE.SWITCHBOARD",
        "$JS.SWITCHBOARD.API.STREAM.PURGE.SWITCHBOARD_DLQ",
        "$JS.SWITCHBOARD.API.CONSUMER.DELETE.SWITCHBOARD.sms",
        "$JS.SWITCHBOARD.API.CONSUMER.MSG.NEXT.SWITCHBOARD.sms",
    ] {
        subscriber.refused(subject, json!({})).await;
    }
    for subject in ["switchboard.changes.sms", "contacts.contact.updated", "dlq.gateway.forged"] {
        subscriber.refused_publish(subject).await;
    }

    // A service: not another service's consumer in any subject form, not another's dead letters
    // or change announcements, not a stream.
    let mut chat = Client::connect(&url, "chat").await;
    chat.refused("$JS.API.CONSUMER.CREATE.SWITCHBOARD", hijack("sms")).await;
    chat.refused("$JS.API.CONSUMER.CREATE.SWITCHBOARD", hijack("chat-whatsapp")).await;
    chat.refused("$JS.API.CONSUMER.CREATE.SWITCHBOARD.sms", hijack("sms")).await;
    chat.refused("$JS.API.CONSUMER.CREATE.SWITCHBOARD.sms.sms.nothing.>", hijack("sms")).await;
    chat.refused("$JS.API.CONSUMER.DURABLE.CREATE.SWITCHBOARD.sms", durable_hijack("sms")).await;
    for subject in [
        "$JS.API.CONSUMER.DELETE.SWITCHBOARD.sms",
        "$JS.API.CONSUMER.DELETE.SWITCHBOARD.chat-whatsapp",
        "$JS.API.CONSUMER.MSG.NEXT.SWITCHBOARD.sms",
        "$JS.API.CONSUMER.INFO.SWITCHBOARD.sms",
        "$JS.ACK.SWITCHBOARD.sms.1.1.1.1.0",
        "$JS.API.STREAM.UPDATE.SWITCHBOARD",
        "$JS.API.STREAM.PURGE.SWITCHBOARD_DLQ",
        "$JS.API.STREAM.CREATE.OTHER",
    ] {
        chat.refused(subject, json!({})).await;
    }
    for subject in ["dlq.sms.forged", "switchboard.changes.sms", "sms.message.status"] {
        chat.refused_publish(subject).await;
    }
    // Nor read another component's replies (pulled events, API answers), nor the events or dead
    // letters as they are published.
    for subject in ["_INBOX.>", "_INBOX.*.>", "_INBOX.sms.>", "_INBOX.gateway.>", "sms.>", "dlq.>", ">"] {
        chat.refused_subscribe(subject).await;
    }
    // Its own subjects with another consumer's name in the body: JetStream refuses the mismatch.
    let sms = Client::connect(&url, "sms").await;
    for subject in [
        "$JS.API.CONSUMER.CREATE.SWITCHBOARD.sms",
        "$JS.API.CONSUMER.CREATE.SWITCHBOARD.sms.nothing.>",
        "$JS.API.CONSUMER.DURABLE.CREATE.SWITCHBOARD.sms",
    ] {
        let error = sms.api_error(subject, durable_hijack("chat-whatsapp")).await;
        assert!(error.contains("does not match"), "{subject}: {error}");
    }

    // The gateway: publishes events and its own dead letters only.
    let mut gateway = Client::connect(&url, "gateway").await;
    for subject in ["dlq.sms.forged", "switchboard.changes.sms", "$JS.ACK.SWITCHBOARD.sms.1.1.1.1.0"] {
        gateway.refused_publish(subject).await;
    }
    for subject in ["_INBOX.>", "_INBOX.sms.>", "sms.>", "switchboard.changes.sms"] {
        gateway.refused_subscribe(subject).await;
    }
    gateway.refused("$JS.API.CONSUMER.CREATE.SWITCHBOARD", hijack("sms")).await;
    gateway.refused("$JS.API.CONSUMER.CREATE.SWITCHBOARD.sms", hijack("sms")).await;
    for subject in [
        "$JS.API.STREAM.UPDATE.SWITCHBOARD",
        "$JS.API.STREAM.CREATE.SWITCHBOARD",
        "$JS.API.STREAM.PURGE.SWITCHBOARD",
        "$JS.API.STREAM.DELETE.SWITCHBOARD_DLQ",
        "$JS.API.CONSUMER.MSG.NEXT.SWITCHBOARD.sms",
        "$JS.API.STREAM.MSG.GET.SWITCHBOARD",
    ] {
        gateway.refused(subject, json!({})).await;
    }

    assert_eq!(targets(&operator).await, before, "streams and consumers are unchanged");
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
