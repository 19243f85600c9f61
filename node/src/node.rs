//! The core of a running node: what every node runs on its own, townships included.
//!
//! [`NodeConfig`] is everything a node is started with, as one value; each default is written
//! once, here or beside the part it tunes. [`Core::open`] opens (or first initialises) the
//! store, loads the node's certificate and fixes the link settings every part shares;
//! [`Core::start`] starts the node's own parts: keeping its rollup fresh and the live link to
//! its parent. What a node serves to others (the sync server for its children, the Query API,
//! the dashboard, metrics) is added by the hub crate's `Node` builder on top of this core, which
//! is the one place a node's parts are wired together.
//!
//! Shutting down is one [`CancellationToken`] every part watches: servers stop accepting and
//! finish the requests in hand, links apply and acknowledge the batches they received and
//! end, and then the store finishes the transaction in hand and closes its file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::pki::PkiError;
use crate::record::rollup::RollupRules;
use crate::region::RegionCode;
use crate::store::{NodeIdentity, Store, StoreError, StoreHandle};
use crate::sync::LinkConfig;

/// Reader threads beside the store's writer, for the dashboard, the Query API and metrics:
/// enough that a slow page does not hold up the next request, few enough for a township PC.
pub const READERS: usize = 4;

/// How long a shutdown waits for the parts to finish what they hold before it stops them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// A node to create on first start, when the data directory holds none.
#[derive(Clone, Debug)]
pub struct NewNode {
    pub region: RegionCode,
    pub name: String,
}

/// The certificate and key the dashboard and metrics are served with over HTTPS.
#[derive(Clone, Debug)]
pub struct HttpsFiles {
    /// The certificate chain in PEM.
    pub cert: PathBuf,
    /// Its private key in PEM.
    pub key: PathBuf,
}

/// Everything a node is started with.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The node's data directory.
    pub data_dir: PathBuf,
    /// Initialise this node if the directory holds none; without it the node must exist.
    pub init: Option<NewNode>,
    /// The parent's sync address; when given and different from the stored one, it replaces it.
    pub parent: Option<String>,
    /// Whether the node keeps a live link to its parent (when it has a parent address).
    pub live_link: bool,
    /// Where children dial this node; no sync server without it.
    pub listen: Option<SocketAddr>,
    /// Where the dashboard is served.
    pub http: Option<SocketAddr>,
    /// Where `/metrics` is served.
    pub metrics: Option<SocketAddr>,
    /// Where the Query API for programs is served (`renda.query.v1`).
    pub query: Option<SocketAddr>,
    /// TLS for the dashboard, metrics and Query API; plain HTTP is for loopback only.
    pub https: Option<HttpsFiles>,
    /// The link settings. Without a certificate here, the one installed in the data
    /// directory's `tls/` is used, if any. Its shutdown token and batch semaphore are replaced
    /// by the node's own.
    pub link: LinkConfig,
    /// What the node's rollup is computed with.
    pub rollup: RollupRules,
    /// How often the rollup is refreshed after writes; `None` leaves it to whoever drives the
    /// node (tests and benches that count writes, `renda rollup`).
    pub rollup_every: Option<Duration>,
    /// When and where the node backs itself up while it runs; `None` for no scheduled backups.
    pub backup: Option<crate::backups::BackupSchedule>,
    /// The share of its certificate's life after which the node asks its parent for a new one
    /// (`[tls] renew_at`); `None` for no renewal over the link.
    pub renew_at: Option<f64>,
}

impl NodeConfig {
    /// A node in `data_dir` with every default: no listeners, a live link if it has a parent.
    pub fn new(data_dir: impl Into<PathBuf>) -> NodeConfig {
        NodeConfig {
            data_dir: data_dir.into(),
            init: None,
            parent: None,
            live_link: true,
            listen: None,
            http: None,
            metrics: None,
            query: None,
            https: None,
            link: LinkConfig::default(),
            rollup: RollupRules::default(),
            rollup_every: Some(crate::rollups::DEFAULT_REFRESH_EVERY),
            backup: None,
            renew_at: Some(crate::renewal::DEFAULT_RENEW_AT),
        }
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The certificate in the data directory's `tls/` could not be used.
    #[error(transparent)]
    Certificate(#[from] PkiError),
    /// A listener could not be bound.
    #[error("cannot serve {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// A part outside this crate (HTTPS settings, a server) refused to start.
    #[error("{0}")]
    Part(Box<dyn std::error::Error + Send + Sync>),
}

/// A node's store, identity and link settings, and the parts it runs on its own. Dropped
/// without [`Core::shutdown`], its parts are told to stop and end on their own.
pub struct Core {
    pub store: StoreHandle,
    pub identity: NodeIdentity,
    /// The settings the node was started with, its link settings completed.
    pub config: NodeConfig,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
    /// The live link to the parent and the token that stops it alone.
    link: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl Core {
    /// Opens the node's store (initialising it first if asked and needed), sets the parent
    /// address if the configuration names another, and completes the link settings.
    pub async fn open(mut config: NodeConfig) -> Result<Core, StartError> {
        let dir = config.data_dir.clone();
        let init = config.init.clone();
        let parent = config.parent.clone();
        let quotas = config.rollup.quotas;
        let store = tokio::task::spawn_blocking(move || -> Result<Store, StoreError> {
            if let Some(new) = &init
                && !dir.join(crate::store::DB_FILE).exists()
            {
                Store::init_with_quotas(&dir, new.region, &new.name, None, quotas)?;
                info!(region = %new.region, dir = %dir.display(), "initialised the node");
            }
            let mut store = Store::open(&dir)?;
            if let Some(new) = &init
                && store.identity().region != new.region
            {
                return Err(StoreError::Invalid(crate::validate::ValidationError::new(
                    "region",
                    format!(
                        "配置写的是 {}，数据目录 {} 中的节点是 {}",
                        new.region,
                        dir.display(),
                        store.identity().region
                    ),
                )));
            }
            if let Some(parent) = &parent
                && store.identity().parent_addr.as_deref() != Some(parent.as_str())
            {
                store.set_parent_addr(parent)?;
            }
            Ok(store)
        })
        .await
        .map_err(|e| StoreError::Io(format!("opening the store did not finish: {e}")))??;
        let identity = store.identity().clone();
        let linked = config.live_link && identity.parent_addr.is_some();
        if config.listen.is_none() && config.http.is_none() && config.query.is_none() && !linked {
            return Err(StoreError::Invalid(crate::validate::ValidationError::new(
                "listen",
                "没有可运行的服务：请用 --listen 接受下级节点、--http 提供看板、--query-listen 提供查询接口，或用 renda attach --parent HOST:PORT 设置上级节点",
            ))
            .into());
        }
        let store = StoreHandle::spawn_with_readers(store, READERS)?;
        if config.link.tls.is_none() {
            match crate::tls::NodeTls::installed(&config.data_dir, identity.region) {
                Ok(Some(tls)) => config.link.tls = Some(Arc::new(tls)),
                Ok(None) => warn!(
                    region = %identity.region,
                    "no certificate in the data directory's tls/: links are plaintext; install one with renda ca issue --out <data dir>/tls"
                ),
                Err(e) => {
                    store.close().await;
                    return Err(e.into());
                }
            }
        }
        // The node states when its certificate ends in its rollup, for the fleet view above.
        let not_after = config.link.tls.as_ref().map(|t| t.not_after());
        if let Err(e) = store
            .write(move |tx| tx.record_certificate(not_after))
            .await
        {
            store.close().await;
            return Err(e.into());
        }
        let shutdown = CancellationToken::new();
        config.link.shutdown = shutdown.clone();
        config.link.prepared = Arc::new(tokio::sync::Semaphore::new(crate::sync::PREPARE_PERMITS));
        let timeout = config.link.timeout;
        if let Err(e) = store.write(move |tx| tx.set_link_timeout(timeout)).await {
            store.close().await;
            return Err(e.into());
        }
        Ok(Core {
            store,
            identity,
            config,
            shutdown,
            tasks: JoinSet::new(),
            link: None,
        })
    }

    /// Reads every page of the database on a connection of its own, so that nothing waits
    /// behind it; damage is also reported to [`StoreHandle::damaged`].
    pub async fn check(&self) -> Result<(), StoreError> {
        let dir = self.config.data_dir.clone();
        let checked =
            tokio::task::spawn_blocking(move || crate::store::check::quick_check(&dir)).await;
        match checked {
            Ok(Ok(())) => {
                info!(region = %self.identity.region, "database check passed");
                // Noted for `renda status` and the fleet view; a damaged file is not written to.
                self.store
                    .call(|s| s.record_check(chrono::Utc::now(), "ok"))
                    .await
            }
            Ok(Err(e)) => {
                tracing::error!(region = %self.identity.region, error = %e, "the database check found damage; stopping");
                if let StoreError::Damaged(damage) = &e {
                    self.store.report_damage(damage.clone());
                }
                Err(e)
            }
            Err(e) => Err(StoreError::Io(format!(
                "the database check did not finish: {e}"
            ))),
        }
    }

    /// The token every part watches; cancelled by [`Core::shutdown`].
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Runs `part` until it ends or the node shuts down; it must end soon after the token is
    /// cancelled.
    pub fn spawn(&mut self, part: impl std::future::Future<Output = ()> + Send + 'static) {
        let span = info_span!("node", region = %self.identity.region);
        self.tasks.spawn(part.instrument(span));
    }

    /// Starts the parts every node runs on its own: the rollup kept fresh, and the live link
    /// to the parent if the node has one and the configuration wants it.
    pub fn start(&mut self) {
        if let Some(every) = self.config.rollup_every {
            let rollups = crate::rollups::keep_fresh(
                self.store.clone(),
                every,
                self.config.rollup,
                self.shutdown.clone(),
            );
            self.spawn(rollups);
        }
        if let Some(schedule) = self.config.backup.clone() {
            let backups = crate::backups::keep_taking(
                self.store.clone(),
                schedule,
                self.identity.region,
                self.shutdown.clone(),
            );
            self.spawn(backups);
        }
        // A node with a certificate and a parent renews the certificate with the parent.
        if let (Some(share), Some(_), Some(addr)) = (
            self.config.renew_at,
            &self.config.link.tls,
            self.identity.parent_addr.clone(),
        ) {
            let renewal = crate::renewal::keep_renewed(
                self.store.clone(),
                self.identity.region,
                self.identity.name.clone(),
                addr,
                self.config.link.clone(),
                share,
                self.shutdown.clone(),
            );
            self.spawn(renewal);
        }
        if self.config.live_link {
            self.resume_link();
        }
    }

    /// The parent's address, if the node has one.
    pub fn parent_addr(&self) -> Option<&str> {
        self.identity.parent_addr.as_deref()
    }

    /// Starts the live link to the parent, if it is not running and the node has a parent.
    pub fn resume_link(&mut self) {
        if self
            .link
            .as_ref()
            .is_some_and(|(_, task)| !task.is_finished())
        {
            return;
        }
        let Some(parent) = self.identity.parent_addr.clone() else {
            return;
        };
        let token = self.shutdown.child_token();
        let config = LinkConfig {
            shutdown: token.clone(),
            ..self.config.link.clone()
        };
        let link = crate::sync::client::keep_linked(
            self.store.clone(),
            self.identity.region,
            parent,
            config,
        );
        let span = info_span!("node", region = %self.identity.region);
        self.link = Some((token, tokio::spawn(link.instrument(span))));
    }

    /// Drains and stops the live link to the parent, as when the line is taken down; the
    /// node goes on working offline until [`Core::resume_link`].
    pub async fn pause_link(&mut self) {
        if let Some((token, task)) = self.link.take() {
            token.cancel();
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                warn!(region = %self.identity.region, "the link to the parent did not drain in time");
            }
        }
    }

    /// Stops every part: servers stop accepting and answer what they hold, links drain, then
    /// the store finishes the transaction in hand and closes the file. Parts still running
    /// after [`SHUTDOWN_GRACE`] are stopped where they are; nothing they wrote is partial, as
    /// every write is one transaction the store thread runs to its end.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        let grace = tokio::time::sleep(SHUTDOWN_GRACE);
        tokio::pin!(grace);
        let mut link = self.link.take().map(|(_, task)| task);
        {
            let (tasks, link) = (&mut self.tasks, &mut link);
            let drained = async move {
                if let Some(task) = link.as_mut() {
                    let _ = task.await;
                }
                // Ended: there is nothing left to stop below.
                *link = None;
                while tasks.join_next().await.is_some() {}
            };
            tokio::select! {
                () = drained => {}
                () = &mut grace => {
                    warn!(region = %self.identity.region, "parts still running after the grace period; stopping them");
                }
            }
        }
        // A part stopped where it was has ended before the store closes, so nothing of this
        // node writes after the close.
        if let Some(task) = link {
            task.abort();
            let _ = task.await;
        }
        self.tasks.shutdown().await;
        self.store.close().await;
        info!(region = %self.identity.region, "node stopped");
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
