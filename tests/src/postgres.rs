//! A private PostgreSQL server, for tests that stop and restart the database (they must not disturb
//! the machine's shared server).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// A PostgreSQL cluster in a temporary directory, listening on 127.0.0.1 on a port of its own, with
/// trust authentication for user `postgres`. Stopped and removed when dropped.
#[derive(Debug)]
pub struct PostgresServer {
    binaries: PathBuf,
    directory: tempfile::TempDir,
    port: u16,
}

impl PostgresServer {
    pub fn start() -> anyhow::Result<PostgresServer> {
        let binaries = find_binaries()?;
        let directory = tempfile::Builder::new().prefix("switchboard-pg-").tempdir()?;
        if running_as_root() {
            // PostgreSQL refuses to run as root: the cluster belongs to the postgres user.
            run(Command::new("chown").args(["postgres:postgres"]).arg(directory.path()))?;
        }
        let port = free_port()?;
        let server = PostgresServer { binaries, directory, port };
        server.as_owner(
            "initdb",
            &["-D", &server.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
        )?;
        server.pg_ctl_start()?;
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for database `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server at once (connections are cut, as in a crash).
    pub fn stop(&self) -> anyhow::Result<()> {
        self.as_owner("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"])
    }

    pub fn start_again(&self) -> anyhow::Result<()> {
        self.pg_ctl_start()
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        // fsync off only risks data on an operating-system crash; commits stay synchronous, so a
        // killed server loses nothing it acknowledged (tests kill it on purpose).
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.directory.path().display()
        );
        let log = self.directory.path().join("postgres.log").display().to_string();
        self.as_owner("pg_ctl", &["-D", &self.data(), "-l", &log, "-o", &options, "-w", "start"])?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        anyhow::bail!("private PostgreSQL did not start; see {log}")
    }

    fn data(&self) -> String {
        self.directory.path().join("data").display().to_string()
    }

    fn as_owner(&self, program: &str, arguments: &[&str]) -> anyhow::Result<()> {
        let binary = self.binaries.join(program);
        let mut command = if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&binary);
            command
        } else {
            Command::new(&binary)
        };
        command.args(arguments);
        run(&mut command).with_context(|| format!("{program} {}", arguments.join(" ")))
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let Output { status, stdout, stderr } = command.output()?;
    anyhow::ensure!(
        status.success(),
        "{status}: {}{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    Ok(())
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().map(|output| output.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// The newest installed PostgreSQL's binaries (Debian keeps them out of PATH).
fn find_binaries() -> anyhow::Result<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .with_context(|| format!("PostgreSQL is not installed under {}", root.display()))?
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).context("no PostgreSQL with initdb found")
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}
