//! A node's life as the `Node` builder runs it: started from one configuration, every part up,
//! and a graceful shutdown that drains the live link, lets the store finish, closes the file and
//! frees the ports. Two nodes in one process share nothing but the runtime.

mod common;

use std::time::Duration;

use common::fed::{Federation, XIUZHOU, code, start_node, write_opinion};
use renda_node::node::SHUTDOWN_GRACE;
use renda_node::record::RecordKind;
use renda_node::store::{ListQuery, Store, StoreError};

const TOWNSHIP: &str = "330411101000";

async fn opinions(store: &renda_node::store::StoreHandle) -> usize {
    store
        .call(|s| {
            s.list(&ListQuery {
                kind: Some(RecordKind::Opinion),
                ..ListQuery::default()
            })
        })
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_the_link_closes_the_store_and_frees_the_ports() {
    // The empty federation fails the test on any ERROR logged meanwhile.
    let _errors = Federation::start(&[]).await;
    let (county_dir, town_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let county = start_node(
        county_dir.path(),
        code(XIUZHOU),
        "秀洲区人大常委会",
        |c| {
            c.http = Some("127.0.0.1:0".parse().unwrap());
            c.metrics = Some("127.0.0.1:0".parse().unwrap());
        },
    )
    .await;
    let parent = county.sync_addr().unwrap().to_string();
    let town = start_node(
        town_dir.path(),
        code(TOWNSHIP),
        "王店镇人大主席团",
        move |c| {
            c.listen = None;
            c.parent = Some(parent);
        },
    )
    .await;
    assert_eq!(
        town.parent_addr(),
        county.sync_addr().map(|a| a.to_string()).as_deref()
    );

    // The live link carries writes up.
    for n in 0..20 {
        write_opinion(town.store(), code(TOWNSHIP), format!("第{n}条")).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while opinions(county.store()).await < 20 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the live link never delivered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Two nodes in one process share no link state: each has its own batch permits.
    assert!(!std::sync::Arc::ptr_eq(
        &town.link_config().prepared,
        &county.link_config().prepared
    ));

    // Shutdown ends every part because it was told to, well before the grace period would
    // have cut them off, and closes the store: later calls are refused, and SQLite has folded
    // its write-ahead log back into the file, as it does when the last connection closes.
    let town_store = town.store().clone();
    let (http, metrics, sync) = (
        county.http_addr().unwrap(),
        county.metrics_addr().unwrap(),
        county.sync_addr().unwrap(),
    );
    let county_store = county.store().clone();
    for node in [town, county] {
        tokio::time::timeout(SHUTDOWN_GRACE - Duration::from_secs(2), node.shutdown())
            .await
            .expect("every part ends on the shutdown token");
    }
    for (store, dir) in [(&town_store, &town_dir), (&county_store, &county_dir)] {
        assert!(matches!(
            store.call(|s| s.last_seq()).await,
            Err(StoreError::Closed)
        ));
        assert!(
            !dir.path().join("renda.sqlite-wal").exists(),
            "the database was closed"
        );
    }
    for addr in [http, metrics, sync] {
        tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("{addr} is still held after shutdown: {e}"));
    }

    // What was acknowledged is in the files.
    let reopened = Store::open(county_dir.path()).unwrap();
    assert_eq!(
        reopened
            .list(&ListQuery {
                kind: Some(RecordKind::Opinion),
                ..ListQuery::default()
            })
            .unwrap()
            .len(),
        20
    );
}

/// A node asked to run nothing (no listener, no dashboard, no parent) is refused with the
/// field and the ways to give it something to do; nothing is left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_nothing_to_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = renda_node::node::NodeConfig::new(dir.path());
    config.init = Some(renda_node::node::NewNode {
        region: code(TOWNSHIP),
        name: "王店镇人大主席团".into(),
    });
    let err = renda_hub::node::Node::start(config)
        .await
        .err()
        .expect("nothing to run");
    let text = err.to_string();
    assert!(
        text.contains("listen") && text.contains("renda attach"),
        "{text}"
    );
}

/// A township whose parent never answers (its line drops packets: the connection is made and
/// nothing comes back) stops at once when asked: a link still dialling has nothing to drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_dialling_a_silent_parent_stops_at_once() {
    let _errors = Federation::start(&[]).await;
    // Accepts connections into its backlog and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let parent = silent.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let town = start_node(
        dir.path(),
        code(TOWNSHIP),
        "王店镇人大主席团",
        move |c| {
            c.listen = None;
            c.parent = Some(parent);
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::time::timeout(renda_node::sync::DRAIN_TIMEOUT / 2, town.shutdown())
        .await
        .expect("a link that never opened is given up at once");
}
