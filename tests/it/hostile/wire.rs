//! One case as one raw HTTP/1.1 request on its own connection, and the answer as received.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use switchboard_tests::TEST_TOKEN;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::cases::{Auth, Case, Framing};
use super::{SIGNATURE_KEY, WHSEC_KEY};

/// What came back: the status (when a status line arrived) and the rest.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) status: Option<u16>,
    pub(super) body: Vec<u8>,
    /// How the exchange ended, for reports.
    pub(super) note: String,
}

impl Answer {
    pub(super) fn body_text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.chars().take(300).collect()
    }

    pub(super) fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

pub(super) fn hex_signature(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SIGNATURE_KEY.as_bytes()).expect("any key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub(super) fn standard_signature(id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(WHSEC_KEY).expect("any key");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// The request's bytes.
pub(super) fn request_bytes(case: &Case, request_id: &str) -> Vec<u8> {
    let mut head = Vec::new();
    let mut line = |name: &str, value: &[u8]| {
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    };
    line("host", b"gateway");
    line("connection", b"close");
    line("x-request-id", request_id.as_bytes());
    match &case.auth {
        Auth::Bearer => line("authorization", format!("Bearer {TEST_TOKEN}").as_bytes()),
        Auth::None => {}
        Auth::Signature => line("signature", hex_signature(&case.body).as_bytes()),
        Auth::SignatureOver(signed) => line("signature", hex_signature(signed).as_bytes()),
        Auth::Standard { id, offset, signed } => {
            let timestamp = time::OffsetDateTime::now_utc().unix_timestamp() + offset;
            let signed = signed.as_deref().unwrap_or(&case.body);
            line("webhook-id", id.as_bytes());
            line("webhook-timestamp", timestamp.to_string().as_bytes());
            line("webhook-signature", standard_signature(id, timestamp, signed).as_bytes());
        }
    }
    if let Some(content_type) = &case.content_type {
        line("content-type", content_type);
    }
    for (name, value) in &case.headers {
        line(name, value);
    }
    let body = match case.framing {
        Framing::Length => {
            line("content-length", case.body.len().to_string().as_bytes());
            case.body.clone()
        }
        Framing::Declared(length) => {
            line("content-length", length.to_string().as_bytes());
            case.body.clone()
        }
        Framing::Chunked => {
            line("transfer-encoding", b"chunked");
            let mut chunked = Vec::new();
            for chunk in case.body.chunks(8192) {
                chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                chunked.extend_from_slice(chunk);
                chunked.extend_from_slice(b"\r\n");
            }
            chunked.extend_from_slice(b"0\r\n\r\n");
            chunked
        }
        Framing::AsGiven => case.body.clone(),
    };
    let mut request = format!("{} {} HTTP/1.1\r\n", case.method, case.target).into_bytes();
    request.extend_from_slice(&head);
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(&body);
    request
}

/// Sends the case on a new connection and reads the answer while the request is still being
/// written (a server may answer a too-large body before reading it).
pub(super) async fn send(address: &str, case: &Case, request_id: &str) -> Answer {
    let request = request_bytes(case, request_id);
    let stream = tokio::net::TcpStream::connect(address).await.expect("the gateway accepts connections");
    let (mut reader, mut writer) = stream.into_split();
    let write = tokio::spawn(async move {
        // The server may close early (413, 431): a write error is part of the exchange.
        let _ = writer.write_all(&request).await;
        // Keep the write half open until the answer is read.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(writer);
    });
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 16 * 1024];
    let note = loop {
        match tokio::time::timeout(Duration::from_secs(10), reader.read(&mut buffer)).await {
            Err(_) => break "no end of answer within 10 s".to_owned(),
            Ok(Ok(0)) => break "closed".to_owned(),
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
            Ok(Err(error)) => break format!("read error: {error}"),
        }
    };
    write.abort();
    parse(&received, note)
}

fn parse(received: &[u8], note: String) -> Answer {
    let status = received
        .strip_prefix(b"HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|digits| std::str::from_utf8(digits).ok())
        .and_then(|digits| digits.parse().ok());
    let body_start = received.windows(4).position(|window| window == b"\r\n\r\n").map(|at| at + 4);
    let body = body_start.map(|start| received[start..].to_vec()).unwrap_or_default();
    Answer { status, body, note }
}
