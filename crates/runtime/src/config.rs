//! Configuration: shipped defaults → optional TOML file → `SWITCHBOARD_*` environment.
//!
//! [`defaults.toml`](DEFAULTS_TOML) is both the first layer and the commented reference printed by
//! `switchboard config example`; a unit test keeps it equal to the `Default` implementations here.
//! Loading reports every problem at once: each section is extracted on its own, then [`Config::validate`]
//! adds what the types cannot say.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};
use switchboard_events::{Product, Subjects, TimeZoneSetting};

use crate::secret::Secret;

/// The commented defaults, shipped in the binary.
pub const DEFAULTS_TOML: &str = include_str!("defaults.toml");

/// The prefix of environment overrides; `__` separates nested keys.
pub const ENV_PREFIX: &str = "SWITCHBOARD_";

/// The whole configuration, read section by section ([`Config::load_sections`]).
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub nats: NatsConfig,
    pub log: LogConfig,
    pub admin: AdminConfig,
    pub grpc: GrpcConfig,
    pub storage: StorageConfig,
    pub shutdown: ShutdownConfig,
    pub gateway: GatewayConfig,
    /// One section per product service, named after it (`[sms]`, `[chat]`, …), in
    /// [`Product::ALL`] order: read through [`Config::service`].
    services: [ServiceConfig; Product::ALL.len()],
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    pub url: String,
    pub subject_prefix: String,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    pub stream: StreamConfig,
    pub dead_letter_stream: StreamConfig,
    pub auth: NatsAuthConfig,
    pub tls: NatsTlsConfig,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: "nats://127.0.0.1:4222".to_owned(),
            subject_prefix: String::new(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            stream: StreamConfig::default(),
            dead_letter_stream: StreamConfig {
                name: "SWITCHBOARD_DLQ".to_owned(),
                max_age: Duration::from_secs(30 * 24 * 3600),
                ..StreamConfig::default()
            },
            auth: NatsAuthConfig::default(),
            tls: NatsTlsConfig::default(),
        }
    }
}

impl NatsConfig {
    /// The subject names for the configured prefix (validated by [`Config::validate`]).
    pub fn subjects(&self) -> Subjects {
        Subjects::new(&self.subject_prefix).unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    pub name: String,
    pub replicas: usize,
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    pub max_bytes: i64,
    #[serde(with = "humantime_serde")]
    pub duplicate_window: Duration,
    pub max_message_size: i32,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            name: "SWITCHBOARD".to_owned(),
            replicas: 1,
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: -1,
            duplicate_window: Duration::from_secs(120),
            max_message_size: 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsAuthConfig {
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub token: Option<Secret>,
    pub nkey_seed: Option<Secret>,
    pub credentials_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsTlsConfig {
    pub required: bool,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Pretty, filter: "info".to_owned() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { listen: SocketAddr::from(([0, 0, 0, 0], 9090)) }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    pub listen: SocketAddr,
    pub reflection: bool,
    pub auth: GrpcAuthConfig,
    pub tls: GrpcTlsConfig,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 50051)),
            reflection: true,
            auth: GrpcAuthConfig::default(),
            tls: GrpcTlsConfig::default(),
        }
    }
}

/// Bearer tokens for the gRPC APIs, each scoped to services and to reading or also watching.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcAuthConfig {
    /// Off: anyone who reaches the port may call everything (logged as a warning at start-up).
    pub enabled: bool,
    /// gRPC health checks answer without a token.
    pub health_without_token: bool,
    /// Server reflection answers without a token.
    pub reflection_without_token: bool,
    pub clients: Vec<GrpcClientConfig>,
}

/// A caller of the gRPC APIs and what it may call.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcClientConfig {
    pub name: String,
    /// Accepted tokens (several during a rotation); `sha256:<hex>` entries are compared by hash.
    pub tokens: Vec<Secret>,
    /// Product names (`sms`, `chat`, `voice`, `interact`, `contacts`) or `*` for every service.
    pub services: Vec<String>,
    /// May also call the server-streaming `Watch` RPCs; otherwise unary reads only.
    #[serde(default)]
    pub watch: bool,
}

/// TLS for the gRPC server, reloaded when the files change; optionally mutual.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcTlsConfig {
    pub enabled: bool,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Mutual TLS: clients must present a certificate issued by this CA.
    pub client_ca_file: Option<PathBuf>,
    /// With mutual TLS, only certificates whose CN or a DNS/URI SAN is listed (empty: any from the CA).
    pub client_subjects: Vec<String>,
    /// How often the files are checked for changes; changed files are loaded without a restart.
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
}

impl Default for GrpcTlsConfig {
    fn default() -> Self {
        GrpcTlsConfig {
            enabled: false,
            cert_file: None,
            key_file: None,
            client_ca_file: None,
            client_subjects: Vec::new(),
            reload_interval: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    pub provider_timezone: TimeZoneSetting,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { data_dir: PathBuf::from("./data"), provider_timezone: TimeZoneSetting::default() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// After a stop signal, how long to keep serving while reporting not ready, so load balancers
    /// stop sending work first.
    #[serde(with = "humantime_serde")]
    pub drain_delay: Duration,
    /// How long in-flight work may take to finish after that before the process exits anyway.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig { drain_delay: Duration::ZERO, timeout: Duration::from_secs(25) }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub max_json_depth: usize,
    /// The request line and headers together, at most (431 beyond).
    pub max_header_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub publish_timeout: Duration,
    pub max_concurrency: usize,
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
    /// Requests per second each source may make on average (0: no limit); 429 beyond.
    pub rate_limit: u32,
    /// Requests a source may make at once above the average.
    pub rate_burst: u32,
    /// Addresses or networks of proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    pub tls: GatewayTlsConfig,
    pub sources: Vec<SourceConfig>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            max_body_bytes: 256 * 1024,
            max_json_depth: 32,
            max_header_bytes: 16 * 1024,
            request_timeout: Duration::from_millis(2500),
            publish_timeout: Duration::from_millis(1500),
            max_concurrency: 1024,
            retry_after: Duration::from_secs(5),
            rate_limit: 1000,
            rate_burst: 2000,
            trusted_proxies: Vec::new(),
            tls: GatewayTlsConfig::default(),
            sources: Vec::new(),
        }
    }
}

/// Serving HTTPS directly, without an ingress in front.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayTlsConfig {
    /// PEM certificate chain; with `key_file`, the gateway serves HTTPS only.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
}

/// A caller of the webhook URLs and the credentials it must present. Every configured check must
/// pass; at least one credential check (not only an address list) is required.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    pub name: String,
    /// Tokens accepted in `token_header`; `sha256:<hex>` entries are compared by hash.
    pub tokens: Vec<Secret>,
    /// `authorization` for `Authorization: Bearer <token>`, or a header that carries the bare token.
    pub token_header: String,
    /// Tokens accepted in the query parameter `query_parameter` (for URL-only configuration).
    pub query_tokens: Vec<Secret>,
    pub query_parameter: String,
    /// HTTP Basic users and passwords (`sha256:<hex>` passwords are compared by hash).
    pub basic: Vec<BasicCredential>,
    /// Keys of the provider's `Signature` header (hex HMAC-SHA256 of the raw body): the webhook's
    /// id or its secret, whichever the provider signs with.
    pub signature_keys: Vec<Secret>,
    pub signature_header: String,
    /// Standard Webhooks secrets (`whsec_<base64>`).
    pub standard_webhooks_secrets: Vec<Secret>,
    /// How far `webhook-timestamp` may be from now, either way.
    #[serde(with = "humantime_serde")]
    pub standard_webhooks_tolerance: Duration,
    /// Addresses or networks (`203.0.113.7`, `203.0.113.0/24`) requests must come from; empty: any.
    pub allow_ips: Vec<String>,
    /// Overrides `gateway.rate_limit` for this source.
    pub rate_limit: Option<u32>,
    /// Overrides `gateway.rate_burst` for this source.
    pub rate_burst: Option<u32>,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            name: String::new(),
            tokens: Vec::new(),
            token_header: "authorization".to_owned(),
            query_tokens: Vec::new(),
            query_parameter: "token".to_owned(),
            basic: Vec::new(),
            signature_keys: Vec::new(),
            signature_header: "signature".to_owned(),
            standard_webhooks_secrets: Vec::new(),
            standard_webhooks_tolerance: Duration::from_secs(60),
            allow_ips: Vec::new(),
            rate_limit: None,
            rate_burst: None,
        }
    }
}

impl SourceConfig {
    /// A source accepting `tokens` as `Authorization: Bearer <token>`.
    pub fn with_tokens(name: impl Into<String>, tokens: Vec<Secret>) -> SourceConfig {
        SourceConfig { name: name.into(), tokens, ..SourceConfig::default() }
    }

    /// Whether any check proves who the caller is (an address list alone does not).
    pub fn has_credentials(&self) -> bool {
        !self.tokens.is_empty()
            || !self.query_tokens.is_empty()
            || !self.basic.is_empty()
            || !self.signature_keys.is_empty()
            || !self.standard_webhooks_secrets.is_empty()
    }
}

/// One HTTP Basic user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicCredential {
    pub user: String,
    pub password: Secret,
}

/// The largest `sqlite_cache_mib`: 4 GiB in KiB still fits SQLite's `cache_size`.
pub const MAX_SQLITE_CACHE_MIB: u32 = 4096;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Empty: SQLite under the data directory.
    pub database_url: Option<Secret>,
    pub max_connections: u32,
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// SQLite's page cache per connection, in MiB (ignored on PostgreSQL).
    pub sqlite_cache_mib: u32,
    pub consumer: ConsumerConfig,
    pub retention: RetentionConfig,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            database_url: None,
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            sqlite_cache_mib: 8,
            consumer: ConsumerConfig::default(),
            retention: RetentionConfig::default(),
        }
    }
}

/// How long a service keeps history and raw payloads. Unset ages keep them for ever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// History rows (every distinct event) older than this are deleted; current state is kept.
    #[serde(with = "humantime_serde")]
    pub history: Option<Duration>,
    /// Raw JSON older than this is cleared (set to empty) on the rows that are kept.
    #[serde(with = "humantime_serde")]
    pub raw_json: Option<Duration>,
    /// How often the retention job runs.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Rows deleted or cleared per statement, so no statement holds locks for long.
    pub chunk_size: i64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            history: None,
            raw_json: None,
            interval: Duration::from_secs(3600),
            chunk_size: 5000,
        }
    }
}

impl ServiceConfig {
    /// The database URL to use for `product`: the configured one, or a SQLite file under `data_dir`.
    pub fn database_url(&self, product: Product, data_dir: &Path) -> Secret {
        match &self.database_url {
            Some(url) if !url.is_empty() => url.clone(),
            _ => {
                Secret::new(format!("sqlite://{}?mode=rwc", data_dir.join(format!("{product}.db")).display()))
            }
        }
    }
}

/// The largest `batch_size`. Statements take at most `switchboard_store::STATEMENT_ROWS` rows each,
/// so no batch size reaches a database's bound-parameter limit; this bounds what a consumer holds in
/// memory (three batches in hand, four on PostgreSQL) and how long one transaction runs.
pub const MAX_BATCH_SIZE: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerConfig {
    /// Events applied per transaction at most; unset, [`ConsumerConfig::batch_size`] chooses by how
    /// many batches are written at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    #[serde(with = "humantime_serde")]
    pub ack_wait: Duration,
    pub max_ack_pending: i64,
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    pub max_attempts: i64,
}

/// `batch_size` when unset and one batch is written at a time (SQLite).
pub const BATCH_SIZE_ONE_WRITE: usize = 5000;
/// `batch_size` when unset and two batches are written at once (PostgreSQL).
pub const BATCH_SIZE_TWO_WRITES: usize = 2500;

impl ConsumerConfig {
    /// The batch size for a consumer writing `concurrent_writes` batches at once: the configured
    /// one, else 5,000 with one (large batches share each commit's page writes, and SQLite, the
    /// backend that writes one at a time, drained sms 1.2 times as fast as with 2,500) and 2,500 with
    /// two (PostgreSQL drained as fast as with 5,000, holding 10,000 events in hand instead of
    /// 20,000: 70–89 MiB against 89–123; docs/benchmarks.md).
    pub fn batch_size(&self, concurrent_writes: usize) -> usize {
        self.batch_size.unwrap_or(if concurrent_writes > 1 {
            BATCH_SIZE_TWO_WRITES
        } else {
            BATCH_SIZE_ONE_WRITE
        })
    }
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            batch_size: None,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 20_000,
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            max_attempts: 5,
        }
    }
}

impl Config {
    /// The section of one product service.
    pub fn service(&self, product: Product) -> &ServiceConfig {
        &self.services[Config::section_index(product)]
    }

    pub fn service_mut(&mut self, product: Product) -> &mut ServiceConfig {
        &mut self.services[Config::section_index(product)]
    }

    fn section_index(product: Product) -> usize {
        Product::ALL.iter().position(|candidate| *candidate == product).unwrap_or_default()
    }

    /// Loads defaults, then `file` (which must exist when given), then the environment: every section.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigErrors> {
        Config::load_sections(file, None)
    }

    /// Like [`Config::load`], reading only `sections` from the file and environment (the others keep
    /// their defaults). A component reads only what it uses, so a service's pod need not hold the
    /// gateway's token files, nor the gateway the services' database URLs.
    pub fn load_sections(file: Option<&Path>, sections: Option<&[&str]>) -> Result<Config, ConfigErrors> {
        let mut figment = Figment::from(Toml::string(DEFAULTS_TOML));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigErrors(vec![format!("config file {} does not exist", path.display())]));
            }
            // A file that cannot be read or parsed stops everything: figment would otherwise keep
            // the error to itself and every section would quietly keep its defaults (gRPC auth off,
            // the environment's overrides dropped).
            check_file_parses(path)?;
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__").ignore(&["config"]));
        // Whatever still fails to load as a whole (e.g. an environment value) is reported, never
        // taken for "no such section".
        if let Err(errors) = figment.extract::<figment::value::Dict>() {
            return Err(ConfigErrors(errors.into_iter().map(|error| describe("", &error)).collect()));
        }
        Config::from_figment_sections(&figment, sections)
    }

    /// Extracts every section separately so that one bad section does not hide the others.
    pub fn from_figment(figment: &Figment) -> Result<Config, ConfigErrors> {
        Config::from_figment_sections(figment, None)
    }

    fn from_figment_sections(figment: &Figment, sections: Option<&[&str]>) -> Result<Config, ConfigErrors> {
        fn extract<T: serde::de::DeserializeOwned>(
            figment: &Figment,
            name: &str,
            slot: &mut T,
            problems: &mut Vec<String>,
        ) {
            match figment.extract_inner::<T>(name) {
                Ok(value) => *slot = value,
                Err(errors) => {
                    let described: Vec<String> =
                        errors.into_iter().map(|error| describe(name, &error)).collect();
                    // Deserialization stops at a section's first error: a typo after a wrong type
                    // would stay hidden until the type was fixed. Every problem at once.
                    let unknown = unknown_keys::<T>(figment, name).into_iter().filter(|problem| {
                        !described.iter().any(|known| without_origin(known) == without_origin(problem))
                    });
                    let unknown: Vec<String> = unknown.collect();
                    problems.extend(described);
                    problems.extend(unknown);
                }
            }
        }
        let mut problems = Vec::new();
        let mut config = Config::default();
        let wanted =
            |name: &str| figment.contains(name) && sections.is_none_or(|sections| sections.contains(&name));
        if wanted("nats") {
            extract(figment, "nats", &mut config.nats, &mut problems);
        }
        if wanted("log") {
            extract(figment, "log", &mut config.log, &mut problems);
        }
        if wanted("admin") {
            extract(figment, "admin", &mut config.admin, &mut problems);
        }
        if wanted("grpc") {
            extract(figment, "grpc", &mut config.grpc, &mut problems);
        }
        if wanted("storage") {
            extract(figment, "storage", &mut config.storage, &mut problems);
        }
        if wanted("shutdown") {
            extract(figment, "shutdown", &mut config.shutdown, &mut problems);
        }
        if wanted("gateway") {
            extract(figment, "gateway", &mut config.gateway, &mut problems);
        }
        for product in Product::ALL {
            if wanted(product.name()) {
                extract(figment, product.name(), config.service_mut(product), &mut problems);
            }
        }
        // Environment variables that do not name a section are not ours (Kubernetes adds
        // SWITCHBOARD_GATEWAY_PORT and the like for Services named switchboard-gateway): ignore them.
        // Keys inside a section are checked (deny_unknown_fields), so typos there are reported.
        problems.extend(config.validate());
        if problems.is_empty() { Ok(config) } else { Err(ConfigErrors(problems)) }
    }

    /// Problems the types cannot express. Empty when the configuration is usable.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(error) = Subjects::new(&self.nats.subject_prefix) {
            problems.push(format!("nats.subject_prefix: {error}"));
        }
        if self.nats.url.trim().is_empty() {
            problems.push("nats.url: must name at least one server".to_owned());
        } else if let Err(problem) = crate::nats::server_addresses(&self.nats.url) {
            problems.push(format!("nats.url: {problem}"));
        }
        for (key, stream) in
            [("nats.stream", &self.nats.stream), ("nats.dead_letter_stream", &self.nats.dead_letter_stream)]
        {
            let valid_name = !stream.name.is_empty()
                && stream
                    .name
                    .chars()
                    .all(|character| character.is_ascii_alphanumeric() || matches!(character, '_' | '-'));
            if !valid_name {
                problems.push(format!(
                    "{key}.name: {:?} is not a valid stream name (letters, digits, _ and -)",
                    stream.name
                ));
            }
            if !(1..=5).contains(&stream.replicas) {
                problems.push(format!("{key}.replicas: must be between 1 and 5, not {}", stream.replicas));
            }
        }
        if self.nats.stream.name == self.nats.dead_letter_stream.name {
            problems.push("nats.dead_letter_stream.name: must differ from nats.stream.name".to_owned());
        }
        let auth = &self.nats.auth;
        let methods = [
            auth.password.is_some() || auth.user.is_some(),
            auth.token.is_some(),
            auth.nkey_seed.is_some(),
            auth.credentials_file.is_some(),
        ];
        if methods.iter().filter(|configured| **configured).count() > 1 {
            problems.push(
                "nats.auth: configure at most one of user/password, token, nkey_seed, credentials_file"
                    .to_owned(),
            );
        }
        if auth.user.is_some() != auth.password.is_some() {
            problems.push("nats.auth: user and password go together".to_owned());
        }
        if self.nats.tls.cert_file.is_some() != self.nats.tls.key_file.is_some() {
            problems.push("nats.tls: cert_file and key_file go together".to_owned());
        }
        self.validate_gateway(&mut problems);
        self.validate_grpc(&mut problems);
        for product in Product::ALL {
            let service = self.service(product);
            let consumer = &service.consumer;
            let name = product.name();
            if consumer.batch_size.is_some_and(|size| size == 0 || size > MAX_BATCH_SIZE) {
                problems.push(format!("{name}.consumer.batch_size: must be between 1 and {MAX_BATCH_SIZE}"));
            }
            if consumer.ack_wait < Duration::from_secs(5) {
                problems.push(format!("{name}.consumer.ack_wait: must be at least 5s so a batch can finish"));
            }
            if consumer.retry_initial.is_zero() || consumer.retry_max < consumer.retry_initial {
                problems
                    .push(format!("{name}.consumer: retry_initial must be positive and at most retry_max"));
            }
            if consumer.max_attempts < 1 {
                problems.push(format!("{name}.consumer.max_attempts: must be at least 1"));
            }
            if !(1..=100_000).contains(&service.retention.chunk_size) {
                problems.push(format!("{name}.retention.chunk_size: must be between 1 and 100000"));
            }
            if service.retention.interval.is_zero() {
                problems.push(format!("{name}.retention.interval: must be positive"));
            }
            if service.max_connections == 0 {
                problems.push(format!("{name}.max_connections: must be at least 1"));
            }
            if !(1..=MAX_SQLITE_CACHE_MIB).contains(&service.sqlite_cache_mib) {
                problems
                    .push(format!("{name}.sqlite_cache_mib: must be between 1 and {MAX_SQLITE_CACHE_MIB}"));
            }
            if let Some(url) = &service.database_url
                && !url.is_empty()
                && !["sqlite:", "postgres://", "postgresql://"]
                    .iter()
                    .any(|scheme| url.expose().starts_with(scheme))
            {
                problems.push(format!(
                    "{name}.database_url: must start with sqlite:, postgres:// or postgresql://"
                ));
            }
        }
        problems
    }

    fn validate_gateway(&self, problems: &mut Vec<String>) {
        let gateway = &self.gateway;
        if gateway.max_body_bytes == 0 {
            problems.push("gateway.max_body_bytes: must be positive".to_owned());
        }
        let stream_limit = usize::try_from(self.nats.stream.max_message_size).unwrap_or(usize::MAX);
        if gateway.max_body_bytes > stream_limit.saturating_sub(4096) {
            problems.push(format!(
                "gateway.max_body_bytes: must stay at least 4 KiB (for headers) below nats.stream.max_message_size ({stream_limit})"
            ));
        }
        if gateway.max_json_depth == 0 {
            problems.push("gateway.max_json_depth: must be positive".to_owned());
        }
        if gateway.publish_timeout >= gateway.request_timeout {
            problems.push("gateway.publish_timeout: must be shorter than gateway.request_timeout".to_owned());
        }
        if gateway.request_timeout >= Duration::from_secs(3) {
            problems.push("gateway.request_timeout: must be under 3s, the provider's own timeout".to_owned());
        }
        if gateway.max_concurrency == 0 {
            problems.push("gateway.max_concurrency: must be positive".to_owned());
        }
        let mut names = std::collections::BTreeSet::new();
        for (index, source) in gateway.sources.iter().enumerate() {
            let key = format!("gateway.sources[{index}]");
            if source.name.trim().is_empty() {
                problems.push(format!("{key}.name: must not be empty"));
            } else if !names.insert(source.name.as_str()) {
                problems.push(format!("{key}.name: {:?} is used by another source", source.name));
            }
            if !source.has_credentials() {
                problems.push(format!(
                    "{key} ({}): has no credentials, so it would accept nobody; add tokens, query_tokens, basic, signature_keys or standard_webhooks_secrets",
                    source.name
                ));
            }
            let secrets = source
                .tokens
                .iter()
                .chain(&source.query_tokens)
                .chain(&source.signature_keys)
                .chain(&source.standard_webhooks_secrets)
                .chain(source.basic.iter().map(|basic| &basic.password));
            for secret in secrets {
                if secret.is_empty() {
                    problems.push(format!(
                        "{key}: an empty secret ({}) would match an empty credential",
                        secret.origin()
                    ));
                }
            }
            for basic in &source.basic {
                if basic.user.is_empty() || basic.user.contains(':') {
                    problems
                        .push(format!("{key}.basic: user {:?} must be non-empty without ':'", basic.user));
                }
            }
            for (field, header) in
                [("token_header", &source.token_header), ("signature_header", &source.signature_header)]
            {
                if header.trim().is_empty() || http_header_name_is_invalid(header) {
                    problems.push(format!("{key}.{field}: {header:?} is not a header name"));
                }
            }
            if source.query_parameter.is_empty() {
                problems.push(format!("{key}.query_parameter: must not be empty"));
            }
            if source.standard_webhooks_tolerance.is_zero() {
                problems.push(format!("{key}.standard_webhooks_tolerance: must be positive"));
            }
            // A signed delivery is accepted from one tolerance before its timestamp to one after,
            // so a replay can come up to twice the tolerance after the first copy was stored. It
            // is dropped as a duplicate only within the stream's duplicate window.
            if !source.standard_webhooks_secrets.is_empty()
                && source.standard_webhooks_tolerance.saturating_mul(2) > self.nats.stream.duplicate_window
            {
                problems.push(format!(
                    "{key}.standard_webhooks_tolerance: twice {} is longer than nats.stream.duplicate_window ({}): a delivery replayed in between would be stored again; lower the tolerance or raise the window",
                    humantime::format_duration(source.standard_webhooks_tolerance),
                    humantime::format_duration(self.nats.stream.duplicate_window),
                ));
            }
            // What the gateway refuses at start, refused here too (the value is never shown).
            for secret in source
                .tokens
                .iter()
                .chain(&source.query_tokens)
                .chain(source.basic.iter().map(|basic| &basic.password))
            {
                if secret.expose().starts_with("sha256:")
                    && let Err(problem) = secret.sha256_digest("token")
                {
                    problems.push(format!("{key}: {problem}"));
                }
            }
            for secret in &source.standard_webhooks_secrets {
                let value = secret.expose();
                let encoded = value.strip_prefix("whsec_").unwrap_or(value).trim();
                let decoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded);
                if !matches!(decoded, Ok(key) if !key.is_empty()) {
                    problems.push(format!(
                        "{key}.standard_webhooks_secrets: a secret must be whsec_<base64> ({})",
                        secret.origin()
                    ));
                }
            }
            for network in &source.allow_ips {
                if parse_network(network).is_none() {
                    problems.push(format!("{key}.allow_ips: {network:?} is not an address or network"));
                }
            }
            if source.rate_burst == Some(0) {
                problems.push(format!("{key}.rate_burst: must be positive"));
            }
        }
        for network in &gateway.trusted_proxies {
            if parse_network(network).is_none() {
                problems.push(format!("gateway.trusted_proxies: {network:?} is not an address or network"));
            }
        }
        if gateway.rate_burst == 0 {
            problems.push("gateway.rate_burst: must be positive".to_owned());
        }
        if gateway.max_header_bytes < 1024 {
            problems.push("gateway.max_header_bytes: must be at least 1024".to_owned());
        }
        match (&gateway.tls.cert_file, &gateway.tls.key_file) {
            (Some(_), None) | (None, Some(_)) => {
                problems.push("gateway.tls: cert_file and key_file go together".to_owned());
            }
            _ => {}
        }
    }
}

/// An address (`203.0.113.7`) or network (`203.0.113.0/24`, `2001:db8::/32`).
pub fn parse_network(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

impl Config {
    fn validate_grpc(&self, problems: &mut Vec<String>) {
        let auth = &self.grpc.auth;
        if auth.enabled && auth.clients.is_empty() {
            problems.push("grpc.auth: enabled without clients, so every call would be refused".to_owned());
        }
        let mut names = std::collections::BTreeSet::new();
        for (index, client) in auth.clients.iter().enumerate() {
            let key = format!("grpc.auth.clients[{index}]");
            if client.name.trim().is_empty() {
                problems.push(format!("{key}.name: must not be empty"));
            } else if !names.insert(client.name.as_str()) {
                problems.push(format!("{key}.name: {:?} is used by another client", client.name));
            }
            if client.tokens.is_empty() || client.tokens.iter().any(Secret::is_empty) {
                problems.push(format!("{key}.tokens: at least one token, none empty"));
            }
            if client.services.is_empty() {
                problems.push(format!("{key}.services: name the services it may call, or \"*\""));
            }
            for service in &client.services {
                if service != "*" && !Product::ALL.iter().any(|product| product.name() == service) {
                    problems.push(format!(
                        "{key}.services: {service:?} is not a service (sms, chat, voice, interact, contacts or *)"
                    ));
                }
            }
        }
        let tls = &self.grpc.tls;
        if tls.enabled && (tls.cert_file.is_none() || tls.key_file.is_none()) {
            problems.push("grpc.tls: enabled needs cert_file and key_file".to_owned());
        }
        if !tls.client_subjects.is_empty() && tls.client_ca_file.is_none() {
            problems.push("grpc.tls.client_subjects: needs client_ca_file (mutual TLS)".to_owned());
        }
        if tls.reload_interval.is_zero() {
            problems.push("grpc.tls.reload_interval: must be positive".to_owned());
        }
    }
}

fn http_header_name_is_invalid(name: &str) -> bool {
    !name.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_'))
}

/// Reads and parses the file as TOML; an error names the file, the line and column, and what was
/// expected there (never the values around it: the file may hold secrets).
fn check_file_parses(path: &Path) -> Result<(), ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        ConfigErrors(vec![format!("cannot read config file {}: {error}", path.display())])
    })?;
    match text.parse::<toml::Table>() {
        Ok(_) => Ok(()),
        Err(error) => {
            let position = error.span().map(|span| line_and_column(&text, span.start));
            let place =
                position.map_or(String::new(), |(line, column)| format!(", line {line}, column {column}"));
            Err(ConfigErrors(vec![format!(
                "config file {}{place}: not valid TOML: {}",
                path.display(),
                error.message().trim()
            )]))
        }
    }
}

/// The 1-based line and column (in characters) of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |tail| tail.chars().count()) + 1;
    (line, column)
}

fn describe(section: &str, error: &figment::Error) -> String {
    // figment reports the path inside the extracted section followed by the section's own name
    // (`listen.gateway`); the section comes first here (`gateway.listen`).
    let mut inner: &[String] = &error.path;
    if let Some((last, rest)) = inner.split_last()
        && last == section
    {
        inner = rest;
    }
    let path = match (section.is_empty(), inner.is_empty()) {
        (_, true) => section.to_owned(),
        (true, false) => inner.join("."),
        (false, false) => format!("{section}.{}", inner.join(".")),
    };
    let origin = error
        .metadata
        .as_ref()
        .map(|metadata| match &metadata.source {
            Some(source) => format!(" (from {source})"),
            None => format!(" (from {})", metadata.name),
        })
        .unwrap_or_default();
    format!("{path}: {}{origin}", without_values(&error.kind))
}

/// A problem without the `(from …)` naming where the value came from.
fn without_origin(problem: &str) -> &str {
    problem.split(" (from ").next().unwrap_or(problem)
}

/// A key serde meets first in a probed table (it sorts before every setting's name).
const PROBE_KEY: &str = "__probe__";

/// The keys the table at `section.inner…` of `T` accepts: asked of serde by offering it a table
/// holding only an unknown key, which `deny_unknown_fields` answers with the list. `None` for a
/// table that takes any key (a map) or for no table at all.
fn accepted_keys<T: serde::de::DeserializeOwned>(
    section: &str,
    inner: &[String],
) -> Option<&'static [&'static str]> {
    let mut value = serde_json::json!({ PROBE_KEY: 0 });
    for key in inner.iter().rev() {
        value = serde_json::json!({ key.as_str(): value });
    }
    let probe = Figment::from(figment::providers::Serialized::default(section, value));
    let errors = probe.extract_inner::<T>(section).err()?;
    errors.into_iter().find_map(|error| match error.kind {
        figment::error::Kind::UnknownField(field, expected) if field == PROBE_KEY => Some(expected),
        _ => None,
    })
}

/// Every key set in `section` (by a file or the environment) that its type does not know, with
/// where it was set, in the words [`describe`] uses.
fn unknown_keys<T: serde::de::DeserializeOwned>(figment: &Figment, section: &str) -> Vec<String> {
    fn walk<T: serde::de::DeserializeOwned>(
        figment: &Figment,
        section: &str,
        inner: &mut Vec<String>,
        value: &figment::value::Value,
        found: &mut Vec<String>,
    ) {
        let Some(table) = value.as_dict() else { return };
        let Some(accepted) = accepted_keys::<T>(section, inner) else { return };
        for (key, child) in table {
            if !accepted.contains(&key.as_str()) {
                let path = std::iter::once(section)
                    .chain(inner.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(".");
                let origin = figment
                    .get_metadata(child.tag())
                    .map(|metadata| match &metadata.source {
                        Some(source) => format!(" (from {source})"),
                        None => format!(" (from {})", metadata.name),
                    })
                    .unwrap_or_default();
                found.push(format!(
                    "{path}: unknown key `{key}`; expected one of {}{origin}",
                    accepted.join(", ")
                ));
            } else if child.as_dict().is_some() {
                inner.push(key.clone());
                walk::<T>(figment, section, inner, child, found);
                inner.pop();
            }
        }
    }
    let mut found = Vec::new();
    if let Ok(value) = figment.find_value(section) {
        walk::<T>(figment, section, &mut Vec::new(), &value, &mut found);
    }
    found
}

/// What went wrong, without the value that was found: a value in the wrong place may be a secret
/// (`tokens = "…"` where a list belongs), and an error is printed and logged.
fn without_values(kind: &figment::error::Kind) -> String {
    use figment::error::{Actual, Kind};
    let found = |actual: &Actual| match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a float",
        Actual::Char(_) => "a character",
        Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Unit => "nothing",
        Actual::Option => "an option",
        Actual::Seq => "a list",
        Actual::Map => "a table",
        _ => "a value of another type",
    };
    match kind {
        Kind::InvalidType(actual, expected) => {
            format!("invalid type: found {}, expected {expected}", found(actual))
        }
        Kind::InvalidValue(actual, expected) => {
            format!("invalid value: found {}, expected {expected}", found(actual))
        }
        Kind::UnknownField(field, expected) => {
            format!("unknown key `{field}`; expected one of {}", expected.join(", "))
        }
        Kind::UnknownVariant(_, expected) => {
            format!("unknown variant, expected one of {}", expected.join(", "))
        }
        Kind::Unsupported(actual) => format!("unsupported: {}", found(actual)),
        Kind::UnsupportedKey(actual, _) => format!("unsupported key: {}", found(actual)),
        other => other.to_string(),
    }
}

/// Every problem found while loading the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(formatter, "the configuration has {} problem(s):", self.0.len())?;
        for problem in &self.0 {
            writeln!(formatter, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use figment::providers::Serialized;

    use super::*;

    /// Writes `text` to a temporary file and loads it as a component would.
    fn load_text(text: &str) -> Result<Config, ConfigErrors> {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("switchboard.toml");
        std::fs::write(&path, text).expect("written");
        Config::load(Some(&path))
    }

    #[test]
    fn a_file_that_does_not_parse_stops_everything_with_its_line_and_column() {
        let errors = load_text("[grpc.auth]\nenabled = true,\n").expect_err("a stray comma is an error");
        let problem = errors.0.join("\n");
        assert!(problem.contains("switchboard.toml, line 2, column 15"), "{problem}");
        assert!(problem.contains("expected newline"), "{problem}");
        // Every component reads its sections through the same loader.
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("bad.toml");
        std::fs::write(&path, "[gateway\nlisten = 1").expect("written");
        for sections in [None, Some(&["nats", "grpc", "sms"][..]), Some(&["gateway"][..])] {
            assert!(Config::load_sections(Some(&path), sections).is_err(), "{sections:?}");
        }
        // A file that is not UTF-8, or not readable as a file, is an error too.
        std::fs::write(&path, b"[nats]\nurl = \"\xff\"\n").expect("written");
        assert!(Config::load(Some(&path)).is_err());
        assert!(Config::load(Some(directory.path())).is_err());
    }

    #[test]
    fn what_the_gateway_would_refuse_is_refused_by_config_check() {
        let cases = [
            // A Standard Webhooks replay after the duplicate window but within the tolerance.
            (
                "[[gateway.sources]]\nname = \"s\"\nstandard_webhooks_secrets = [\"whsec_c2VjcmV0\"]\nstandard_webhooks_tolerance = \"5m\"",
                "longer than nats.stream.duplicate_window",
            ),
            (
                "[[gateway.sources]]\nname = \"s\"\nstandard_webhooks_secrets = [\"whsec_not base64!\"]",
                "whsec_<base64>",
            ),
            ("[[gateway.sources]]\nname = \"s\"\ntokens = [\"sha256:abc\"]", "sha256: token is not"),
            (
                "[[gateway.sources]]\nname = \"s\"\nbasic = [{ user = \"u\", password = \"sha256:zz\" }]",
                "sha256: token is not hex",
            ),
        ];
        for (text, expected) in cases {
            let errors = load_text(text).expect_err(text);
            assert!(errors.0.iter().any(|problem| problem.contains(expected)), "{text}: {errors}");
        }
        // Raising the window with the tolerance is fine; so are the defaults.
        load_text("[nats.stream]\nduplicate_window = \"10m\"\n[[gateway.sources]]\nname = \"s\"\nstandard_webhooks_secrets = [\"whsec_c2VjcmV0\"]\nstandard_webhooks_tolerance = \"5m\"")
            .expect("a window covering the tolerance");
        load_text("[[gateway.sources]]\nname = \"s\"\nstandard_webhooks_secrets = [\"whsec_c2VjcmV0\"]")
            .expect("defaults");
    }

    #[test]
    fn no_error_shows_a_secret() {
        const SECRET: &str = "hunter2-s3cr3t-value";
        // Every setting that holds a secret, given the wrong type and a wrong value.
        let settings = [
            ("[nats.auth]\npassword = [\"{S}\"]", "nats.auth.password"),
            ("[nats.auth]\ntoken = { a = \"{S}\" }", "nats.auth.token"),
            ("[nats.auth]\nnkey_seed = [\"{S}\"]", "nats.auth.nkey_seed"),
            ("[sms]\ndatabase_url = [\"{S}\"]", "sms.database_url"),
            ("[sms]\ndatabase_url = \"{S}\"", "sms.database_url"),
            (
                "[grpc.auth]\nenabled = true\n[[grpc.auth.clients]]\nname = \"a\"\ntokens = \"{S}\"\nservices = [\"*\"]",
                "grpc.auth.clients",
            ),
            ("[[gateway.sources]]\nname = \"p\"\ntokens = \"{S}\"", "gateway.sources"),
            ("[[gateway.sources]]\nname = \"p\"\nquery_tokens = \"{S}\"", "gateway.sources"),
            ("[[gateway.sources]]\nname = \"p\"\nsignature_keys = \"{S}\"", "gateway.sources"),
            ("[[gateway.sources]]\nname = \"p\"\nstandard_webhooks_secrets = \"{S}\"", "gateway.sources"),
            ("[[gateway.sources]]\nname = \"p\"\nstandard_webhooks_secrets = [\"{S}\"]", "gateway.sources"),
            ("[[gateway.sources]]\nname = \"p\"\ntokens = [\"sha256:{S}\"]", "gateway.sources"),
            (
                "[[gateway.sources]]\nname = \"p\"\nbasic = [{ user = \"u\", password = [\"{S}\"] }]",
                "gateway.sources",
            ),
            ("[[gateway.sources]]\nname = \"p\"\nbasic = \"{S}\"", "gateway.sources"),
            ("[nats]\nurl = \"nats://user:{S}@host:notaport\"", "nats.url"),
        ];
        for (template, path) in settings {
            let text = template.replace("{S}", SECRET);
            let errors = load_text(&text).expect_err(&format!("{path}: a wrong setting is an error"));
            let printed = format!("{errors} {errors:?}");
            assert!(printed.contains(path.split('.').next().unwrap_or_default()), "{path}: {printed}");
            assert!(!printed.contains(SECRET), "{path} shows its secret: {printed}");
        }
    }

    #[test]
    fn shipped_defaults_equal_the_code_defaults() {
        let from_file =
            Config::from_figment(&Figment::from(Toml::string(DEFAULTS_TOML))).expect("defaults load");
        assert_eq!(format!("{from_file:?}"), format!("{:?}", Config::default()));
        assert!(Config::default().validate().is_empty());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let figment = Figment::from(Toml::string(DEFAULTS_TOML)).merge(Toml::string(
            r#"
            [nats]
            subject_prefix = "a b"
            request_timeout = "soon"
            [gateway]
            request_timeout = "5s"
            [[gateway.sources]]
            name = "provider"
            [sms]
            databse_url = "typo"
            [chat.consumer]
            batch_size = 0
            "#,
        ));
        let errors = Config::from_figment(&figment).expect_err("invalid").0;
        let joined = errors.join("\n");
        for expected in
            ["request_timeout", "databse_url", "batch_size", "provider", "gateway.request_timeout"]
        {
            assert!(joined.contains(expected), "{expected} missing from:\n{joined}");
        }
    }

    #[test]
    fn a_wrong_type_does_not_hide_an_unknown_key_in_the_same_section() {
        let figment = Figment::from(Toml::string(DEFAULTS_TOML)).merge(Toml::string(
            r#"
            [nats]
            connect_timeout = 5
            urll = "nats://elsewhere:4222"
            [nats.stream]
            replcas = 3
            [grpc]
            listen = "0.0.0.0:50051"
            [grpc.auth]
            enabeld = true
            "#,
        ));
        let problems = Config::from_figment(&figment).expect_err("refused").0;
        let has = |needle: &str| problems.iter().any(|problem| problem.contains(needle));
        assert!(has("nats.connect_timeout: invalid type"), "{problems:#?}");
        assert!(has("nats: unknown key `urll`"), "{problems:#?}");
        assert!(has("nats.stream: unknown key `replcas`"), "{problems:#?}");
        assert!(has("grpc.auth: unknown key `enabeld`"), "{problems:#?}");
        let unknown_urll = problems.iter().filter(|problem| problem.contains("`urll`")).count();
        assert_eq!(unknown_urll, 1, "each problem once: {problems:#?}");
    }

    #[test]
    fn gateway_sources_are_checked_for_every_credential_kind() {
        let figment = Figment::from(Toml::string(DEFAULTS_TOML)).merge(Toml::string(
            r#"
            [gateway]
            trusted_proxies = ["10.0.0.0/8", "not-a-network"]
            [gateway.tls]
            cert_file = "/only/a/cert.pem"
            [[gateway.sources]]
            name = "address-only"
            allow_ips = ["203.0.113.0/24"]
            [[gateway.sources]]
            name = "mixed"
            query_tokens = ["q"]
            basic = [{ user = "a:b", password = "p" }]
            signature_header = "bad header"
            allow_ips = ["203.0.113.300"]
            [[gateway.sources]]
            name = "fine"
            standard_webhooks_secrets = ["whsec_AAAA"]
            signature_keys = ["id", "secret"]
            "#,
        ));
        let joined = Config::from_figment(&figment).expect_err("invalid").0.join("\n");
        for expected in [
            "not-a-network",
            "cert_file and key_file",
            "(address-only): has no credentials",
            "user \"a:b\"",
            "signature_header",
            "203.0.113.300",
        ] {
            assert!(joined.contains(expected), "{expected} missing from:\n{joined}");
        }
        assert!(!joined.contains("[2]"), "the valid source has no problem: {joined}");
    }

    #[test]
    fn environment_overrides_nested_keys_and_ignores_foreign_variables() {
        let figment = Figment::from(Toml::string(DEFAULTS_TOML))
            .merge(Serialized::default("sms.consumer.batch_size", 7))
            .merge(Serialized::default("gateway_port_8080_tcp", "tcp://10.0.0.1:8080"));
        let config = Config::from_figment(&figment).expect("valid");
        assert_eq!(config.service(Product::Sms).consumer.batch_size, Some(7));
    }

    #[test]
    fn an_unset_batch_size_follows_how_many_batches_are_written_at_once() {
        let config = Config::from_figment(&Figment::from(Toml::string(DEFAULTS_TOML))).expect("valid");
        let consumer = &config.service(Product::Sms).consumer;
        assert_eq!(consumer.batch_size, None, "the shipped defaults leave it to the database");
        assert_eq!(consumer.batch_size(1), 5000, "SQLite: one batch written at a time");
        assert_eq!(consumer.batch_size(2), 2500, "PostgreSQL: two at once");
        let set = ConsumerConfig { batch_size: Some(300), ..ConsumerConfig::default() };
        assert_eq!((set.batch_size(1), set.batch_size(2)), (300, 300), "a configured size is kept");
    }

    #[test]
    fn batch_size_is_bounded() {
        let with = |size: usize| {
            let figment = Figment::from(Toml::string(DEFAULTS_TOML))
                .merge(Serialized::default("voice.consumer.batch_size", size));
            Config::from_figment(&figment)
        };
        assert_eq!(
            with(MAX_BATCH_SIZE).expect("the maximum is allowed").service(Product::Voice).consumer.batch_size,
            Some(MAX_BATCH_SIZE)
        );
        let errors = with(MAX_BATCH_SIZE + 1).expect_err("one more is refused").0.join("\n");
        assert!(errors.contains("voice.consumer.batch_size: must be between 1 and 10000"), "{errors}");
    }

    #[test]
    fn the_sqlite_page_cache_is_bounded() {
        let with = |mib: u32| {
            let figment = Figment::from(Toml::string(DEFAULTS_TOML))
                .merge(Serialized::default("contacts.sqlite_cache_mib", mib));
            Config::from_figment(&figment)
        };
        assert_eq!(
            Config::from_figment(&Figment::from(Toml::string(DEFAULTS_TOML)))
                .expect("defaults")
                .service(Product::Sms)
                .sqlite_cache_mib,
            8
        );
        assert_eq!(with(64).expect("64 MiB is allowed").service(Product::Contacts).sqlite_cache_mib, 64);
        for refused in [0, MAX_SQLITE_CACHE_MIB + 1] {
            let errors = with(refused).expect_err("refused").0.join("\n");
            assert!(errors.contains("contacts.sqlite_cache_mib: must be between 1 and 4096"), "{errors}");
        }
    }

    #[test]
    fn a_component_reads_only_its_sections() {
        let figment = Figment::from(Toml::string(DEFAULTS_TOML)).merge(Toml::string(
            r#"
            [[gateway.sources]]
            name = "provider"
            tokens = ["file:/only/in/the/gateway/pod"]
            [sms]
            max_connections = 3
            "#,
        ));
        let everything = Config::from_figment(&figment).expect_err("the token file is missing here");
        assert!(
            everything.0.iter().any(|problem| problem.contains("/only/in/the/gateway/pod")),
            "{everything}"
        );
        let sms = Config::from_figment_sections(&figment, Some(&["nats", "sms"]))
            .expect("sms does not read the gateway");
        assert_eq!(sms.service(Product::Sms).max_connections, 3);
        assert!(sms.gateway.sources.is_empty());
    }

    #[test]
    fn grpc_security_settings_are_checked() {
        let figment = Figment::from(Toml::string(DEFAULTS_TOML)).merge(Toml::string(
            r#"
            [grpc.auth]
            enabled = true
            [[grpc.auth.clients]]
            name = "crm"
            tokens = []
            services = ["sms", "billing"]
            [grpc.tls]
            enabled = true
            client_subjects = ["dashboard"]
            "#,
        ));
        let joined = Config::from_figment(&figment).expect_err("invalid").0.join("\n");
        for expected in
            ["grpc.auth.clients[0].tokens", "\"billing\" is not a service", "cert_file", "client_ca_file"]
        {
            assert!(joined.contains(expected), "{expected} missing from:\n{joined}");
        }
        let figment =
            Figment::from(Toml::string(DEFAULTS_TOML)).merge(Toml::string("[grpc.auth]\nenabled = true\n"));
        let joined = Config::from_figment(&figment).expect_err("no clients").0.join("\n");
        assert!(joined.contains("without clients"), "{joined}");
    }

    #[test]
    fn default_database_is_sqlite_in_the_data_dir() {
        let config = Config::default();
        let url = config.service(Product::Sms).database_url(Product::Sms, Path::new("/var/lib/sb"));
        assert_eq!(url.expose(), "sqlite:///var/lib/sb/sms.db?mode=rwc");
    }
}

#[cfg(test)]
mod documentation {
    /// The configuration reference quotes the shipped defaults; keep them the same.
    #[test]
    fn the_configuration_reference_quotes_the_defaults() {
        let reference = include_str!("../../../docs/configuration.md");
        assert!(
            reference.contains(super::DEFAULTS_TOML),
            "docs/configuration.md must contain crates/runtime/src/defaults.toml verbatim"
        );
    }
}
