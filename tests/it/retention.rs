//! Retention: old history is deleted and old raw JSON cleared, in chunks; current state stays.

use std::time::Duration;

use async_nats::HeaderMap;
use switchboard::Component;
use switchboard_events::Product;
use switchboard_proto::sms::GetMessageRequest;
use switchboard_tests::{TestSystem, wait_until};

async fn publish(jetstream: &async_nats::jetstream::Context, body: String, received_at: &str) {
    let mut headers = HeaderMap::new();
    headers.insert("Switchboard-Received-At", received_at);
    jetstream
        .publish_with_headers("sms.message.status", headers, body.into())
        .await
        .expect("publish")
        .await
        .expect("stored");
}

fn report(id: &str, status: &str) -> String {
    serde_json::json!({"id": id, "mobile": "919000000005", "status": status, "deliv_time": "2021-04-09 16:27:51"}).to_string()
}

#[tokio::test]
async fn old_history_and_raw_json_expire_and_current_state_stays() {
    let system = TestSystem::builder()
        .components(&[Component::Service(Product::Sms)])
        .configure(|config| {
            config.service_mut(Product::Sms).retention.history = Some(Duration::from_secs(30 * 24 * 3600));
            config.service_mut(Product::Sms).retention.raw_json = Some(Duration::from_secs(7 * 24 * 3600));
            config.service_mut(Product::Sms).retention.interval = Duration::from_millis(200);
            // Small chunks: the job must loop until done.
            config.service_mut(Product::Sms).retention.chunk_size = 2;
        })
        .start()
        .await
        .expect("system starts");
    let jetstream = system.jetstream().await.expect("jetstream");
    let old = "2020-01-01T00:00:00Z";
    let recent = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    for (index, status) in ["AWAITING-DLR", "ENROUTE", "DELIVRD"].iter().enumerate() {
        publish(&jetstream, report("old:1", status), old).await;
        publish(&jetstream, report(&format!("old-{index}:1"), status), old).await;
    }
    publish(&jetstream, report("recent:1", "AWAITING-DLR"), &recent).await;
    publish(&jetstream, report("recent:1", "DELIVRD"), &recent).await;

    let mut client = system.sms().await;
    let expired = wait_until("old history to expire", Duration::from_secs(20), || {
        let mut client = client.clone();
        async move {
            let message =
                client.get_message(GetMessageRequest { id: "old:1".into() }).await.ok()?.into_inner();
            (message.history.is_empty() && message.raw_json.is_empty()).then_some(message)
        }
    })
    .await;
    assert_eq!(expired.status, "DELIVRD", "the current state is kept");
    for index in 0..3 {
        let message = client
            .get_message(GetMessageRequest { id: format!("old-{index}:1") })
            .await
            .expect("kept")
            .into_inner();
        assert!(message.history.is_empty() && message.raw_json.is_empty());
    }
    wait_until("the recent message", Duration::from_secs(20), || {
        let mut client = client.clone();
        async move {
            let message =
                client.get_message(GetMessageRequest { id: "recent:1".into() }).await.ok()?.into_inner();
            (message.status == "DELIVRD").then_some(())
        }
    })
    .await;
    // Give the job a few more rounds: recent rows must survive them.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let recent_message =
        client.get_message(GetMessageRequest { id: "recent:1".into() }).await.expect("found").into_inner();
    assert_eq!(recent_message.history.len(), 2, "recent history is kept");
    assert!(!recent_message.raw_json.is_empty());
    system.stop().await.expect("clean stop");
}
