//! The gRPC `VoiceService`.

use prost::Message as _;
use switchboard_events::TimeZoneSetting;
use switchboard_events::value::normalize_phone;
use switchboard_proto::common::{
    CheckOptOutRequest, CheckOptOutResponse, ListOptOutsRequest, ListOptOutsResponse,
};
use switchboard_proto::voice::voice_service_server::VoiceService;
use switchboard_proto::voice::{
    Call, CallStats, GetCallRequest, GetCallStatsRequest, GetCallStatsResponse, ListCallsRequest,
    ListCallsResponse, WatchRequest, WatchResponse, watch_response::Change,
};
use switchboard_runtime::changes::ChangeFeed;
use switchboard_runtime::tokio_util::sync::CancellationToken;
use switchboard_service::grpc::{self, WatchStream};
use switchboard_service::optouts;
use switchboard_service::status::from_query_error;
use switchboard_store::{Conditions, Database};
use tonic::{Request, Response, Status};

use crate::consumer::CHANNEL;
use crate::store::{self, CallRow};

#[derive(Debug, Clone)]
pub struct VoiceApi {
    pub database: Database,
    pub changes: ChangeFeed,
    pub zone: TimeZoneSetting,
    pub shutdown: CancellationToken,
}

pub fn call_to_proto(row: &CallRow) -> Call {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    Call {
        mid: row.mid.clone(),
        bridge: text(&row.bridge),
        from: text(&row.from_number),
        to: text(&row.to_number),
        source: text(&row.source),
        flow_id: text(&row.flow_id),
        start_at: grpc::optional_timestamp(row.start_at),
        end_at: grpc::optional_timestamp(row.end_at),
        duration_seconds: row.duration_seconds,
        status: text(&row.status),
        recording_url: text(&row.recording_url),
        status1: text(&row.status1),
        status2: text(&row.status2),
        billing: text(&row.billing),
        hangup_by: text(&row.hangup_by),
        date: text(&row.call_date),
        unixtime: row.unixtime,
        first_received_at: Some(grpc::timestamp(row.first_received_at)),
        last_received_at: Some(grpc::timestamp(row.last_received_at)),
        stream_sequence: u64::try_from(row.stream_sequence).unwrap_or_default(),
        raw_json: row.raw_json.clone(),
    }
}

/// `UPPER(column) = value` when `value` is set: statuses and sources are matched whatever their case
/// (ASCII upper-casing on both sides, as SQLite's `UPPER` does).
fn equal_ignoring_case(conditions: &mut Conditions, column: &str, value: &str) {
    let wanted = value.trim().to_ascii_uppercase();
    if !wanted.is_empty() {
        let placeholder = conditions.bind(wanted);
        conditions.push(format!("UPPER({column}) = {placeholder}"));
    }
}

/// Whether a call involves `number` (digits only) as caller, callee or bridge.
fn involves(call: &Call, number: &str) -> bool {
    call.from == number || call.to == number || call.bridge == number
}

#[tonic::async_trait]
impl VoiceService for VoiceApi {
    async fn get_call(&self, request: Request<GetCallRequest>) -> Result<Response<Call>, Status> {
        let mid = request.into_inner().mid;
        let mid = mid.trim();
        if mid.is_empty() {
            return Err(Status::invalid_argument("mid is required"));
        }
        let Some(row) = store::get_call(&self.database, mid).await.map_err(from_query_error)? else {
            return Err(Status::not_found(format!("no record for call {mid}")));
        };
        Ok(Response::new(call_to_proto(&row)))
    }

    async fn list_calls(
        &self,
        request: Request<ListCallsRequest>,
    ) -> Result<Response<ListCallsResponse>, Status> {
        let request = request.into_inner();
        let page_size = grpc::page_size(request.page_size)?;
        let cursor: Option<(i64, String)> = grpc::decode_page_token(&request.page_token)?;
        let mut conditions = Conditions::new();
        let number = normalize_phone(&request.number);
        if !number.is_empty() {
            let placeholder = conditions.bind(number);
            conditions.push(format!(
                "(from_number = {placeholder} OR to_number = {placeholder} OR bridge = {placeholder})"
            ));
        }
        equal_ignoring_case(&mut conditions, "status", &request.status);
        equal_ignoring_case(&mut conditions, "source", &request.source);
        conditions.equal_if_set("flow_id", request.flow_id.trim());
        conditions.range("listed_at", grpc::time_range(request.started.as_ref(), "started")?);
        let mut rows = store::list_calls(&self.database, conditions, cursor, i64::from(page_size) + 1)
            .await
            .map_err(from_query_error)?;
        let next_page_token =
            grpc::next_page_token(&mut rows, page_size, |last| (last.listed_at, last.mid.clone()));
        let calls = rows.iter().map(call_to_proto).collect();
        Ok(Response::new(ListCallsResponse { calls, next_page_token }))
    }

    async fn get_call_stats(
        &self,
        request: Request<GetCallStatsRequest>,
    ) -> Result<Response<GetCallStatsResponse>, Status> {
        let request = request.into_inner();
        let zone = grpc::report_zone(&request.utc_offset, self.zone)?;
        let mut conditions = Conditions::new();
        conditions.range("listed_at", grpc::time_range(request.started.as_ref(), "started")?);
        equal_ignoring_case(&mut conditions, "source", &request.source);
        let offset_micros = grpc::offset_micros(zone);
        let cells =
            store::call_stats(&self.database, conditions, offset_micros).await.map_err(from_query_error)?;
        let rows = cells
            .iter()
            .map(|cell| CallStats {
                day: grpc::day_label(cell.epoch_day),
                source: cell.source.clone(),
                calls: cell.calls,
                answered: cell.answered,
                answer_rate: grpc::rate(cell.answered, cell.calls),
                total_duration_seconds: cell.total_duration_seconds,
                average_duration_seconds: grpc::rate(cell.total_duration_seconds, cell.with_duration),
            })
            .collect();
        Ok(Response::new(GetCallStatsResponse { rows, utc_offset: zone.to_string() }))
    }

    async fn check_opt_out(
        &self,
        request: Request<CheckOptOutRequest>,
    ) -> Result<Response<CheckOptOutResponse>, Status> {
        optouts::check(&self.database, &[CHANNEL], &request.into_inner()).await.map(Response::new)
    }

    async fn list_opt_outs(
        &self,
        request: Request<ListOptOutsRequest>,
    ) -> Result<Response<ListOptOutsResponse>, Status> {
        optouts::list(&self.database, &[CHANNEL], &request.into_inner()).await.map(Response::new)
    }

    type WatchStream = WatchStream<WatchResponse>;

    async fn watch(&self, request: Request<WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let request = request.into_inner();
        let number = normalize_phone(&request.number);
        let mid = request.mid.trim().to_owned();
        let stream = grpc::watch_stream(
            self.changes.subscribe(),
            self.shutdown.clone(),
            |bytes| WatchResponse::decode(bytes).ok(),
            move |response: &WatchResponse| match &response.change {
                Some(Change::Call(call)) => {
                    (number.is_empty() || involves(call, &number)) && (mid.is_empty() || call.mid == mid)
                }
                Some(Change::OptOut(optout)) => {
                    mid.is_empty() && (number.is_empty() || optout.receiver == number)
                }
                None => false,
            },
        );
        Ok(Response::new(stream))
    }
}
