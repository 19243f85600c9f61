//! A link whose connection silently stops forwarding (a NAT mapping that expired, a middlebox
//! dropping the flow) while new connections would pass is found by keepalive or by a reply
//! overdue, dropped, and redialled: the township's writes reach the county again. While nothing
//! passes at all, the link shows as stalled.

mod common;

use std::time::Duration;

use common::fed::{Federation, code, write_opinion};
use common::proxy::{Proxy, State};
use renda_node::record::RecordId;
use renda_node::store::StoreHandle;
use renda_node::sync::LinkConfig;

const COUNTY: &str = "330411000000";
const TOWNSHIP: &str = "330411101000";

/// The link timeout in these tests: keepalive pings every second, a dead link dropped within
/// three.
const TIMEOUT: Duration = Duration::from_secs(3);

async fn wait_until_held(store: &StoreHandle, id: RecordId, within: Duration, what: &str) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if store.call(move |s| Ok(s.get(&id).is_ok())).await.unwrap() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not arrive within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A county, and a township whose live link to it runs through a proxy the tests control.
async fn start() -> (Federation, Proxy) {
    let config = LinkConfig {
        timeout: TIMEOUT,
        ..LinkConfig::default()
    };
    let mut fed = Federation::start_with(&[(COUNTY, "秀洲区人大常委会")], config).await;
    let proxy = Proxy::start(None, fed.node(COUNTY).addr).await;
    let through = proxy.addr.to_string();
    fed.add(TOWNSHIP, "王店镇人大主席团", move |c| {
        c.parent = Some(through)
    })
    .await;
    (fed, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_connection_is_dropped_and_the_link_redialled() {
    let (fed, proxy) = start().await;
    let town = fed.node(TOWNSHIP).store.clone();
    let county = fed.node(COUNTY).store.clone();

    let first = write_opinion(&town, code(TOWNSHIP), "桥面破损".into()).await;
    wait_until_held(&county, first, Duration::from_secs(10), "the first opinion").await;

    let frozen = proxy.freeze_open();
    assert!(frozen >= 1, "the live link's connection is open");
    let second = write_opinion(&town, code(TOWNSHIP), "冻结之后的意见".into()).await;
    // Keepalive (a ping a second, unanswered for a second) or the overdue acknowledgement
    // (three seconds) drops the frozen link; the township redials through the proxy, whose new
    // connections pass. Before either existed the write waited forever.
    wait_until_held(
        &county,
        second,
        TIMEOUT * 5,
        "an opinion written after the connection froze",
    )
    .await;
    assert!(proxy.live_connections() >= 1, "the township redialled");
}

/// A live link that was idle for longer than the timeout is not dropped when it next has
/// something to send: the deadline runs from when a reply became due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_link_is_not_taken_for_a_stalled_one() {
    let (fed, proxy) = start().await;
    let town = fed.node(TOWNSHIP).store.clone();
    let county = fed.node(COUNTY).store.clone();
    let first = write_opinion(&town, code(TOWNSHIP), "桥面破损".into()).await;
    wait_until_held(&county, first, Duration::from_secs(10), "the first opinion").await;
    let connections = proxy.accepted();
    tokio::time::sleep(TIMEOUT * 3).await;
    let second = write_opinion(&town, code(TOWNSHIP), "空闲之后的意见".into()).await;
    wait_until_held(
        &county,
        second,
        Duration::from_secs(2),
        "a write after idling",
    )
    .await;
    tokio::time::sleep(TIMEOUT).await;
    assert_eq!(
        proxy.accepted(),
        connections,
        "the link was never redialled"
    );
    let peers = town.call(|s| s.peers()).await.unwrap();
    let parent = peers.iter().find(|p| p.peer == code(COUNTY)).unwrap();
    assert_eq!(parent.last_error, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_that_moves_nothing_shows_as_stalled_until_it_recovers() {
    let (fed, proxy) = start().await;
    let town = fed.node(TOWNSHIP).store.clone();
    let county = fed.node(COUNTY).store.clone();
    let first = write_opinion(&town, code(TOWNSHIP), "桥面破损".into()).await;
    wait_until_held(&county, first, Duration::from_secs(10), "the first opinion").await;

    let parent = code(COUNTY);
    let stalled = |town: StoreHandle| async move {
        let peers = town.call(|s| s.peers()).await.unwrap();
        let link = peers.into_iter().find(|p| p.peer == parent).unwrap();
        (link.stalled(chrono::Utc::now(), TIMEOUT), link.lag)
    };
    assert_eq!(stalled(town.clone()).await, (false, 0));

    proxy.set(State::Stall);
    let second = write_opinion(&town, code(TOWNSHIP), "链路停滞时的意见".into()).await;
    let deadline = tokio::time::Instant::now() + TIMEOUT * 5;
    loop {
        let (is_stalled, lag) = stalled(town.clone()).await;
        if is_stalled {
            assert!(lag > 0);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the link was never shown as stalled (lag {lag})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    proxy.set(State::Pass);
    wait_until_held(
        &county,
        second,
        TIMEOUT * 10,
        "the opinion held up by the stall",
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stalled(town.clone()).await != (false, 0) {
        assert!(tokio::time::Instant::now() < deadline, "the link recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
