//! The gRPC `InteractService`.

use prost::Message as _;
use switchboard_events::TimeZoneSetting;
use switchboard_events::value::normalize_phone;
use switchboard_proto::common::UserProfile;
use switchboard_proto::interact::interact_service_server::InteractService;
use switchboard_proto::interact::{
    GetKeywordCountsRequest, GetKeywordCountsResponse, GetMessageRequest, KeywordCount, ListMessagesRequest,
    ListMessagesResponse, Message, WatchRequest, WatchResponse, watch_response::Change,
};
use switchboard_runtime::changes::ChangeFeed;
use switchboard_runtime::tokio_util::sync::CancellationToken;
use switchboard_service::grpc::{self, WatchStream};
use switchboard_service::status::from_query_error;
use switchboard_store::{Conditions, Database};
use tonic::{Request, Response, Status};

use crate::model::fold_keyword;
use crate::store::{self, MessageRow, ProfileRow};

#[derive(Debug, Clone)]
pub struct InteractApi {
    pub database: Database,
    pub changes: ChangeFeed,
    pub zone: TimeZoneSetting,
    pub shutdown: CancellationToken,
}

fn profile_to_proto(profile: &ProfileRow) -> Option<UserProfile> {
    if profile.is_empty() {
        return None;
    }
    let text = |field: &Option<String>| field.clone().unwrap_or_default();
    Some(UserProfile {
        id: text(&profile.id),
        username: text(&profile.username),
        first_name: text(&profile.first_name),
        last_name: text(&profile.last_name),
        email: text(&profile.email),
        phone: text(&profile.phone),
        picture: text(&profile.picture),
        gender: text(&profile.gender),
        title: text(&profile.title),
    })
}

pub fn message_to_proto(row: &MessageRow) -> Message {
    Message {
        id: row.id.clone(),
        virtual_number: row.virtual_number.clone(),
        from: row.sender.clone(),
        r#type: row.message_type.clone().unwrap_or_default(),
        text: row.text.clone().unwrap_or_default(),
        keyword1: row.keyword1.clone(),
        keyword2: row.keyword2.clone(),
        profile: profile_to_proto(&row.profile),
        message_id: row.message_id.clone().unwrap_or_default(),
        message_timestamp: grpc::optional_timestamp(row.message_at),
        received_at: Some(grpc::timestamp(row.received_at)),
        stream_sequence: u64::try_from(row.stream_sequence).unwrap_or_default(),
        payload_json: row.payload_json.clone(),
        raw_json: row.raw_json.clone(),
    }
}

#[tonic::async_trait]
impl InteractService for InteractApi {
    async fn get_message(&self, request: Request<GetMessageRequest>) -> Result<Response<Message>, Status> {
        let id = request.into_inner().id;
        if id.is_empty() {
            return Err(Status::invalid_argument("id is required"));
        }
        let Some(row) = store::get_message(&self.database, &id).await.map_err(from_query_error)? else {
            return Err(Status::not_found(format!("no message {id}")));
        };
        Ok(Response::new(message_to_proto(&row)))
    }

    async fn list_messages(
        &self,
        request: Request<ListMessagesRequest>,
    ) -> Result<Response<ListMessagesResponse>, Status> {
        let request = request.into_inner();
        let page_size = grpc::page_size(request.page_size)?;
        let cursor: Option<(i64, String)> = grpc::decode_page_token(&request.page_token)?;
        let mut conditions = Conditions::new();
        conditions.equal_if_set("virtual_number", &normalize_phone(&request.virtual_number));
        conditions.equal_if_set("sender", &normalize_phone(&request.from));
        let keyword = fold_keyword(&request.keyword);
        if keyword.is_empty() && !request.keyword.trim().is_empty() {
            return Err(Status::invalid_argument("keyword must contain a letter or digit"));
        }
        conditions.equal_if_set("keyword1", &keyword);
        conditions.range("received_at", grpc::time_range(request.received.as_ref(), "received")?);
        let mut rows = store::list_messages(&self.database, conditions, cursor, i64::from(page_size) + 1)
            .await
            .map_err(from_query_error)?;
        let next_page_token =
            grpc::next_page_token(&mut rows, page_size, |last| (last.received_at, last.id.clone()));
        let messages = rows.iter().map(message_to_proto).collect();
        Ok(Response::new(ListMessagesResponse { messages, next_page_token }))
    }

    async fn get_keyword_counts(
        &self,
        request: Request<GetKeywordCountsRequest>,
    ) -> Result<Response<GetKeywordCountsResponse>, Status> {
        let request = request.into_inner();
        let zone = grpc::report_zone(&request.utc_offset, self.zone)?;
        let mut conditions = Conditions::new();
        conditions.equal_if_set("virtual_number", &normalize_phone(&request.virtual_number));
        conditions.range("received_at", grpc::time_range(request.received.as_ref(), "received")?);
        let cells = store::keyword_counts(&self.database, conditions, grpc::offset_micros(zone))
            .await
            .map_err(from_query_error)?;
        let rows = cells
            .into_iter()
            .map(|cell| KeywordCount {
                day: grpc::day_label(cell.epoch_day),
                virtual_number: cell.virtual_number,
                keyword: cell.keyword,
                count: cell.count,
            })
            .collect();
        Ok(Response::new(GetKeywordCountsResponse { rows, utc_offset: zone.to_string() }))
    }

    type WatchStream = WatchStream<WatchResponse>;

    async fn watch(&self, request: Request<WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let request = request.into_inner();
        let virtual_number = normalize_phone(&request.virtual_number);
        let from = normalize_phone(&request.from);
        let stream = grpc::watch_stream(
            self.changes.subscribe(),
            self.shutdown.clone(),
            |bytes| WatchResponse::decode(bytes).ok(),
            move |response: &WatchResponse| match &response.change {
                Some(Change::Message(message)) => {
                    (virtual_number.is_empty() || message.virtual_number == virtual_number)
                        && (from.is_empty() || message.from == from)
                }
                None => false,
            },
        );
        Ok(Response::new(stream))
    }
}
