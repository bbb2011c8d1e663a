//! What a component gets from the process it runs in: configuration, a NATS connection with the
//! streams provisioned, subject names, readiness, and the shutdown signal.
//!
//! Several components (the gateway and every service, in `switchboard up`) can share one platform.

use std::sync::Arc;

use async_nats::jetstream;
use switchboard_events::Subjects;
use tokio_util::sync::CancellationToken;

use crate::admin::Readiness;
use crate::config::Config;
use crate::nats::{self, NatsError};

#[derive(Debug, Clone)]
pub struct Platform {
    pub config: Arc<Config>,
    pub client: async_nats::Client,
    pub jetstream: jetstream::Context,
    pub subjects: Subjects,
    pub readiness: Readiness,
    pub shutdown: CancellationToken,
}

impl Platform {
    /// Connects to NATS (retrying until it answers or shutdown), provisions both streams, and
    /// registers the NATS readiness checks.
    pub async fn start(
        config: Arc<Config>,
        component: &str,
        readiness: Readiness,
        shutdown: CancellationToken,
    ) -> Result<Platform, NatsError> {
        let client = nats::connect(&config.nats, component, &shutdown).await?;
        let jetstream = nats::jetstream(client.clone(), &config.nats);
        let mut pauses = crate::retry::waiting();
        loop {
            match nats::provision_streams(&jetstream, &config.nats).await {
                Ok(()) => break,
                Err(error) => {
                    let delay = pauses.next().unwrap_or(std::time::Duration::from_secs(5));
                    tracing::warn!(%error, retry_in = ?delay, "cannot provision streams");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Err(NatsError::Stopped),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        let subjects = config.nats.subjects();
        let platform = Platform { config, client, jetstream, subjects, readiness, shutdown };
        platform.register_nats_checks();
        Ok(platform)
    }

    fn register_nats_checks(&self) {
        let client = self.client.clone();
        self.readiness.add_check("nats", move || {
            let state = client.connection_state();
            async move {
                match state {
                    async_nats::connection::State::Connected => Ok(()),
                    other => Err(format!("nats is {other:?}")),
                }
            }
        });
        let jetstream = self.jetstream.clone();
        let stream = self.config.nats.stream.name.clone();
        self.readiness.add_check("stream", move || {
            let jetstream = jetstream.clone();
            let stream = stream.clone();
            async move {
                jetstream
                    .get_stream(&stream)
                    .await
                    .map(|_| ())
                    .map_err(|error| format!("stream {stream}: {error}"))
            }
        });
    }
}
