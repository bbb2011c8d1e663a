//! Which committed changes a `Watch` call forwards.

use bytes::Bytes;
use prost::Message as _;
use switchboard_proto::chat::{WatchResponse, watch_response::Change};

/// A watcher's filters (combined; empty fields match everything), already normalised.
#[derive(Debug, Clone)]
pub struct WatchFilter {
    pub channel: Option<&'static str>,
    /// The user's number: `to` of outbound messages, `from` of inbound ones, `receiver` of opt-outs.
    pub phone_number: String,
    /// An outbound or inbound message id; when set, opt-outs are not forwarded.
    pub message_id: String,
}

impl WatchFilter {
    pub fn keeps(&self, response: &WatchResponse) -> bool {
        let channel_matches = |channel: &str| self.channel.is_none_or(|wanted| wanted == channel);
        let phone_matches = |phone: &str| self.phone_number.is_empty() || self.phone_number == phone;
        let id_matches = |id: &str| self.message_id.is_empty() || self.message_id == id;
        match &response.change {
            Some(Change::Outbound(message)) => {
                channel_matches(&message.channel) && phone_matches(&message.to) && id_matches(&message.id)
            }
            Some(Change::Inbound(message)) => {
                channel_matches(&message.channel) && phone_matches(&message.from) && id_matches(&message.id)
            }
            Some(Change::OptOut(optout)) => {
                self.message_id.is_empty()
                    && channel_matches(&optout.channel)
                    && phone_matches(&optout.receiver)
            }
            None => false,
        }
    }
}

/// A change as published on the change feed.
pub fn decode(bytes: Bytes) -> Option<WatchResponse> {
    WatchResponse::decode(bytes).ok()
}

#[cfg(test)]
mod tests {
    use switchboard_proto::chat::{InboundMessage, OutboundMessage};
    use switchboard_proto::common::OptOut;

    use super::*;

    fn outbound(channel: &str, id: &str, to: &str) -> WatchResponse {
        let message =
            OutboundMessage { channel: channel.into(), id: id.into(), to: to.into(), ..Default::default() };
        WatchResponse { change: Some(Change::Outbound(message)) }
    }

    fn inbound(channel: &str, id: &str, from: &str) -> WatchResponse {
        let message = InboundMessage {
            channel: channel.into(),
            id: id.into(),
            from: from.into(),
            ..Default::default()
        };
        WatchResponse { change: Some(Change::Inbound(message)) }
    }

    fn optout(channel: &str, receiver: &str) -> WatchResponse {
        let optout = OptOut { channel: channel.into(), receiver: receiver.into(), ..Default::default() };
        WatchResponse { change: Some(Change::OptOut(optout)) }
    }

    #[test]
    fn filters_combine() {
        let everything =
            WatchFilter { channel: None, phone_number: String::new(), message_id: String::new() };
        assert!(everything.keeps(&outbound("rcs", "m1", "91")));
        assert!(everything.keeps(&optout("whatsapp", "91")));

        let whatsapp_user =
            WatchFilter { channel: Some("whatsapp"), phone_number: "91".into(), message_id: String::new() };
        assert!(whatsapp_user.keeps(&outbound("whatsapp", "m1", "91")));
        assert!(whatsapp_user.keeps(&inbound("whatsapp", "m2", "91")), "inbound matches on the sender");
        assert!(whatsapp_user.keeps(&optout("whatsapp", "91")));
        assert!(!whatsapp_user.keeps(&outbound("rcs", "m1", "91")));
        assert!(!whatsapp_user.keeps(&inbound("whatsapp", "m2", "92")));

        let one_message = WatchFilter { channel: None, phone_number: String::new(), message_id: "m1".into() };
        assert!(one_message.keeps(&outbound("rcs", "m1", "91")));
        assert!(!one_message.keeps(&outbound("rcs", "m2", "91")));
        assert!(!one_message.keeps(&optout("rcs", "91")), "no opt-outs when watching a message");
    }
}
