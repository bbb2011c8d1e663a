//! Stored rows → protobuf messages.

use switchboard_events::chat::UserProfile;
use switchboard_proto::chat::{InboundMessage, OutboundMessage, StatusEvent};
use switchboard_proto::common;
use switchboard_service::grpc;

use crate::store::{InboundRow, OutboundRow, StatusEventRow};

fn sequence(stream_sequence: i64) -> u64 {
    u64::try_from(stream_sequence).unwrap_or_default()
}

pub fn outbound_to_proto(row: &OutboundRow, history: Vec<StatusEvent>) -> OutboundMessage {
    let milestones = &row.milestones;
    OutboundMessage {
        channel: row.channel.clone(),
        id: row.id.clone(),
        from: row.sender.clone(),
        to: row.recipient.clone(),
        status: row.status.clone(),
        foreign_id: row.foreign_id.clone().unwrap_or_default(),
        processed_at: grpc::optional_timestamp(milestones.processed_at),
        sent_at: grpc::optional_timestamp(milestones.sent_at),
        delivered_at: grpc::optional_timestamp(milestones.delivered_at),
        read_at: grpc::optional_timestamp(milestones.read_at),
        failed_at: grpc::optional_timestamp(milestones.failed_at),
        deleted_at: grpc::optional_timestamp(milestones.deleted_at),
        status_at: grpc::optional_timestamp(row.status_at),
        first_received_at: Some(grpc::timestamp(row.first_received_at)),
        last_received_at: Some(grpc::timestamp(row.last_received_at)),
        stream_sequence: sequence(row.stream_sequence),
        raw_json: row.raw_json.clone(),
        history,
    }
}

pub fn status_event_to_proto(row: &StatusEventRow) -> StatusEvent {
    StatusEvent {
        status: row.status.clone(),
        timestamp: grpc::optional_timestamp(row.status_at),
        received_at: Some(grpc::timestamp(row.received_at)),
        stream_sequence: sequence(row.stream_sequence),
        raw_json: row.raw_json.clone(),
    }
}

pub fn inbound_to_proto(row: &InboundRow) -> InboundMessage {
    InboundMessage {
        channel: row.channel.clone(),
        id: row.id.clone(),
        from: row.sender.clone(),
        to: row.recipient.clone(),
        r#type: row.kind.clone(),
        text: row.text.clone().unwrap_or_default(),
        url: row.url.clone().unwrap_or_default(),
        caption: row.caption.clone().unwrap_or_default(),
        filename: row.filename.clone().unwrap_or_default(),
        mime_type: row.mime_type.clone().unwrap_or_default(),
        profile: row.profile_json.as_deref().and_then(profile_to_proto),
        message_id: row.message_id.clone().unwrap_or_default(),
        message_timestamp: grpc::optional_timestamp(row.message_at),
        received_at: Some(grpc::timestamp(row.received_at)),
        stream_sequence: sequence(row.stream_sequence),
        payload_json: row.payload_json.clone(),
        raw_json: row.raw_json.clone(),
    }
}

/// The stored `recipient.user` JSON as a profile; `None` when it was absent (or, which the consumer
/// never writes, unreadable).
fn profile_to_proto(profile_json: &str) -> Option<common::UserProfile> {
    let profile: UserProfile = serde_json::from_str(profile_json).ok()?;
    let info = profile.user_info.unwrap_or_default();
    Some(common::UserProfile {
        id: profile.id.unwrap_or_default(),
        username: profile.username.unwrap_or_default(),
        first_name: profile.first_name.unwrap_or_default(),
        last_name: profile.last_name.unwrap_or_default(),
        email: profile.email.unwrap_or_default(),
        phone: profile.phone.unwrap_or_default(),
        picture: info.picture.unwrap_or_default(),
        gender: info.gender.unwrap_or_default(),
        title: info.title.unwrap_or_default(),
    })
}
