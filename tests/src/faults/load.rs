//! The provider, as far as the gateway can tell: a known set of events, sent concurrently over HTTP,
//! with duplicates and out of order, each retried later until it gets a 2xx.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use switchboard_events::EventKind;
use tokio::task::JoinSet;

use crate::workload::vmn;
use crate::{TEST_TOKEN, fixture, wait_until};

/// One delivery the provider makes (a duplicate is a second `Planned` with the same body).
#[derive(Debug, Clone)]
pub struct Planned {
    pub kind: EventKind,
    pub body: String,
}

/// What the gateway answered with its 2xx.
#[derive(Debug, Clone, Copy)]
pub struct Receipt {
    pub sequence: u64,
    pub duplicate: bool,
}

/// SMS reports for `messages` message ids, five statuses each (the final one is `DELIVRD`, whose
/// delivery time is the latest among the finals); WhatsApp sent/delivered/read triples; voice CDRs;
/// two versions of each contact; sms opt-outs; VMN inbound messages. One delivery in seven is sent
/// twice, and everything is shuffled (seeded, so a failure can be replayed).
pub fn workload(messages: usize, seed: u64) -> Vec<Planned> {
    let mut planned = Vec::new();
    let sms_statuses = [
        ("AWAITING-DLR", "2021-04-09 16:27:36"),
        ("TIMEOUT-DLR", "2021-04-09 18:27:36"),
        ("DELIVRD", "2021-04-09 16:30:00"),
        ("UNDELIV", "2021-04-09 16:29:00"),
        ("ENROUTE", "2021-04-09 20:00:00"),
    ];
    for message in 0..messages {
        for (status, deliv_time) in sms_statuses {
            let body = serde_json::json!({
                "id": sms_id(message), "mobile": format!("9190000{message:05}"), "status": status,
                "deliv_time": deliv_time, "sent_time": "2021-04-09 16:27:35", "credits": "1.0000", "units": 1,
            });
            planned.push(Planned { kind: EventKind::SmsMessageStatus, body: body.to_string() });
        }
    }
    for message in 0..messages / 4 {
        for (second, status) in ["sent", "delivered", "read"].into_iter().enumerate() {
            let body = serde_json::json!({
                "event": "whatsapp:message:status",
                "payload": {
                    "id": whatsapp_id(message), "channel": "whatsapp", "from": "919019120123",
                    "to": format!("9191000{message:05}"), "status": status,
                    "timestamp": format!("2021-06-18T14:48:0{second}.000000Z"),
                },
            });
            planned.push(Planned { kind: EventKind::WhatsappMessageStatus, body: body.to_string() });
        }
        let call = serde_json::json!({
            "mid": call_id(message), "from": 918919521234u64, "to": format!("9192000{message:05}"),
            "source": "OBD", "flow_id": 123, "start_at": "2021-04-09 16:27:39", "end_at": "2021-04-09 16:27:55",
            "duration": "16", "status": if message % 3 == 0 { "NOANSWER" } else { "ANSWER" },
        });
        planned.push(Planned { kind: EventKind::VoiceMessageOut, body: call.to_string() });
        planned.push(Planned {
            kind: EventKind::VmnMessageIn,
            body: vmn(&vmn_id(message), "919000099999", "919876543210", &format!("JOIN {message}")),
        });
    }
    for contact in 0..messages / 5 {
        for version in 0..2 {
            let mut body: serde_json::Value =
                serde_json::from_slice(&fixture("events", "contacts.subscriber.subscription.updated.json"))
                    .expect("fixture is JSON");
            body["id"] = serde_json::json!(1000 + contact);
            body["identity"] = serde_json::json!(format!("contact-{contact}@example.com"));
            body["attributes"]["version"] = serde_json::json!(version.to_string());
            body["updated_at"] = serde_json::json!(format!("2023-07-17T11:46:0{version}.000000Z"));
            planned.push(Planned { kind: EventKind::ContactsSubscriberSubscription, body: body.to_string() });
        }
    }
    for opt_out in 0..messages / 10 {
        let mut body: serde_json::Value =
            serde_json::from_slice(&fixture("events", "sms.unsubscription.json")).expect("fixture is JSON");
        body["id"] = serde_json::json!(format!("00000000-0000-4000-8000-{opt_out:012}"));
        body["receiver"] = serde_json::json!(format!("9193000{opt_out:05}"));
        planned.push(Planned { kind: EventKind::SmsUnsubscription, body: body.to_string() });
    }
    let duplicates: Vec<Planned> = planned.iter().step_by(7).cloned().collect();
    planned.extend(duplicates);
    planned.shuffle(&mut StdRng::seed_from_u64(seed));
    planned
}

pub fn sms_id(message: usize) -> String {
    format!("fault-{message}:1")
}

pub fn whatsapp_id(message: usize) -> String {
    format!("wa-fault-{message}")
}

pub fn call_id(message: usize) -> String {
    format!("call-fault-{message}")
}

pub fn vmn_id(message: usize) -> String {
    format!("vmn-fault-{message}")
}

/// Counts for the summary.
#[derive(Debug, Default)]
pub struct Counters {
    pub attempts: AtomicUsize,
    pub refused: AtomicUsize,
    pub accepted: AtomicUsize,
    /// The slowest attempt, answered or not (microseconds).
    pub worst_latency_micros: AtomicU64,
}

/// A load in progress: `workers` senders share a queue of deliveries; a delivery that does not get a
/// 2xx (an error status, a refused connection, no answer within the provider's 3 seconds) goes back
/// to the end of the queue and is retried later, as the provider would. With several gateways, the
/// deliveries are spread over them and each retry goes to the next one, as a load balancer would
/// send it away from a gateway that is down.
#[derive(Debug)]
pub struct Load {
    pub planned: Arc<Vec<Planned>>,
    pub receipts: Arc<Mutex<Vec<Option<Receipt>>>>,
    pub counters: Arc<Counters>,
    senders: JoinSet<()>,
}

impl Load {
    /// Starts sending to whatever `gateway_urls` holds at the time of each attempt (a restarted
    /// gateway listens elsewhere). Each worker pauses `pace` after a 2xx, so faults land mid-load.
    pub fn start(
        planned: Vec<Planned>,
        gateway_urls: Arc<RwLock<Vec<String>>>,
        workers: usize,
        pace: Duration,
        deadline: Duration,
    ) -> Load {
        let planned = Arc::new(planned);
        let receipts = Arc::new(Mutex::new(vec![None; planned.len()]));
        let counters = Arc::new(Counters::default());
        // Each delivery with the number of attempts it had.
        let queue = Arc::new(Mutex::new((0..planned.len()).map(|index| (index, 0)).collect::<VecDeque<_>>()));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().expect("http client");
        let give_up = Instant::now() + deadline;
        let mut senders = JoinSet::new();
        for _ in 0..workers {
            let (planned, receipts, counters, queue, http, gateway_urls) = (
                planned.clone(),
                receipts.clone(),
                counters.clone(),
                queue.clone(),
                http.clone(),
                gateway_urls.clone(),
            );
            senders.spawn(async move {
                while Instant::now() < give_up {
                    let Some((index, tries)) = queue.lock().expect("queue lock").pop_front() else { break };
                    let delivery = &planned[index];
                    let url = {
                        let urls = gateway_urls.read().expect("urls lock");
                        format!("{}/v1/events/{}", urls[(index + tries) % urls.len()], delivery.kind.as_str())
                    };
                    counters.attempts.fetch_add(1, Ordering::Relaxed);
                    let attempt = Instant::now();
                    let outcome = send(&http, &url, &delivery.body).await;
                    let micros = u64::try_from(attempt.elapsed().as_micros()).unwrap_or(u64::MAX);
                    counters.worst_latency_micros.fetch_max(micros, Ordering::Relaxed);
                    match outcome {
                        Some(receipt) => {
                            receipts.lock().expect("receipts lock")[index] = Some(receipt);
                            counters.accepted.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(pace).await;
                        }
                        None => {
                            counters.refused.fetch_add(1, Ordering::Relaxed);
                            queue.lock().expect("queue lock").push_back((index, tries + 1));
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            });
        }
        Load { planned, receipts, counters, senders }
    }

    pub fn accepted(&self) -> usize {
        self.counters.accepted.load(Ordering::Relaxed)
    }

    /// Waits until at least `count` deliveries got their 2xx, or all of them did (a load that
    /// finished early, on a fast machine or a slow restart, has nothing more to accept).
    pub async fn wait_accepted(&self, count: usize) {
        let count = count.min(self.planned.len());
        wait_until(&format!("{count} accepted deliveries"), Duration::from_secs(30), || async {
            (self.accepted() >= count).then_some(())
        })
        .await;
    }

    /// Waits until every sender stopped (all delivered, or the deadline passed).
    pub async fn finish(mut self) -> Finished {
        while self.senders.join_next().await.is_some() {}
        let receipts = self.receipts.lock().expect("receipts lock").clone();
        Finished { planned: self.planned, receipts, counters: self.counters }
    }
}

#[derive(Debug)]
pub struct Finished {
    pub planned: Arc<Vec<Planned>>,
    pub receipts: Vec<Option<Receipt>>,
    pub counters: Arc<Counters>,
}

async fn send(http: &reqwest::Client, url: &str, body: &str) -> Option<Receipt> {
    let response = http
        .post(url)
        .bearer_auth(TEST_TOKEN)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let answer: serde_json::Value = response.json().await.ok()?;
    Some(Receipt { sequence: answer["seq"].as_u64()?, duplicate: answer["duplicate"].as_bool()? })
}
