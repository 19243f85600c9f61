//! An in-process federation: real nodes (real SQLite files, real store threads) linked by real
//! gRPC over loopback sockets.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

use renda_hub::sync_server::{SyncService, bind, serve};
use renda_node::record::RecordId;
use renda_node::region::RegionCode;
use renda_node::store::{ListQuery, Store, StoreHandle};
use renda_node::sync::client::sync_with_parent;
use renda_node::sync::{LinkConfig, LinkReport, Mode};
use tempfile::TempDir;
use tokio::task::JoinHandle;

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

fn watch_for_errors() {
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
    server: JoinHandle<()>,
}

impl Drop for FedNode {
    fn drop(&mut self) {
        self.server.abort();
    }
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
        let mut nodes = BTreeMap::new();
        for (c, name) in specs {
            let region = code(c);
            let dir = tempfile::tempdir().expect("temp dir");
            let store = Store::init(dir.path(), region, name, None).expect("init node");
            let store = StoreHandle::spawn(store).expect("store thread");
            let listener = bind("127.0.0.1:0".parse().unwrap()).await.expect("bind");
            let addr = listener.local_addr().unwrap();
            let service = SyncService::new(store.clone(), region, config.clone());
            let server = tokio::spawn(async move {
                let _ = serve(listener, service, std::future::pending()).await;
            });
            nodes.insert(
                region,
                FedNode {
                    region,
                    name: name.to_string(),
                    dir,
                    store,
                    addr,
                    server,
                },
            );
        }
        Federation { nodes, config }
    }

    pub fn node(&self, c: &str) -> &FedNode {
        &self.nodes[&code(c)]
    }

    /// Serves a node's dashboard on a free loopback port for the rest of the test.
    pub async fn serve_dashboard(&self, c: &str) -> SocketAddr {
        use renda_hub::dashboard::{self, Dashboard};
        let node = self.node(c);
        let listener = dashboard::bind("127.0.0.1:0".parse().unwrap())
            .await
            .expect("bind the dashboard");
        let addr = listener.local_addr().unwrap();
        let d = Dashboard::new(node.store.clone(), node.region, node.name.clone());
        tokio::spawn(dashboard::serve(listener, d, std::future::pending()));
        addr
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
            self.config.clone(),
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
                .call(move |s| Ok(s.get(&id).is_ok()))
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
