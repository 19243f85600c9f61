//! One county of a live federation is upgraded while everything around it keeps working, and
//! nothing is lost. An in-process test stands in for the two binaries: the county starts from
//! the database release 0.6.0 wrote (`tests/fixtures/v0.6.0/county.sqlite`, schema 21) and
//! speaks only protocol 6, as 0.6.0 does, beside a city and a township of this release and a
//! township that stays on protocol 6. Records are written at every level before, during and
//! after the county's upgrade (stopped gracefully, started again on the same directory and
//! port with this release's protocol range); in the end every record is held by every node its
//! routes name, every record the fixture held is still there, and every node's columns and
//! counters agree with its documents. One process runs this release's code for both: the
//! county's database is migrated when the "old" county first opens it, not at the upgrade
//! (the soak, `tests/release_soak.rs`, runs the previous release's own binary).

mod common;

use std::time::Duration;

use common::fed::{CITY, Federation, WANGDIAN, XINCHENG, XIUZHOU, code};
use renda_node::node::NodeConfig;
use renda_node::record::RecordId;
use renda_node::record::notice::Notice;
use renda_node::route::{RouteHints, RoutePolicy, holds};
use renda_node::store::Store;
use renda_node::sync::version::Versions;

const OLD: Versions = Versions { min: 6, max: 6 };

/// Starts node `c` as a live member of `fed` on `dir` (a fresh one, or a fixture's copy), with
/// `tune` applied after the federation's settings.
async fn start_member(
    fed: &mut Federation,
    c: &str,
    name: &str,
    dir: tempfile::TempDir,
    tune: impl FnOnce(&mut NodeConfig),
) {
    let parent = code(c)
        .parent()
        .and_then(|p| fed.nodes.get(&p))
        .map(|p| p.addr.to_string());
    fed.add_in(c, name, dir, move |config| {
        config.parent = parent;
        tune(config);
    })
    .await;
}

fn fixture_dir(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/v0.6.0")
            .join(format!("{name}.sqlite")),
        dir.path().join(renda_node::store::DB_FILE),
    )
    .unwrap();
    dir
}

/// Waits until node `c` holds every record in `ids`, for at most a minute.
async fn until_held(fed: &Federation, c: &str, ids: &[RecordId], when: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let wanted = ids.to_vec();
        let missing: Vec<RecordId> = fed
            .node(c)
            .store
            .call(move |s| {
                Ok(wanted
                    .into_iter()
                    .filter(|id| s.load_doc(id).is_err())
                    .collect())
            })
            .await
            .unwrap();
        if missing.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{when}: {c} still lacks {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn notice(fed: &Federation, c: &str, title: &str) -> RecordId {
    let audience = code(c);
    let notice = Notice {
        title: title.into(),
        body: "请各地按时完成。".into(),
        category: "工作通知".into(),
        issued_on: renda_node::calendar::today(),
        audience,
    };
    fed.node(c)
        .store
        .write(move |tx| renda_node::office::add_notice(tx, "clerk", notice))
        .await
        .unwrap()
        .id
}

async fn opinion(fed: &Federation, c: &str, content: &str) -> RecordId {
    let node = fed.node(c);
    common::fed::write_opinion(&node.store, node.region, content.into()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_upgraded_in_a_live_federation_loses_nothing() {
    common::fed::watch_for_errors();
    let mut fed = Federation::start_live(&[(CITY, "嘉兴市人大常委会")]).await;
    start_member(
        &mut fed,
        XIUZHOU,
        "秀洲区人大常委会",
        fixture_dir("county"),
        |c| c.link.versions = OLD,
    )
    .await;
    let county_addr = fed.node(XIUZHOU).addr;
    start_member(
        &mut fed,
        WANGDIAN,
        "王店镇人大主席团",
        fixture_dir("township"),
        |_| {},
    )
    .await;
    start_member(
        &mut fed,
        XINCHENG,
        "新塍镇人大主席团",
        tempfile::tempdir().unwrap(),
        |c| c.link.versions = OLD,
    )
    .await;
    // Every record the release's county held, personal data and rollups included, read from
    // the fixture file itself rather than through this release's store.
    let fixture_ids: Vec<RecordId> = {
        let conn = rusqlite::Connection::open(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/v0.6.0/county.sqlite"),
        )
        .unwrap();
        let mut stmt = conn.prepare("SELECT id FROM records").unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|id| RecordId::parse("id", &id.unwrap()).unwrap())
            .collect()
    };
    assert!(fixture_ids.len() > 40, "{}", fixture_ids.len());

    // Before the upgrade: the old county relays both ways.
    let mut upward = vec![
        opinion(&fed, WANGDIAN, "升级前：王店镇的民情").await,
        opinion(&fed, XINCHENG, "升级前：新塍镇的民情").await,
        opinion(&fed, XIUZHOU, "升级前：秀洲区的民情").await,
    ];
    let mut everywhere = vec![notice(&fed, CITY, "升级前：市人大的通知").await];
    until_held(&fed, CITY, &upward, "before").await;
    until_held(&fed, WANGDIAN, &everywhere, "before").await;
    until_held(&fed, XINCHENG, &everywhere, "before").await;

    // The upgrade: the county stops gracefully; its neighbours keep writing meanwhile.
    let old = fed.nodes.remove(&code(XIUZHOU)).unwrap();
    let (dir, name) = (old.dir, old.name);
    old.node.shutdown().await;
    upward.push(opinion(&fed, WANGDIAN, "升级中：王店镇的民情").await);
    everywhere.push(notice(&fed, CITY, "升级中：市人大的通知").await);
    start_member(&mut fed, XIUZHOU, &name, dir, |c| {
        c.listen = Some(county_addr);
    })
    .await;
    // After it: this release's county with a township and a city of this release and a
    // township of the release before.
    upward.push(opinion(&fed, XINCHENG, "升级后：新塍镇的民情").await);
    upward.push(opinion(&fed, XIUZHOU, "升级后：秀洲区的民情").await);
    everywhere.push(notice(&fed, CITY, "升级后：市人大的通知").await);
    let county_wide = vec![notice(&fed, XIUZHOU, "升级后：区人大的通知").await];
    until_held(&fed, CITY, &upward, "after").await;
    for town in [WANGDIAN, XINCHENG] {
        until_held(&fed, town, &everywhere, "after").await;
        until_held(&fed, town, &county_wide, "after").await;
    }
    until_held(&fed, XIUZHOU, &everywhere, "after").await;

    // What the old county held is all there, and what its routes send the city reached it.
    until_held(&fed, XIUZHOU, &fixture_ids, "after").await;
    let city = code(CITY);
    let for_city: Vec<RecordId> = fed
        .node(XIUZHOU)
        .store
        .call(move |s: &mut Store| {
            let mut out = Vec::new();
            for row in s.list(&renda_node::store::ListQuery::default())? {
                let record = s.get(&row.id)?;
                if holds(
                    &city,
                    &record.header.home,
                    &RouteHints::of(&record),
                    &RoutePolicy::default(),
                ) {
                    out.push(row.id);
                }
            }
            Ok(out)
        })
        .await
        .unwrap();
    assert!(for_city.len() > 20, "{}", for_city.len());
    until_held(&fed, CITY, &for_city, "after").await;
    fed.assert_derived_columns_sound().await;
}
