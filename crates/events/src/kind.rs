//! The twelve events the provider sends and the product service that owns each.

use std::fmt;

/// A product service: the owner of a group of events and of the tables projected from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Product {
    Sms,
    Chat,
    Voice,
    Interact,
    Contacts,
}

impl Product {
    pub const ALL: [Product; 5] =
        [Product::Sms, Product::Chat, Product::Voice, Product::Interact, Product::Contacts];

    /// The service's name as used in configuration sections, consumer names and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Product::Sms => "sms",
            Product::Chat => "chat",
            Product::Voice => "voice",
            Product::Interact => "interact",
            Product::Contacts => "contacts",
        }
    }

    /// The first subject tokens of the events this product consumes (`sms` → `sms.>`).
    /// Chat owns two roots, which is why it runs two durable consumers (NATS 2.9 has no
    /// multi-filter consumers).
    pub const fn subject_roots(self) -> &'static [&'static str] {
        match self {
            Product::Sms => &["sms"],
            Product::Chat => &["whatsapp", "rcs"],
            Product::Voice => &["voice"],
            Product::Interact => &["vmn"],
            Product::Contacts => &["contacts"],
        }
    }

    pub fn from_name(name: &str) -> Option<Product> {
        Product::ALL.into_iter().find(|product| product.name() == name)
    }
}

impl fmt::Display for Product {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// One of the twelve event strings of the provider's catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    SmsMessageStatus,
    SmsUnsubscription,
    WhatsappMessageStatus,
    WhatsappMessageIn,
    WhatsappUnsubscription,
    RcsMessageStatus,
    RcsMessageIn,
    RcsUnsubscription,
    VoiceMessageOut,
    VoiceUnsubscription,
    VmnMessageIn,
    ContactsSubscriberSubscription,
}

impl EventKind {
    pub const ALL: [EventKind; 12] = [
        EventKind::SmsMessageStatus,
        EventKind::SmsUnsubscription,
        EventKind::WhatsappMessageStatus,
        EventKind::WhatsappMessageIn,
        EventKind::WhatsappUnsubscription,
        EventKind::RcsMessageStatus,
        EventKind::RcsMessageIn,
        EventKind::RcsUnsubscription,
        EventKind::VoiceMessageOut,
        EventKind::VoiceUnsubscription,
        EventKind::VmnMessageIn,
        EventKind::ContactsSubscriberSubscription,
    ];

    /// The provider's event string, e.g. `sms:message:status`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::SmsMessageStatus => "sms:message:status",
            EventKind::SmsUnsubscription => "sms:unsubscription",
            EventKind::WhatsappMessageStatus => "whatsapp:message:status",
            EventKind::WhatsappMessageIn => "whatsapp:message:in",
            EventKind::WhatsappUnsubscription => "whatsapp:unsubscription",
            EventKind::RcsMessageStatus => "rcs:message:status",
            EventKind::RcsMessageIn => "rcs:message:in",
            EventKind::RcsUnsubscription => "rcs:unsubscription",
            EventKind::VoiceMessageOut => "voice:message:out",
            EventKind::VoiceUnsubscription => "voice:unsubscription",
            EventKind::VmnMessageIn => "vmn:message:in",
            EventKind::ContactsSubscriberSubscription => "contacts:subscriber:subscription",
        }
    }

    /// The subject without prefix, e.g. `sms.message.status`.
    pub const fn subject_suffix(self) -> &'static str {
        match self {
            EventKind::SmsMessageStatus => "sms.message.status",
            EventKind::SmsUnsubscription => "sms.unsubscription",
            EventKind::WhatsappMessageStatus => "whatsapp.message.status",
            EventKind::WhatsappMessageIn => "whatsapp.message.in",
            EventKind::WhatsappUnsubscription => "whatsapp.unsubscription",
            EventKind::RcsMessageStatus => "rcs.message.status",
            EventKind::RcsMessageIn => "rcs.message.in",
            EventKind::RcsUnsubscription => "rcs.unsubscription",
            EventKind::VoiceMessageOut => "voice.message.out",
            EventKind::VoiceUnsubscription => "voice.unsubscription",
            EventKind::VmnMessageIn => "vmn.message.in",
            EventKind::ContactsSubscriberSubscription => "contacts.subscriber.subscription",
        }
    }

    pub const fn product(self) -> Product {
        match self {
            EventKind::SmsMessageStatus | EventKind::SmsUnsubscription => Product::Sms,
            EventKind::WhatsappMessageStatus
            | EventKind::WhatsappMessageIn
            | EventKind::WhatsappUnsubscription
            | EventKind::RcsMessageStatus
            | EventKind::RcsMessageIn
            | EventKind::RcsUnsubscription => Product::Chat,
            EventKind::VoiceMessageOut | EventKind::VoiceUnsubscription => Product::Voice,
            EventKind::VmnMessageIn => Product::Interact,
            EventKind::ContactsSubscriberSubscription => Product::Contacts,
        }
    }

    /// Whether the provider wraps this event's payload as `{"event": …, "payload": {…}}`.
    pub const fn is_enveloped(self) -> bool {
        matches!(
            self,
            EventKind::WhatsappMessageStatus
                | EventKind::WhatsappMessageIn
                | EventKind::RcsMessageStatus
                | EventKind::RcsMessageIn
                | EventKind::VmnMessageIn
        )
    }

    /// Parses an event name in either spelling: `sms:message:status` or `sms.message.status`.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|kind| kind.as_str() == name || kind.subject_suffix() == name)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_is_event_string_with_dots() {
        for kind in EventKind::ALL {
            assert_eq!(kind.subject_suffix(), kind.as_str().replace(':', "."));
        }
    }

    #[test]
    fn both_spellings_parse_and_nothing_else_does() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
            assert_eq!(EventKind::parse(kind.subject_suffix()), Some(kind));
        }
        assert_eq!(EventKind::parse("sms:message"), None);
        assert_eq!(EventKind::parse("SMS:MESSAGE:STATUS"), None);
        assert_eq!(EventKind::parse("sms.message:status"), None);
    }

    #[test]
    fn every_event_belongs_to_one_of_its_products_roots() {
        for kind in EventKind::ALL {
            let root = kind.subject_suffix().split('.').next().unwrap_or_default();
            assert!(kind.product().subject_roots().contains(&root), "{kind}");
        }
    }
}
