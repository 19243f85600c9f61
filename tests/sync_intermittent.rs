//! Intermittent links, Jepsen set-full style: a seeded random schedule cuts and restores links
//! (sometimes mid-batch) while townships and counties keep writing. After the links heal, every
//! acknowledged write is present on every node its routes name, and all replicas of every record
//! are identical. The seed is printed; `RENDA_SEED=<seed>` replays a failing run.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::NaiveDate;
use common::fed::Federation;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use renda_node::office::{self, Contact};
use renda_node::record::opinion::{OpinionAction, OpinionFields, OpinionSource};
use renda_node::record::{Body, RecordId};
use renda_node::region::RegionCode;
use renda_node::route::{RouteHints, holds};
use renda_node::sync::client::sync_with_parent;
use renda_node::sync::{LinkConfig, Mode};

const NODES: &[(&str, &str)] = &[
    ("330400000000", "嘉兴市人大常委会"),
    ("330411000000", "秀洲区人大常委会"),
    ("330402000000", "南湖区人大常委会"),
    ("330411101000", "王店镇人大主席团"),
    ("330411102000", "新塍镇人大主席团"),
    ("330402101000", "凤桥镇人大主席团"),
    ("330402102000", "余新镇人大主席团"),
];

fn seed() -> u64 {
    let seed = std::env::var("RENDA_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("intermittent links: seed = {seed} (replay with RENDA_SEED={seed})");
    seed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_a_random_schedule_of_cut_links() {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let config = LinkConfig {
        // Small batches, so cuts land mid-sync often.
        max_batch_bytes: 2 * 1024,
        ..LinkConfig::default()
    };
    let fed = Federation::start_with(NODES, config.clone()).await;
    let children: Vec<RegionCode> = fed.children();
    let townships: Vec<RegionCode> = children
        .iter()
        .copied()
        .filter(|c| c.level() == Some(renda_node::region::Level::Township))
        .collect();
    // Every write whose call returned success: (record, home).
    let mut acknowledged: Vec<(RecordId, RegionCode)> = Vec::new();
    let date = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();

    for round in 0..30 {
        // Townships keep writing whatever the links do.
        for t in &townships {
            for _ in 0..rng.random_range(0..4) {
                let fields = OpinionFields {
                    source: OpinionSource::QrCode,
                    content: format!("第{round}轮民情：{}", rng.random_range(0..1000)),
                    place: String::new(),
                    region: *t,
                    delegate: None,
                    activity: None,
                    category: None,
                };
                let id = fed.nodes[t]
                    .store
                    .write(move |tx| {
                        office::add_opinion(tx, "clerk", fields, Contact::default(), date)
                    })
                    .await
                    .unwrap()
                    .id;
                acknowledged.push((id, *t));
            }
        }
        // Counties and townships act on opinions they hold; concurrent steps may conflict and
        // are then settled by the fold, the same way everywhere.
        for _ in 0..rng.random_range(0..4) {
            let Some(&(id, home)) =
                acknowledged.get(rng.random_range(0..acknowledged.len().max(1)))
            else {
                continue;
            };
            let actor = if rng.random_bool(0.5) {
                home
            } else {
                home.parent().unwrap()
            };
            let action = match rng.random_range(0..3) {
                0 => OpinionAction::PassOn {
                    to: "镇建设办".into(),
                    congress: None,
                },
                1 => OpinionAction::Handle {
                    result: "已处理".into(),
                },
                _ => OpinionAction::AnswerOnSpot {
                    reply: "已当场答复".into(),
                },
            };
            let _ = fed.nodes[&actor]
                .store
                .write(move |tx| office::opinion_step(tx, "staff", &id, action, date))
                .await;
        }
        // Each link is up or down this round; an up link may still be cut mid-sync.
        let mut syncs = Vec::new();
        for child in &children {
            if !rng.random_bool(0.6) {
                continue;
            }
            let node = &fed.nodes[child];
            let addr = fed.nodes[&child.parent().unwrap()].addr.to_string();
            let (store, region, config) = (node.store.clone(), node.region, config.clone());
            let cut_after = rng
                .random_bool(0.3)
                .then(|| Duration::from_micros(rng.random_range(200..20_000)));
            syncs.push(tokio::spawn(async move {
                let sync = sync_with_parent(store, region, &addr, Mode::Once, config);
                match cut_after {
                    Some(after) => {
                        let _ = tokio::time::timeout(after, sync).await;
                    }
                    None => {
                        let _ = sync.await;
                    }
                }
            }));
        }
        for s in syncs {
            s.await.unwrap();
        }
    }

    // Heal: every link up, twice over, so the last writes travel the whole tree.
    fed.settle().await;
    fed.settle().await;

    let policy = fed.config.policy;
    for (id, home) in &acknowledged {
        let record = fed.nodes[home].store.call({
            let id = *id;
            move |s| s.get(&id)
        });
        let record = record
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: acknowledged {id} lost at home: {e}"));
        let hints = RouteHints::of(&record);
        let mut replicas = BTreeMap::new();
        for (region, node) in &fed.nodes {
            let id = *id;
            let doc = node
                .store
                .call(move |s| Ok(s.load_doc(&id).ok().map(|d| d.heads())))
                .await
                .unwrap();
            let should = holds(region, &record.header.home, &hints, &policy);
            assert_eq!(
                doc.is_some(),
                should,
                "seed {seed}: {id} at {region}: held {} but routes say {should}",
                doc.is_some()
            );
            if let Some(heads) = doc {
                let status = node.store.call(move |s| s.get(&id)).await.unwrap();
                let Body::Opinion(o) = &status.body else {
                    panic!("not an opinion")
                };
                replicas.insert(*region, (heads, o.fold(&status.header).0));
            }
        }
        let first = replicas.values().next().unwrap().clone();
        assert!(
            replicas.values().all(|r| *r == first),
            "seed {seed}: replicas of {id} differ: {replicas:#?}"
        );
    }
    assert!(!acknowledged.is_empty());
}
