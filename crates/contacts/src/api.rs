//! The gRPC `ContactsService`.

use prost::Message as _;
use switchboard_proto::contacts::contacts_service_server::ContactsService;
use switchboard_proto::contacts::{
    Contact, GetContactRequest, ListContactVersionsRequest, ListContactVersionsResponse, ListContactsRequest,
    ListContactsResponse, WatchRequest, WatchResponse, get_contact_request, watch_response::Change,
};
use switchboard_runtime::changes::ChangeFeed;
use switchboard_runtime::tokio_util::sync::CancellationToken;
use switchboard_service::grpc::{self, WatchStream};
use switchboard_service::status::from_query_error;
use switchboard_store::Database;
use tonic::{Request, Response, Status};

use crate::model::{identity_key, name_key};
use crate::store::{self, ContactFilter, ContactRow, Lookup, VersionCursor};

/// Attribute filters per request at most: each is a subquery.
pub const MAX_ATTRIBUTE_FILTERS: usize = 32;

#[derive(Debug, Clone)]
pub struct ContactsApi {
    pub database: Database,
    pub changes: ChangeFeed,
    pub shutdown: CancellationToken,
}

pub fn contact_to_proto(row: &ContactRow) -> Contact {
    let text = |field: &Option<String>| field.clone().unwrap_or_default();
    Contact {
        id: row.id.clone(),
        identity: text(&row.identity),
        first_name: text(&row.first_name),
        middle_name: text(&row.middle_name),
        last_name: text(&row.last_name),
        gender: text(&row.gender),
        birth_date: text(&row.birth_date),
        company: text(&row.company),
        attributes: row.attributes.iter().map(|(key, value)| (key.clone(), value.clone())).collect(),
        created_at: grpc::optional_timestamp(row.created_at),
        updated_at: grpc::optional_timestamp(row.updated_at),
        status: text(&row.status),
        first_received_at: Some(grpc::timestamp(row.first_received_at)),
        last_received_at: Some(grpc::timestamp(row.last_received_at)),
        stream_sequence: u64::try_from(row.stream_sequence).unwrap_or_default(),
        raw_json: row.raw_json.clone(),
    }
}

fn filter_from_request(request: &ListContactsRequest) -> Result<ContactFilter, Status> {
    if request.attributes.len() > MAX_ATTRIBUTE_FILTERS {
        return Err(Status::invalid_argument(format!("at most {MAX_ATTRIBUTE_FILTERS} attribute filters")));
    }
    let mut attributes = Vec::with_capacity(request.attributes.len());
    for filter in &request.attributes {
        if filter.key.is_empty() {
            return Err(Status::invalid_argument("an attribute filter needs a key"));
        }
        attributes.push((filter.key.clone(), filter.value.clone()));
    }
    let updated_since =
        request.updated_since.as_ref().map(|since| grpc::micros(since, "updated_since")).transpose()?;
    Ok(ContactFilter {
        name_prefix: name_key(&request.name_prefix),
        identity_prefix: identity_key(&request.identity_prefix),
        attributes,
        updated_since,
    })
}

#[tonic::async_trait]
impl ContactsService for ContactsApi {
    async fn get_contact(&self, request: Request<GetContactRequest>) -> Result<Response<Contact>, Status> {
        let lookup = match request.into_inner().lookup {
            Some(get_contact_request::Lookup::Id(id)) if !id.trim().is_empty() => {
                Lookup::Id(id.trim().to_owned())
            }
            Some(get_contact_request::Lookup::Identity(identity)) if !identity_key(&identity).is_empty() => {
                Lookup::IdentityKey(identity_key(&identity))
            }
            _ => return Err(Status::invalid_argument("id or identity is required")),
        };
        let Some(row) = store::get_contact(&self.database, &lookup).await.map_err(from_query_error)? else {
            return Err(match lookup {
                Lookup::Id(id) => Status::not_found(format!("no contact {id}")),
                Lookup::IdentityKey(_) => Status::not_found("no contact with that identity"),
            });
        };
        Ok(Response::new(contact_to_proto(&row)))
    }

    async fn list_contacts(
        &self,
        request: Request<ListContactsRequest>,
    ) -> Result<Response<ListContactsResponse>, Status> {
        let request = request.into_inner();
        let page_size = grpc::page_size(request.page_size)?;
        let cursor: Option<(i64, String)> = grpc::decode_page_token(&request.page_token)?;
        let filter = filter_from_request(&request)?;
        let mut rows = store::list_contacts(&self.database, &filter, cursor, i64::from(page_size) + 1)
            .await
            .map_err(from_query_error)?;
        let next_page_token =
            grpc::next_page_token(&mut rows, page_size, |last| (last.listed_at, last.id.clone()));
        let contacts = rows.iter().map(contact_to_proto).collect();
        Ok(Response::new(ListContactsResponse { contacts, next_page_token }))
    }

    async fn list_contact_versions(
        &self,
        request: Request<ListContactVersionsRequest>,
    ) -> Result<Response<ListContactVersionsResponse>, Status> {
        let request = request.into_inner();
        let id = request.id.trim();
        if id.is_empty() {
            return Err(Status::invalid_argument("id is required"));
        }
        let page_size = grpc::page_size(request.page_size)?;
        let cursor: Option<VersionCursor> = grpc::decode_page_token(&request.page_token)?;
        let first_page = cursor.is_none();
        let mut rows = store::list_versions(&self.database, id, cursor, i64::from(page_size) + 1)
            .await
            .map_err(from_query_error)?;
        if first_page && rows.is_empty() {
            return Err(Status::not_found(format!("no contact {id}")));
        }
        let next_page_token = grpc::next_page_token(&mut rows, page_size, |last| {
            (last.updated_key, last.stream_sequence, last.digest.clone())
        });
        let versions = rows.iter().map(contact_to_proto).collect();
        Ok(Response::new(ListContactVersionsResponse { versions, next_page_token }))
    }

    type WatchStream = WatchStream<WatchResponse>;

    async fn watch(&self, request: Request<WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let request = request.into_inner();
        let id = request.id.trim().to_owned();
        let identity = identity_key(&request.identity);
        let stream = grpc::watch_stream(
            self.changes.subscribe(),
            self.shutdown.clone(),
            |bytes| WatchResponse::decode(bytes).ok(),
            move |response: &WatchResponse| match &response.change {
                Some(Change::Contact(contact)) => {
                    (id.is_empty() || contact.id == id)
                        && (identity.is_empty() || identity_key(&contact.identity) == identity)
                }
                None => false,
            },
        );
        Ok(Response::new(stream))
    }
}
