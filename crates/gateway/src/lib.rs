//! The webhook gateway: the one component the provider talks to.
//!
//! `POST /v1/events/{event}` (either spelling: `sms:message:status` or `sms.message.status`) and
//! `POST /v1/events` (event from the body's `event` field). A request is authenticated against the
//! configured sources, checked (size, event, content type, JSON), published to the event's subject,
//! and answered 200 only after JetStream acknowledged it. See `docs/gateway.md` for every answer.
#![forbid(unsafe_code)]

pub mod answer;
pub mod auth;
pub mod fuzzing;
pub mod ingest;
pub mod publish;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use switchboard_runtime::Platform;
use switchboard_runtime::config::GatewayConfig;
use switchboard_runtime::dead_letter::DeadLetters;
use switchboard_runtime::tokio_util::sync::CancellationToken;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::answer::Refusal;
use crate::auth::Authenticator;
use crate::ingest::{Gateway, Limits, Outcome};
use crate::publish::Publisher;

/// The component name, in logs, metrics and dead-letter subjects.
pub const COMPONENT: &str = "gateway";

#[derive(Debug, Clone)]
struct AppState {
    gateway: Arc<Gateway>,
    /// Requests in progress at most; beyond it the gateway answers 503 at once (load shedding)
    /// rather than queueing past the provider's timeout.
    permits: Arc<Semaphore>,
    config: Arc<GatewayConfig>,
}

/// Builds the gateway for a platform. Fails when no source is configured (fail closed).
pub fn build(platform: &Platform) -> anyhow::Result<Router> {
    let config = &platform.config.gateway;
    let authenticator = Authenticator::from_config(&config.sources).map_err(anyhow::Error::msg)?;
    let gateway = Gateway {
        authenticator,
        publisher: Publisher::new(
            platform.jetstream.clone(),
            platform.subjects.clone(),
            config.publish_timeout,
        ),
        dead_letters: DeadLetters::new(platform.jetstream.clone(), platform.subjects.clone(), COMPONENT),
        subjects: platform.subjects.clone(),
        limits: Limits {
            max_body_bytes: config.max_body_bytes,
            max_json_depth: config.max_json_depth,
            retry_after: config.retry_after,
        },
    };
    Ok(router(Arc::new(gateway), Arc::new(config.clone())))
}

fn router(gateway: Arc<Gateway>, config: Arc<GatewayConfig>) -> Router {
    let state = AppState { gateway, permits: Arc::new(Semaphore::new(config.max_concurrency)), config };
    Router::new()
        .route("/v1/events/{event}", post(event_in_path))
        .route("/v1/events", post(event_in_body))
        .with_state(state)
}

/// Serves a [`build`]-built gateway on `listener` until `shutdown`; requests in progress finish.
pub async fn serve(router: Router, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    tracing::info!(address = ?listener.local_addr().ok(), "gateway listening");
    axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await?;
    tracing::info!("gateway stopped");
    Ok(())
}

async fn event_in_path(
    State(state): State<AppState>,
    Path(event): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, Some(event), headers, body).await
}

async fn event_in_body(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    handle(state, None, headers, body).await
}

async fn handle(state: AppState, path_event: Option<String>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let request_id = request_id(&headers);
    let outcome = match state.permits.clone().try_acquire_owned() {
        Err(_) => Outcome {
            event: None,
            source: None,
            result: Err(Refusal::Unavailable {
                reason: "too many requests in progress".to_owned(),
                retry_after: state.config.retry_after,
            }),
        },
        Ok(_permit) => {
            metrics::gauge!("switchboard_gateway_in_flight").increment(1.0);
            let work = state.gateway.clone().ingest(path_event, headers, body, request_id.clone());
            let outcome = match tokio::time::timeout(state.config.request_timeout, work).await {
                Ok(outcome) => outcome,
                Err(_) => Outcome {
                    event: None,
                    source: None,
                    result: Err(Refusal::Unavailable {
                        reason: "the request took too long".to_owned(),
                        retry_after: state.config.retry_after,
                    }),
                },
            };
            metrics::gauge!("switchboard_gateway_in_flight").decrement(1.0);
            outcome
        }
    };
    let event = outcome.event.map(|kind| kind.as_str()).unwrap_or("unknown");
    let source = outcome.source.unwrap_or_else(|| "none".to_owned());
    let elapsed = started.elapsed();
    let mut response = match outcome.result {
        Ok(accepted) => {
            tracing::debug!(%request_id, event, %source, seq = accepted.seq, duplicate = accepted.duplicate, elapsed_ms = elapsed.as_secs_f64() * 1000.0, "event stored");
            axum::Json(accepted).into_response()
        }
        Err(refusal) => {
            tracing::info!(%request_id, event, %source, status = refusal.status().as_u16(), reason = %refusal.message(), "request refused");
            refusal.into_response(&request_id)
        }
    };
    let status = response.status().as_u16().to_string();
    metrics::counter!("switchboard_gateway_requests_total", "event" => event, "source" => source, "status" => status).increment(1);
    metrics::histogram!("switchboard_gateway_request_seconds", "event" => event)
        .record(elapsed.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The caller's `x-request-id` when it is a sane token, otherwise a new one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .filter(|value| {
            !value.is_empty() && value.len() <= 128 && value.bytes().all(|byte| byte.is_ascii_graphic())
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}
