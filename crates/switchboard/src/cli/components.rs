//! Running components: `up`, one component alone, `migrate`, and the `config` helpers.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Subcommand;
use switchboard_events::Product;
use switchboard_runtime::config::{Config, DEFAULTS_TOML};
use switchboard_runtime::tokio_util::sync::CancellationToken;
use switchboard_runtime::{shutdown, telemetry};

use super::Cli;
use crate::{Component, Listeners, implemented_services, local};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load the configuration (file and environment) and list every problem.
    #[command(after_help = "Example:\n  switchboard config check --config switchboard.toml")]
    Check {
        /// Check only what this command reads: `gateway`, a service name, or `migrate` (the sections
        /// a pod running it loads). Without it, every section is checked.
        #[arg(long = "for", value_name = "COMMAND")]
        command: Option<String>,
    },
    /// Print a commented configuration with every setting and its default.
    #[command(after_help = "Example:\n  switchboard config example > switchboard.toml")]
    Example,
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

pub fn config(cli: &Cli, command: &ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Example => {
            std::io::stdout().write_all(DEFAULTS_TOML.as_bytes())?;
        }
        ConfigCommand::Check { command } => {
            match command {
                Some(command) => load_for(cli, command)?,
                None => load(cli)?,
            };
            writeln!(std::io::stdout(), "configuration is valid")?;
        }
    }
    Ok(())
}

pub async fn migrate(cli: &Cli, services: &[String]) -> anyhow::Result<()> {
    let config = load_for(cli, "migrate")?;
    telemetry::init_logging(&config.log).map_err(anyhow::Error::msg)?;
    let products = parse_products(services)?;
    crate::migrate(&config, &products).await
}

pub async fn up(cli: &Cli) -> anyhow::Result<()> {
    let mut config = load(cli)?;
    telemetry::init_logging(&config.log).map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&config.storage.data_dir)
        .with_context(|| format!("cannot create the data directory {}", config.storage.data_dir.display()))?;
    let nats = local::ensure_nats(&config).await?;
    let token = local::ensure_local_token(&mut config)?;
    let components = Component::available();
    let listeners = Listeners::bind(&config, &components).await?;
    let nats_line = local::describe_nats(&config, nats.is_some());
    let banner = local::banner(&config, token.as_deref(), &nats_line);
    let result = run(config, &components, listeners, Some(banner)).await;
    // The components have stopped: now the server holding their stream may.
    if let Some(nats) = nats {
        nats.stop().await;
    }
    result
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

pub async fn run_one(cli: &Cli, component: Component) -> anyhow::Result<()> {
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
    crate::run(Arc::new(config), components.to_vec(), listeners, stop).await
}
