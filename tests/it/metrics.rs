//! The admin port's metrics: everything since start-up is counted, not only what happened after
//! the first scrape.

use std::time::Duration;

use switchboard_proto::sms::GetMessageRequest;
use switchboard_tests::{TestSystem, fixture, wait_until};

const WAIT: Duration = Duration::from_secs(15);

/// The value of the first sample of `metric` whose labels include every one of `labels`.
fn sample(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")) || line.starts_with(&format!("{metric} ")))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn metrics_count_what_happened_before_the_first_scrape() {
    let system = TestSystem::start().await.expect("system starts");
    system.post_ok("sms:message:status", fixture("events", "sms.message.status.json")).await;
    let client = system.sms().await;
    wait_until("the delivery report is applied", WAIT, || {
        let mut client = client.clone();
        let request = GetMessageRequest { id: "b34e35ad-fe34-4a8b-977c-b21cd76cd7d6:1".to_owned() };
        async move { client.get_message(request).await.ok() }
    })
    .await;

    // The first scrape of this process comes after the webhook and its projection.
    let response =
        system.http.get(format!("{}/metrics", system.admin_url)).send().await.expect("admin answers");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("a text body");
    let requests = sample(
        &text,
        "switchboard_gateway_requests_total",
        &[r#"event="sms:message:status""#, r#"outcome="stored""#, r#"status="200""#],
    );
    assert!(requests.is_some_and(|count| count >= 1.0), "the accepted webhook is not counted:\n{text}");
    // Every configured source's accepted series exist from the start, for every event.
    let untouched = sample(
        &text,
        "switchboard_gateway_requests_total",
        &[r#"event="contacts:subscriber:subscription""#, r#"outcome="duplicate""#, r#"status="200""#],
    );
    assert!(untouched.is_some(), "the series of an event not yet received is missing:\n{text}");
    let published = sample(&text, "switchboard_gateway_publish_seconds_count", &[]);
    assert!(published.is_some_and(|count| count >= 1.0), "the publish is not timed:\n{text}");
    let applied =
        sample(&text, "switchboard_consumer_events_total", &[r#"consumer="sms""#, r#"outcome="applied""#]);
    assert!(applied.is_some_and(|count| count >= 1.0), "the applied event is not counted:\n{text}");

    system.stop().await.expect("clean stop");
}
