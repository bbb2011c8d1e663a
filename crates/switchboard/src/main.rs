//! `switchboard`: run the whole system locally (`up`), one component (`gateway`, `sms`, …), migrations
//! (`migrate`), or check a configuration (`config check`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use switchboard::{Component, Listeners, implemented_services, local};
use switchboard_events::Product;
use switchboard_runtime::config::{Config, DEFAULTS_TOML};
use switchboard_runtime::tokio_util::sync::CancellationToken;
use switchboard_runtime::{shutdown, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Receive a CPaaS provider's webhooks into NATS JetStream; query per-product state over gRPC."
)]
struct Cli {
    /// The TOML configuration file. Without one, defaults and SWITCHBOARD_* environment variables apply.
    #[arg(long, short, global = true, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run everything in one process: NATS (started if none answers), the gateway and every service,
    /// with SQLite under the data directory.
    ///
    /// Example: switchboard up
    Up,
    /// Run the webhook gateway alone.
    ///
    /// Example: switchboard gateway --config /etc/switchboard/switchboard.toml
    Gateway,
    /// Run the sms service alone.
    ///
    /// Example: switchboard sms --config /etc/switchboard/switchboard.toml
    Sms,
    /// Run the chat service (WhatsApp and RCS) alone.
    ///
    /// Example: switchboard chat --config /etc/switchboard/switchboard.toml
    Chat,
    /// Run the voice service alone.
    ///
    /// Example: switchboard voice --config /etc/switchboard/switchboard.toml
    Voice,
    /// Run the interact service (messages to virtual numbers) alone.
    ///
    /// Example: switchboard interact --config /etc/switchboard/switchboard.toml
    Interact,
    /// Run the contacts service alone.
    ///
    /// Example: switchboard contacts --config /etc/switchboard/switchboard.toml
    Contacts,
    /// Apply database migrations and exit (for a Kubernetes Job before a rollout).
    ///
    /// Example: switchboard migrate sms
    Migrate {
        /// Services to migrate; all when none is named.
        services: Vec<String>,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Load the configuration (file and environment) and list every problem.
    ///
    /// Example: switchboard config check --config switchboard.toml
    Check {
        /// Check only what this command reads: `gateway`, a service name, or `migrate` (the sections
        /// a pod running it loads). Without it, every section is checked.
        #[arg(long = "for", value_name = "COMMAND")]
        command: Option<String>,
    },
    /// Print a commented configuration with every setting and its default.
    ///
    /// Example: switchboard config example > switchboard.toml
    Example,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(cli: &Cli) -> anyhow::Result<Config> {
    Config::load(cli.config.as_deref()).map_err(|errors| anyhow::anyhow!("{errors}"))
}

/// The sections every component reads. Only the services read `grpc` (so the gateway's pod needs
/// none of the gRPC token files).
const COMMON_SECTIONS: &[&str] = &["nats", "log", "admin", "storage", "shutdown"];

/// Loads only the sections `command` (a component's name, or `migrate`) reads.
fn load_for(cli: &Cli, command: &str) -> anyhow::Result<Config> {
    let mut sections: Vec<&str> = COMMON_SECTIONS.to_vec();
    match command {
        "migrate" => sections.extend(Product::ALL.iter().map(|product| product.name())),
        "gateway" => sections.push("gateway"),
        other => {
            let product = Product::from_name(other).with_context(|| format!("unknown command {other:?}"))?;
            sections.extend(["grpc", product.name()]);
        }
    }
    Config::load_sections(cli.config.as_deref(), Some(&sections))
        .map_err(|errors| anyhow::anyhow!("{errors}"))
}

async fn execute(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Config { command: ConfigCommand::Example } => {
            std::io::stdout().write_all(DEFAULTS_TOML.as_bytes())?;
            Ok(())
        }
        Command::Config { command: ConfigCommand::Check { command } } => {
            match command {
                Some(command) => load_for(&cli, command)?,
                None => load(&cli)?,
            };
            writeln!(std::io::stdout(), "configuration is valid")?;
            Ok(())
        }
        Command::Migrate { services } => {
            let config = load_for(&cli, "migrate")?;
            telemetry::init_logging(&config.log).map_err(anyhow::Error::msg)?;
            let products = parse_products(services)?;
            switchboard::migrate(&config, &products).await
        }
        Command::Up => {
            let mut config = load(&cli)?;
            telemetry::init_logging(&config.log).map_err(anyhow::Error::msg)?;
            std::fs::create_dir_all(&config.storage.data_dir).with_context(|| {
                format!("cannot create the data directory {}", config.storage.data_dir.display())
            })?;
            let _nats = local::ensure_nats(&config).await?;
            let token = local::ensure_local_token(&mut config)?;
            let components = Component::available();
            let listeners = Listeners::bind(&config, &components).await?;
            let banner = local::banner(&config, token.as_deref());
            run(config, &components, listeners, Some(banner)).await
        }
        Command::Gateway => run_one(&cli, Component::Gateway).await,
        Command::Sms => run_one(&cli, Component::Service(Product::Sms)).await,
        Command::Chat => run_one(&cli, Component::Service(Product::Chat)).await,
        Command::Voice => run_one(&cli, Component::Service(Product::Voice)).await,
        Command::Interact => run_one(&cli, Component::Service(Product::Interact)).await,
        Command::Contacts => run_one(&cli, Component::Service(Product::Contacts)).await,
    }
}

fn parse_products(names: &[String]) -> anyhow::Result<Vec<Product>> {
    if names.is_empty() {
        return Ok(implemented_services());
    }
    names
        .iter()
        .map(|name| {
            Product::from_name(name)
                .filter(|product| implemented_services().contains(product))
                .with_context(|| format!("unknown service {name:?}"))
        })
        .collect()
}

async fn run_one(cli: &Cli, component: Component) -> anyhow::Result<()> {
    let config = load_for(cli, component.name())?;
    telemetry::init_logging(&config.log).map_err(anyhow::Error::msg)?;
    let listeners = Listeners::bind(&config, &[component]).await?;
    run(config, &[component], listeners, None).await
}

async fn run(
    config: Config,
    components: &[Component],
    listeners: Listeners,
    banner: Option<String>,
) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    tokio::spawn(shutdown::cancel_on_signal(stop.clone()));
    if let Some(banner) = banner {
        // Printed once the listeners are bound; the log says when each component is up.
        let _ = writeln!(std::io::stdout(), "{banner}");
    }
    switchboard::run(Arc::new(config), components.to_vec(), listeners, stop).await
}
