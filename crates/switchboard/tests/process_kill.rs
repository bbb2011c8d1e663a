//! A real `switchboard sms` process SIGKILLed mid-batch, several times, while deliveries flow: after
//! restarts, every acknowledged event is projected exactly once and nothing is dead-lettered.

use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use switchboard_proto::sms::sms_service_client::SmsServiceClient;
use switchboard_proto::sms::{GetMessageRequest, ListMessagesRequest};
use switchboard_tests::{TEST_TOKEN, TestSystem, wait_until};
use tokio::process::{Child, Command};

const MESSAGES: usize = 150;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("a free port").port()
}

struct SmsProcess {
    nats_url: String,
    data_dir: std::path::PathBuf,
    grpc_port: u16,
    admin_port: u16,
}

impl SmsProcess {
    fn spawn(&self) -> Child {
        Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("sms")
            .env_remove("SWITCHBOARD_CONFIG")
            .env("SWITCHBOARD_NATS__URL", &self.nats_url)
            .env("SWITCHBOARD_STORAGE__DATA_DIR", &self.data_dir)
            .env("SWITCHBOARD_GRPC__LISTEN", format!("127.0.0.1:{}", self.grpc_port))
            .env("SWITCHBOARD_ADMIN__LISTEN", format!("127.0.0.1:{}", self.admin_port))
            // Small batches, so a kill lands in the middle of one; quick redelivery of what it held.
            .env("SWITCHBOARD_SMS__CONSUMER__BATCH_SIZE", "8")
            .env("SWITCHBOARD_SMS__CONSUMER__ACK_WAIT", "5s")
            .env("SWITCHBOARD_SMS__CONSUMER__RETRY_INITIAL", "100ms")
            .env("SWITCHBOARD_LOG__FILTER", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("switchboard sms starts")
    }
}

fn report(message: usize, status: &str, second: usize) -> String {
    serde_json::json!({
        "id": format!("7d1c0f3e-0000-4000-8000-{message:012}:1"),
        "mobile": format!("9198{:08}", message),
        "status": status,
        "deliv_time": format!("2021-04-09 16:27:{second:02}"),
        "sent_time": "2021-04-09 16:27:00",
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_process_killed_mid_batch_loses_and_repeats_nothing() {
    let system = TestSystem::builder()
        .components(&[switchboard::Component::Gateway])
        .start()
        .await
        .expect("gateway and nats-server start");
    let data_dir =
        tempfile::Builder::new().prefix("switchboard-kill-").tempdir().expect("temporary directory");
    let process = SmsProcess {
        nats_url: system.config.nats.url.clone(),
        data_dir: data_dir.path().to_path_buf(),
        grpc_port: free_port(),
        admin_port: free_port(),
    };
    let mut child = process.spawn();

    // Every message gets SENT, DELIVRD, and its DELIVRD once more (a provider retry), out of order.
    let mut deliveries: Vec<String> = Vec::new();
    for message in 0..MESSAGES {
        deliveries.push(report(message, "DELIVRD", 30));
        deliveries.push(report(message, "SENT", 10));
        deliveries.push(report(message, "DELIVRD", 30));
    }
    let url = format!("{}/v1/events/sms:message:status", system.gateway_url);
    let http = system.http.clone();
    let sender = tokio::spawn(async move {
        for body in deliveries {
            // Like the provider: resend until the gateway says it is stored.
            loop {
                let answer = http
                    .post(&url)
                    .bearer_auth(TEST_TOKEN)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                if matches!(answer, Ok(response) if response.status().is_success()) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    });

    let mut kills = 0;
    while !sender.is_finished() && kills < 4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        child.start_kill().expect("SIGKILL");
        child.wait().await.expect("the killed process is reaped");
        kills += 1;
        child = process.spawn();
    }
    sender.await.expect("every delivery is stored");
    assert!(kills >= 2, "the load ended before the service could be killed twice ({kills})");

    let endpoint = format!("http://127.0.0.1:{}", process.grpc_port);
    let mut client: SmsServiceClient<tonic::transport::Channel> =
        wait_until("the restarted sms service answers", Duration::from_secs(30), || {
            let endpoint = endpoint.clone();
            async move { SmsServiceClient::connect(endpoint).await.ok() }
        })
        .await;
    // Converged: every message DELIVRD with exactly its two distinct reports in its history (the
    // consumer may still be working through redeliveries for a moment).
    let deadline = Instant::now() + Duration::from_secs(60);
    let histories = loop {
        let histories = histories(&mut client).await;
        let converged = histories.len() == MESSAGES
            && histories.iter().all(|(_, statuses)| {
                statuses.len() == 2
                    && statuses.contains(&"SENT".to_owned())
                    && statuses.contains(&"DELIVRD".to_owned())
            });
        if converged || Instant::now() > deadline {
            break histories;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(histories.len(), MESSAGES, "every message reaches DELIVRD after {kills} kills");
    for (id, statuses) in &histories {
        assert_eq!(statuses.len(), 2, "{id}: one history entry per distinct report, got {statuses:?}");
        assert!(
            statuses.contains(&"SENT".to_owned()) && statuses.contains(&"DELIVRD".to_owned()),
            "{id}: {statuses:?}"
        );
    }

    let jetstream = system.jetstream().await.expect("jetstream");
    let mut dead_letters = jetstream
        .get_stream(&system.config.nats.dead_letter_stream.name)
        .await
        .expect("the dead-letter stream");
    let info = dead_letters.info().await.expect("dead-letter stream info");
    assert_eq!(info.state.messages, 0, "nothing was dead-lettered");

    child.start_kill().expect("stop");
    let _ = child.wait().await;
    system.stop().await.expect("stops");
}

/// Each DELIVRD message's id with the statuses of its history.
async fn histories(client: &mut SmsServiceClient<tonic::transport::Channel>) -> Vec<(String, Vec<String>)> {
    let listed = client
        .list_messages(ListMessagesRequest {
            page_size: 500,
            status: "DELIVRD".to_owned(),
            ..Default::default()
        })
        .await
        .map(|response| response.into_inner().messages)
        .unwrap_or_default();
    let mut histories = Vec::with_capacity(listed.len());
    for message in listed {
        let Ok(got) = client.get_message(GetMessageRequest { id: message.id.clone() }).await else {
            continue;
        };
        let statuses = got.into_inner().history.into_iter().map(|event| event.status).collect();
        histories.push((message.id, statuses));
    }
    histories
}
