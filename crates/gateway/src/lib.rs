//! The webhook gateway: the one component the provider talks to.
//!
//! `POST|PUT|GET /v1/events/{event}` (either spelling: `sms:message:status` or
//! `sms.message.status`) and `POST /v1/events` (event from the body's `event` field). A request is
//! authenticated against the configured sources, checked (size, rate, event, content type, JSON),
//! converted when it is a form or query delivery, published to the event's subject, and answered
//! 200 only after JetStream acknowledged it. See `docs/gateway.md` for every answer.
#![forbid(unsafe_code)]

pub mod answer;
pub mod auth;
pub mod convert;
pub mod fuzzing;
pub mod idle;
pub mod ingest;
pub mod metrics;
pub mod publish;
pub mod rate;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::serve::IncomingStream;
use switchboard_runtime::Platform;
use switchboard_runtime::config::{GatewayConfig, parse_network};
use switchboard_runtime::dead_letter::DeadLetters;
use switchboard_runtime::tokio_util::sync::CancellationToken;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::answer::Refusal;
use crate::auth::{Authenticator, TrustedProxies};
use crate::idle::PlainListener;
use crate::ingest::{Gateway, Limits, Outcome, WebhookRequest};
use crate::metrics::{Answered, GatewayMetrics};
use crate::publish::Publisher;
use crate::rate::RateLimits;
use crate::tls::TlsListener;

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

/// The TCP peer of a connection, plain or TLS.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, PlainListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, PlainListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// The built gateway: its routes, and TLS when configured.
pub struct Built {
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Built {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Built").field("tls", &self.tls.is_some()).finish_non_exhaustive()
    }
}

/// Builds the gateway for a platform. Fails when no source is configured or a credential or TLS
/// file cannot be used (fail closed).
pub fn build(platform: &Platform) -> anyhow::Result<Built> {
    let config = &platform.config.gateway;
    let authenticator = Authenticator::from_config(&config.sources).map_err(anyhow::Error::msg)?;
    let trusted_proxies = config
        .trusted_proxies
        .iter()
        .map(|text| parse_network(text).ok_or_else(|| anyhow::anyhow!("gateway.trusted_proxies: {text:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let tls = match (&config.tls.cert_file, &config.tls.key_file) {
        (Some(cert_file), Some(key_file)) => Some(tls::acceptor(cert_file, key_file)?),
        (None, None) => None,
        _ => anyhow::bail!("gateway.tls: cert_file and key_file go together"),
    };
    let metrics = GatewayMetrics::new(config.sources.iter().map(|source| source.name.as_str()));
    let gateway = Gateway {
        authenticator,
        trusted_proxies: TrustedProxies::new(trusted_proxies),
        rate_limits: RateLimits::from_config(config),
        publisher: Publisher::new(
            platform.client.clone(),
            platform.subjects.clone(),
            config.publish_timeout,
            metrics.publish_seconds().clone(),
        ),
        dead_letters: DeadLetters::new(platform.jetstream.clone(), platform.subjects.clone(), COMPONENT),
        subjects: platform.subjects.clone(),
        limits: Limits {
            max_body_bytes: config.max_body_bytes,
            max_json_depth: config.max_json_depth,
            max_header_bytes: config.max_header_bytes,
            retry_after: config.retry_after,
        },
        metrics,
    };
    Ok(Built { router: router(Arc::new(gateway), Arc::new(config.clone())), tls })
}

fn router(gateway: Arc<Gateway>, config: Arc<GatewayConfig>) -> Router {
    let state = AppState { gateway, permits: Arc::new(Semaphore::new(config.max_concurrency)), config };
    let event_in_path: MethodRouter<AppState> =
        get(event_in_path).post(event_in_path).put(event_in_path).fallback(method_not_allowed);
    Router::new()
        .route("/v1/events/{event}", event_in_path)
        .route("/v1/events", post(event_in_body).fallback(method_not_allowed))
        .fallback(not_found)
        .with_state(state)
}

/// Serves a [`build`]-built gateway on `listener` (HTTPS when TLS is configured) until `shutdown`;
/// requests in progress finish.
pub async fn serve(built: Built, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let address = listener.local_addr().ok();
    let service = built.router.into_make_service_with_connect_info::<Peer>();
    match built.tls {
        Some(acceptor) => {
            tracing::info!(?address, "gateway listening (https)");
            let listener = TlsListener::new(listener, acceptor, shutdown.clone())?;
            axum::serve(listener, service).with_graceful_shutdown(shutdown.cancelled_owned()).await?;
        }
        None => {
            tracing::info!(?address, "gateway listening");
            axum::serve(PlainListener(listener), service)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await?;
        }
    }
    tracing::info!("gateway stopped");
    Ok(())
}

async fn event_in_path(
    State(state): State<AppState>,
    event: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    // `get` routes answer HEAD too; a HEAD must not deliver anything.
    if request.method() == Method::HEAD {
        return Refusal::MethodNotAllowed.into_response(&request_id(request.headers()));
    }
    // A name that does not decode to UTF-8 is an unknown event like any other (404, after
    // authentication), not the router's plain-text 400.
    let event = match event {
        Ok(Path(event)) => event,
        Err(_) => request.uri().path().rsplit('/').next().unwrap_or_default().to_owned(),
    };
    handle(state, Some(event), request).await
}

async fn event_in_body(State(state): State<AppState>, request: Request) -> Response {
    handle(state, None, request).await
}

async fn method_not_allowed(request: Request) -> Response {
    Refusal::MethodNotAllowed.into_response(&request_id(request.headers()))
}

async fn not_found(request: Request) -> Response {
    Refusal::NotFound.into_response(&request_id(request.headers()))
}

async fn handle(state: AppState, path_event: Option<String>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let request_id = request_id(&parts.headers);
    let delivery = WebhookRequest {
        peer: parts.extensions.get::<ConnectInfo<Peer>>().map(|ConnectInfo(Peer(address))| *address),
        method: parts.method,
        path_event,
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    };
    let outcome = match state.permits.clone().try_acquire_owned() {
        Err(_) => Outcome {
            event: None,
            source: None,
            received_bytes: 0,
            result: Err(Refusal::Unavailable {
                reason: "too many requests in progress".to_owned(),
                retry_after: state.config.retry_after,
            }),
        },
        Ok(_permit) => {
            let _in_flight = state.gateway.metrics.in_flight();
            let work = state.gateway.clone().ingest(delivery, request_id.clone());
            match tokio::time::timeout(state.config.request_timeout, work).await {
                Ok(outcome) => outcome,
                Err(_) => Outcome {
                    event: None,
                    source: None,
                    received_bytes: 0,
                    result: Err(Refusal::Unavailable {
                        reason: "the request took too long".to_owned(),
                        retry_after: state.config.retry_after,
                    }),
                },
            }
        }
    };
    let event = outcome.event.map(|kind| kind.as_str()).unwrap_or("unknown");
    let source = outcome.source.as_deref();
    let elapsed = started.elapsed();
    let (mut response, answered) = match outcome.result {
        Ok(accepted) => {
            tracing::debug!(%request_id, event, source, seq = accepted.seq, duplicate = accepted.duplicate, elapsed_ms = elapsed.as_secs_f64() * 1000.0, "event stored");
            let answered = if accepted.duplicate { Answered::Duplicate } else { Answered::Stored };
            (axum::Json(accepted).into_response(), answered)
        }
        Err(refusal) => {
            let code = refusal.code();
            tracing::info!(%request_id, event, source = source.unwrap_or("none"), status = refusal.status().as_u16(), reason = %refusal.message(), "request refused");
            (refusal.into_response(&request_id), Answered::Refused(code))
        }
    };
    state.gateway.metrics.request(
        outcome.event,
        source,
        answered,
        response.status().as_u16(),
        outcome.received_bytes,
        elapsed,
    );
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
        .unwrap_or_else(|| {
            uuid::Uuid::new_v4().hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()).to_owned()
        })
}
