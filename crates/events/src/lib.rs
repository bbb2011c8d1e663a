//! The contract between the provider, the gateway, NATS subscribers and the product services.
//!
//! * [`EventKind`] lists the twelve events and maps each event string to its NATS subject
//!   ([`Subjects`] adds the optional prefix). This is the only place that mapping lives.
//! * [`tolerant`] reads the provider's almost-JSON (trailing commas) and measures nesting depth.
//! * The payload types ([`sms`], [`chat`], [`voice`], [`contacts`]) accept the type drift the provider
//!   is known for (numbers as strings and the other way round, zone-less timestamps) and keep every
//!   field they do not know in `extra`.
//! * [`headers`] names the NATS message headers every publisher sets and every consumer reads.
#![forbid(unsafe_code)]

pub mod chat;
pub mod contacts;
mod decode;
pub mod fuzzing;
pub mod headers;
mod kind;
pub mod sms;
mod subject;
pub mod tolerant;
pub mod value;
pub mod voice;

pub use decode::{DecodeError, Event, body_digest, decode, decode_as};
pub use kind::{EventKind, Product};
pub use subject::{SubjectError, Subjects, event_to_subject, subject_to_event};
pub use value::{ProviderTime, TimeZoneSetting};
