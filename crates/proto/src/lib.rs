//! Generated gRPC code for the Switchboard query APIs (`proto/switchboard/*/v1`).
//!
//! Each product's package is re-exported at the top: `switchboard_proto::sms::SmsService…`.
#![forbid(unsafe_code)]

/// The generated packages, nested as in the `.proto` files.
#[allow(
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations,
    unreachable_pub,
    reason = "generated code"
)]
pub mod switchboard {
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("switchboard.common.v1");
        }
    }
    pub mod sms {
        pub mod v1 {
            tonic::include_proto!("switchboard.sms.v1");
        }
    }
    pub mod chat {
        pub mod v1 {
            tonic::include_proto!("switchboard.chat.v1");
        }
    }
    pub mod voice {
        pub mod v1 {
            tonic::include_proto!("switchboard.voice.v1");
        }
    }
    pub mod interact {
        pub mod v1 {
            tonic::include_proto!("switchboard.interact.v1");
        }
    }
    pub mod contacts {
        pub mod v1 {
            tonic::include_proto!("switchboard.contacts.v1");
        }
    }
}

pub use switchboard::chat::v1 as chat;
pub use switchboard::common::v1 as common;
pub use switchboard::contacts::v1 as contacts;
pub use switchboard::interact::v1 as interact;
pub use switchboard::sms::v1 as sms;
pub use switchboard::voice::v1 as voice;

/// Every Switchboard proto, encoded as a `FileDescriptorSet`, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/switchboard_descriptor.bin"));

/// The fully qualified gRPC service names, as health checks and reflection list them.
pub mod service_names {
    pub const SMS: &str = "switchboard.sms.v1.SmsService";
    pub const CHAT: &str = "switchboard.chat.v1.ChatService";
    pub const VOICE: &str = "switchboard.voice.v1.VoiceService";
    pub const INTERACT: &str = "switchboard.interact.v1.InteractService";
    pub const CONTACTS: &str = "switchboard.contacts.v1.ContactsService";
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn descriptor_set_lists_every_service() {
        let set = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("valid descriptor set");
        let services: Vec<String> = set
            .file
            .iter()
            .flat_map(|file| {
                let package = file.package().to_owned();
                file.service.iter().map(move |service| format!("{package}.{}", service.name()))
            })
            .collect();
        for name in [
            service_names::SMS,
            service_names::CHAT,
            service_names::VOICE,
            service_names::INTERACT,
            service_names::CONTACTS,
        ] {
            assert!(services.iter().any(|service| service == name), "{name} missing from {services:?}");
        }
    }
}
