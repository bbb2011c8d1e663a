//! The contacts service end to end: contact events in, gRPC out. Its projection against the real
//! database is property-tested in `projection`.

mod projection;

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use switchboard_events::{EventKind, ProviderTime, TimeZoneSetting, headers};
use switchboard_proto::contacts::{
    AttributeFilter, Contact, GetContactRequest, ListContactVersionsRequest, ListContactsRequest,
    WatchRequest, get_contact_request::Lookup, watch_response::Change,
};
use switchboard_service::grpc::timestamp;
use switchboard_tests::{TestSystem, fixture, wait_until};
use tonic::Code;

const WAIT: Duration = Duration::from_secs(15);

fn micros(rfc3339: &str) -> i64 {
    ProviderTime::parse(rfc3339).unix_micros(TimeZoneSetting::default()).expect("a valid time")
}

/// A contact event; `updated_at` is left out when empty.
pub(crate) fn contact(
    id: u64,
    identity: &str,
    names: [&str; 3],
    attributes: serde_json::Value,
    updated_at: &str,
) -> String {
    let mut body = serde_json::json!({
        "id": id, "identity": identity,
        "first_name": names[0],
        "middle_name": if names[1].is_empty() { serde_json::Value::Null } else { names[1].into() },
        "last_name": names[2],
        "gender": "female", "birth_date": "1990-01-02", "company": "Acme",
        "attributes": attributes,
        "created_at": "2023-07-16T11:45:34.000000Z",
        "status": "Subscriber updated successfully",
    });
    if !updated_at.is_empty() {
        body["updated_at"] = updated_at.into();
    }
    body.to_string()
}

fn by_id(id: &str) -> GetContactRequest {
    GetContactRequest { lookup: Some(Lookup::Id(id.to_owned())) }
}

/// Waits until the contact exists and satisfies `done`, then returns it.
async fn contact_when(system: &TestSystem, id: &str, done: impl Fn(&Contact) -> bool) -> Contact {
    let client = system.contacts().await;
    let done = &done;
    wait_until(&format!("contact {id}"), WAIT, || {
        let mut client = client.clone();
        async move {
            client
                .get_contact(by_id(id))
                .await
                .ok()
                .map(|response| response.into_inner())
                .filter(|contact| done(contact))
        }
    })
    .await
}

/// Waits until the contact has `count` versions, then returns them (oldest first).
async fn versions_when(system: &TestSystem, id: &str, count: usize) -> Vec<Contact> {
    let client = system.contacts().await;
    wait_until(&format!("{count} versions of contact {id}"), WAIT, || {
        let mut client = client.clone();
        let request = ListContactVersionsRequest { id: id.to_owned(), page_size: 100, ..Default::default() };
        async move {
            let versions = client.list_contact_versions(request).await.ok()?.into_inner().versions;
            (versions.len() == count).then_some(versions)
        }
    })
    .await
}

fn attributes(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect()
}

#[tokio::test]
async fn documented_contact_events_are_queryable_over_grpc() {
    let system = TestSystem::start().await.expect("system starts");
    let created_body = fixture("events", "contacts.subscriber.subscription.created.json");
    let updated_body = fixture("events", "contacts.subscriber.subscription.updated.json");
    let created = system.post_ok("contacts:subscriber:subscription", created_body.clone()).await;
    let updated = system.post_ok("contacts.subscriber.subscription", updated_body.clone()).await;
    assert_eq!(updated["event"], "contacts:subscriber:subscription");

    let contact =
        contact_when(&system, "86", |contact| contact.status == "Subscriber updated successfully").await;
    assert_eq!(contact.identity, "demo@gmail.com");
    assert_eq!(
        (contact.first_name.as_str(), contact.middle_name.as_str(), contact.last_name.as_str()),
        ("Demo", "", "Test")
    );
    assert_eq!((contact.gender.as_str(), contact.birth_date.as_str()), ("male", "1996-07-16"));
    assert_eq!(contact.company, "", "null stays empty");
    assert_eq!(
        contact.attributes,
        attributes(&[("membership", "platinum"), ("status", "vip"), ("customerNumber", "23")])
    );
    assert_eq!(contact.created_at.map(|time| time.seconds), Some(micros("2023-07-17T11:45:34Z") / 1_000_000));
    assert_eq!(contact.updated_at.map(|time| time.seconds), Some(micros("2023-07-17T11:46:06Z") / 1_000_000));
    assert_eq!(contact.raw_json.as_bytes(), updated_body.as_slice(), "raw JSON is kept byte for byte");
    assert_eq!(contact.stream_sequence, updated["seq"].as_u64().expect("seq"));
    let first_received = contact.first_received_at.as_ref().map(|time| time.seconds);
    let last_received = contact.last_received_at.as_ref().map(|time| time.seconds);
    assert!(first_received.is_some() && first_received <= last_received);

    let mut client = system.contacts().await;
    let by_identity = client
        .get_contact(GetContactRequest { lookup: Some(Lookup::Identity(" Demo@Gmail.COM ".into())) })
        .await
        .expect("found by identity")
        .into_inner();
    assert_eq!(by_identity.id, "86", "identities compare case-insensitively");

    let versions = versions_when(&system, "86", 2).await;
    let statuses: Vec<&str> = versions.iter().map(|version| version.status.as_str()).collect();
    assert_eq!(
        statuses,
        ["Subscriber created successfully", "Subscriber updated successfully"],
        "oldest first"
    );
    assert_eq!(versions[0].raw_json.as_bytes(), created_body.as_slice());
    assert_eq!(versions[0].stream_sequence, created["seq"].as_u64().expect("seq"));
    let first_page = client
        .list_contact_versions(ListContactVersionsRequest {
            id: "86".into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .expect("page")
        .into_inner();
    assert_eq!(first_page.versions[0].status, "Subscriber created successfully");
    let second_page = client
        .list_contact_versions(ListContactVersionsRequest {
            id: "86".into(),
            page_size: 1,
            page_token: first_page.next_page_token.clone(),
        })
        .await
        .expect("page")
        .into_inner();
    assert_eq!(second_page.versions[0].status, "Subscriber updated successfully");
    assert!(second_page.next_page_token.is_empty());

    let filtered = |pairs: &[(&str, &str)]| ListContactsRequest {
        attributes: pairs
            .iter()
            .map(|(key, value)| AttributeFilter { key: key.to_string(), value: value.to_string() })
            .collect(),
        ..Default::default()
    };
    let platinum =
        client.list_contacts(filtered(&[("membership", "platinum")])).await.expect("lists").into_inner();
    assert_eq!(platinum.contacts.iter().map(|contact| contact.id.as_str()).collect::<Vec<_>>(), ["86"]);
    let both = client
        .list_contacts(filtered(&[("membership", "platinum"), ("customerNumber", "23")]))
        .await
        .expect("lists")
        .into_inner();
    assert_eq!(both.contacts.len(), 1);
    let gold = client.list_contacts(filtered(&[("membership", "gold")])).await.expect("lists").into_inner();
    assert!(gold.contacts.is_empty());

    for request in
        [by_id("999"), GetContactRequest { lookup: Some(Lookup::Identity("nobody@example.com".into())) }]
    {
        let missing = client.get_contact(request).await.expect_err("unknown");
        assert_eq!(missing.code(), Code::NotFound);
    }
    for request in [
        GetContactRequest::default(),
        by_id(" "),
        GetContactRequest { lookup: Some(Lookup::Identity(String::new())) },
    ] {
        let invalid = client.get_contact(request).await.expect_err("neither id nor identity");
        assert_eq!(invalid.code(), Code::InvalidArgument);
    }
    let unknown_versions = client
        .list_contact_versions(ListContactVersionsRequest { id: "999".into(), ..Default::default() })
        .await
        .expect_err("unknown contact");
    assert_eq!(unknown_versions.code(), Code::NotFound);
    let no_id =
        client.list_contact_versions(ListContactVersionsRequest::default()).await.expect_err("id required");
    assert_eq!(no_id.code(), Code::InvalidArgument);
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn the_documentation_verbatim_is_accepted_in_either_order() {
    let system = TestSystem::start().await.expect("system starts");
    let created_body = fixture("seed-verbatim", "contacts.subscriber.subscription.created.json");
    let updated_body = fixture("seed-verbatim", "contacts.subscriber.subscription.updated.json");
    // The update arrives before the creation: the later updated_at still wins.
    system.post_ok("contacts:subscriber:subscription", updated_body.clone()).await;
    system.post_ok("contacts:subscriber:subscription", created_body.clone()).await;
    let retry = system.post_ok("contacts:subscriber:subscription", created_body).await;
    assert_eq!(retry["duplicate"], true, "JetStream dropped the provider's retry");
    let versions = versions_when(&system, "86", 2).await;
    assert_eq!(
        versions[0].status, "Subscriber created successfully",
        "oldest first, whatever the arrival order"
    );
    let contact = contact_when(&system, "86", |_| true).await;
    assert_eq!(contact.status, "Subscriber updated successfully");
    assert_eq!(contact.raw_json.as_bytes(), updated_body.as_slice());
    assert_eq!(contact.attributes.get("membership").map(String::as_str), Some("platinum"));
    system.stop().await.expect("clean stop");
}

/// The versions of one contact, oldest update first.
fn history(id: u64) -> Vec<String> {
    vec![
        contact(
            id,
            "conv@example.com",
            ["First", "", "One"],
            serde_json::json!({"tier": "bronze"}),
            "2024-01-01T00:00:00Z",
        ),
        contact(
            id,
            "conv@example.com",
            ["Second", "", "One"],
            serde_json::json!({"tier": "silver", "old": "yes"}),
            "2024-01-02T00:00:00Z",
        ),
        contact(id, "conv@example.com", ["Undated", "", "One"], serde_json::json!({"tier": "none"}), ""),
        contact(
            id,
            "conv@example.com",
            ["Latest", "", "One"],
            serde_json::json!({"tier": "gold"}),
            "2024-01-03T00:00:00Z",
        ),
    ]
}

#[tokio::test]
async fn versions_arriving_in_any_order_converge() {
    let system = TestSystem::start().await.expect("system starts");
    let orders: [[usize; 4]; 3] = [[0, 1, 2, 3], [3, 2, 1, 0], [2, 3, 0, 1]];
    for (index, order) in orders.iter().enumerate() {
        let id = 500 + index as u64;
        let bodies = history(id);
        for position in order {
            system.post_ok("contacts:subscriber:subscription", bodies[*position].clone()).await;
        }
        // The same body stored again past the duplicate window: still one version.
        system
            .publish_direct(EventKind::ContactsSubscriberSubscription, bodies[order[0]].clone(), None)
            .await;
    }
    let mut states = Vec::new();
    for index in 0..orders.len() {
        let id = (500 + index).to_string();
        let versions = versions_when(&system, &id, 4).await;
        let contact = contact_when(&system, &id, |_| true).await;
        let names: Vec<String> = versions.iter().map(|version| version.first_name.clone()).collect();
        states.push((contact.first_name, contact.attributes, contact.updated_at, names));
    }
    assert_eq!(states[0].0, "Latest", "the latest updated_at wins");
    assert_eq!(states[0].1, attributes(&[("tier", "gold")]));
    assert_eq!(
        states[0].3,
        ["Undated", "First", "Second", "Latest"],
        "versions without updated_at sort first"
    );
    assert!(states.iter().all(|state| *state == states[0]), "{states:?}");

    // The replaced attributes are gone from the filter table, whatever came last.
    let mut client = system.contacts().await;
    for stale in [("tier", "bronze"), ("tier", "none"), ("old", "yes")] {
        let listed = client
            .list_contacts(ListContactsRequest {
                attributes: vec![AttributeFilter { key: stale.0.into(), value: stale.1.into() }],
                ..Default::default()
            })
            .await
            .expect("lists")
            .into_inner();
        assert!(listed.contacts.is_empty(), "{stale:?} belongs to a replaced version");
    }
    system.stop().await.expect("clean stop");
}

fn ids(contacts: &[Contact]) -> Vec<&str> {
    contacts.iter().map(|contact| contact.id.as_str()).collect()
}

#[tokio::test]
async fn contacts_are_searched_by_name_identity_attributes_and_update_time() {
    let system = TestSystem::start().await.expect("system starts");
    let bodies = [
        contact(
            1,
            "asha@example.com",
            ["Asha", "Rani", "Kumar"],
            serde_json::json!({"city": "pune", "tier": "gold"}),
            "2024-01-01T00:00:00Z",
        ),
        contact(
            2,
            "+91 98000 00002",
            ["Ashok", "", "Mehta"],
            serde_json::json!({"city": "pune", "tier": "silver"}),
            "2024-01-02T00:00:00Z",
        ),
        contact(
            3,
            "bala@example.com",
            ["Bala", "", "Ashraf"],
            serde_json::json!({"city": "delhi", "tier": "gold", "vip": true}),
            "2024-01-03T00:00:00Z",
        ),
        contact(4, "c%l@example.com", ["C_r%l", "", "Lee"], serde_json::json!([]), "2024-01-04T00:00:00Z"),
        contact(6, "cara@example.com", ["Cara", "", "Lee"], serde_json::json!(null), "2024-01-05T00:00:00Z"),
        // No updated_at: listed by its receive time, so newest of all.
        contact(5, "Asha.Singh@example.com", ["asha", "", "Singh"], serde_json::json!({"score": 42}), ""),
    ];
    for body in &bodies {
        system.post_ok("contacts:subscriber:subscription", body.clone()).await;
    }
    let mut client = system.contacts().await;
    wait_until("six contacts", WAIT, || {
        let mut client = client.clone();
        async move {
            let listed = client.list_contacts(ListContactsRequest::default()).await.ok()?.into_inner();
            (listed.contacts.len() == 6).then_some(())
        }
    })
    .await;

    let lister = client.clone();
    let list = move |request: ListContactsRequest| {
        let mut client = lister.clone();
        async move { client.list_contacts(request).await.expect("lists").into_inner().contacts }
    };
    let name = |prefix: &str| ListContactsRequest { name_prefix: prefix.into(), ..Default::default() };
    let identity =
        |prefix: &str| ListContactsRequest { identity_prefix: prefix.into(), ..Default::default() };
    let having = |pairs: &[(&str, &str)]| ListContactsRequest {
        attributes: pairs
            .iter()
            .map(|(key, value)| AttributeFilter { key: key.to_string(), value: value.to_string() })
            .collect(),
        ..Default::default()
    };

    assert_eq!(
        ids(&list(ListContactsRequest::default()).await),
        ["5", "6", "4", "3", "2", "1"],
        "most recently updated first"
    );
    assert_eq!(ids(&list(name("ASH")).await), ["5", "3", "2", "1"], "first, middle or last name, any case");
    assert_eq!(ids(&list(name("rani")).await), ["1"], "middle names count");
    assert_eq!(ids(&list(name("c_")).await), ["4"], "`_` is a character, not a wildcard");
    assert_eq!(ids(&list(name("c_r%")).await), ["4"]);
    assert!(list(name("%")).await.is_empty(), "`%` is a character, not a wildcard");
    assert_eq!(ids(&list(identity("ASHA")).await), ["5", "1"]);
    assert_eq!(ids(&list(identity("+91 98")).await), ["2"], "phone identities as digits");
    assert_eq!(ids(&list(identity("c%")).await), ["4"]);
    assert_eq!(ids(&list(having(&[("city", "pune")])).await), ["2", "1"]);
    assert_eq!(
        ids(&list(having(&[("city", "pune"), ("tier", "gold")])).await),
        ["1"],
        "every filter must match"
    );
    assert_eq!(ids(&list(having(&[("vip", "true")])).await), ["3"], "non-string values as JSON text");
    assert_eq!(ids(&list(having(&[("score", "42")])).await), ["5"]);
    assert!(list(having(&[("city", "PUNE")])).await.is_empty(), "values match exactly");
    let gold_ash = ListContactsRequest { name_prefix: "ash".into(), ..having(&[("tier", "gold")]) };
    assert_eq!(ids(&list(gold_ash).await), ["3", "1"]);
    let since = ListContactsRequest {
        updated_since: Some(timestamp(micros("2024-01-02T00:00:00Z"))),
        ..Default::default()
    };
    assert_eq!(ids(&list(since).await), ["5", "6", "4", "3", "2"], "updated at or after");

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_contacts(ListContactsRequest {
                page_size: 4,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        seen.extend(page.contacts.iter().map(|contact| contact.id.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ["5", "6", "4", "3", "2", "1"], "every contact once");
    let no_key = client.list_contacts(having(&[("", "pune")])).await.expect_err("a filter needs a key");
    assert_eq!(no_key.code(), Code::InvalidArgument);
    let bad_token = client
        .list_contacts(ListContactsRequest { page_token: "garbage".into(), ..Default::default() })
        .await
        .expect_err("bad token");
    assert_eq!(bad_token.code(), Code::InvalidArgument);

    // A newer version replaces the attributes; an older one arriving afterwards changes nothing.
    let newer = contact(
        1,
        "asha@example.com",
        ["Asha", "Rani", "Kumar"],
        serde_json::json!({"city": "mumbai"}),
        "2024-02-01T00:00:00Z",
    );
    system.post_ok("contacts:subscriber:subscription", newer).await;
    contact_when(&system, "1", |contact| {
        contact.attributes.get("city").map(String::as_str) == Some("mumbai")
    })
    .await;
    let older = contact(
        1,
        "asha@example.com",
        ["Asha", "", "Old"],
        serde_json::json!({"city": "pune", "tier": "platinum"}),
        "2023-12-01T00:00:00Z",
    );
    system.post_ok("contacts:subscriber:subscription", older).await;
    versions_when(&system, "1", 3).await;
    assert_eq!(ids(&list(having(&[("city", "pune")])).await), ["2"]);
    assert_eq!(ids(&list(having(&[("tier", "gold")])).await), ["3"]);
    assert!(
        list(having(&[("tier", "platinum")])).await.is_empty(),
        "an older version's attributes never apply"
    );
    assert_eq!(ids(&list(having(&[("city", "mumbai")])).await), ["1"]);
    let current = client.get_contact(by_id("1")).await.expect("found").into_inner();
    assert_eq!((current.last_name.as_str(), current.attributes.len()), ("Kumar", 1));
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn watchers_see_committed_contacts_by_id_and_identity() {
    let system = TestSystem::start().await.expect("system starts");
    let mut client = system.contacts().await;
    let mut by_identity = client
        .watch(WatchRequest { identity: "WATCH@example.com".into(), ..Default::default() })
        .await
        .expect("watch opens")
        .into_inner();
    let mut by_id = client
        .watch(WatchRequest { id: "71".into(), ..Default::default() })
        .await
        .expect("watch opens")
        .into_inner();
    let other =
        contact(70, "other@example.com", ["Other", "", "One"], serde_json::json!({}), "2024-01-01T00:00:00Z");
    let watched = contact(
        71,
        "watch@example.com",
        ["Watched", "", "One"],
        serde_json::json!({"a": "b"}),
        "2024-01-01T00:00:00Z",
    );
    system.post_ok("contacts:subscriber:subscription", other).await;
    system.post_ok("contacts:subscriber:subscription", watched).await;
    for watch in [&mut by_identity, &mut by_id] {
        let change = tokio::time::timeout(WAIT, watch.next())
            .await
            .expect("a change in time")
            .expect("open")
            .expect("ok");
        match change.change {
            Some(Change::Contact(contact)) => {
                assert_eq!(contact.id, "71", "the other contact is filtered out");
                assert_eq!(contact.attributes, attributes(&[("a", "b")]));
            }
            other => panic!("expected a contact, got {other:?}"),
        }
    }
    system.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_contact_the_service_cannot_decode_is_dead_lettered_with_its_reason() {
    let system = TestSystem::start().await.expect("system starts");
    let bad_attributes =
        serde_json::json!({"id": 90, "identity": "bad@example.com", "attributes": "vip"}).to_string();
    let no_id = serde_json::json!({"identity": "noid@example.com", "first_name": "No"}).to_string();
    for (body, expected) in [(bad_attributes, "attributes must be an object"), (no_id, "id")] {
        let answer = system.post_ok("contacts:subscriber:subscription", body.clone()).await;
        let sequence = answer["seq"].as_u64().expect("seq");
        let letter = system.dead_letter_of(sequence).await;
        assert_eq!(letter.subject.as_str(), "dlq.contacts.contacts.subscriber.subscription");
        let header = |name: &str| letter.headers.get(name).map(|value| value.as_str().to_owned());
        let reason = header(headers::DLQ_REASON).unwrap_or_default();
        assert!(reason.contains(expected), "reason {reason:?} should say {expected:?}");
        assert_eq!(header(headers::DLQ_COMPONENT).as_deref(), Some("contacts"));
        assert_eq!(
            header(headers::DLQ_ORIGINAL_SUBJECT).as_deref(),
            Some("contacts.subscriber.subscription")
        );
        assert_eq!(header(headers::EVENT).as_deref(), Some("contacts:subscriber:subscription"));
        assert_eq!(letter.payload.as_ref(), body.as_bytes(), "the body is kept");
    }
    let good =
        contact(91, "good@example.com", ["Good", "", "One"], serde_json::json!({}), "2024-01-01T00:00:00Z");
    system.post_ok("contacts:subscriber:subscription", good).await;
    contact_when(&system, "91", |_| true).await;
    let mut client = system.contacts().await;
    assert_eq!(client.get_contact(by_id("90")).await.expect_err("not projected").code(), Code::NotFound);
    system.stop().await.expect("clean stop");
}
