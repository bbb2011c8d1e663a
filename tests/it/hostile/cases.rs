//! The corpus: one entry per hostile request, with the answer it must get and what must be kept.
//!
//! Every case that is stored or dead-lettered needs a body of its own (per event): the stream and the
//! dead-letter stream de-duplicate identical bodies, and the test counts what they hold.

/// What the gateway must have kept of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kept {
    /// A new event in the stream.
    Stored,
    /// Answered 200 as a duplicate of an earlier case: nothing new stored.
    Duplicate,
    /// Authenticated but refused for its content: kept in the dead-letter stream.
    DeadLetter,
    Nothing,
}

/// The credentials a case presents.
#[derive(Debug, Clone)]
pub(super) enum Auth {
    /// `Authorization: Bearer <the test token>`.
    Bearer,
    /// Nothing (or only what the case's own headers carry).
    None,
    /// The provider's `Signature` header over the body.
    Signature,
    /// The provider's `Signature` header over other bytes (a tampered body).
    SignatureOver(Vec<u8>),
    /// Standard Webhooks headers, the timestamp `offset` seconds from now, signing `signed` (or the
    /// body when `None`).
    Standard { id: &'static str, offset: i64, signed: Option<Vec<u8>> },
}

/// How the body is framed.
#[derive(Debug, Clone, Copy)]
pub(super) enum Framing {
    /// A true `Content-Length`.
    Length,
    /// This `Content-Length`, whatever the body's length.
    Declared(u64),
    /// `Transfer-Encoding: chunked`, 8 KiB chunks.
    Chunked,
    /// No framing header added: the case's own headers and body bytes, as given.
    AsGiven,
}

#[derive(Debug, Clone)]
pub(super) struct Case {
    pub(super) name: &'static str,
    pub(super) method: &'static str,
    pub(super) target: String,
    pub(super) auth: Auth,
    pub(super) content_type: Option<Vec<u8>>,
    pub(super) headers: Vec<(String, Vec<u8>)>,
    pub(super) body: Vec<u8>,
    pub(super) framing: Framing,
    pub(super) status: u16,
    pub(super) kept: Kept,
}

const SMS: &str = "/v1/events/sms:message:status";

/// A bearer-authenticated JSON `POST` of `body` to the SMS status event, expected to be stored.
fn post(name: &'static str, body: impl Into<Vec<u8>>) -> Case {
    Case {
        name,
        method: "POST",
        target: SMS.to_owned(),
        auth: Auth::Bearer,
        content_type: Some(b"application/json".to_vec()),
        headers: Vec::new(),
        body: body.into(),
        framing: Framing::Length,
        status: 200,
        kept: Kept::Stored,
    }
}

impl Case {
    fn method(mut self, method: &'static str) -> Case {
        self.method = method;
        self
    }

    fn to(mut self, target: impl Into<String>) -> Case {
        self.target = target.into();
        self
    }

    fn auth(mut self, auth: Auth) -> Case {
        self.auth = auth;
        self
    }

    fn content_type(mut self, content_type: Option<&[u8]>) -> Case {
        self.content_type = content_type.map(<[u8]>::to_vec);
        self
    }

    fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Case {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    fn framing(mut self, framing: Framing) -> Case {
        self.framing = framing;
        self
    }

    fn expect(mut self, status: u16, kept: Kept) -> Case {
        self.status = status;
        self.kept = kept;
        self
    }
}

/// `{"a":[[[…]]]}`: an object holding `depth - 1` nested arrays (`depth` levels in all).
fn nested(depth: usize) -> Vec<u8> {
    let inner = depth.saturating_sub(1);
    format!("{{\"a\":{}{}}}", "[".repeat(inner), "]".repeat(inner)).into_bytes()
}

fn with_bytes(prefix: &[u8], middle: &[u8], suffix: &[u8]) -> Vec<u8> {
    [prefix, middle, suffix].concat()
}

pub(super) fn corpus() -> Vec<Case> {
    use Kept::{DeadLetter, Duplicate, Nothing};
    let big = 300_000;
    let mut cases = vec![
        // Malformed and truncated JSON: authenticated, so kept as dead letters.
        post("empty body", "").expect(422, DeadLetter),
        post("whitespace only", " \r\n\t ").expect(422, DeadLetter),
        post("lone open brace", "{").expect(422, DeadLetter),
        post("truncated string", r#"{"id":"trunc"#).expect(422, DeadLetter),
        post("truncated after colon", r#"{"id":"#).expect(422, DeadLetter),
        post("truncated after key", r#"{"id""#).expect(422, DeadLetter),
        post("missing value", r#"{"id":}"#).expect(422, DeadLetter),
        post("missing colon", r#"{"id" "x"}"#).expect(422, DeadLetter),
        post("single quotes", r#"{'id':'x'}"#).expect(422, DeadLetter),
        post("unquoted key", r#"{id:"x"}"#).expect(422, DeadLetter),
        post("garbage after object", r#"{"id":"g"}}"#).expect(422, DeadLetter),
        post("two objects", r#"{"id":"t1"} {"id":"t2"}"#).expect(422, DeadLetter),
        post("leading zero", r#"{"id":012}"#).expect(422, DeadLetter),
        post("NaN", r#"{"id":NaN}"#).expect(422, DeadLetter),
        post("bad escape", r#"{"id":"\x41"}"#).expect(422, DeadLetter),
        post("short unicode escape", r#"{"id":"\u12"}"#).expect(422, DeadLetter),
        post("comment", r#"{"id":"c" /* note */}"#).expect(422, DeadLetter),
        post("double trailing comma", r#"{"id":"dtc",,}"#).expect(422, DeadLetter),
        post("leading comma", r#"{,"id":"lc"}"#).expect(422, DeadLetter),
        post("unclosed array", r#"{"id":"ua","list":[1,2}"#).expect(422, DeadLetter),
        post("mismatched brackets", r#"{"id":"mb"]"#).expect(422, DeadLetter),
        post("raw newline in string", "{\"id\":\"line\nbreak\"}").expect(422, DeadLetter),
        post("raw NUL in string", b"{\"id\":\"nul\0inside\"}".to_vec()).expect(422, DeadLetter),
        post("NUL after object", b"{\"id\":\"nul-after\"}\0".to_vec()).expect(422, DeadLetter),
        post("NUL bytes only", vec![0u8; 16]).expect(422, DeadLetter),
        post("bad UTF-8 in string", with_bytes(b"{\"id\":\"", &[0xff, 0xfe], b"\"}")).expect(422, DeadLetter),
        post("overlong UTF-8 in string", with_bytes(b"{\"id\":\"", &[0xc0, 0xaf], b"\"}"))
            .expect(422, DeadLetter),
        post("bad UTF-8 in key", with_bytes(b"{\"", &[0xed, 0xa0, 0x80], b"\":\"k\"}"))
            .expect(422, DeadLetter),
        post("UTF-8 BOM", with_bytes(&[0xef, 0xbb, 0xbf], b"{\"id\":\"bom\"}", b"")).expect(422, DeadLetter),
        post(
            "UTF-16 body",
            "{\"id\":\"utf16\"}".encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<u8>>(),
        )
        .expect(422, DeadLetter),
        // Valid JSON grammar; a reader chooses how to hold it.
        post("number out of range", r#"{"id":"big","n":1e999999}"#),
        post("duplicate event key", r#"{"event":"sms:message:status","event":"sms:message:status"}"#)
            .expect(422, DeadLetter),
        // JSON that is not an object.
        post("array", r#"[{"id":"arr"}]"#).expect(422, DeadLetter),
        post("string", r#""just a string""#).expect(422, DeadLetter),
        post("number", "42").expect(422, DeadLetter),
        post("null", "null").expect(422, DeadLetter),
        post("boolean", "true").expect(422, DeadLetter),
        // Nesting.
        post("nesting at the limit", nested(32)),
        post("nesting one past the limit", nested(33)).expect(422, DeadLetter),
        post("nesting 100000 deep", nested(100_000)).expect(422, DeadLetter),
        post("unclosed nesting 200000 deep", "[".repeat(200_000)).expect(422, DeadLetter),
        // Valid JSON, odd content: stored byte for byte.
        post(
            "wrong types in known fields",
            r#"{"id":123,"status":["DELIVRD"],"mobile":{"n":1},"units":"two"}"#,
        ),
        post("nulls in known fields", r#"{"id":null,"status":null}"#),
        post("empty object", "{}"),
        post("escaped NUL", r#"{"id":"esc\u0000nul"}"#),
        post("lone surrogate escape", r#"{"id":"\ud800"}"#),
        post("emoji and RTL text", "{\"id\":\"emoji\",\"text\":\"\u{1F600} \u{202E}abc\"}"),
        post("trailing comma", r#"{"id":"tc",}"#),
        post("huge string within the limit", format!("{{\"id\":\"{}\"}}", "s".repeat(200_000))),
        post("body event matches path", r#"{"event":"sms.message.status","id":"same"}"#),
        post("body event contradicts path", r#"{"event":"voice:message:out","id":"contra"}"#)
            .expect(400, DeadLetter),
        post("body event not a string", r#"{"event":7,"id":"e7"}"#).expect(400, DeadLetter),
        post("chunked body", r#"{"id":"chunked"}"#).framing(Framing::Chunked),
        post("chunked body of many chunks", format!("{{\"id\":\"{}\"}}", "c".repeat(50_000)))
            .framing(Framing::Chunked),
        // Event in the body.
        post("no event on /v1/events", r#"{"id":"noevent"}"#).to("/v1/events").expect(400, DeadLetter),
        post("unknown event on /v1/events", r#"{"event":"sms:bogus","id":"u"}"#)
            .to("/v1/events")
            .expect(404, DeadLetter),
        post("wildcard event on /v1/events", r#"{"event":"sms.>","id":"w"}"#)
            .to("/v1/events")
            .expect(404, DeadLetter),
        post("event in body", r#"{"event":"sms:unsubscription","id":"inbody"}"#).to("/v1/events"),
        // Sizes.
        post("body over the limit", "a".repeat(big)).expect(413, Nothing),
        post("body over the limit, chunked", "b".repeat(big)).framing(Framing::Chunked).expect(413, Nothing),
        post("body over the limit, unauthenticated", "c".repeat(big)).auth(Auth::None).expect(413, Nothing),
        post("declared length over the limit", r#"{"id":"liar"}"#)
            .framing(Framing::Declared(10_000_000))
            .expect(413, Nothing),
        post("declared length shorter than the body", r#"{"id":"shorter-than-sent"}"#)
            .framing(Framing::Declared(8))
            .expect(422, DeadLetter),
        post("header over the limit", r#"{"id":"h"}"#)
            .header("x-padding", "p".repeat(20_000))
            .expect(431, Nothing),
        post("many headers", r#"{"id":"many"}"#).expect(431, Nothing),
        post("query over the limit", r#"{"id":"q"}"#)
            .to(format!("{SMS}?pad={}", "q".repeat(20_000)))
            .expect(431, Nothing),
        // Bad bytes in headers.
        post("bad UTF-8 in a header", r#"{"id":"badheader"}"#).header("x-note", vec![b'a', 0xff, 0xfe, b'b']),
        post("bad UTF-8 content type", r#"{"id":"badtype"}"#)
            .content_type(Some(b"application/\xffjson"))
            .expect(415, DeadLetter),
        // Content types.
        post("xml content type", r#"{"id":"xml"}"#).content_type(Some(b"text/xml")).expect(415, DeadLetter),
        post("multipart content type", r#"{"id":"multi"}"#)
            .content_type(Some(b"multipart/form-data; boundary=x"))
            .expect(415, DeadLetter),
        post("octet-stream", r#"{"id":"octets"}"#)
            .content_type(Some(b"application/octet-stream"))
            .expect(415, DeadLetter),
        post("no content type", r#"{"id":"notype"}"#).content_type(None),
        post("upper-case content type", r#"{"id":"upper"}"#).content_type(Some(b"APPLICATION/JSON")),
        post("json with charset", r#"{"id":"charset"}"#)
            .content_type(Some(b"application/json; charset=utf-8")),
        post("vendor json type", r#"{"id":"vendor"}"#).content_type(Some(b"application/vnd.provider+json")),
        post("form", "id=form1&status=DELIVRD").content_type(Some(b"application/x-www-form-urlencoded")),
        post("empty form", "&")
            .content_type(Some(b"application/x-www-form-urlencoded"))
            .expect(400, DeadLetter),
        post("form of only separators", "&&&")
            .content_type(Some(b"application/x-www-form-urlencoded"))
            .expect(400, DeadLetter),
        // Methods.
        post("DELETE", "").method("DELETE").expect(405, Nothing),
        post("PATCH", r#"{"id":"patch"}"#).method("PATCH").expect(405, Nothing),
        post("OPTIONS", "").method("OPTIONS").expect(405, Nothing),
        post("TRACE", "").method("TRACE").expect(405, Nothing),
        post("made-up method", "").method("FROB").expect(405, Nothing),
        post("HEAD with a query", r#"{"id":"head"}"#)
            .method("HEAD")
            .to(format!("{SMS}?id=head"))
            .expect(405, Nothing),
        post("GET on /v1/events", "").method("GET").to("/v1/events").expect(405, Nothing),
        post("PUT", r#"{"id":"put"}"#).method("PUT"),
        post("GET with a query", "").method("GET").to(format!("{SMS}?id=get1&status=DELIVRD")),
        // Paths.
        post("dot-dot path", r#"{"id":"dots"}"#).to("/v1/events/../admin").expect(404, Nothing),
        post("encoded dot-dot path", r#"{"id":"edots"}"#).to("/v1/events/%2e%2e/admin").expect(404, Nothing),
        post("double slash in front", r#"{"id":"ds1"}"#)
            .to("//v1/events/sms:message:status")
            .expect(404, Nothing),
        post("double slash before event", r#"{"id":"ds2"}"#)
            .to("/v1/events//sms:message:status")
            .expect(404, Nothing),
        post("trailing slash", r#"{"id":"slash"}"#).to(format!("{SMS}/")).expect(404, Nothing),
        post("upper-case prefix", r#"{"id":"upper-prefix"}"#)
            .to("/V1/EVENTS/sms:message:status")
            .expect(404, Nothing),
        post("absolute-form target", r#"{"id":"absolute"}"#).to(format!("http://gateway{SMS}")),
        post("percent-encoded event", r#"{"id":"pct"}"#).to("/v1/events/sms%3Amessage%3Astatus"),
        post("upper-case event", r#"{"id":"upper-event"}"#)
            .to("/v1/events/SMS:MESSAGE:STATUS")
            .expect(404, DeadLetter),
        post("unknown event", r#"{"id":"unknown"}"#).to("/v1/events/sms:bogus").expect(404, DeadLetter),
        post("wildcard event", r#"{"id":"wild"}"#).to("/v1/events/sms.*.status").expect(404, DeadLetter),
        post("encoded slash in event", r#"{"id":"eslash"}"#)
            .to("/v1/events/sms%2Fmessage")
            .expect(404, DeadLetter),
        post("encoded NUL in event", r#"{"id":"enul"}"#).to("/v1/events/sms%00").expect(404, DeadLetter),
        post("encoded bad UTF-8 in event", r#"{"id":"eutf"}"#)
            .to("/v1/events/%ff%fe")
            .expect(404, DeadLetter),
        post("very long event name", r#"{"id":"long"}"#)
            .to(format!("/v1/events/{}", "e".repeat(8_000)))
            .expect(404, DeadLetter),
        post("unknown path", r#"{"id":"elsewhere"}"#).to("/v2/events").expect(404, Nothing),
        // Credentials: one uniform 401.
        post("no credentials", r#"{"id":"anon"}"#).auth(Auth::None).expect(401, Nothing),
        post("wrong token", r#"{"id":"wrong"}"#)
            .auth(Auth::None)
            .header("authorization", "Bearer not-the-token")
            .expect(401, Nothing),
        post("token without scheme", r#"{"id":"noscheme"}"#)
            .auth(Auth::None)
            .header("authorization", switchboard_tests::TEST_TOKEN)
            .expect(401, Nothing),
        post("garbled basic", r#"{"id":"basic"}"#)
            .auth(Auth::None)
            .header("authorization", "Basic %%%not-base64")
            .expect(401, Nothing),
        post("empty authorization", r#"{"id":"emptyauth"}"#)
            .auth(Auth::None)
            .header("authorization", "")
            .expect(401, Nothing),
        post("bad UTF-8 authorization", r#"{"id":"badauth"}"#)
            .auth(Auth::None)
            .header("authorization", with_bytes(b"Bearer ", &[0xff, 0xfe], b""))
            .expect(401, Nothing),
        post("token with a suffix", r#"{"id":"suffix"}"#)
            .auth(Auth::None)
            .header("authorization", format!("Bearer {}x", switchboard_tests::TEST_TOKEN))
            .expect(401, Nothing),
        post("wrong then right authorization", r#"{"id":"dup-auth-1"}"#)
            .auth(Auth::None)
            .header("authorization", "Bearer not-the-token")
            .header("authorization", format!("Bearer {}", switchboard_tests::TEST_TOKEN))
            .expect(401, Nothing),
        // The provider's Signature.
        post("signed", r#"{"id":"signed-1"}"#).auth(Auth::Signature),
        post("signed, replayed", r#"{"id":"signed-1"}"#).auth(Auth::Signature).expect(200, Duplicate),
        post("signed, tampered body", r#"{"id":"signed-2"}"#)
            .auth(Auth::SignatureOver(br#"{"id":"signed-1"}"#.to_vec()))
            .expect(401, Nothing),
        post("signature truncated", r#"{"id":"signed-3"}"#)
            .auth(Auth::None)
            .header("signature", super::wire::hex_signature(br#"{"id":"signed-3"}"#)[..40].to_owned())
            .expect(401, Nothing),
        post("signature not hex", r#"{"id":"signed-4"}"#)
            .auth(Auth::None)
            .header("signature", "z".repeat(64))
            .expect(401, Nothing),
        post("signature with a prefix", r#"{"id":"signed-5"}"#)
            .auth(Auth::None)
            .header("signature", format!("sha256={}", super::wire::hex_signature(br#"{"id":"signed-5"}"#)))
            .expect(401, Nothing),
        // Standard Webhooks.
        post("standard webhook", r#"{"id":"std-1"}"#).auth(Auth::Standard {
            id: "msg_1",
            offset: 0,
            signed: None,
        }),
        post("standard webhook, replayed", r#"{"id":"std-1"}"#)
            .auth(Auth::Standard { id: "msg_1", offset: -5, signed: None })
            .expect(200, Duplicate),
        post("standard webhook, expired", r#"{"id":"std-2"}"#)
            .auth(Auth::Standard { id: "msg_2", offset: -3600, signed: None })
            .expect(401, Nothing),
        post("standard webhook, from the future", r#"{"id":"std-3"}"#)
            .auth(Auth::Standard { id: "msg_3", offset: 3600, signed: None })
            .expect(401, Nothing),
        post("standard webhook, tampered", r#"{"id":"std-4"}"#)
            .auth(Auth::Standard { id: "msg_4", offset: 0, signed: Some(br#"{"id":"std-1"}"#.to_vec()) })
            .expect(401, Nothing),
        post("standard webhook, timestamp not a number", r#"{"id":"std-5"}"#)
            .auth(Auth::None)
            .header("webhook-id", "msg_5")
            .header("webhook-timestamp", "yesterday")
            .header("webhook-signature", "v1,AAAA")
            .expect(401, Nothing),
        post("standard webhook, no id", r#"{"id":"std-6"}"#)
            .auth(Auth::None)
            .header("webhook-timestamp", time::OffsetDateTime::now_utc().unix_timestamp().to_string())
            .header("webhook-signature", "v1,AAAA")
            .expect(401, Nothing),
        // Framing the server itself refuses.
        post("bad chunk size", "zz\r\n{}\r\n0\r\n\r\n")
            .framing(Framing::AsGiven)
            .header("transfer-encoding", "chunked")
            .expect(400, Nothing),
        post("length and chunked together", "5\r\n{\"a\":\r\n0\r\n\r\n")
            .framing(Framing::AsGiven)
            .header("transfer-encoding", "chunked")
            .header("content-length", "14")
            // Chunked wins over the length (RFC 9112 6.3); the body is then what the chunks hold.
            .expect(422, DeadLetter),
        post("length not a number", "{}")
            .framing(Framing::AsGiven)
            .header("content-length", "ten")
            .expect(400, Nothing),
    ];
    // A hundred and fifty small headers: more than any server keeps.
    if let Some(case) = cases.iter_mut().find(|case| case.name == "many headers") {
        for index in 0..150 {
            case.headers.push((format!("x-h{index}"), b"value".to_vec()));
        }
    }
    // A standard webhook with several signatures, one of them right.
    let body = br#"{"id":"std-7"}"#.to_vec();
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let right = super::wire::standard_signature("msg_7", timestamp, &body);
    cases.push(
        post("standard webhook, one of several signatures", body)
            .auth(Auth::None)
            .header("webhook-id", "msg_7")
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", format!("v1,AAAA v1,{} {right}", "B".repeat(44))),
    );
    cases
}
