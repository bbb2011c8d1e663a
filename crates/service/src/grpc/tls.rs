//! TLS for the gRPC server: certificates reloaded when their files change, optional mutual TLS with a
//! client CA and an allowlist of client certificate subjects.
//!
//! The server configuration is rebuilt from the files whenever one of their modification times
//! changes (checked every `reload_interval`); each new connection takes the configuration current
//! at its handshake, so a renewed certificate (cert-manager, a rotated Secret) is served without a
//! restart and connections already open keep theirs. A file that fails to load keeps the previous
//! configuration and is reported.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use futures::Stream;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use switchboard_runtime::config::GrpcTlsConfig;

/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The current server configuration, replaced when the files change.
#[derive(Debug, Clone)]
pub struct ReloadingTls {
    settings: Arc<GrpcTlsConfig>,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

fn crypto() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn required<'a>(path: &'a Option<PathBuf>, key: &str) -> anyhow::Result<&'a Path> {
    path.as_deref().with_context(|| format!("grpc.tls.{key} is required when TLS is enabled"))
}

/// Builds a server configuration from the files named by `settings`.
pub fn load_server_config(settings: &GrpcTlsConfig) -> anyhow::Result<ServerConfig> {
    let cert_file = required(&settings.cert_file, "cert_file")?;
    let key_file = required(&settings.key_file, "key_file")?;
    let chain = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read certificates from {}", cert_file.display()))?;
    anyhow::ensure!(!chain.is_empty(), "{} holds no certificate", cert_file.display());
    let key = PrivateKeyDer::from_pem_file(key_file)
        .with_context(|| format!("cannot read a private key from {}", key_file.display()))?;
    let builder = ServerConfig::builder_with_provider(crypto())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &settings.client_ca_file {
        Some(ca_file) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in CertificateDer::pem_file_iter(ca_file)
                .with_context(|| format!("cannot read the client CA {}", ca_file.display()))?
            {
                let certificate = certificate
                    .with_context(|| format!("cannot parse the client CA {}", ca_file.display()))?;
                roots
                    .add(certificate)
                    .with_context(|| format!("unusable client CA in {}", ca_file.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crypto())
                .build()
                .context("client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .with_context(|| format!("the key in {} does not fit the certificate", key_file.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

impl ReloadingTls {
    /// Loads the files once (failing when they cannot be used) and keeps reloading them until `shutdown`.
    pub fn start(settings: &GrpcTlsConfig, shutdown: CancellationToken) -> anyhow::Result<ReloadingTls> {
        let config = load_server_config(settings)?;
        let tls = ReloadingTls {
            settings: Arc::new(settings.clone()),
            current: Arc::new(RwLock::new(Arc::new(config))),
        };
        let watcher = tls.clone();
        tokio::spawn(async move { watcher.watch(shutdown).await });
        Ok(tls)
    }

    fn files(&self) -> Vec<PathBuf> {
        [&self.settings.cert_file, &self.settings.key_file, &self.settings.client_ca_file]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    fn modification_times(&self) -> Vec<Option<SystemTime>> {
        self.files()
            .iter()
            .map(|path| std::fs::metadata(path).and_then(|metadata| metadata.modified()).ok())
            .collect()
    }

    async fn watch(self, shutdown: CancellationToken) {
        let mut seen = self.modification_times();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.settings.reload_interval) => {}
            }
            let now = self.modification_times();
            if now == seen {
                continue;
            }
            match load_server_config(&self.settings) {
                Ok(config) => {
                    if let Ok(mut current) = self.current.write() {
                        *current = Arc::new(config);
                    }
                    seen = now;
                    metrics::counter!("switchboard_grpc_tls_reloads_total", "outcome" => "loaded")
                        .increment(1);
                    tracing::info!(files = ?self.files(), "grpc TLS certificates reloaded");
                }
                Err(error) => {
                    // Files are often replaced one at a time: try again next round, keep serving the old.
                    metrics::counter!("switchboard_grpc_tls_reloads_total", "outcome" => "failed")
                        .increment(1);
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "cannot reload grpc TLS certificates; keeping the previous ones"
                    );
                }
            }
        }
    }

    /// The configuration new connections get.
    pub fn current(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Accepts connections on `listener` and yields those that completed the handshake (and, with an
    /// allowlist, whose client certificate names an allowed subject). Handshakes run concurrently, so
    /// a slow client delays nobody. Stops when the server drops the stream.
    pub fn incoming(
        &self,
        listener: TcpListener,
    ) -> impl Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> + Send + 'static {
        let (sender, receiver) = tokio::sync::mpsc::channel(64);
        let tls = self.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = sender.closed() => return,
                    accepted = listener.accept() => accepted,
                };
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "cannot accept a grpc connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // As on plain connections: no waiting for delayed ACKs between frames.
                let _ = stream.set_nodelay(true);
                let acceptor = TlsAcceptor::from(tls.current());
                let sender = sender.clone();
                let subjects = tls.settings.client_subjects.clone();
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => {
                            metrics::counter!("switchboard_grpc_tls_refused_total", "reason" => "handshake")
                                .increment(1);
                            tracing::debug!(%peer, %error, "grpc TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "grpc TLS handshake timed out");
                            return;
                        }
                    };
                    if !subjects.is_empty() {
                        let names = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|chain| chain.first())
                            .map(|certificate| certificate_subjects(certificate))
                            .unwrap_or_default();
                        if !names.iter().any(|name| subjects.contains(name)) {
                            metrics::counter!("switchboard_grpc_tls_refused_total", "reason" => "subject")
                                .increment(1);
                            tracing::warn!(%peer, subjects = ?names, "grpc client certificate subject not allowed");
                            return;
                        }
                    }
                    let _ = sender.send(Ok(stream)).await;
                });
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(receiver)
    }
}

/// The names a certificate is issued to: its subject's common names and its DNS and URI SANs.
pub fn certificate_subjects(certificate: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(certificate.as_ref()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = parsed
        .subject()
        .iter_common_name()
        .filter_map(|name| name.as_str().ok().map(str::to_owned))
        .collect();
    if let Ok(Some(alternatives)) = parsed.subject_alternative_name() {
        for name in &alternatives.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => names.push((*dns).to_owned()),
                x509_parser::extensions::GeneralName::URI(uri) => names.push((*uri).to_owned()),
                _ => {}
            }
        }
    }
    names
}
