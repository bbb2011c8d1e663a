//! The `switchboard` process: runs any set of components (the gateway, the product services) on one
//! platform, with one admin port and, for the services, one gRPC port.
//!
//! [`run`] is what both the binary and the end-to-end tests call: the binary passes the configured
//! ports and the process's stop signal; tests pass port-0 listeners and their own token.
#![forbid(unsafe_code)]

pub mod cli;
pub mod local;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use switchboard_events::Product;
use switchboard_runtime::tokio_util::sync::CancellationToken;
use switchboard_runtime::{Config, Platform, Readiness, admin};
use switchboard_service::grpc;
use switchboard_service::{ServiceDescriptor, ServiceHost};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tonic::service::RoutesBuilder;

/// A part of Switchboard that can run in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Gateway,
    Service(Product),
}

impl Component {
    pub fn name(self) -> &'static str {
        match self {
            Component::Gateway => switchboard_gateway::COMPONENT,
            Component::Service(product) => product.name(),
        }
    }

    /// Every component this build can run.
    pub fn available() -> Vec<Component> {
        let mut components = vec![Component::Gateway];
        components.extend(implemented_services().into_iter().map(Component::Service));
        components
    }
}

/// The product services this build runs: all of them.
pub fn implemented_services() -> Vec<Product> {
    SERVICES.iter().map(|service| service.product).collect()
}

/// The sockets a process serves on. A component that needs a listener it was not given is an error.
#[derive(Debug)]
pub struct Listeners {
    pub admin: TcpListener,
    pub gateway: Option<TcpListener>,
    pub grpc: Option<TcpListener>,
}

impl Listeners {
    /// Binds the configured addresses for `components`.
    pub async fn bind(config: &Config, components: &[Component]) -> anyhow::Result<Listeners> {
        async fn bind(address: std::net::SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
            TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address} ({what})"))
        }
        let admin = bind(config.admin.listen, "admin").await?;
        let gateway = if components.contains(&Component::Gateway) {
            Some(bind(config.gateway.listen, "gateway").await?)
        } else {
            None
        };
        let grpc = if components.iter().any(|component| matches!(component, Component::Service(_))) {
            Some(bind(config.grpc.listen, "grpc").await?)
        } else {
            None
        };
        Ok(Listeners { admin, gateway, grpc })
    }
}

/// Runs `components` until `stop` is cancelled, then shuts down in order: readiness turns false,
/// (after `shutdown.drain_delay`) servers stop accepting and finish what they have, consumers finish
/// their batch, databases close, and the admin port closes last.
pub async fn run(
    config: Arc<Config>,
    components: Vec<Component>,
    listeners: Listeners,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let readiness = Readiness::default();
    let admin_stop = CancellationToken::new();
    let admin_task = tokio::spawn(admin::serve(listeners.admin, readiness.clone(), admin_stop.clone()));
    // Components stop on `shutdown`, which follows `stop` after the drain delay.
    let shutdown = CancellationToken::new();
    let drain = tokio::spawn(drain_then_shutdown(
        stop.clone(),
        shutdown.clone(),
        readiness.clone(),
        config.shutdown.drain_delay,
    ));

    let name = if components.len() == 1 { components[0].name() } else { "switchboard" };
    let outcome = run_components(
        config.clone(),
        name,
        &components,
        listeners.gateway,
        listeners.grpc,
        readiness,
        shutdown.clone(),
    )
    .await;
    // Whatever happened, stop everything (a failed component takes the process down).
    stop.cancel();
    shutdown.cancel();
    let _ = drain.await;
    admin_stop.cancel();
    match admin_task.await {
        Ok(Err(error)) => tracing::warn!(%error, "admin server failed"),
        Err(error) => tracing::warn!(%error, "admin server task failed"),
        Ok(Ok(())) => {}
    }
    outcome
}

async fn drain_then_shutdown(
    stop: CancellationToken,
    shutdown: CancellationToken,
    readiness: Readiness,
    drain_delay: Duration,
) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = shutdown.cancelled() => {}
    }
    readiness.begin_shutdown();
    if !drain_delay.is_zero() && !shutdown.is_cancelled() {
        tracing::info!(?drain_delay, "not ready; draining before stopping");
        tokio::select! {
            _ = tokio::time::sleep(drain_delay) => {}
            _ = shutdown.cancelled() => {}
        }
    }
    shutdown.cancel();
}

async fn run_components(
    config: Arc<Config>,
    name: &str,
    components: &[Component],
    gateway_listener: Option<TcpListener>,
    grpc_listener: Option<TcpListener>,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let platform = Platform::start(config.clone(), name, readiness, shutdown.clone()).await?;
    let mut servers: JoinSet<anyhow::Result<()>> = JoinSet::new();
    let mut hosts: Vec<ServiceHost> = Vec::new();
    let result = async {
        if components.contains(&Component::Gateway) {
            let listener = gateway_listener.context("the gateway needs a listener")?;
            let router = switchboard_gateway::build(&platform)?;
            servers.spawn(switchboard_gateway::serve(router, listener, shutdown.clone()));
        }
        let mut routes = RoutesBuilder::default();
        let mut service_names = Vec::new();
        for component in components {
            if let Component::Service(product) = component {
                let service = descriptor(*product);
                hosts.push((service.start)(&platform, &mut routes).await?);
                service_names.push(service.grpc_service);
            }
        }
        if !hosts.is_empty() {
            let listener = grpc_listener.context("the services need a gRPC listener")?;
            let routes = routes.routes();
            let grpc_config = config.grpc.clone();
            let grpc_shutdown = shutdown.clone();
            servers.spawn(async move {
                grpc::serve(listener, routes, &service_names, &grpc_config, grpc_shutdown).await
            });
        }
        platform.readiness.mark_started();
        tracing::info!(components = ?components.iter().map(|component| component.name()).collect::<Vec<_>>(), "running");
        // Run until shutdown, or until a server fails.
        tokio::select! {
            _ = shutdown.cancelled() => Ok(()),
            Some(failed) = servers.join_next() => match failed {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(error),
                Err(error) => Err(anyhow::anyhow!("server task failed: {error}")),
            },
        }
    }
    .await;
    shutdown.cancel();
    let timeout = config.shutdown.timeout;
    let finishing = async {
        while let Some(server) = servers.join_next().await {
            match server {
                Ok(Err(error)) => tracing::warn!(%error, "server stopped with an error"),
                Err(error) => tracing::warn!(%error, "server task failed"),
                Ok(Ok(())) => {}
            }
        }
        for host in hosts {
            host.finish().await;
        }
        if let Err(error) = platform.client.flush().await {
            tracing::warn!(%error, "cannot flush nats");
        }
    };
    if tokio::time::timeout(timeout, finishing).await.is_err() {
        tracing::warn!(?timeout, "shutdown did not finish in time; exiting anyway");
    }
    result
}

/// Every product service this build runs. Adding a service: its crate exports a `DESCRIPTOR`, and
/// it gets one line here.
pub const SERVICES: [&ServiceDescriptor; 5] = [
    &switchboard_sms::DESCRIPTOR,
    &switchboard_chat::DESCRIPTOR,
    &switchboard_voice::DESCRIPTOR,
    &switchboard_interact::DESCRIPTOR,
    &switchboard_contacts::DESCRIPTOR,
];

/// The descriptor of `product`'s service.
pub fn descriptor(product: Product) -> &'static ServiceDescriptor {
    SERVICES
        .into_iter()
        .find(|descriptor| descriptor.product == product)
        .unwrap_or_else(|| unreachable!("every product has a service in SERVICES (checked by a test)"))
}

/// Applies the given services' migrations and returns (for `switchboard migrate`, e.g. in an init container).
pub async fn migrate(config: &Config, products: &[Product]) -> anyhow::Result<()> {
    for product in products {
        let service = config.service(*product);
        let url = service.database_url(*product, &config.storage.data_dir);
        let settings = switchboard_service::host::pool_settings(service, 1);
        let database =
            switchboard_store::Database::open(url.expose(), settings, descriptor(*product).migrations)
                .await
                .with_context(|| format!("migrating the {product} database"))?;
        tracing::info!(service = %product, backend = database.backend().name(), "migrations applied");
        database.close().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_product_has_one_consistent_service() {
        assert_eq!(ServiceDescriptor::check_list(&SERVICES), Vec::<String>::new());
        for product in Product::ALL {
            assert_eq!(descriptor(product).product, product);
        }
    }
}
