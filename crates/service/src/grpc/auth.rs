//! Who may call the gRPC APIs: bearer tokens, each scoped to services and to reading or watching.
//!
//! Every call carries `authorization: Bearer <token>` metadata. The token is hashed and compared in
//! constant time with the SHA-256 digest of every configured token (configured literally or as
//! `sha256:<hex>`), so neither timing nor a guess's length tells anything about a token. A call
//! without a token, or with one nobody configured, is refused with UNAUTHENTICATED; a known token
//! calling a service it is not scoped to, or a `Watch` stream when it may only read, with
//! PERMISSION_DENIED. Health checks and reflection need a token too unless configured otherwise.
//!
//! The check is a tower layer in front of every service the process hosts, so no handler can be
//! reached without it.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::Status;

use switchboard_runtime::config::{GrpcAuthConfig, GrpcClientConfig};

/// The gRPC service of health checks.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
/// The gRPC services of server reflection (both versions grpcurl may ask).
pub const REFLECTION_SERVICES: [&str; 2] =
    ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];

/// The name of the server-streaming method every service offers.
pub const WATCH_METHOD: &str = "Watch";

/// The caller a token identified, put in the request's extensions for handlers and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcCaller(pub Arc<str>);

struct Client {
    name: Arc<str>,
    digests: Vec<[u8; 32]>,
    /// Product names; `None` for every service.
    services: Option<Vec<String>>,
    watch: bool,
}

/// The configured clients and what they may call.
pub struct GrpcAuthenticator {
    clients: Vec<Client>,
    health_without_token: bool,
    reflection_without_token: bool,
}

impl std::fmt::Debug for GrpcAuthenticator {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.clients.iter().map(|client| &*client.name).collect();
        formatter
            .debug_struct("GrpcAuthenticator")
            .field("clients", &names)
            .field("health_without_token", &self.health_without_token)
            .field("reflection_without_token", &self.reflection_without_token)
            .finish_non_exhaustive()
    }
}

impl GrpcAuthenticator {
    /// Builds the clients; fails closed on a client without usable tokens or services.
    pub fn from_config(config: &GrpcAuthConfig) -> Result<GrpcAuthenticator, String> {
        if config.clients.is_empty() {
            return Err("grpc.auth: enabled without clients, so every call would be refused".to_owned());
        }
        let clients = config.clients.iter().map(Client::from_config).collect::<Result<Vec<_>, _>>()?;
        Ok(GrpcAuthenticator {
            clients,
            health_without_token: config.health_without_token,
            reflection_without_token: config.reflection_without_token,
        })
    }

    /// Decides a call to `path` (`/package.Service/Method`) with `headers`; the caller's name when allowed.
    pub fn check(&self, path: &str, headers: &http::HeaderMap) -> Result<Option<GrpcCaller>, Status> {
        let (service, method) = split_path(path);
        let is_health = service == HEALTH_SERVICE;
        let is_reflection = REFLECTION_SERVICES.contains(&service);
        if (is_health && self.health_without_token) || (is_reflection && self.reflection_without_token) {
            return Ok(None);
        }
        let Some(token) = bearer_token(headers) else {
            return Err(Status::unauthenticated(
                "missing bearer token: send `authorization: Bearer <token>` metadata",
            ));
        };
        let Some(client) = self.identify(token) else {
            return Err(Status::unauthenticated("the bearer token is not accepted"));
        };
        let caller = Some(GrpcCaller(client.name.clone()));
        if is_health || is_reflection {
            return Ok(caller);
        }
        if !client.may_call(service) {
            return Err(Status::permission_denied(format!(
                "client {:?} may not call {service}",
                &*client.name
            )));
        }
        if method == WATCH_METHOD && !client.watch {
            return Err(Status::permission_denied(format!(
                "client {:?} may read {service} but not watch it (its token needs watch = true)",
                &*client.name
            )));
        }
        Ok(caller)
    }

    /// The client whose token this is. Every digest is compared, whatever matched, in constant time.
    fn identify(&self, token: &str) -> Option<&Client> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut matched = None;
        for client in &self.clients {
            for digest in &client.digests {
                if bool::from(digest.ct_eq(&presented)) {
                    matched = Some(client);
                }
            }
        }
        matched
    }
}

impl Client {
    fn from_config(config: &GrpcClientConfig) -> Result<Client, String> {
        if config.tokens.is_empty() {
            return Err(format!("grpc client {:?} has no tokens", config.name));
        }
        let digests = config
            .tokens
            .iter()
            .map(|token| {
                token
                    .sha256_digest("token")
                    .map_err(|error| format!("grpc client {:?}: {error}", config.name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let services = if config.services.iter().any(|service| service == "*") {
            None
        } else {
            Some(config.services.clone())
        };
        Ok(Client { name: Arc::from(config.name.as_str()), digests, services, watch: config.watch })
    }

    /// Whether this client may call the gRPC service `service` (`switchboard.<product>.v1.<Name>`).
    fn may_call(&self, service: &str) -> bool {
        let Some(services) = &self.services else { return true };
        let mut parts = service.split('.');
        match (parts.next(), parts.next()) {
            (Some("switchboard"), Some(product)) => services.iter().any(|allowed| allowed == product),
            _ => false,
        }
    }
}

fn split_path(path: &str) -> (&str, &str) {
    let path = path.strip_prefix('/').unwrap_or(path);
    path.split_once('/').unwrap_or((path, ""))
}

fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The tower layer that checks every call; `None` lets every call through (authentication off).
#[derive(Debug, Clone, Default)]
pub struct GrpcAuthLayer {
    authenticator: Option<Arc<GrpcAuthenticator>>,
}

impl GrpcAuthLayer {
    pub fn new(authenticator: Option<GrpcAuthenticator>) -> GrpcAuthLayer {
        GrpcAuthLayer { authenticator: authenticator.map(Arc::new) }
    }
}

impl<S> tower::Layer<S> for GrpcAuthLayer {
    type Service = GrpcAuth<S>;

    fn layer(&self, inner: S) -> GrpcAuth<S> {
        GrpcAuth { inner, authenticator: self.authenticator.clone() }
    }
}

/// A service behind [`GrpcAuthLayer`].
#[derive(Debug, Clone)]
pub struct GrpcAuth<S> {
    inner: S,
    authenticator: Option<Arc<GrpcAuthenticator>>,
}

impl<S, B, R> tower::Service<http::Request<B>> for GrpcAuth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    R: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<S::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let Some(authenticator) = &self.authenticator else {
            return Either::Right(self.inner.call(request));
        };
        match authenticator.check(request.uri().path(), request.headers()) {
            Ok(caller) => {
                if let Some(caller) = caller {
                    request.extensions_mut().insert(caller);
                }
                Either::Right(self.inner.call(request))
            }
            Err(status) => {
                metrics::counter!(
                    "switchboard_grpc_auth_refused_total",
                    "code" => if status.code() == tonic::Code::Unauthenticated { "unauthenticated" } else { "permission_denied" }
                )
                .increment(1);
                tracing::debug!(path = %request.uri().path(), message = status.message(), "grpc call refused");
                Either::Left(ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use switchboard_runtime::Secret;

    use super::*;

    fn client(name: &str, token: &str, services: &[&str], watch: bool) -> GrpcClientConfig {
        GrpcClientConfig {
            name: name.to_owned(),
            tokens: vec![Secret::new(token)],
            services: services.iter().map(|service| (*service).to_owned()).collect(),
            watch,
        }
    }

    fn headers(token: Option<&str>) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        if let Some(token) = token {
            headers.insert(http::header::AUTHORIZATION, format!("Bearer {token}").parse().expect("header"));
        }
        headers
    }

    fn authenticator(health_without_token: bool) -> GrpcAuthenticator {
        let hashed = hex::encode(Sha256::digest(b"hashed-secret"));
        GrpcAuthenticator::from_config(&GrpcAuthConfig {
            enabled: true,
            health_without_token,
            reflection_without_token: false,
            clients: vec![
                client("reader", "read-secret", &["sms", "chat"], false),
                client("watcher", &format!("sha256:{hashed}"), &["*"], true),
            ],
        })
        .expect("valid")
    }

    #[test]
    fn tokens_are_scoped_to_services_and_watching() {
        let auth = authenticator(false);
        let get = "/switchboard.sms.v1.SmsService/GetMessage";
        let watch = "/switchboard.sms.v1.SmsService/Watch";
        let voice = "/switchboard.voice.v1.VoiceService/GetCall";
        let code =
            |path: &str, token: Option<&str>| auth.check(path, &headers(token)).err().map(|s| s.code());
        assert_eq!(code(get, None), Some(tonic::Code::Unauthenticated));
        assert_eq!(code(get, Some("wrong")), Some(tonic::Code::Unauthenticated));
        assert_eq!(code(get, Some("read-secret")), None);
        assert_eq!(code(watch, Some("read-secret")), Some(tonic::Code::PermissionDenied));
        assert_eq!(code(voice, Some("read-secret")), Some(tonic::Code::PermissionDenied));
        assert_eq!(code(watch, Some("hashed-secret")), None);
        assert_eq!(code(voice, Some("hashed-secret")), None);
        let caller = auth.check(get, &headers(Some("read-secret"))).expect("allowed");
        assert_eq!(caller, Some(GrpcCaller(Arc::from("reader"))));
    }

    #[test]
    fn health_is_public_only_when_configured() {
        let health = "/grpc.health.v1.Health/Check";
        assert!(authenticator(false).check(health, &headers(None)).is_err());
        assert!(authenticator(false).check(health, &headers(Some("read-secret"))).is_ok());
        assert!(authenticator(true).check(health, &headers(None)).is_ok());
        let reflection = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
        assert!(authenticator(true).check(reflection, &headers(None)).is_err());
    }

    #[test]
    fn malformed_credentials_are_unauthenticated() {
        let auth = authenticator(false);
        let mut basic = http::HeaderMap::new();
        basic.insert(http::header::AUTHORIZATION, "Basic read-secret".parse().expect("header"));
        let path = "/switchboard.sms.v1.SmsService/GetMessage";
        assert_eq!(auth.check(path, &basic).err().map(|s| s.code()), Some(tonic::Code::Unauthenticated));
        assert!(Secret::new("sha256:zz").sha256_digest("token").is_err());
        assert!(Secret::new("").sha256_digest("token").is_err());
    }
}
