//! [`Node`]: the one place a node's parts are wired together. `renda run`, `renda demo`, the
//! benches and the tests all start nodes here.
//!
//! From one [`NodeConfig`] it opens the store ([`Core::open`]), binds every listener the
//! configuration names (so a taken port fails the start, not a later request), serves the
//! dashboard and metrics at once, reads the database through ([`Core::check`]) and only then
//! serves sync to children and starts the node's own parts (rollups, the live link). A damaged
//! file stops the start before any peer is served.
//!
//! Nothing here is process-wide: two nodes in one process share the runtime and nothing else.

use std::net::SocketAddr;
use std::sync::Arc;

use renda_node::node::{Core, NodeConfig, StartError};
use renda_node::region::RegionCode;
use renda_node::store::{StoreError, StoreHandle};
use renda_node::sync::LinkConfig;
use tracing::error;

/// A running node.
pub struct Node {
    core: Core,
    sync_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    query_addr: Option<SocketAddr>,
    https: bool,
}

/// The node's TLS server settings, from one certificate: HTTP/1.1 for the dashboard and
/// metrics, HTTP/2 for the Query API.
struct Tls {
    http: Arc<rustls::ServerConfig>,
    grpc: Arc<rustls::ServerConfig>,
}

/// Where each part listens, once bound.
struct Started {
    sync_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    query_addr: Option<SocketAddr>,
    https: bool,
}

fn part_error(e: impl std::error::Error + Send + Sync + 'static) -> StartError {
    StartError::Part(Box::new(e))
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })
}

impl Node {
    /// Starts the node `config` describes; see the module's description for the order.
    pub async fn start(config: NodeConfig) -> Result<Node, StartError> {
        // Plain HTTP only on loopback: logins and session cookies must not cross a network in
        // clear, and the metrics say which links are down. Checked before anything is opened.
        let https = match &config.https {
            Some(files) => Some(Tls {
                http: crate::https::server_config(&files.cert, &files.key).map_err(part_error)?,
                grpc: crate::https::grpc_server_config(&files.cert, &files.key)
                    .map_err(part_error)?,
            }),
            None => None,
        };
        for (what, addr) in [
            ("http", config.http),
            ("metrics", config.metrics),
            ("query", config.query),
        ] {
            if let Some(addr) = addr {
                crate::https::check_plain(what, addr, https.is_some()).map_err(part_error)?;
            }
        }
        let mut core = Core::open(config).await?;
        match Node::start_parts(&mut core, https).await {
            Ok(Started {
                sync_addr,
                http_addr,
                metrics_addr,
                query_addr,
                https,
            }) => Ok(Node {
                core,
                sync_addr,
                http_addr,
                metrics_addr,
                query_addr,
                https,
            }),
            Err(e) => {
                core.shutdown().await;
                Err(e)
            }
        }
    }

    async fn start_parts(core: &mut Core, tls: Option<Tls>) -> Result<Started, StartError> {
        let https = tls.as_ref().map(|t| t.http.clone());
        let region = core.identity.region;
        let shutdown = core.shutdown_token();
        let sync_listener = match core.config.listen {
            Some(addr) => Some(bind("sync", addr).await?),
            None => None,
        };
        let mut http_addr = None;
        if let Some(addr) = core.config.http {
            let listener = bind("the dashboard", addr).await?;
            http_addr = Some(listener.local_addr().map_err(part_error)?);
            let dashboard = crate::dashboard::Dashboard::new(
                core.store.clone(),
                region,
                core.identity.name.clone(),
            )
            .with_policy(core.config.link.policy);
            let (tls, stop) = (https.clone(), shutdown.clone().cancelled_owned());
            core.spawn(async move {
                let served = match tls {
                    Some(tls) => crate::dashboard::serve_tls(listener, dashboard, tls, stop).await,
                    None => crate::dashboard::serve(listener, dashboard, stop).await,
                };
                if let Err(e) = served {
                    error!(error = %e, "the dashboard stopped");
                }
            });
        }
        let mut metrics_addr = None;
        if let Some(addr) = core.config.metrics {
            let listener = bind("metrics", addr).await?;
            metrics_addr = Some(listener.local_addr().map_err(part_error)?);
            let metrics = crate::metrics::Metrics::new(
                core.store.clone(),
                region,
                core.config.link.tls.clone(),
            );
            let (tls, stop) = (https.clone(), shutdown.clone().cancelled_owned());
            core.spawn(async move {
                if let Err(e) = crate::metrics::serve(listener, metrics, tls, stop).await {
                    error!(error = %e, "the metrics endpoint stopped");
                }
            });
        }
        // Sync is served, and the link to the parent started, only once the database has been
        // read through; the dashboard and metrics answer meanwhile.
        core.check().await?;
        let mut sync_addr = None;
        if let Some(listener) = sync_listener {
            sync_addr = Some(listener.local_addr().map_err(part_error)?);
            let service = crate::sync_server::SyncService::new(
                core.store.clone(),
                region,
                core.config.link.clone(),
            );
            let stop = shutdown.clone().cancelled_owned();
            core.spawn(async move {
                if let Err(e) = crate::sync_server::serve(listener, service, stop).await {
                    error!(error = %e, "the sync server stopped");
                }
            });
        }
        let mut query_addr = None;
        if let Some(addr) = core.config.query {
            let listener = bind("the Query API", addr).await?;
            query_addr = Some(listener.local_addr().map_err(part_error)?);
            let api = crate::query_api::QueryApi::new(
                core.store.clone(),
                &core.identity,
                core.config.link.versions,
                core.config.link.tls.clone(),
            );
            let (tls, stop) = (
                tls.as_ref().map(|t| t.grpc.clone()),
                shutdown.clone().cancelled_owned(),
            );
            core.spawn(async move {
                if let Err(e) = crate::query_api::serve(listener, api, tls, stop).await {
                    error!(error = %e, "the Query API stopped");
                }
            });
        }
        core.start();
        Ok(Started {
            sync_addr,
            http_addr,
            metrics_addr,
            query_addr,
            https: https.is_some(),
        })
    }

    /// The node's store.
    pub fn store(&self) -> &StoreHandle {
        &self.core.store
    }

    /// The node's region.
    pub fn region(&self) -> RegionCode {
        self.core.identity.region
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.core.identity.name
    }

    /// The parent's sync address, if the node has one.
    pub fn parent_addr(&self) -> Option<&str> {
        self.core.parent_addr()
    }

    /// The link settings every link of this node uses (its certificate, timeouts, shutdown).
    pub fn link_config(&self) -> &LinkConfig {
        &self.core.config.link
    }

    /// What this node's rollup is computed with, its certificate's end among them.
    pub fn rollup_rules(&self) -> &renda_node::record::rollup::RollupRules {
        &self.core.config.rollup
    }

    /// Where children dial this node, once bound (port 0 in the configuration picks one).
    pub fn sync_addr(&self) -> Option<SocketAddr> {
        self.sync_addr
    }

    /// Where the dashboard is served.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Where `/metrics` is served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Where the Query API is served.
    pub fn query_addr(&self) -> Option<SocketAddr> {
        self.query_addr
    }

    /// Whether the dashboard and metrics are served over HTTPS.
    pub fn https(&self) -> bool {
        self.https
    }

    /// Takes the live link to the parent down, draining it, as when a township's line drops.
    pub async fn pause_link(&mut self) {
        self.core.pause_link().await;
    }

    /// Brings the live link to the parent back up.
    pub fn resume_link(&mut self) {
        self.core.resume_link();
    }

    /// Resolves when the node can no longer run: its database was found damaged.
    pub async fn failed(&self) -> StoreError {
        let mut damaged = self.core.store.damaged();
        match damaged.wait_for(Option::is_some).await {
            Ok(found) => match found.clone() {
                Some(damage) => StoreError::Damaged(damage),
                None => StoreError::Closed,
            },
            Err(_) => StoreError::Closed,
        }
    }

    /// Stops the node: servers stop accepting and finish what they hold, links drain, then the
    /// store finishes the transaction in hand and closes.
    pub async fn shutdown(self) {
        self.core.shutdown().await;
    }
}
