//! A cleaned example body for every event, bundled into the binary, for `switchboard send`.
//!
//! They are the test fixtures (the provider's documented examples made valid JSON). `vmn:message:in`
//! has no documented example; its fixture is the WhatsApp inbound example with the event and channel
//! renamed (the shape the provider sends), its own id and a keyword.

use switchboard_events::EventKind;

const SMS_STATUS: &str = include_str!("../../../../tests/fixtures/events/sms.message.status.json");
const SMS_UNSUBSCRIPTION: &str = include_str!("../../../../tests/fixtures/events/sms.unsubscription.json");
const WHATSAPP_STATUS: &str = include_str!("../../../../tests/fixtures/events/whatsapp.message.status.json");
const WHATSAPP_IN: &str =
    include_str!("../../../../tests/fixtures/events/whatsapp.message.in.incoming-text.json");
const WHATSAPP_UNSUBSCRIPTION: &str =
    include_str!("../../../../tests/fixtures/events/whatsapp.unsubscription.json");
const RCS_STATUS: &str = include_str!("../../../../tests/fixtures/events/rcs.message.status.json");
const RCS_IN: &str = include_str!("../../../../tests/fixtures/events/rcs.message.in.incoming-text.json");
const RCS_UNSUBSCRIPTION: &str = include_str!("../../../../tests/fixtures/events/rcs.unsubscription.json");
const VOICE_OUT: &str = include_str!("../../../../tests/fixtures/events/voice.message.out.json");
const VOICE_UNSUBSCRIPTION: &str =
    include_str!("../../../../tests/fixtures/events/voice.unsubscription.json");
const VMN_IN: &str = include_str!("../../../../tests/fixtures/events/vmn.message.in.json");
const CONTACT: &str =
    include_str!("../../../../tests/fixtures/events/contacts.subscriber.subscription.created.json");

/// The example body for `kind`.
pub fn example(kind: EventKind) -> String {
    match kind {
        EventKind::SmsMessageStatus => SMS_STATUS.to_owned(),
        EventKind::SmsUnsubscription => SMS_UNSUBSCRIPTION.to_owned(),
        EventKind::WhatsappMessageStatus => WHATSAPP_STATUS.to_owned(),
        EventKind::WhatsappMessageIn => WHATSAPP_IN.to_owned(),
        EventKind::WhatsappUnsubscription => WHATSAPP_UNSUBSCRIPTION.to_owned(),
        EventKind::RcsMessageStatus => RCS_STATUS.to_owned(),
        EventKind::RcsMessageIn => RCS_IN.to_owned(),
        EventKind::RcsUnsubscription => RCS_UNSUBSCRIPTION.to_owned(),
        EventKind::VoiceMessageOut => VOICE_OUT.to_owned(),
        EventKind::VoiceUnsubscription => VOICE_UNSUBSCRIPTION.to_owned(),
        EventKind::VmnMessageIn => VMN_IN.to_owned(),
        EventKind::ContactsSubscriberSubscription => CONTACT.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_is_json_for_its_event() {
        for kind in EventKind::ALL {
            let body: serde_json::Value = serde_json::from_str(&example(kind)).expect("valid JSON");
            if kind.is_enveloped() {
                assert_eq!(body["event"], kind.as_str(), "{kind:?}");
            }
        }
    }
}
