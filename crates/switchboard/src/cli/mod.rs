//! The `switchboard` command line: running components (`up`, `gateway`, `sms`, …, `migrate`,
//! `config`) and operating a running system (`send`, the per-service queries, `optout`, `status`,
//! `dlq`, `tail`, `rebuild`, `completions`).
//!
//! Every operator command finds its endpoints the way `switchboard up` binds them: from the same
//! configuration (file and `SWITCHBOARD_*` environment), with loopback in place of a wildcard listen
//! address. Flags override them, for components running elsewhere.

pub mod components;
pub mod dlq;
pub mod examples;
pub mod output;
pub mod query;
pub mod rebuild;
pub mod send;
pub mod status;
pub mod tail;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};
use switchboard_events::Product;
use switchboard_runtime::config::Config;

pub use output::Output;

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Receive a CPaaS provider's webhooks into NATS JetStream; query per-product state over gRPC.",
    after_help = "Examples:\n  switchboard up\n  switchboard send sms:message:status\n  switchboard sms list --status DELIVRD --since 24h\n  switchboard status"
)]
pub struct Cli {
    /// The TOML configuration file. Without one, defaults and SWITCHBOARD_* environment variables apply.
    #[arg(long, short, global = true, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print JSON instead of tables (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process: NATS (started if none answers), the gateway and every service,
    /// with SQLite under the data directory.
    #[command(after_help = "Example:\n  switchboard up")]
    Up,
    /// Run the webhook gateway alone.
    #[command(after_help = "Example:\n  switchboard gateway --config /etc/switchboard/switchboard.toml")]
    Gateway,
    /// Run the sms service alone, or query it (get, list, report).
    #[command(
        after_help = "Examples:\n  switchboard sms --config /etc/switchboard/switchboard.toml   (run the service)\n  switchboard sms get b34e35ad-fe34-4a8b-977c-b21cd76cd7d6:1\n  switchboard sms list --mobile 918921269123 --status DELIVRD --since 24h\n  switchboard sms report --days 7"
    )]
    Sms(query::sms::SmsArgs),
    /// Run the chat service (WhatsApp and RCS) alone, or query it (get, list, conversation, rates).
    #[command(
        after_help = "Examples:\n  switchboard chat   (run the service)\n  switchboard chat get a418d672-9781-4d97-b517-a56f7d95ad8a --channel whatsapp\n  switchboard chat list --to 919019912345 --since 7d\n  switchboard chat conversation 919876543210 --channel whatsapp"
    )]
    Chat(query::chat::ChatArgs),
    /// Run the voice service alone, or query it (get, calls, stats).
    #[command(
        after_help = "Examples:\n  switchboard voice   (run the service)\n  switchboard voice get 1234-1333-12345\n  switchboard voice calls --since 24h --status ANSWER\n  switchboard voice stats --days 7"
    )]
    Voice(query::voice::VoiceArgs),
    /// Run the interact service (messages to virtual numbers) alone, or query it (get, list, keywords).
    #[command(
        after_help = "Examples:\n  switchboard interact   (run the service)\n  switchboard interact list --virtual-number 919019120123\n  switchboard interact keywords --days 30"
    )]
    Interact(query::interact::InteractArgs),
    /// Run the contacts service alone, or query it (get, list, history).
    #[command(
        after_help = "Examples:\n  switchboard contacts   (run the service)\n  switchboard contacts get demo@gmail.com\n  switchboard contacts list --attr membership=platinum\n  switchboard contacts history demo@gmail.com"
    )]
    Contacts(query::contacts::ContactsArgs),
    /// Is a number opted out of a product (and sender)?
    #[command(
        subcommand,
        after_help = "Example:\n  switchboard optout check 917002088123 --product sms --sender DEMO12"
    )]
    Optout(query::optout::OptoutCommand),
    /// Post an event to the gateway, as the provider would: a bundled example or your own body.
    #[command(
        after_help = "Examples:\n  switchboard send sms:message:status\n  switchboard send whatsapp:message:in my-inbound.json\n  cat body.json | switchboard send voice:message:out -\n  switchboard send sms:message:status --count 1000 --rate 200 --distinct\n  switchboard send --list"
    )]
    Send(send::SendArgs),
    /// The event stream and its consumers, dead letters, and each component's readiness.
    #[command(
        after_help = "Examples:\n  switchboard status\n  switchboard status --admin gateway=http://gateway:9090 --admin sms=http://sms:9090 --json"
    )]
    Status(status::StatusArgs),
    /// Inspect, replay, resubmit and purge dead letters.
    #[command(
        subcommand,
        after_help = "Examples:\n  switchboard dlq list\n  switchboard dlq show 3\n  switchboard dlq replay --all\n  switchboard dlq resubmit 1 --body fixed.json\n  switchboard dlq purge --all --yes"
    )]
    Dlq(dlq::DlqCommand),
    /// Follow the events the stream stored: live, or from a sequence or time.
    #[command(
        after_help = "Examples:\n  switchboard tail\n  switchboard tail 'sms.>'\n  switchboard tail 'whatsapp.message.*' --grep 919876543210\n  switchboard tail --from-sequence 1 --count 10"
    )]
    Tail(tail::TailArgs),
    /// Rebuild a service's tables from the event stream into a new database, then swap it in.
    #[command(
        after_help = "Examples:\n  switchboard rebuild sms                          (into <sms database file>.rebuild; prints the swap steps)\n  switchboard rebuild sms --swap                   (with the sms service stopped: rebuild and swap in)\n  switchboard rebuild chat --into postgres://switchboard@db/chat_rebuilt\n  switchboard rebuild voice --into /var/lib/switchboard/voice.new.db --json"
    )]
    Rebuild(rebuild::RebuildArgs),
    /// Apply database migrations and exit (e.g. in a Kubernetes init container before a service starts).
    #[command(after_help = "Example:\n  switchboard migrate sms")]
    Migrate {
        /// Services to migrate; all when none is named.
        services: Vec<String>,
    },
    /// Configuration helpers.
    #[command(subcommand)]
    Config(components::ConfigCommand),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  switchboard completions bash > /etc/bash_completion.d/switchboard\n  switchboard completions zsh > \"${fpath[1]}/_switchboard\""
    )]
    Completions {
        /// The shell to write completions for.
        shell: clap_complete::Shell,
    },
}

/// Options shared by the commands that query one service over gRPC.
#[derive(Debug, Clone, Args)]
pub struct Endpoint {
    /// The service's gRPC address. Default: the configured `grpc.listen`, on loopback when it is a
    /// wildcard (where `switchboard up` serves every service).
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint: Option<String>,
}

impl Endpoint {
    /// The endpoint given, the `SWITCHBOARD_<SERVICE>_ENDPOINT` environment variable, or the configured
    /// gRPC address.
    pub fn resolve(&self, cli: &CliContext, product: Product) -> String {
        if let Some(endpoint) = &self.endpoint {
            return with_scheme(endpoint);
        }
        let variable = format!("SWITCHBOARD_{}_ENDPOINT", product.name().to_uppercase());
        if let Ok(endpoint) = std::env::var(variable)
            && !endpoint.is_empty()
        {
            return with_scheme(&endpoint);
        }
        format!("http://{}", reachable(cli.config.grpc.listen))
    }
}

/// What every operator command reads: the configuration and the output mode.
#[derive(Debug)]
pub struct CliContext {
    pub config: Config,
    pub output: Output,
}

/// A listen address as a client reaches it: a wildcard becomes loopback.
pub fn reachable(listen: SocketAddr) -> SocketAddr {
    if listen.ip().is_unspecified() {
        let loopback = match listen.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        };
        SocketAddr::new(loopback, listen.port())
    } else {
        listen
    }
}

/// Connects to the configured NATS once, within `nats.connect_timeout`; an error names the server.
pub async fn connect_nats(config: &Config) -> anyhow::Result<async_nats::Client> {
    let url = || switchboard_runtime::nats::redacted_url(&config.nats.url);
    tokio::time::timeout(
        config.nats.connect_timeout,
        switchboard_runtime::nats::connect_once(&config.nats, "cli"),
    )
    .await
    .map_err(|_| anyhow::anyhow!("timed out connecting to NATS at {}", url()))?
    .map_err(|error| anyhow::anyhow!("cannot reach NATS at {}: {error}", url()))
}

/// Connects to NATS and opens the stream `name` (`what` names it in the error: "stream",
/// "dead-letter stream"), saying at which server it is missing.
pub async fn open_stream(
    config: &Config,
    name: &str,
    what: &str,
) -> anyhow::Result<(async_nats::jetstream::Context, async_nats::jetstream::stream::Stream)> {
    let client = connect_nats(config).await?;
    let jetstream = switchboard_runtime::nats::jetstream(client, &config.nats);
    let stream = jetstream.get_stream(name).await.map_err(|error| {
        anyhow::anyhow!(
            "no {what} {name} at {} (has any component started there?): {error}",
            switchboard_runtime::nats::redacted_url(&config.nats.url)
        )
    })?;
    Ok((jetstream, stream))
}

fn with_scheme(address: &str) -> String {
    if address.contains("://") { address.to_owned() } else { format!("http://{address}") }
}

/// Loads the sections an operator command reads: NATS, the listen addresses, and storage (for the
/// local gateway token). Gateway sources and service databases are not needed, so a workstation
/// without their secrets can still run them.
fn load_operator_config(cli: &Cli) -> anyhow::Result<Config> {
    let sections = ["nats", "admin", "grpc", "storage"];
    let mut config = Config::load_sections(cli.config.as_deref(), Some(&sections))
        .map_err(|errors| anyhow::anyhow!("{errors}"))?;
    // The gateway's listen address is read on its own: its sources may hold unreadable secrets.
    if let Ok(gateway) = Config::load_sections(cli.config.as_deref(), Some(&["gateway"])) {
        config.gateway.listen = gateway.gateway.listen;
    }
    Ok(config)
}

pub async fn execute(cli: Cli) -> anyhow::Result<()> {
    let operator = |cli: &Cli| -> anyhow::Result<CliContext> {
        Ok(CliContext { config: load_operator_config(cli)?, output: Output::new(cli.json) })
    };
    match &cli.command {
        Command::Up => components::up(&cli).await,
        Command::Gateway => components::run_one(&cli, crate::Component::Gateway).await,
        Command::Sms(args) => match &args.command {
            None => components::run_one(&cli, crate::Component::Service(Product::Sms)).await,
            Some(command) => query::sms::run(&operator(&cli)?, &args.endpoint, command).await,
        },
        Command::Chat(args) => match &args.command {
            None => components::run_one(&cli, crate::Component::Service(Product::Chat)).await,
            Some(command) => query::chat::run(&operator(&cli)?, &args.endpoint, command).await,
        },
        Command::Voice(args) => match &args.command {
            None => components::run_one(&cli, crate::Component::Service(Product::Voice)).await,
            Some(command) => query::voice::run(&operator(&cli)?, &args.endpoint, command).await,
        },
        Command::Interact(args) => match &args.command {
            None => components::run_one(&cli, crate::Component::Service(Product::Interact)).await,
            Some(command) => query::interact::run(&operator(&cli)?, &args.endpoint, command).await,
        },
        Command::Contacts(args) => match &args.command {
            None => components::run_one(&cli, crate::Component::Service(Product::Contacts)).await,
            Some(command) => query::contacts::run(&operator(&cli)?, &args.endpoint, command).await,
        },
        Command::Optout(command) => query::optout::run(&operator(&cli)?, command).await,
        Command::Send(args) => send::run(&operator(&cli)?, args).await,
        Command::Status(args) => status::run(&operator(&cli)?, args).await,
        Command::Dlq(command) => dlq::run(&operator(&cli)?, command).await,
        Command::Tail(args) => tail::run(&operator(&cli)?, args).await,
        Command::Rebuild(args) => rebuild::run(&cli, args).await,
        Command::Migrate { services } => components::migrate(&cli, services).await,
        Command::Config(command) => components::config(&cli, command),
        Command::Completions { shell } => {
            let mut command = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut command, "switchboard", &mut script);
            std::io::Write::write_all(&mut std::io::stdout(), &script)?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn wildcard_listen_addresses_become_loopback() {
        let wildcard: SocketAddr = "0.0.0.0:50051".parse().expect("address");
        assert_eq!(reachable(wildcard).to_string(), "127.0.0.1:50051");
        let specific: SocketAddr = "10.0.0.7:9090".parse().expect("address");
        assert_eq!(reachable(specific), specific);
        assert_eq!(with_scheme("sms:50051"), "http://sms:50051");
    }
}
