//! The gRPC `SmsService`.

use std::collections::BTreeMap;

use prost::Message as _;
use switchboard_events::TimeZoneSetting;
use switchboard_events::value::normalize_phone;
use switchboard_proto::common::{
    CheckOptOutRequest, CheckOptOutResponse, ListOptOutsRequest, ListOptOutsResponse,
};
use switchboard_proto::sms::sms_service_server::SmsService;
use switchboard_proto::sms::{
    DailySummary, DeliveryReportRow, GetDeliveryReportRequest, GetDeliveryReportResponse, GetMessageRequest,
    ListMessagesRequest, ListMessagesResponse, Message, StatusClass, StatusEvent, WatchRequest,
    WatchResponse, watch_response::Change,
};
use switchboard_runtime::changes::ChangeFeed;
use switchboard_runtime::tokio_util::sync::CancellationToken;
use switchboard_service::grpc::{self, WatchStream};
use switchboard_service::optouts;
use switchboard_service::status::from_query_error;
use switchboard_store::{Conditions, Database};
use tonic::{Request, Response, Status};

use crate::consumer::CHANNEL;
use crate::store::{self, EventRow, MessageRow};

#[derive(Debug, Clone)]
pub struct SmsApi {
    pub database: Database,
    pub changes: ChangeFeed,
    pub zone: TimeZoneSetting,
    pub shutdown: CancellationToken,
}

pub fn message_to_proto(row: &MessageRow, history: Vec<StatusEvent>) -> Message {
    Message {
        id: row.id.clone(),
        request_id: row.request_id.clone(),
        recipient_index: row.recipient_index,
        mobile: row.mobile.clone(),
        status: row.status.clone(),
        status_class: i32::try_from(row.status_class).unwrap_or_default(),
        credits: row.credits.clone().unwrap_or_default(),
        units: row.units,
        submitted_at: grpc::optional_timestamp(row.submitted_at),
        sent_at: grpc::optional_timestamp(row.sent_at),
        delivered_at: grpc::optional_timestamp(row.delivered_at),
        cid: row.cid.clone().unwrap_or_default(),
        custom: row.custom.clone().unwrap_or_default(),
        sender: row.sender.clone().unwrap_or_default(),
        first_received_at: Some(grpc::timestamp(row.first_received_at)),
        last_received_at: Some(grpc::timestamp(row.last_received_at)),
        stream_sequence: u64::try_from(row.stream_sequence).unwrap_or_default(),
        raw_json: row.raw_json.clone(),
        history,
    }
}

fn event_to_proto(row: &EventRow) -> StatusEvent {
    StatusEvent {
        status: row.status.clone(),
        status_class: i32::try_from(row.status_class).unwrap_or_default(),
        delivered_at: grpc::optional_timestamp(row.delivered_at),
        received_at: Some(grpc::timestamp(row.received_at)),
        stream_sequence: u64::try_from(row.stream_sequence).unwrap_or_default(),
        raw_json: row.raw_json.clone(),
    }
}

fn status_class_filter(value: i32) -> Result<Option<i64>, Status> {
    match StatusClass::try_from(value) {
        Ok(StatusClass::Unspecified) => Ok(None),
        Ok(class) => Ok(Some(class as i64)),
        Err(_) => Err(Status::invalid_argument(format!("status_class {value} is not a StatusClass"))),
    }
}

#[tonic::async_trait]
impl SmsService for SmsApi {
    async fn get_message(&self, request: Request<GetMessageRequest>) -> Result<Response<Message>, Status> {
        let id = request.into_inner().id;
        if id.is_empty() {
            return Err(Status::invalid_argument("id is required"));
        }
        let Some((row, history)) = store::get_message(&self.database, &id).await.map_err(from_query_error)?
        else {
            return Err(Status::not_found(format!("no report for message {id}")));
        };
        Ok(Response::new(message_to_proto(&row, history.iter().map(event_to_proto).collect())))
    }

    async fn list_messages(
        &self,
        request: Request<ListMessagesRequest>,
    ) -> Result<Response<ListMessagesResponse>, Status> {
        let request = request.into_inner();
        let page_size = grpc::page_size(request.page_size)?;
        let cursor: Option<(i64, String)> = grpc::decode_page_token(&request.page_token)?;
        let mut conditions = Conditions::new();
        conditions.equal_if_set("mobile", &normalize_phone(&request.mobile));
        conditions.equal_if_set("status", request.status.trim());
        if let Some(class) = status_class_filter(request.status_class)? {
            let placeholder = conditions.bind(class);
            conditions.push(format!("status_class = {placeholder}"));
        }
        conditions.equal_if_set("cid", &request.cid);
        conditions.equal_if_set("custom", &request.custom);
        store::request_condition(&mut conditions, &request.request_id);
        conditions.equal_if_set("sender", &request.sender);
        conditions.range("listed_at", grpc::time_range(request.sent.as_ref(), "sent")?);
        let mut rows = store::list_messages(&self.database, conditions, cursor, i64::from(page_size) + 1)
            .await
            .map_err(from_query_error)?;
        let next_page_token =
            grpc::next_page_token(&mut rows, page_size, |last| (last.listed_at, last.id.clone()));
        let messages = rows.iter().map(|row| message_to_proto(row, Vec::new())).collect();
        Ok(Response::new(ListMessagesResponse { messages, next_page_token }))
    }

    async fn get_delivery_report(
        &self,
        request: Request<GetDeliveryReportRequest>,
    ) -> Result<Response<GetDeliveryReportResponse>, Status> {
        let request = request.into_inner();
        let zone = grpc::report_zone(&request.utc_offset, self.zone)?;
        let mut conditions = Conditions::new();
        conditions.range("listed_at", grpc::time_range(request.sent.as_ref(), "sent")?);
        conditions.equal_if_set("sender", &request.sender);
        let offset_micros = grpc::offset_micros(zone);
        let cells = store::delivery_report(&self.database, conditions, offset_micros)
            .await
            .map_err(from_query_error)?;
        let mut days: BTreeMap<i64, DailySummary> = BTreeMap::new();
        let mut rows = Vec::with_capacity(cells.len());
        for cell in &cells {
            let day = grpc::day_label(cell.epoch_day);
            let summary = days
                .entry(cell.epoch_day)
                .or_insert_with(|| DailySummary { day: day.clone(), ..Default::default() });
            summary.total += cell.count;
            match StatusClass::try_from(i32::try_from(cell.status_class).unwrap_or_default()) {
                Ok(StatusClass::Delivered) => summary.delivered += cell.count,
                Ok(StatusClass::Failed) => summary.failed += cell.count,
                Ok(StatusClass::Timeout) => summary.timeout += cell.count,
                _ => summary.pending += cell.count,
            }
            rows.push(DeliveryReportRow {
                day,
                sender: cell.sender.clone(),
                status: cell.status.clone(),
                status_class: i32::try_from(cell.status_class).unwrap_or_default(),
                count: cell.count,
            });
        }
        let days = days
            .into_values()
            .map(|mut summary| {
                summary.delivery_rate = grpc::rate(summary.delivered, summary.total);
                summary
            })
            .collect();
        Ok(Response::new(GetDeliveryReportResponse { rows, days, utc_offset: zone.to_string() }))
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
        let mobile = normalize_phone(&request.mobile);
        let message_id = request.message_id;
        let stream = grpc::watch_stream(
            self.changes.subscribe(),
            self.shutdown.clone(),
            |bytes| WatchResponse::decode(bytes).ok(),
            move |response: &WatchResponse| match &response.change {
                Some(Change::Message(message)) => {
                    (mobile.is_empty() || message.mobile == mobile)
                        && (message_id.is_empty() || message.id == message_id)
                }
                Some(Change::OptOut(optout)) => {
                    message_id.is_empty() && (mobile.is_empty() || optout.receiver == mobile)
                }
                None => false,
            },
        );
        Ok(Response::new(stream))
    }
}
