//! A private `nats-server` with JetStream.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// A `nats-server` child process on a port of its own, storing JetStream data in a temp directory.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    directory: tempfile::TempDir,
    /// Extra configuration (users, permissions, accounts) and the environment it reads.
    extra: Option<ExtraConfig>,
}

#[derive(Debug, Clone)]
struct ExtraConfig {
    file: PathBuf,
    environment: Vec<(String, String)>,
}

impl NatsServer {
    /// Starts a server on a free port and waits until it accepts connections.
    pub fn start() -> anyhow::Result<NatsServer> {
        NatsServer::start_with_config("", &[])
    }

    /// Starts a server that also reads `config` (nats-server configuration syntax: `authorization`,
    /// `accounts`, `include` of a file by absolute path…), with `environment` set for the `$NAME`
    /// references in it. Listening address, port and JetStream storage stay the harness's.
    pub fn start_with_config(config: &str, environment: &[(&str, &str)]) -> anyhow::Result<NatsServer> {
        let directory = tempfile::Builder::new().prefix("switchboard-nats-").tempdir()?;
        let ports_dir = directory.path().join("ports");
        std::fs::create_dir_all(&ports_dir)?;
        let extra = if config.is_empty() {
            None
        } else {
            let file = directory.path().join("extra.conf");
            std::fs::write(&file, config)?;
            let environment =
                environment.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
            Some(ExtraConfig { file, environment })
        };
        let child = spawn(directory.path(), "-1", Some(&ports_dir), extra.as_ref())?;
        let pid = child.id();
        let port = read_port(&ports_dir, pid)?;
        let mut server = NatsServer { child: Some(child), port, directory, extra };
        server.wait_ready()?;
        Ok(server)
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server abruptly (SIGKILL): a crash, as far as clients can tell.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same storage.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // The old process may hold the port for a moment.
            let child = spawn(self.directory.path(), &self.port.to_string(), None, self.extra.as_ref())?;
            self.child = Some(child);
            match self.wait_ready() {
                Ok(()) => return Ok(()),
                Err(error) if Instant::now() > deadline => return Err(error),
                Err(_) => self.kill(),
            }
        }
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                anyhow::bail!("nats-server exited: {status}; log: {}", self.log().display());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        anyhow::bail!("nats-server did not accept connections on {}", self.port)
    }

    fn log(&self) -> PathBuf {
        self.directory.path().join("nats.log")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `nats-server` binary the tests run: `SB_NATS_SERVER` when set (scripts/test sets it to the
/// version the Kubernetes manifests pin), else the one on the `PATH`.
pub(crate) fn binary() -> String {
    std::env::var("SB_NATS_SERVER")
        .ok()
        .filter(|path| !path.is_empty())
        .unwrap_or_else(|| "nats-server".to_owned())
}

/// The version of the `nats-server` the tests run, e.g. `(2, 11, 9)`.
pub fn server_version() -> anyhow::Result<(u32, u32, u32)> {
    let output = Command::new(binary()).arg("--version").output().context("cannot run nats-server")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.trim().rsplit('v').next().unwrap_or_default();
    let mut parts = version.split('.').map(|part| part.parse::<u32>());
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor)), Some(Ok(patch))) => Ok((major, minor, patch)),
        _ => anyhow::bail!("cannot read a version in {text:?}"),
    }
}

fn spawn(
    directory: &Path,
    port: &str,
    ports_dir: Option<&Path>,
    extra: Option<&ExtraConfig>,
) -> anyhow::Result<Child> {
    let mut command = Command::new(binary());
    if let Some(extra) = extra {
        // Command-line flags override the file, so address, port and storage stay ours.
        command.arg("-c").arg(&extra.file);
        command.envs(extra.environment.iter().map(|(name, value)| (name, value)));
    }
    command
        .args(["-js", "-a", "127.0.0.1", "-p", port, "-sd"])
        .arg(directory.join("jetstream"))
        .arg("-l")
        .arg(directory.join("nats.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(ports_dir) = ports_dir {
        command.arg("--ports_file_dir").arg(ports_dir);
    }
    command.spawn().context("cannot start nats-server: is it installed (apt-get install nats-server)?")
}

/// nats-server writes `nats-server_<pid>.ports` with the ports it bound.
fn read_port(ports_dir: &Path, pid: u32) -> anyhow::Result<u16> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(entries) = std::fs::read_dir(ports_dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(&format!("_{pid}.ports"))
                    && let Ok(text) = std::fs::read_to_string(entry.path())
                    && let Ok(json) = serde_json::from_str::<serde_json::Value>(&text)
                    && let Some(port) = json["nats"][0]
                        .as_str()
                        .and_then(|url| url.rsplit(':').next())
                        .and_then(|port| port.parse().ok())
                {
                    return Ok(port);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::bail!("nats-server did not report its port")
}

/// Three (or more) `nats-server` processes routed into one JetStream cluster on 127.0.0.1, each with
/// its own client port, cluster port and store directory, as the production StatefulSet runs them.
/// Each can be killed, stopped gracefully and started again on the same ports with the same store.
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<ClusterNode>,
    _directory: tempfile::TempDir,
}

#[derive(Debug)]
struct ClusterNode {
    name: String,
    port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl NatsCluster {
    /// Starts `size` servers named `n0`, `n1`, … and waits until JetStream answers through them.
    pub fn start(size: usize) -> anyhow::Result<NatsCluster> {
        let directory = tempfile::Builder::new().prefix("switchboard-nats-cluster-").tempdir()?;
        let ports: Vec<(u16, u16)> =
            (0..size).map(|_| Ok((free_port()?, free_port()?))).collect::<anyhow::Result<_>>()?;
        let routes: Vec<String> =
            ports.iter().map(|(_, cluster_port)| format!("nats://127.0.0.1:{cluster_port}")).collect();
        let mut nodes = Vec::with_capacity(size);
        for (index, (port, cluster_port)) in ports.iter().enumerate() {
            let name = format!("n{index}");
            let store = directory.path().join(&name);
            std::fs::create_dir_all(&store)?;
            let config = directory.path().join(format!("{name}.conf"));
            std::fs::write(
                &config,
                format!(
                    "server_name: {name}\nlisten: \"127.0.0.1:{port}\"\n\
                     jetstream {{ store_dir: \"{store}\" }}\n\
                     cluster {{\n  name: switchboard\n  listen: \"127.0.0.1:{cluster_port}\"\n  \
                     no_advertise: true\n  routes: [{routes}]\n}}\n",
                    store = store.display(),
                    routes = routes.iter().map(|route| format!("\"{route}\"")).collect::<Vec<_>>().join(", "),
                ),
            )?;
            let log = directory.path().join(format!("{name}.log"));
            nodes.push(ClusterNode { name, port: *port, config, log, child: None });
        }
        let mut cluster = NatsCluster { nodes, _directory: directory };
        for index in 0..size {
            cluster.start_node(index)?;
        }
        Ok(cluster)
    }

    /// Every server's URL, comma-separated, as `nats.url` lists a cluster.
    pub fn urls(&self) -> String {
        self.nodes.iter().map(|node| format!("nats://127.0.0.1:{}", node.port)).collect::<Vec<_>>().join(",")
    }

    /// The index of the server called `name` (`n0`, …), as JetStream names a stream's leader.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.name == name)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// SIGKILL: a crash of that server.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and waits for the server to exit, as Kubernetes stops a pod.
    pub fn stop(&mut self, index: usize) -> anyhow::Result<()> {
        if let Some(mut child) = self.nodes[index].child.take() {
            let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?;
            anyhow::ensure!(status.success(), "kill -TERM failed");
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait()?.is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    anyhow::bail!("{} did not stop within 30 s of SIGTERM", self.nodes[index].name);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Starts a stopped or killed server again on the same ports with the same store.
    pub fn start_node(&mut self, index: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[index];
        anyhow::ensure!(node.child.is_none(), "{} is running", node.name);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let child = Command::new(binary())
                .arg("-c")
                .arg(&node.config)
                .arg("-l")
                .arg(&node.log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("cannot start nats-server")?;
            node.child = Some(child);
            let accepting = Instant::now() + Duration::from_secs(5);
            while Instant::now() < accepting {
                if std::net::TcpStream::connect(("127.0.0.1", node.port)).is_ok() {
                    return Ok(());
                }
                if let Some(child) = node.child.as_mut()
                    && child.try_wait()?.is_some()
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // The previous process may still hold a port for a moment.
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} did not start; log: {}",
                node.name,
                node.log.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
    }
}

/// A port that was free a moment ago (for servers that must be told their ports up front).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
