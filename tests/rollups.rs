//! Rollups across a real five-level federation: every number at the city and the national node
//! equals a direct count over the records that produced it, and a county's published opinion
//! figures arrive unchanged at the city.
//!
//! The generated federation is random; the seed is printed, and `RENDA_SEED=<n>` replays it.

mod common;

use std::collections::BTreeMap;

use chrono::Utc;
use common::data::{add_opinion, populate, roll_up, rollup_at};
use common::fed::{
    CITY, FENGQIAO, Federation, NANHU, NATIONAL, WANGDIAN, XINCHENG, XIUZHOU, YUXIN, code,
    five_levels, write_opinion,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use renda_node::record::activity::ActivityKind;
use renda_node::record::rollup::{Rollup, RollupRules};
use renda_node::record::{Body, RecordId, RecordKind};
use renda_node::region::RegionCode;
use renda_node::store::ListQuery;

/// What the rollups should say, counted straight from the records homed at `homes`: each
/// record loaded and its workflow folded, not read from the projections rollups use.
#[derive(Debug, Default, PartialEq)]
struct Direct {
    opinions: BTreeMap<String, u64>,
    suggestions: BTreeMap<String, u64>,
    activities: BTreeMap<String, BTreeMap<String, u64>>,
    sign_ins: u64,
    constituents_received: u64,
    delegates: u64,
    /// Delegates, and those who already joined 3 receptions and made 1 suggestion this year.
    delegate_quota: (u64, u64),
}

async fn direct_count(fed: &Federation, homes: &[RegionCode]) -> Direct {
    use chrono::Datelike;
    let mut direct = Direct::default();
    // The year in China, as the rollup judges it: for the last eight hours of a UTC year
    // China is already in the next.
    let this_year = renda_node::calendar::today().year();
    let mut receptions: BTreeMap<RecordId, u32> = BTreeMap::new();
    let mut suggestions: BTreeMap<RecordId, u32> = BTreeMap::new();
    let mut delegates = Vec::new();
    for home in homes {
        let store = fed.nodes[home].store.clone();
        let home = *home;
        let records = store
            .call(move |s| {
                let rows = s.list(&ListQuery {
                    within: Some(home),
                    ..ListQuery::default()
                })?;
                rows.into_iter()
                    .filter(|r| r.home == home)
                    .map(|r| s.get(&r.id))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .unwrap();
        for record in records {
            match &record.body {
                Body::Opinion(o) => {
                    let state = o.fold(&record.header).0.state.as_str().to_string();
                    *direct.opinions.entry(state).or_default() += 1;
                }
                Body::Suggestion(s) => {
                    let status = s.fold(&record.header).0;
                    *direct
                        .suggestions
                        .entry(status.state.as_str().to_string())
                        .or_default() += 1;
                    if status.submitted_on.is_some_and(|d| d.year() == this_year) {
                        *suggestions.entry(s.fields.lead).or_default() += 1;
                        for c in &s.fields.cosigners {
                            *suggestions.entry(c.id).or_default() += 1;
                        }
                    }
                }
                Body::Activity(a) => {
                    *direct
                        .activities
                        .entry(a.date.format("%Y-%m").to_string())
                        .or_default()
                        .entry(a.kind.as_str().to_string())
                        .or_default() += 1;
                    direct.sign_ins += a.participants.len() as u64;
                    direct.constituents_received += u64::from(a.constituents_received);
                    if a.kind == ActivityKind::Reception && a.date.year() == this_year {
                        for id in a.participants.keys() {
                            *receptions.entry(*id).or_default() += 1;
                        }
                    }
                }
                Body::Delegate(_) => {
                    direct.delegates += 1;
                    delegates.push(record.header.id);
                }
                _ => {}
            }
        }
    }
    let met = delegates
        .iter()
        .filter(|id| {
            receptions.get(*id).copied().unwrap_or(0) >= 3
                && suggestions.get(*id).copied().unwrap_or(0) >= 1
        })
        .count();
    direct.delegate_quota = (delegates.len() as u64, met as u64);
    direct
}

fn said(rollup: &Rollup) -> Direct {
    let t = &rollup.total;
    Direct {
        opinions: t.opinions.clone(),
        suggestions: t.suggestions.clone(),
        activities: t.activities.clone(),
        sign_ins: t.sign_ins,
        constituents_received: t.constituents_received,
        delegates: t.delegates.values().sum(),
        delegate_quota: (t.delegate_quota.total, t.delegate_quota.met),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_at_the_city_and_the_nation_equal_a_direct_count_of_the_records() {
    let seed: u64 = std::env::var("RENDA_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("rollup federation seed: {seed} (replay with RENDA_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let fed = five_levels().await;
    let mut homes = Vec::new();
    for region in [WANGDIAN, XINCHENG, FENGQIAO, YUXIN, XIUZHOU, NANHU] {
        populate(&fed.node(region).store, code(region), &mut rng).await;
        homes.push(code(region));
    }
    // Full records climb to the city, so the city holds every township's records: a rollup
    // that counted them as well as the counties' rollups would count them twice.
    fed.settle().await;
    roll_up(&fed).await;

    let city = rollup_at(&fed.node(CITY).store, CITY).await;
    assert_eq!(said(&city), direct_count(&fed, &homes).await);
    assert_eq!(city.children.len(), 2, "the two counties");
    assert!(
        city.children.values().all(|c| c.last_sync.is_some()),
        "each child's numbers come with when it last synced"
    );
    let quota = city.total.delegate_quota;
    println!(
        "delegates meeting this year's quota: {} of {}",
        quota.met, quota.total
    );
    assert!(quota.total > 0);
    assert!(city.stale.is_empty(), "{:?}", city.stale);

    let national = rollup_at(&fed.node(NATIONAL).store, NATIONAL).await;
    assert_eq!(said(&national), direct_count(&fed, &homes).await);
    assert_eq!(
        national.total, city.total,
        "nothing outside the city was written"
    );

    // Drill-down: the city holds each township's rollup, and a county's children add up.
    let xiuzhou = rollup_at(&fed.node(CITY).store, XIUZHOU).await;
    assert_eq!(
        said(&xiuzhou),
        direct_count(&fed, &[code(WANGDIAN), code(XINCHENG), code(XIUZHOU)]).await
    );
    rollup_at(&fed.node(CITY).store, WANGDIAN).await;

    // Refreshing again with nothing new writes nothing.
    let before = fed.node(CITY).store.call(|s| s.last_seq()).await.unwrap();
    fed.node(CITY)
        .store
        .write(|tx| tx.refresh_rollup(Utc::now(), &RollupRules::default()))
        .await
        .unwrap();
    assert_eq!(
        fed.node(CITY).store.call(|s| s.last_seq()).await.unwrap(),
        before
    );
}

/// The published figures of one county: 212 opinions collected, all passed on, 27 still being
/// handled and 185 handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_countys_212_opinions_arrive_at_the_city_as_published() {
    let fed = five_levels().await;
    let wangdian = fed.node(WANGDIAN).store.clone();
    let xincheng = fed.node(XINCHENG).store.clone();
    for i in 0..212 {
        let (store, region) = if i % 2 == 0 {
            (&wangdian, WANGDIAN)
        } else {
            (&xincheng, XINCHENG)
        };
        // The first 27 are being handled; the rest are handled.
        add_opinion(store, code(region), if i < 27 { 2 } else { 3 }).await;
    }
    fed.settle().await;
    roll_up(&fed).await;
    for (holder, region) in [(XIUZHOU, XIUZHOU), (CITY, XIUZHOU), (CITY, CITY)] {
        let rollup = rollup_at(&fed.node(holder).store, region).await;
        let opinions = &rollup.total.opinions;
        assert_eq!(
            rollup.total.opinions_total(),
            212,
            "{region} at {holder}: {opinions:?}"
        );
        assert_eq!(opinions.get("in_progress"), Some(&27));
        assert_eq!(opinions.get("handled"), Some(&185));
        assert_eq!(opinions.get("received"), None, "all were passed on");
        assert_eq!(
            rollup.total.opinions_passed_on, 212,
            "the report's 全部转交, after they were handled"
        );
    }
    // The county's own rollup record is one record, whatever was counted.
    let rollups = fed
        .node(CITY)
        .store
        .call(|s| {
            s.list(&ListQuery {
                kind: Some(RecordKind::Rollup),
                ..ListQuery::default()
            })
        })
        .await
        .unwrap();
    assert_eq!(
        rollups.len(),
        7,
        "the city's own, two counties', four townships'"
    );
}

/// A write wakes the rollup refresh: with the periodic look for other processes' writes set to
/// an hour, a township's opinion still reaches its county's rollup over live links, because the
/// township's write, and then the county's receipt of the township's new rollup, each wake a
/// refresh (coalesced) instead of waiting for the next poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_wakes_the_rollups_up_the_live_links() {
    let hour = Some(std::time::Duration::from_secs(3600));
    let mut fed = Federation::start(&[]).await;
    fed.add(XIUZHOU, "秀洲区人大常委会", |c| {
        c.rollup_every = hour
    })
    .await;
    let county = fed.node(XIUZHOU).addr.to_string();
    fed.add(WANGDIAN, "王店镇人大主席团", move |c| {
        c.parent = Some(county);
        c.rollup_every = hour;
    })
    .await;
    // Both nodes refreshed once on starting; what follows is what writes wake.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let town = fed.node(WANGDIAN).store.clone();
    write_opinion(&town, code(WANGDIAN), "村口路灯不亮".into()).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let total = fed
            .node(XIUZHOU)
            .store
            .read(|s| s.rollup(&code(XIUZHOU)))
            .await
            .unwrap()
            .map(|r| r.total.opinions_total())
            .unwrap_or(0);
        if total == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the county's rollup never counted the township's opinion"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
