//! gRPC: serving a set of services with health and reflection, and the conventions every query API
//! follows (paging, time ranges, daily buckets, watch streams, error mapping).

use std::net::SocketAddr;
use std::pin::Pin;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures::Stream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use switchboard_events::TimeZoneSetting;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use switchboard_runtime::config::GrpcConfig;

use self::auth::{GrpcAuthLayer, GrpcAuthenticator};
use self::tls::ReloadingTls;

pub mod auth;
pub mod tls;

/// A stream of watch responses, as every `Watch` call returns.
pub type WatchStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Serves `routes` plus gRPC health (reporting `services` as serving) and, when `config.reflection`
/// is on, server reflection, until `shutdown`; in-flight calls finish first. Every call passes the
/// token check of `config.auth` when it is enabled, and connections use TLS (mutual when a client CA
/// is set) when `config.tls` is enabled.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    services: &[&'static str],
    config: &GrpcConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let address: Option<SocketAddr> = listener.local_addr().ok();
    let authenticator = if config.auth.enabled {
        Some(GrpcAuthenticator::from_config(&config.auth).map_err(|error| anyhow::anyhow!(error))?)
    } else {
        tracing::warn!(
            address = ?address,
            "gRPC AUTHENTICATION IS OFF: anyone who can reach this port can read and watch every service; \
             enable [grpc.auth] before exposing it"
        );
        None
    };
    let tls =
        if config.tls.enabled { Some(ReloadingTls::start(&config.tls, shutdown.clone())?) } else { None };
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    for service in services {
        health_reporter.set_service_status(*service, ServingStatus::Serving).await;
    }
    health_reporter.set_service_status("", ServingStatus::Serving).await;
    let mut routes = routes.add_service(health_service);
    if config.reflection {
        let v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(switchboard_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(switchboard_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        routes = routes.add_service(v1).add_service(v1alpha);
    }
    tracing::info!(
        address = ?address,
        services = ?services,
        auth = config.auth.enabled,
        tls = config.tls.enabled,
        mutual_tls = config.tls.enabled && config.tls.client_ca_file.is_some(),
        "grpc listening"
    );
    let reporter = health_reporter.clone();
    let names: Vec<&'static str> = services.to_vec();
    let stopping = async move {
        shutdown.cancelled().await;
        for service in names {
            reporter.set_service_status(service, ServingStatus::NotServing).await;
        }
        reporter.set_service_status("", ServingStatus::NotServing).await;
    };
    let router =
        tonic::transport::Server::builder().layer(GrpcAuthLayer::new(authenticator)).add_routes(routes);
    match tls {
        Some(tls) => router.serve_with_incoming_shutdown(tls.incoming(listener), stopping).await?,
        // Without TCP_NODELAY a response written in several frames waits for the client's delayed
        // ACK: about 40 ms added to every call that returns more than a few bytes.
        None => {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            router.serve_with_incoming_shutdown(incoming, stopping).await?
        }
    }
    Ok(())
}

/// Page sizes: the default, and the most a caller may ask for.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 1000;

/// A request's page size: the default when unset, INVALID_ARGUMENT when negative or too large.
pub fn page_size(requested: i32) -> Result<u32, Status> {
    match requested {
        0 => Ok(DEFAULT_PAGE_SIZE),
        size if size < 0 => Err(Status::invalid_argument("page_size must not be negative")),
        size if size as u32 > MAX_PAGE_SIZE => {
            Err(Status::invalid_argument(format!("page_size must be at most {MAX_PAGE_SIZE}")))
        }
        size => Ok(size as u32),
    }
}

/// Encodes a keyset cursor (the sort key of the last row returned) as an opaque page token.
pub fn encode_page_token<T: Serialize>(cursor: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(cursor).unwrap_or_default())
}

/// Decodes a page token; `None` for the first page, INVALID_ARGUMENT for a token we did not issue.
pub fn decode_page_token<T: DeserializeOwned>(token: &str) -> Result<Option<T>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    let bytes =
        URL_SAFE_NO_PAD.decode(token).map_err(|_| Status::invalid_argument("page_token is not valid"))?;
    serde_json::from_slice(&bytes).map(Some).map_err(|_| Status::invalid_argument("page_token is not valid"))
}

/// Finishes a keyset page: `rows` were fetched with a limit of `page_size + 1`; when the extra row
/// came back there is a next page, so it is dropped and the token of the last row kept is returned
/// (built from `cursor`, the row's sort key). An empty token means the end.
pub fn next_page_token<T, K: Serialize>(
    rows: &mut Vec<T>,
    page_size: u32,
    cursor: impl Fn(&T) -> K,
) -> String {
    let page_size = page_size as usize;
    if rows.len() <= page_size {
        return String::new();
    }
    rows.truncate(page_size);
    rows.last().map(|last| encode_page_token(&cursor(last))).unwrap_or_default()
}

/// Microseconds since the epoch → protobuf timestamp.
pub fn timestamp(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    }
}

pub fn optional_timestamp(micros: Option<i64>) -> Option<prost_types::Timestamp> {
    micros.map(timestamp)
}

/// Protobuf timestamp → microseconds since the epoch; INVALID_ARGUMENT when out of range.
pub fn micros(timestamp: &prost_types::Timestamp, field: &str) -> Result<i64, Status> {
    if !(0..1_000_000_000).contains(&timestamp.nanos) {
        return Err(Status::invalid_argument(format!("{field}: nanos out of range")));
    }
    timestamp
        .seconds
        .checked_mul(1_000_000)
        .and_then(|micros| micros.checked_add(i64::from(timestamp.nanos / 1000)))
        .ok_or_else(|| Status::invalid_argument(format!("{field}: out of range")))
}

/// A time range's bounds in microseconds: `[start, end)`; INVALID_ARGUMENT when start is not before end.
pub fn time_range(
    range: Option<&switchboard_proto::common::TimeRange>,
    field: &str,
) -> Result<(Option<i64>, Option<i64>), Status> {
    let Some(range) = range else {
        return Ok((None, None));
    };
    let start = range.start.as_ref().map(|start| micros(start, field)).transpose()?;
    let end = range.end.as_ref().map(|end| micros(end, field)).transpose()?;
    if let (Some(start), Some(end)) = (start, end)
        && start >= end
    {
        return Err(Status::invalid_argument(format!("{field}: start must be before end")));
    }
    Ok((start, end))
}

/// The zone of daily figures: the request's `utc_offset`, or the provider zone when empty.
pub fn report_zone(requested: &str, provider: TimeZoneSetting) -> Result<TimeZoneSetting, Status> {
    if requested.trim().is_empty() {
        return Ok(provider);
    }
    requested.parse().map_err(|error: String| Status::invalid_argument(format!("utc_offset: {error}")))
}

/// A report zone's offset east of UTC in microseconds, to shift stored times into calendar days.
pub fn offset_micros(zone: TimeZoneSetting) -> i64 {
    i64::from(zone.0.whole_seconds()) * 1_000_000
}

/// The calendar day (`YYYY-MM-DD`) of an epoch-day number.
pub fn day_label(epoch_day: i64) -> String {
    let date = time::Date::from_julian_day(2_440_588 + i32::try_from(epoch_day).unwrap_or(0))
        .unwrap_or(time::Date::MIN);
    format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day())
}

/// `numerator / denominator`, 0 when there is nothing to divide.
pub fn rate(numerator: i64, denominator: i64) -> f64 {
    if denominator <= 0 { 0.0 } else { numerator as f64 / denominator as f64 }
}

/// Turns a change-feed receiver into a watch stream: decodes each change, keeps those `keep` accepts,
/// and ends the stream with RESOURCE_EXHAUSTED if the watcher falls too far behind (it should re-read
/// state and watch again), or with UNAVAILABLE when the server shuts down (so shutdown does not wait
/// for watchers to hang up).
pub fn watch_stream<T, D, F>(
    mut receiver: broadcast::Receiver<Bytes>,
    shutdown: CancellationToken,
    decode: D,
    keep: F,
) -> WatchStream<T>
where
    T: Send + 'static,
    D: Fn(Bytes) -> Option<T> + Send + 'static,
    F: Fn(&T) -> bool + Send + 'static,
{
    Box::pin(async_stream_like(move |sender| async move {
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = sender.send(Err(Status::unavailable("server shutting down; watch again"))).await;
                    return;
                }
                _ = sender.closed() => return,
                received = receiver.recv() => received,
            };
            match received {
                Ok(bytes) => {
                    if let Some(change) = decode(bytes)
                        && keep(&change)
                        && sender.send(Ok(change)).await.is_err()
                    {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let _ = sender
                        .send(Err(Status::resource_exhausted(format!(
                            "watcher fell behind and missed {missed} changes; re-read and watch again"
                        ))))
                        .await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }))
}

/// A tiny channel-backed stream: runs `producer` in a task and yields what it sends. The task ends
/// when the client goes away (the send fails).
fn async_stream_like<T, P, Fut>(producer: P) -> impl Stream<Item = Result<T, Status>> + Send + 'static
where
    T: Send + 'static,
    P: FnOnce(tokio::sync::mpsc::Sender<Result<T, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    tokio::spawn(producer(sender));
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        let token = encode_page_token(&(1_617_965_871_000_000i64, "b34e:1"));
        assert_eq!(
            decode_page_token::<(i64, String)>(&token).ok().flatten(),
            Some((1_617_965_871_000_000, "b34e:1".into()))
        );
        assert_eq!(decode_page_token::<(i64, String)>("").ok(), Some(None));
        assert!(decode_page_token::<(i64, String)>("!!!").is_err());
        assert!(decode_page_token::<(i64, String)>(&encode_page_token(&"other")).is_err());
    }

    #[test]
    fn next_page_tokens_only_when_a_row_is_left_over() {
        let mut full: Vec<i64> = vec![5, 4, 3];
        let token = next_page_token(&mut full, 2, |row| *row);
        assert_eq!(full, [5, 4]);
        assert_eq!(decode_page_token::<i64>(&token).ok().flatten(), Some(4));
        let mut last: Vec<i64> = vec![2, 1];
        assert_eq!(next_page_token(&mut last, 2, |row| *row), "");
        assert_eq!(last, [2, 1]);
        assert_eq!(offset_micros("+05:30".parse().expect("offset")), 19_800_000_000);
    }

    #[test]
    fn page_sizes_are_bounded() {
        assert_eq!(page_size(0).ok(), Some(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(10).ok(), Some(10));
        assert!(page_size(-1).is_err());
        assert!(page_size(1001).is_err());
    }

    #[test]
    fn timestamps_round_trip_including_before_the_epoch() {
        for value in [0i64, 1, 1_617_965_871_123_456, -1, -1_500_000] {
            assert_eq!(micros(&timestamp(value), "t").ok(), Some(value));
        }
    }

    #[test]
    fn time_ranges_are_checked() {
        let range =
            switchboard_proto::common::TimeRange { start: Some(timestamp(10)), end: Some(timestamp(5)) };
        assert!(time_range(Some(&range), "sent").is_err());
        assert_eq!(time_range(None, "sent").ok(), Some((None, None)));
    }

    #[test]
    fn day_labels() {
        assert_eq!(day_label(0), "1970-01-01");
        assert_eq!(day_label(18_726), "2021-04-09");
    }
}
