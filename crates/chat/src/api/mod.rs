//! The gRPC `ChatService`.
//!
//! * this module: the calls, argument checks and paging;
//! * [`convert`]: stored rows → protobuf;
//! * [`watch`]: which changes a watcher asked for.

pub mod convert;
pub mod watch;

use switchboard_events::TimeZoneSetting;
use switchboard_events::value::normalize_phone;
use switchboard_proto::chat::chat_service_server::ChatService;
use switchboard_proto::chat::{
    ChannelRates, ConversationItem, GetConversationRequest, GetConversationResponse,
    GetInboundMessageRequest, GetOutboundMessageRequest, GetRatesRequest, GetRatesResponse, InboundMessage,
    ListInboundMessagesRequest, ListInboundMessagesResponse, ListOutboundMessagesRequest,
    ListOutboundMessagesResponse, OutboundMessage, WatchRequest, WatchResponse, conversation_item,
};
use switchboard_proto::common::{
    CheckOptOutRequest, CheckOptOutResponse, ListOptOutsRequest, ListOptOutsResponse,
};
use switchboard_runtime::changes::ChangeFeed;
use switchboard_runtime::tokio_util::sync::CancellationToken;
use switchboard_service::grpc::{self, WatchStream};
use switchboard_service::optouts;
use switchboard_service::status::from_query_error;
use switchboard_store::{Conditions, Database};
use tonic::{Request, Response, Status};

use crate::model::CHANNELS;
use crate::store::{self, ConversationEntry};
use convert::{inbound_to_proto, outbound_to_proto, status_event_to_proto};

#[derive(Debug, Clone)]
pub struct ChatApi {
    pub database: Database,
    pub changes: ChangeFeed,
    pub zone: TimeZoneSetting,
    pub shutdown: CancellationToken,
}

/// A channel filter: `None` for empty (both channels), INVALID_ARGUMENT for anything but
/// `whatsapp` or `rcs`.
fn optional_channel(requested: &str) -> Result<Option<&'static str>, Status> {
    let requested = requested.trim();
    if requested.is_empty() {
        return Ok(None);
    }
    CHANNELS.iter().find(|channel| **channel == requested).map(|channel| Some(*channel)).ok_or_else(|| {
        Status::invalid_argument(format!("channel must be \"whatsapp\" or \"rcs\", not {requested:?}"))
    })
}

fn required_channel(requested: &str) -> Result<&'static str, Status> {
    optional_channel(requested)?
        .ok_or_else(|| Status::invalid_argument("channel is required: \"whatsapp\" or \"rcs\""))
}

fn required_id(id: &str) -> Result<&str, Status> {
    if id.trim().is_empty() { Err(Status::invalid_argument("id is required")) } else { Ok(id) }
}

#[tonic::async_trait]
impl ChatService for ChatApi {
    async fn get_outbound_message(
        &self,
        request: Request<GetOutboundMessageRequest>,
    ) -> Result<Response<OutboundMessage>, Status> {
        let request = request.into_inner();
        let channel = required_channel(&request.channel)?;
        let id = required_id(&request.id)?;
        let found = store::get_outbound(&self.database, channel, id).await.map_err(from_query_error)?;
        let Some((row, history)) = found else {
            return Err(Status::not_found(format!("no status for {channel} message {id}")));
        };
        Ok(Response::new(outbound_to_proto(&row, history.iter().map(status_event_to_proto).collect())))
    }

    async fn list_outbound_messages(
        &self,
        request: Request<ListOutboundMessagesRequest>,
    ) -> Result<Response<ListOutboundMessagesResponse>, Status> {
        let request = request.into_inner();
        let page_size = grpc::page_size(request.page_size)?;
        let cursor: Option<(i64, String, String)> = grpc::decode_page_token(&request.page_token)?;
        let mut conditions = Conditions::new();
        conditions.equal_if_set("channel", optional_channel(&request.channel)?.unwrap_or_default());
        conditions.equal_if_set("recipient", &normalize_phone(&request.to));
        conditions.equal_if_set("sender", &normalize_phone(&request.from));
        conditions.equal_if_set("status", request.status.trim());
        conditions.equal_if_set("foreign_id", &request.foreign_id);
        conditions.range("listed_at", grpc::time_range(request.time.as_ref(), "time")?);
        let mut rows = store::list_outbound(&self.database, conditions, cursor, i64::from(page_size) + 1)
            .await
            .map_err(from_query_error)?;
        let next_page_token = grpc::next_page_token(&mut rows, page_size, |last| {
            (last.listed_at, last.channel.clone(), last.id.clone())
        });
        let messages = rows.iter().map(|row| outbound_to_proto(row, Vec::new())).collect();
        Ok(Response::new(ListOutboundMessagesResponse { messages, next_page_token }))
    }

    async fn get_inbound_message(
        &self,
        request: Request<GetInboundMessageRequest>,
    ) -> Result<Response<InboundMessage>, Status> {
        let request = request.into_inner();
        let channel = required_channel(&request.channel)?;
        let id = required_id(&request.id)?;
        match store::get_inbound(&self.database, channel, id).await.map_err(from_query_error)? {
            Some(row) => Ok(Response::new(inbound_to_proto(&row))),
            None => Err(Status::not_found(format!("no inbound {channel} message {id}"))),
        }
    }

    async fn list_inbound_messages(
        &self,
        request: Request<ListInboundMessagesRequest>,
    ) -> Result<Response<ListInboundMessagesResponse>, Status> {
        let request = request.into_inner();
        let page_size = grpc::page_size(request.page_size)?;
        let cursor: Option<(i64, String, String)> = grpc::decode_page_token(&request.page_token)?;
        let mut conditions = Conditions::new();
        conditions.equal_if_set("channel", optional_channel(&request.channel)?.unwrap_or_default());
        conditions.equal_if_set("sender", &normalize_phone(&request.from));
        conditions.equal_if_set("recipient", &normalize_phone(&request.to));
        conditions.equal_if_set("type", request.r#type.trim());
        conditions.range("received_at", grpc::time_range(request.received.as_ref(), "received")?);
        let mut rows = store::list_inbound(&self.database, conditions, cursor, i64::from(page_size) + 1)
            .await
            .map_err(from_query_error)?;
        let next_page_token = grpc::next_page_token(&mut rows, page_size, |last| {
            (last.received_at, last.channel.clone(), last.id.clone())
        });
        let messages = rows.iter().map(inbound_to_proto).collect();
        Ok(Response::new(ListInboundMessagesResponse { messages, next_page_token }))
    }

    async fn get_conversation(
        &self,
        request: Request<GetConversationRequest>,
    ) -> Result<Response<GetConversationResponse>, Status> {
        let request = request.into_inner();
        let channel = required_channel(&request.channel)?;
        let phone = normalize_phone(&request.phone_number);
        if phone.is_empty() {
            return Err(Status::invalid_argument("phone_number is required"));
        }
        let page_size = grpc::page_size(request.page_size)?;
        let cursor: Option<(i64, String, String)> = grpc::decode_page_token(&request.page_token)?;
        let range = grpc::time_range(request.time.as_ref(), "time")?;
        let mut entries =
            store::conversation(&self.database, channel, &phone, range, cursor, i64::from(page_size) + 1)
                .await
                .map_err(from_query_error)?;
        let next_page_token = grpc::next_page_token(&mut entries, page_size, ConversationEntry::cursor);
        let items = entries
            .iter()
            .map(|entry| ConversationItem {
                time: Some(grpc::timestamp(entry.time())),
                item: Some(match entry {
                    ConversationEntry::Inbound(row) => {
                        conversation_item::Item::Inbound(inbound_to_proto(row))
                    }
                    ConversationEntry::Outbound(row) => {
                        conversation_item::Item::Outbound(outbound_to_proto(row, Vec::new()))
                    }
                }),
            })
            .collect();
        Ok(Response::new(GetConversationResponse { items, next_page_token }))
    }

    async fn get_rates(
        &self,
        request: Request<GetRatesRequest>,
    ) -> Result<Response<GetRatesResponse>, Status> {
        let request = request.into_inner();
        let zone = grpc::report_zone(&request.utc_offset, self.zone)?;
        let mut conditions = Conditions::new();
        conditions.equal_if_set("channel", optional_channel(&request.channel)?.unwrap_or_default());
        conditions.range("listed_at", grpc::time_range(request.time.as_ref(), "time")?);
        let offset_micros = grpc::offset_micros(zone);
        let cells =
            store::rates(&self.database, conditions, offset_micros).await.map_err(from_query_error)?;
        // By day, then channel, as the query orders them.
        let rows = cells
            .iter()
            .map(|cell| ChannelRates {
                day: grpc::day_label(cell.epoch_day),
                channel: cell.channel.clone(),
                total: cell.total,
                delivered: cell.delivered,
                read: cell.read,
                failed: cell.failed,
                delivery_rate: grpc::rate(cell.delivered, cell.total),
                read_rate: grpc::rate(cell.read, cell.total),
            })
            .collect();
        Ok(Response::new(GetRatesResponse { rows, utc_offset: zone.to_string() }))
    }

    async fn check_opt_out(
        &self,
        request: Request<CheckOptOutRequest>,
    ) -> Result<Response<CheckOptOutResponse>, Status> {
        optouts::check(&self.database, CHANNELS, &request.into_inner()).await.map(Response::new)
    }

    async fn list_opt_outs(
        &self,
        request: Request<ListOptOutsRequest>,
    ) -> Result<Response<ListOptOutsResponse>, Status> {
        optouts::list(&self.database, CHANNELS, &request.into_inner()).await.map(Response::new)
    }

    type WatchStream = WatchStream<WatchResponse>;

    async fn watch(&self, request: Request<WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let request = request.into_inner();
        let filter = watch::WatchFilter {
            channel: optional_channel(&request.channel)?,
            phone_number: normalize_phone(&request.phone_number),
            message_id: request.message_id,
        };
        let stream = grpc::watch_stream(
            self.changes.subscribe(),
            self.shutdown.clone(),
            watch::decode,
            move |response: &WatchResponse| filter.keeps(response),
        );
        Ok(Response::new(stream))
    }
}
