//! NATS: connecting (with credentials and reconnects) and provisioning JetStream.
//!
//! `get_or_create_stream`/`get_or_create_consumer` leave an existing configuration as it is, so start-up
//! compares the settings Switchboard manages with the server's and updates them explicitly, logging
//! what changed. With the Kubernetes manifests' NATS users the components may create a missing
//! stream but not update one; a stream whose settings differ then keeps them, and start-up says so.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use async_nats::{Client, ConnectOptions, ServerAddr};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::config::{NatsConfig, StreamConfig};

#[derive(Debug, Error)]
pub enum NatsError {
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("invalid NATS credentials configuration: {0}")]
    Credentials(String),
    #[error("nats.url: {0}")]
    Url(String),
    #[error("stopped before NATS was reachable")]
    Stopped,
    #[error("cannot provision stream {stream}: {message}")]
    Stream { stream: String, message: String },
    #[error("cannot provision consumer {consumer} on {stream}: {message}")]
    Consumer { stream: String, consumer: String, message: String },
}

/// Connection options from configuration: credentials, TLS, timeouts, unlimited reconnects.
pub async fn connect_options(config: &NatsConfig, component: &str) -> Result<ConnectOptions, NatsError> {
    let auth = &config.auth;
    let mut options = if let Some(path) = &auth.credentials_file {
        ConnectOptions::with_credentials_file(path.clone()).await.map_err(|error| {
            NatsError::Credentials(format!("credentials_file {}: {error}", path.display()))
        })?
    } else {
        ConnectOptions::new()
    };
    if let (Some(user), Some(password)) = (&auth.user, &auth.password) {
        options = options.user_and_password(user.clone(), password.expose().to_owned());
    }
    if let Some(user) = &auth.user {
        // Replies (JetStream API answers, pulled messages, publish acknowledgements) come to
        // _INBOX.<user>.>, so NATS can let each user subscribe to its own replies only
        // (deploy/k8s/base/nats/auth.conf): not read, nor learn where to send, another's.
        options = options.custom_inbox_prefix(inbox_prefix(user));
    }
    if let Some(token) = &auth.token {
        options = options.token(token.expose().to_owned());
    }
    if let Some(seed) = &auth.nkey_seed {
        options = options.nkey(seed.expose().to_owned());
    }
    let tls = &config.tls;
    if tls.required {
        options = options.require_tls(true);
    }
    if let Some(ca) = &tls.ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    let component = component.to_owned();
    Ok(options
        .name(format!("switchboard-{component}"))
        .connection_timeout(config.connect_timeout)
        .request_timeout(Some(config.request_timeout))
        .max_reconnects(None)
        .event_callback(move |event| {
            let component = component.clone();
            async move {
                metrics::counter!(
                    "switchboard_nats_connection_events_total",
                    "component" => component.clone(),
                    "event" => event_name(&event)
                )
                .increment(1);
                match event {
                    async_nats::Event::Connected => tracing::info!(%component, "nats connected"),
                    async_nats::Event::Disconnected => {
                        tracing::warn!(%component, "nats disconnected; reconnecting")
                    }
                    async_nats::Event::ClientError(error) => {
                        tracing::debug!(%component, %error, "nats client error")
                    }
                    other => tracing::warn!(%component, event = %other, "nats event"),
                }
            }
        }))
}

/// Where the replies to a NATS user's requests come: `_INBOX.<user>`, within the usual `_INBOX.>`.
pub fn inbox_prefix(user: &str) -> String {
    format!("_INBOX.{user}")
}

/// The server URL(s) fit for logs: credentials written into a URL (`nats://user:password@host`)
/// are replaced by `<redacted>`.
pub fn redacted_url(urls: &str) -> String {
    urls.split(',')
        .map(|url| match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}<redacted>{}", &url[..scheme + 3], &url[at..])
            }
            _ => url.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn event_name(event: &async_nats::Event) -> &'static str {
    match event {
        async_nats::Event::Connected => "connected",
        async_nats::Event::Disconnected => "disconnected",
        async_nats::Event::LameDuckMode => "lame_duck",
        async_nats::Event::Draining => "draining",
        async_nats::Event::Closed => "closed",
        async_nats::Event::SlowConsumer(_) => "slow_consumer",
        async_nats::Event::ServerError(_) => "server_error",
        async_nats::Event::ClientError(_) => "client_error",
    }
}

/// The servers of `nats.url`: one URL, or several separated by commas (a cluster's servers; the
/// client connects to one and fails over to the others). Errors never show a URL's credentials.
pub fn server_addresses(urls: &str) -> Result<Vec<ServerAddr>, String> {
    let mut addresses = Vec::new();
    for url in urls.split(',').map(str::trim) {
        if url.is_empty() {
            return Err(format!("an empty server in {:?}", redacted_url(urls)));
        }
        let address: ServerAddr = url.parse().map_err(|error: std::io::Error| {
            format!("{:?} is not a server URL: {error}", redacted_url(url))
        })?;
        addresses.push(address);
    }
    Ok(addresses)
}

/// Connects, retrying with back-off until connected or `shutdown` is cancelled. Each failure is
/// logged, so a component waiting for NATS says why.
pub async fn connect(
    config: &NatsConfig,
    component: &str,
    shutdown: &CancellationToken,
) -> Result<Client, NatsError> {
    let addresses = server_addresses(&config.url).map_err(NatsError::Url)?;
    let mut pauses = crate::retry::waiting();
    loop {
        let delay = pauses.next().unwrap_or(Duration::from_secs(5));
        let options = connect_options(config, component).await?;
        match options.connect(addresses.as_slice()).await {
            Ok(client) => return Ok(client),
            Err(error) => {
                tracing::warn!(url = %redacted_url(&config.url), error = %error, retry_in = ?delay, "cannot reach nats");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Err(NatsError::Stopped),
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Connects once, without retrying: for tools that must fail fast.
pub async fn connect_once(config: &NatsConfig, component: &str) -> Result<Client, NatsError> {
    let addresses = server_addresses(&config.url).map_err(NatsError::Url)?;
    let options = connect_options(config, component).await?;
    options
        .connect(addresses.as_slice())
        .await
        .map_err(|source| NatsError::Connect { url: redacted_url(&config.url), source })
}

/// A JetStream context whose API calls and publish acks are bounded by `request_timeout`, and whose
/// un-acknowledged publishes are bounded (publishers wait for room instead of failing).
pub fn jetstream(client: Client, config: &NatsConfig) -> jetstream::Context {
    jetstream_with_timeout(client, config.request_timeout)
}

/// [`jetstream`] with another bound on API calls and publish acks (the gateway waits for a publish
/// ack only as long as its `publish_timeout`).
pub fn jetstream_with_timeout(client: Client, timeout: Duration) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(timeout)
        .max_ack_inflight(4096)
        .backpressure_on_inflight(true)
        .build(client)
}

/// The stream configuration Switchboard wants for `settings` with `subjects`.
fn desired_stream(settings: &StreamConfig, subjects: Vec<String>, description: &str) -> stream::Config {
    stream::Config {
        name: settings.name.clone(),
        description: Some(description.to_owned()),
        subjects,
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        num_replicas: settings.replicas,
        max_age: settings.max_age,
        max_bytes: settings.max_bytes,
        max_message_size: settings.max_message_size,
        duplicate_window: settings.duplicate_window,
        ..Default::default()
    }
}

/// The settings Switchboard manages that differ between `current` and `desired`, by name.
fn stream_differences(current: &stream::Config, desired: &stream::Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut current_subjects = current.subjects.clone();
    let mut desired_subjects = desired.subjects.clone();
    current_subjects.sort();
    desired_subjects.sort();
    if current_subjects != desired_subjects {
        changed.push("subjects");
    }
    if current.num_replicas != desired.num_replicas {
        changed.push("replicas");
    }
    if current.max_age != desired.max_age {
        changed.push("max_age");
    }
    if current.max_bytes != desired.max_bytes {
        changed.push("max_bytes");
    }
    if current.max_message_size != desired.max_message_size {
        changed.push("max_message_size");
    }
    if current.duplicate_window != desired.duplicate_window {
        changed.push("duplicate_window");
    }
    if current.description != desired.description {
        changed.push("description");
    }
    changed
}

/// Creates the stream, or updates the settings Switchboard manages when they differ (an error when
/// the NATS user may not).
pub async fn ensure_stream(
    js: &jetstream::Context,
    settings: &StreamConfig,
    subjects: Vec<String>,
    description: &str,
) -> Result<stream::Stream, NatsError> {
    let desired = desired_stream(settings, subjects, description);
    let stream_error = |message: String| NatsError::Stream { stream: settings.name.clone(), message };
    match js.get_stream(&settings.name).await {
        Ok(existing) => {
            let current = existing.cached_info().config.clone();
            let changed = stream_differences(&current, &desired);
            if changed.is_empty() {
                return Ok(existing);
            }
            let updated = stream::Config {
                subjects: desired.subjects.clone(),
                num_replicas: desired.num_replicas,
                max_age: desired.max_age,
                max_bytes: desired.max_bytes,
                max_message_size: desired.max_message_size,
                duplicate_window: desired.duplicate_window,
                description: desired.description.clone(),
                ..current
            };
            // Where NATS users may not update streams (deploy/k8s/base/nats/auth.conf), NATS refuses
            // and the component stays not ready until an operator applies the change.
            js.update_stream(updated).await.map_err(|error| {
                stream_error(format!(
                    "its settings {changed:?} differ from the configuration and updating them failed \
                     ({error}); if this NATS user may not update streams, an operator applies the \
                     change (docs/deploy.md, \"Changing a stream's settings\")"
                ))
            })?;
            tracing::info!(stream = %settings.name, changed = ?changed, "updated stream settings");
            js.get_stream(&settings.name).await.map_err(|error| stream_error(error.to_string()))
        }
        Err(error)
            if matches!(error.kind(), jetstream::context::GetStreamErrorKind::JetStream(ref inner)
                if inner.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
        {
            match js.create_stream(desired).await {
                Ok(created) => {
                    tracing::info!(stream = %settings.name, "created stream");
                    Ok(created)
                }
                // Another replica created it between our lookup and our create; otherwise the
                // create's own error says why (no JetStream leader yet, no room for the replicas, …).
                Err(create_error) => js.get_stream(&settings.name).await.map_err(|_| {
                    stream_error(format!("it does not exist and creating it failed: {create_error}"))
                }),
            }
        }
        Err(error) => Err(stream_error(error.to_string())),
    }
}

/// Creates or updates both streams: the events and the dead letters.
pub async fn provision_streams(js: &jetstream::Context, config: &NatsConfig) -> Result<(), NatsError> {
    let subjects = config.subjects();
    ensure_stream(
        js,
        &config.stream,
        subjects.stream_subjects(),
        "Switchboard: every provider webhook event",
    )
    .await?;
    ensure_stream(
        js,
        &config.dead_letter_stream,
        vec![subjects.dead_letter_filter()],
        "Switchboard: events that could not be processed, with the reason",
    )
    .await?;
    Ok(())
}

/// A durable pull consumer's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSpec {
    pub stream: String,
    pub durable_name: String,
    pub filter_subject: String,
    pub ack_wait: Duration,
    pub max_ack_pending: i64,
    /// The largest pull request; at least the batch size.
    pub max_batch: i64,
}

fn desired_consumer(spec: &ConsumerSpec) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(spec.durable_name.clone()),
        description: Some(format!("Switchboard projection of {}", spec.filter_subject)),
        deliver_policy: consumer::DeliverPolicy::All,
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: spec.ack_wait,
        // Never give up on a message in the server: a poison message is dead-lettered by the service
        // itself, and an event that waits for a database that is down must not be dropped.
        max_deliver: -1,
        filter_subject: spec.filter_subject.clone(),
        max_ack_pending: spec.max_ack_pending,
        max_batch: spec.max_batch,
        ..Default::default()
    }
}

/// Gets the durable consumer, creating it or updating the settings Switchboard manages.
pub async fn ensure_consumer(
    js: &jetstream::Context,
    spec: &ConsumerSpec,
) -> Result<consumer::PullConsumer, NatsError> {
    let consumer_error = |message: String| NatsError::Consumer {
        stream: spec.stream.clone(),
        consumer: spec.durable_name.clone(),
        message,
    };
    let stream = js.get_stream(&spec.stream).await.map_err(|error| consumer_error(error.to_string()))?;
    let desired = desired_consumer(spec);
    match stream.get_consumer::<consumer::pull::Config>(&spec.durable_name).await {
        Ok(existing) => {
            let current = &existing.cached_info().config;
            let mut changed = Vec::new();
            if current.filter_subject != desired.filter_subject {
                changed.push("filter_subject");
            }
            if current.ack_wait != desired.ack_wait {
                changed.push("ack_wait");
            }
            if current.max_ack_pending != desired.max_ack_pending {
                changed.push("max_ack_pending");
            }
            if current.max_deliver != desired.max_deliver {
                changed.push("max_deliver");
            }
            if current.max_batch != desired.max_batch {
                changed.push("max_batch");
            }
            if changed.is_empty() {
                return Ok(existing);
            }
            let updated = stream
                .update_consumer(desired)
                .await
                .map_err(|error| consumer_error(format!("updating {changed:?}: {error}")))?;
            tracing::info!(consumer = %spec.durable_name, changed = ?changed, "updated consumer settings");
            Ok(updated)
        }
        Err(_) => {
            let created =
                stream.create_consumer(desired).await.map_err(|error| consumer_error(error.to_string()))?;
            tracing::info!(consumer = %spec.durable_name, filter = %spec.filter_subject, "created consumer");
            Ok(created)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_never_logged() {
        assert_eq!(
            redacted_url("nats://gateway:hunter2@nats-0:4222,tls://tok@nats-1:4222,nats://nats-2:4222"),
            "nats://<redacted>@nats-0:4222,tls://<redacted>@nats-1:4222,nats://nats-2:4222"
        );
    }

    #[test]
    fn a_cluster_is_listed_with_commas() {
        let addresses =
            server_addresses("nats://a:4222, nats://u:p@b:4223,tls://c:4224").expect("three servers");
        assert_eq!(addresses.len(), 3);
        assert_eq!(addresses[1].port(), 4223);
        assert!(server_addresses("nats://a:4222").is_ok());
        let error = server_addresses("nats://a:4222,").expect_err("an empty entry");
        assert!(error.contains("empty"), "{error}");
        let error = server_addresses("nats://user:hunter2@a:notaport").expect_err("a bad port");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn unchanged_streams_have_no_differences_and_changes_are_named() {
        let settings = StreamConfig::default();
        let desired = desired_stream(&settings, vec!["b.>".into(), "a.>".into()], "d");
        let mut current = desired.clone();
        current.subjects.reverse();
        assert!(stream_differences(&current, &desired).is_empty());
        current.max_age = Duration::from_secs(1);
        current.duplicate_window = Duration::from_secs(1);
        assert_eq!(stream_differences(&current, &desired), ["max_age", "duplicate_window"]);
    }
}
