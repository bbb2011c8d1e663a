//! What `switchboard up` adds for a laptop: a `nats-server` child process when none answers, a
//! generated gateway token when no source is configured, and a banner saying how to use both.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use rand::RngCore;
use switchboard_runtime::Secret;
use switchboard_runtime::config::{Config, SourceConfig};
use switchboard_runtime::nats::connect_once;
use tokio::process::{Child, Command};

/// A `nats-server` started for this process, in its own process group so a terminal's Ctrl-C
/// reaches only `switchboard up`, which stops the server after its components ([`LocalNats::stop`]).
/// Killed when dropped without being stopped.
#[derive(Debug)]
pub struct LocalNats {
    child: Child,
}

/// How long the server may take to write its stream state and exit after SIGTERM.
const NATS_STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl LocalNats {
    /// Stops the server gracefully (SIGTERM: it flushes the stream to disk and exits), killing it
    /// only when it has not exited within [`NATS_STOP_TIMEOUT`].
    pub async fn stop(mut self) {
        let pid = self.child.id().and_then(|id| rustix::process::Pid::from_raw(id as i32));
        if let Some(pid) = pid
            && rustix::process::kill_process(pid, rustix::process::Signal::TERM).is_ok()
        {
            match tokio::time::timeout(NATS_STOP_TIMEOUT, self.child.wait()).await {
                Ok(Ok(status)) => {
                    tracing::info!(%status, "nats-server stopped");
                    return;
                }
                Ok(Err(error)) => tracing::warn!(%error, "cannot wait for nats-server"),
                Err(_) => tracing::warn!("nats-server did not stop within 10 s of SIGTERM; killing it"),
            }
        }
        let _ = self.child.kill().await;
    }
}

impl Drop for LocalNats {
    fn drop(&mut self) {
        // After stop() this does nothing; otherwise (an early error) the server must not outlive us.
        let _ = self.child.start_kill();
    }
}

/// Finds an executable on `PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|directory| Path::new(directory).join(name))
        .find(|path| path.is_file())
}

/// The host and port of a `nats://host:port` URL, when it names this machine.
fn local_address(url: &str) -> Option<(String, u16)> {
    let first = url.split(',').next()?.trim();
    let rest = first.strip_prefix("nats://").unwrap_or(first);
    let authority = rest.rsplit('@').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.trim_end_matches('/').parse().ok()?),
        None => (authority, 4222),
    };
    matches!(host, "127.0.0.1" | "localhost" | "::1" | "[::1]")
        .then(|| (host.trim_matches(['[', ']']).to_owned(), port))
}

/// Starts `nats-server` with JetStream in `<data_dir>/nats` when nothing answers at the configured
/// (local) URL and the binary is on `PATH`. Returns `None` when a server already answers.
pub async fn ensure_nats(config: &Config) -> anyhow::Result<Option<LocalNats>> {
    if connect_once(&config.nats, "up").await.is_ok() {
        return Ok(None);
    }
    let Some((host, port)) = local_address(&config.nats.url) else {
        anyhow::bail!("no NATS answers at {} and it is not on this machine; start it first", config.nats.url);
    };
    let Some(binary) = find_on_path("nats-server") else {
        anyhow::bail!(
            "no NATS answers at {} and nats-server is not installed (apt-get install nats-server)",
            config.nats.url
        );
    };
    let store = config.storage.data_dir.join("nats");
    std::fs::create_dir_all(&store).with_context(|| format!("cannot create {}", store.display()))?;
    let log = config.storage.data_dir.join("nats-server.log");
    tracing::info!(binary = %binary.display(), %port, store = %store.display(), "starting nats-server");
    let child = Command::new(binary)
        .args(["-js", "-a", &host, "-p", &port.to_string(), "-sd"])
        .arg(&store)
        .arg("-l")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start nats-server")?;
    let local = LocalNats { child };
    for _ in 0..100 {
        if connect_once(&config.nats, "up").await.is_ok() {
            return Ok(Some(local));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("nats-server did not start; see {}", log.display())
}

/// With no gateway source configured, uses the token in `<data_dir>/gateway-token` (creating a
/// random one the first time). Returns the token when it did.
pub fn ensure_local_token(config: &mut Config) -> anyhow::Result<Option<String>> {
    if !config.gateway.sources.is_empty() {
        return Ok(None);
    }
    let path = config.storage.data_dir.join("gateway-token");
    let token = match std::fs::read_to_string(&path) {
        Ok(existing) if !existing.trim().is_empty() => existing.trim().to_owned(),
        _ => {
            let mut bytes = [0u8; 24];
            rand::rng().fill_bytes(&mut bytes);
            let token = hex::encode(bytes);
            write_private(&path, &token).with_context(|| format!("cannot write {}", path.display()))?;
            token
        }
    };
    config.gateway.sources.push(SourceConfig::with_tokens("local", vec![Secret::new(token.clone())]));
    Ok(Some(token))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
        file.write_all(contents.as_bytes())
    }
    #[cfg(not(unix))]
    {
        std::fs::write(path, contents)
    }
}

/// The banner's NATS line: which server the components use, and whether `up` started it.
pub fn describe_nats(config: &Config, started_here: bool) -> String {
    let url = switchboard_runtime::nats::redacted_url(&config.nats.url);
    if started_here {
        format!(
            "{url} (nats-server started by this process; data in {}, log in {})",
            config.storage.data_dir.join("nats").display(),
            config.storage.data_dir.join("nats-server.log").display()
        )
    } else {
        format!("{url} (a server that was already running there)")
    }
}

/// What to paste to send a first webhook and read it back.
pub fn banner(config: &Config, token: Option<&str>, nats: &str) -> String {
    let gateway_port = config.gateway.listen.port();
    let grpc_port = config.grpc.listen.port();
    let admin_port = config.admin.listen.port();
    let token_line = match token {
        Some(token) => format!(
            "\n  gateway token: {token}\n  (stored in {}; configure [[gateway.sources]] to use your own)\n",
            config.storage.data_dir.join("gateway-token").display()
        ),
        None => String::new(),
    };
    let auth = token
        .map(|token| format!("-H 'Authorization: Bearer {token}' "))
        .unwrap_or_else(|| "-H 'Authorization: Bearer <your token>' ".to_owned());
    format!(
        "\nSwitchboard is running.\n  NATS:     {nats}\n  webhooks: http://127.0.0.1:{gateway_port}/v1/events/{{event}}\n  gRPC:     127.0.0.1:{grpc_port} (reflection on; NO authentication: whoever reaches this port reads everything, see docs/security.md)\n  admin:    http://127.0.0.1:{admin_port}/readyz\n{token_line}\n\
         Send a delivery report:\n  curl -sS {auth}-H 'Content-Type: application/json' \\\n    \
         --data '{{\"id\":\"b34e35ad-fe34-4a8b-977c-b21cd76cd7d6:1\",\"mobile\":\"918921269123\",\"status\":\"DELIVRD\",\"deliv_time\":\"2021-04-09 16:27:51\"}}' \\\n    \
         http://127.0.0.1:{gateway_port}/v1/events/sms:message:status\n\n\
         Read it back:\n  grpcurl -plaintext -d '{{\"id\":\"b34e35ad-fe34-4a8b-977c-b21cd76cd7d6:1\"}}' 127.0.0.1:{grpc_port} switchboard.sms.v1.SmsService/GetMessage\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses() {
        assert_eq!(local_address("nats://127.0.0.1:4222"), Some(("127.0.0.1".into(), 4222)));
        assert_eq!(local_address("nats://localhost"), Some(("localhost".into(), 4222)));
        assert_eq!(local_address("nats://user:pass@127.0.0.1:5222"), Some(("127.0.0.1".into(), 5222)));
        assert_eq!(local_address("nats://nats.example:4222"), None);
    }

    #[test]
    fn generated_token_is_reused() {
        let directory = tempfile_dir();
        let mut config = Config::default();
        config.storage.data_dir = directory.clone();
        let first = ensure_local_token(&mut config).expect("token").expect("generated");
        let mut again = Config::default();
        again.storage.data_dir = directory.clone();
        let second = ensure_local_token(&mut again).expect("token").expect("read back");
        assert_eq!(first, second);
        assert_eq!(first.len(), 48);
        let _ = std::fs::remove_dir_all(directory);
    }

    fn tempfile_dir() -> PathBuf {
        let mut bytes = [0u8; 8];
        rand::rng().fill_bytes(&mut bytes);
        std::env::temp_dir().join(format!("switchboard-local-{}", hex::encode(bytes)))
    }
}
