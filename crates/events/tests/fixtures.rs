//! Every example payload the provider documents decodes (or fails clearly where the documentation
//! put a placeholder where a number belongs).

use std::fs;
use std::path::{Path, PathBuf};

use switchboard_events::tolerant::JsonError;
use switchboard_events::{DecodeError, Event, EventKind, TimeZoneSetting, decode};

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
}

/// `rcs.message.in.incoming-media.json` → `rcs:message:in`.
fn kind_of(path: &Path) -> EventKind {
    let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
    EventKind::ALL
        .into_iter()
        .filter(|kind| name.starts_with(&format!("{}.", kind.subject_suffix())))
        .max_by_key(|kind| kind.subject_suffix().len())
        .unwrap_or_else(|| panic!("{name} names no event"))
}

fn fixtures(name: &str) -> Vec<(PathBuf, EventKind, Vec<u8>)> {
    let mut files: Vec<_> = fs::read_dir(fixture_dir(name))
        .expect("fixture directory exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
        .map(|path| {
            let body = fs::read(&path).expect("readable fixture");
            let kind = kind_of(&path);
            (path, kind, body)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_cleaned_fixture_decodes() {
    let files = fixtures("events");
    assert_eq!(
        files.len(),
        15,
        "two inbound variants for whatsapp and rcs, two contact versions, one file for every other event"
    );
    let kinds: std::collections::BTreeSet<_> = files.iter().map(|(_, kind, _)| *kind).collect();
    let missing: Vec<_> = EventKind::ALL
        .into_iter()
        .filter(|kind| *kind != EventKind::VmnMessageIn && !kinds.contains(kind))
        .collect();
    assert!(missing.is_empty(), "fixtures missing for {missing:?}");
    for (path, kind, body) in files {
        if let Err(error) = decode(kind, &body) {
            panic!("{} does not decode as {kind}: {error}", path.display());
        }
    }
}

#[test]
fn verbatim_documentation_decodes_except_placeholders_in_number_positions() {
    let mut placeholder_failures = Vec::new();
    for (path, kind, body) in fixtures("seed-verbatim") {
        match decode(kind, &body) {
            Ok(_) => {}
            Err(DecodeError::Json(JsonError::Placeholder { placeholder, line, .. })) => {
                placeholder_failures.push((kind, placeholder, line));
            }
            Err(other) => panic!("{} fails unexpectedly: {other}", path.display()),
        }
    }
    // Only the voice CDR documents numbers as `91806828XXXX`: the error names the first one.
    assert_eq!(placeholder_failures, [(EventKind::VoiceMessageOut, "91806828XXXX".to_owned(), 2)]);
}

#[test]
fn decoded_fields_match_the_documentation() {
    let zone = TimeZoneSetting::default();
    let read = |name: &str| fs::read(fixture_dir("events").join(name)).expect("fixture");

    let Ok(Event::SmsStatus(sms)) = decode(EventKind::SmsMessageStatus, &read("sms.message.status.json"))
    else {
        panic!("sms status decodes");
    };
    assert_eq!(sms.request_id(), "b34e35ad-fe34-4a8b-977c-b21cd76cd7d6");
    assert_eq!(sms.recipient_index(), Some(1));
    assert_eq!(sms.units, Some(2));
    assert_eq!(sms.credits.as_deref(), Some("2.0000"));
    assert_eq!(sms.deliv_time.as_ref().and_then(|time| time.unix_micros(zone)), Some(1_617_965_871_000_000));

    let Ok(Event::VoiceCall(call)) = decode(EventKind::VoiceMessageOut, &read("voice.message.out.json"))
    else {
        panic!("voice call decodes");
    };
    assert_eq!(call.bridge.as_deref(), Some("918068281234"));
    assert_eq!(call.duration, Some(23));
    assert_eq!(call.flow_id.as_deref(), Some("123"));

    let Ok(Event::Unsubscription(optout)) =
        decode(EventKind::WhatsappUnsubscription, &read("whatsapp.unsubscription.json"))
    else {
        panic!("opt-out decodes");
    };
    assert_eq!(
        (optout.id.as_str(), optout.scope.as_deref(), optout.value.as_deref()),
        ("436", Some("category"), Some("WUC"))
    );

    let Ok(Event::Inbound(inbound)) =
        decode(EventKind::RcsMessageIn, &read("rcs.message.in.incoming-media.json"))
    else {
        panic!("inbound decodes");
    };
    assert_eq!(inbound.channel_number("rcs"), Some("919019120123"));
    assert_eq!(inbound.message.kind.as_deref(), Some("image"));
    assert_eq!(inbound.message.caption().as_deref(), Some("some caption for image"));
    assert_eq!(inbound.message.filename(), None, "an empty filename is no filename");
    assert_eq!(
        inbound.recipient.user.and_then(|user| user.user_info).and_then(|info| info.title).as_deref(),
        Some("user status or designation")
    );

    let Ok(Event::Contact(contact)) = decode(
        EventKind::ContactsSubscriberSubscription,
        &read("contacts.subscriber.subscription.updated.json"),
    ) else {
        panic!("contact decodes");
    };
    assert_eq!(contact.id, "86");
    assert_eq!(contact.attributes.get("membership").and_then(|value| value.as_str()), Some("platinum"));
    assert!(contact.middle_name.is_none());
}

#[test]
fn unknown_fields_are_kept() {
    let body =
        br#"{"id": "a:1", "mobile": 9190, "status": "DELIVRD", "custom1": "x", "region": {"code": 7},}"#;
    let Ok(Event::SmsStatus(sms)) = decode(EventKind::SmsMessageStatus, body) else {
        panic!("decodes");
    };
    assert_eq!(sms.extra.get("custom1").and_then(|value| value.as_str()), Some("x"));
    assert_eq!(sms.extra["region"]["code"], 7);
    assert_eq!(sms.mobile, "9190");
}
