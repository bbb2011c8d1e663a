//! The gateway's metrics. Handles for every configured source and event are registered when the
//! gateway is built, so a request answered 200 updates its series without a registry lookup (and
//! every series a dashboard expects exists from the start, at zero). Refusals, rarer, go through
//! the `metrics` macros.

use std::collections::HashMap;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};
use switchboard_events::EventKind;

// Series names are literal in each macro call: deploy/validate reads them from there to check the
// dashboards and alert rules.

/// The `event` label of a request whose event is not known.
const UNKNOWN_EVENT: &str = "unknown";
/// The `source` label of a request that did not authenticate.
const NO_SOURCE: &str = "none";

/// How a request ended, for the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    Stored,
    Duplicate,
    /// Refused, with the refusal's code (`unauthorized`, `too_large`, …).
    Refused(&'static str),
}

impl Answered {
    fn label(self) -> &'static str {
        match self {
            Answered::Stored => "stored",
            Answered::Duplicate => "duplicate",
            Answered::Refused(code) => code,
        }
    }
}

#[derive(Debug)]
struct SourceSeries {
    received_bytes: Counter,
    /// Per event (in `EventKind::ALL` order): requests answered 200 as stored, and as duplicates.
    accepted: Vec<[Counter; 2]>,
}

#[derive(Debug)]
pub struct GatewayMetrics {
    in_flight: Gauge,
    publish_seconds: Histogram,
    /// Per event (in `EventKind::ALL` order), then for requests without a known event.
    request_seconds: Vec<Histogram>,
    sources: HashMap<String, SourceSeries>,
}

fn event_index(event: EventKind) -> usize {
    EventKind::ALL.iter().position(|kind| *kind == event).unwrap_or(EventKind::ALL.len())
}

impl GatewayMetrics {
    /// Registers the series of `sources` (the configured source names).
    pub fn new<'a>(sources: impl IntoIterator<Item = &'a str>) -> GatewayMetrics {
        // The recorder must exist before handles are taken, or they would record nowhere.
        switchboard_runtime::telemetry::metrics();
        let mut request_seconds: Vec<Histogram> = EventKind::ALL
            .iter()
            .map(|kind| metrics::histogram!("switchboard_gateway_request_seconds", "event" => kind.as_str()))
            .collect();
        request_seconds
            .push(metrics::histogram!("switchboard_gateway_request_seconds", "event" => UNKNOWN_EVENT));
        let sources = sources
            .into_iter()
            .map(|source| {
                let accepted = EventKind::ALL
                    .iter()
                    .map(|kind| {
                        [Answered::Stored, Answered::Duplicate].map(|answered| {
                            metrics::counter!("switchboard_gateway_requests_total", "event" => kind.as_str(), "source" => source.to_owned(),
                                "outcome" => answered.label(), "status" => "200")
                        })
                    })
                    .collect();
                let received_bytes = metrics::counter!("switchboard_gateway_received_bytes_total", "source" => source.to_owned());
                (source.to_owned(), SourceSeries { received_bytes, accepted })
            })
            .collect();
        GatewayMetrics {
            in_flight: metrics::gauge!("switchboard_gateway_in_flight"),
            publish_seconds: metrics::histogram!("switchboard_gateway_publish_seconds"),
            request_seconds,
            sources,
        }
    }

    /// Counts one answered request.
    pub fn request(
        &self,
        event: Option<EventKind>,
        source: Option<&str>,
        answered: Answered,
        status: u16,
        received_bytes: usize,
        elapsed: Duration,
    ) {
        let event_slot = event.map_or(EventKind::ALL.len(), event_index);
        if let Some(histogram) = self.request_seconds.get(event_slot) {
            histogram.record(elapsed.as_secs_f64());
        }
        let series = source.and_then(|source| self.sources.get(source));
        if let Some(series) = series {
            series.received_bytes.increment(received_bytes as u64);
        } else {
            metrics::counter!("switchboard_gateway_received_bytes_total", "source" => source.unwrap_or(NO_SOURCE).to_owned())
                .increment(received_bytes as u64);
        }
        let cached = match (series, answered) {
            (Some(series), Answered::Stored) => series.accepted.get(event_slot).map(|pair| &pair[0]),
            (Some(series), Answered::Duplicate) => series.accepted.get(event_slot).map(|pair| &pair[1]),
            _ => None,
        };
        match cached {
            // Stored and duplicate requests are always answered 200.
            Some(counter) => counter.increment(1),
            _ => metrics::counter!("switchboard_gateway_requests_total",
                "event" => event.map_or(UNKNOWN_EVENT, EventKind::as_str),
                "source" => source.unwrap_or(NO_SOURCE).to_owned(),
                "outcome" => answered.label(),
                "status" => status.to_string())
            .increment(1),
        }
    }

    /// The JetStream acknowledgement's wait.
    pub fn publish_seconds(&self) -> &Histogram {
        &self.publish_seconds
    }

    /// Counts a request in `switchboard_gateway_in_flight` until the guard is dropped, also when the
    /// caller hangs up and the request's future is dropped half-way.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.increment(1.0);
        InFlight(self.in_flight.clone())
    }
}

#[derive(Debug)]
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
