//! An in-process federation: real nodes (real SQLite files, real store threads) linked by real
//! gRPC over loopback sockets.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

use renda_hub::node::Node;
use renda_node::node::{NewNode, NodeConfig};
use renda_node::record::RecordId;
use renda_node::region::RegionCode;
use renda_node::store::{ListQuery, StoreHandle};
use renda_node::sync::client::sync_with_parent;
use renda_node::sync::{LinkConfig, LinkReport, Mode};
use tempfile::TempDir;

/// ERROR means data or availability is at risk: any ERROR logged while a federation runs fails
/// the test. WARN (a cut link, a refused record) is expected and allowed.
static ERRORS: AtomicUsize = AtomicUsize::new(0);

struct ErrorCounter;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ErrorCounter {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if *event.metadata().level() == tracing::Level::ERROR {
            ERRORS.fetch_add(1, Ordering::SeqCst);
            eprintln!(
                "unexpected ERROR from {}: {:?}",
                event.metadata().target(),
                event
            );
        }
    }
}

pub fn watch_for_errors() {
    use tracing_subscriber::layer::SubscriberExt;
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(ErrorCounter),
        );
    });
}

pub struct FedNode {
    pub region: RegionCode,
    pub name: String,
    pub dir: TempDir,
    pub store: StoreHandle,
    /// Where children dial this node.
    pub addr: SocketAddr,
    /// The running node; its parts stop when it is dropped.
    pub node: Node,
}

/// Starts a node in `dir` the way `renda run` does, with `tune` applied to its configuration
/// (a sync server on a free loopback port unless `tune` says otherwise).
pub async fn start_node(
    dir: &std::path::Path,
    region: RegionCode,
    name: &str,
    tune: impl FnOnce(&mut NodeConfig),
) -> Node {
    let mut config = NodeConfig::new(dir);
    config.init = Some(NewNode {
        region,
        name: name.to_string(),
    });
    config.listen = Some("127.0.0.1:0".parse().unwrap());
    tune(&mut config);
    Node::start(config).await.expect("start the node")
}

pub fn code(s: &str) -> RegionCode {
    RegionCode::parse("region", s).expect("test region code")
}

/// The five-level test federation's regions: 浙江省 嘉兴市 with two districts of two towns each.
pub const NATIONAL: &str = "000000000000";
pub const PROVINCE: &str = "330000000000";
pub const CITY: &str = "330400000000";
pub const XIUZHOU: &str = "330411000000";
pub const NANHU: &str = "330402000000";
pub const WANGDIAN: &str = "330411101000";
pub const XINCHENG: &str = "330411102000";
pub const FENGQIAO: &str = "330402101000";
pub const YUXIN: &str = "330402102000";

/// 1 national, 1 province, 1 city, 2 counties and 4 townships, each a real node.
pub async fn five_levels() -> Federation {
    Federation::start(&[
        (NATIONAL, "全国人大常委会"),
        (PROVINCE, "浙江省人大常委会"),
        (CITY, "嘉兴市人大常委会"),
        (XIUZHOU, "秀洲区人大常委会"),
        (NANHU, "南湖区人大常委会"),
        (WANGDIAN, "王店镇人大主席团"),
        (XINCHENG, "新塍镇人大主席团"),
        (FENGQIAO, "凤桥镇人大主席团"),
        (YUXIN, "余新镇人大主席团"),
    ])
    .await
}

pub struct Federation {
    pub nodes: BTreeMap<RegionCode, FedNode>,
    pub config: LinkConfig,
}

impl Drop for Federation {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert_eq!(
                ERRORS.load(Ordering::SeqCst),
                0,
                "an ERROR was logged while the federation ran"
            );
        }
    }
}

impl Federation {
    /// Starts one node per `(code, name)`, each serving on a free loopback port.
    pub async fn start(specs: &[(&str, &str)]) -> Federation {
        Federation::start_with(specs, LinkConfig::default()).await
    }

    /// Like [`Federation::start`], with the given link settings on every node.
    pub async fn start_with(specs: &[(&str, &str)], config: LinkConfig) -> Federation {
        watch_for_errors();
        let mut fed = Federation {
            nodes: BTreeMap::new(),
            config,
        };
        for (c, name) in specs {
            fed.add(c, name, |_| {}).await;
        }
        fed
    }

    /// Like [`Federation::start`], with every node keeping a live link to its parent, as
    /// `renda run` does; parents are started first.
    pub async fn start_live(specs: &[(&str, &str)]) -> Federation {
        watch_for_errors();
        let mut fed = Federation {
            nodes: BTreeMap::new(),
            config: LinkConfig::default(),
        };
        let mut specs = specs.to_vec();
        specs.sort_by_key(|(c, _)| code(c).level());
        for (c, name) in specs {
            let parent = code(c)
                .parent()
                .and_then(|p| fed.nodes.get(&p))
                .map(|p| p.addr.to_string());
            fed.add(c, name, move |config| config.parent = parent).await;
        }
        fed
    }

    /// Starts node `c` with the federation's link settings and `tune` applied: a sync server
    /// and a dashboard on free loopback ports, no live link unless `tune` names a parent, and
    /// its rollup refreshed only by hand, so nothing writes behind a test's back.
    pub async fn add(&mut self, c: &str, name: &str, tune: impl FnOnce(&mut NodeConfig)) {
        let dir = tempfile::tempdir().expect("temp dir");
        self.add_in(c, name, dir, tune).await;
    }

    /// Like [`Federation::add`], in `dir` (a copy of a fixture's database, or a node's
    /// directory it is started again in).
    pub async fn add_in(
        &mut self,
        c: &str,
        name: &str,
        dir: TempDir,
        tune: impl FnOnce(&mut NodeConfig),
    ) {
        let region = code(c);
        let link = self.config.clone();
        let node = start_node(dir.path(), region, name, move |config| {
            config.link = link;
            config.http = Some("127.0.0.1:0".parse().unwrap());
            config.rollup_every = None;
            tune(config);
        })
        .await;
        self.nodes.insert(
            region,
            FedNode {
                region,
                name: name.to_string(),
                dir,
                store: node.store().clone(),
                addr: node.sync_addr().expect("a sync address"),
                node,
            },
        );
    }

    pub fn node(&self, c: &str) -> &FedNode {
        &self.nodes[&code(c)]
    }

    /// Where node `c`'s dashboard is served: every federation node serves one on a free
    /// loopback port.
    pub async fn serve_dashboard(&self, c: &str) -> SocketAddr {
        self.node(c).node.http_addr().expect("a dashboard address")
    }

    /// The running node `c`'s link settings (its shutdown token, its batch semaphore).
    pub fn link_config(&self, c: &str) -> LinkConfig {
        self.node(c).node.link_config().clone()
    }

    /// One `sync --once` of `child` with its parent.
    pub async fn sync_once(&self, child: &str) -> LinkReport {
        let node = self.node(child);
        let parent = node.region.parent().expect("a parent");
        let addr = self.nodes[&parent].addr.to_string();
        sync_with_parent(
            node.store.clone(),
            node.region,
            &addr,
            Mode::Once,
            node.node.link_config().clone(),
        )
        .await
        .unwrap_or_else(|e| panic!("sync of {child} failed: {e}"))
    }

    /// Every child syncs once from the bottom up, then once from the top down, so anything
    /// written anywhere reaches every node its routes name. Then every node's stored columns
    /// are checked against its documents: a receiver derives them from a replay of the changes
    /// where it can, and they must be what automerge derives.
    pub async fn settle(&self) {
        let mut order = self.children();
        order.sort_by_key(|r| std::cmp::Reverse(r.level()));
        for r in &order {
            self.sync_once(r.as_str()).await;
        }
        for r in order.iter().rev() {
            self.sync_once(r.as_str()).await;
        }
        self.assert_derived_columns_sound().await;
    }

    /// Fails if any node holds a record whose heads, route or list columns differ from what
    /// its document derives.
    pub async fn assert_derived_columns_sound(&self) {
        for (region, node) in &self.nodes {
            let wrong = node.store.call(|s| s.derived_mismatches()).await.unwrap();
            assert!(
                wrong.is_empty(),
                "{region}: columns differ from the documents: {wrong:?}"
            );
            // The own counters every write moved are a count of the records one by one.
            let today = renda_node::calendar::today();
            let wrong = node
                .store
                .call(move |s| s.verify_own_counters(today))
                .await
                .unwrap();
            assert!(
                wrong.is_empty(),
                "{region}: own counters differ from the records: {wrong:?}"
            );
            // Every rollup is held as its newest publication alone, however often it moved.
            let long = node.store.call(|s| s.unpublished_rollups()).await.unwrap();
            assert!(
                long.is_empty(),
                "{region}: rollups held as more than one publication: {long:?}"
            );
        }
    }

    /// Nodes whose parent is also in the federation.
    pub fn children(&self) -> Vec<RegionCode> {
        self.nodes
            .keys()
            .copied()
            .filter(|r| r.parent().is_some_and(|p| self.nodes.contains_key(&p)))
            .collect()
    }

    /// Which nodes hold the record.
    pub async fn holders(&self, id: RecordId) -> Vec<String> {
        let mut out = Vec::new();
        for (region, node) in &self.nodes {
            let held = node
                .store
                .call(move |s| Ok(s.load_doc(&id).is_ok()))
                .await
                .unwrap();
            if held {
                out.push(region.to_string());
            }
        }
        out
    }

    pub async fn count(&self, c: &str, q: ListQuery) -> usize {
        self.node(c)
            .store
            .call(move |s| s.list(&q))
            .await
            .unwrap()
            .len()
    }
}

/// Writes an opinion at `store`'s node (received today's test date) and returns its id.
pub async fn write_opinion(store: &StoreHandle, region: RegionCode, content: String) -> RecordId {
    let fields = renda_node::record::opinion::OpinionFields {
        source: renda_node::record::opinion::OpinionSource::QrCode,
        content,
        place: String::new(),
        region,
        delegate: None,
        activity: None,
        category: None,
    };
    let date = chrono::NaiveDate::from_ymd_opt(2026, 10, 1).expect("valid date");
    store
        .write(move |tx| {
            renda_node::office::add_opinion(
                tx,
                "clerk",
                fields,
                renda_node::office::Contact::default(),
                date,
            )
        })
        .await
        .expect("write an opinion")
        .id
}
