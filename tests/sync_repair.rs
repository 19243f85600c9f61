//! Repair by subtree digest: a county that lost records its checkpoints say it has gets back
//! exactly those records, and a repair with nothing to repair sends nothing.

mod common;

use common::fed::{Federation, code};
use renda_node::record::RecordId;
use renda_node::sync::client::sync_with_parent;
use renda_node::sync::{LinkConfig, LinkReport, Mode};

const TOWNSHIP: &str = "330411101000";
const COUNTY: &str = "330411000000";

async fn sync(fed: &Federation, repair: bool) -> LinkReport {
    let config = LinkConfig {
        repair,
        ..LinkConfig::default()
    };
    let town = fed.node(TOWNSHIP);
    sync_with_parent(
        town.store.clone(),
        town.region,
        &fed.node(COUNTY).addr.to_string(),
        Mode::Once,
        config,
    )
    .await
    .expect("sync")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_repair_resends_exactly_the_records_that_differ() {
    let fed =
        Federation::start(&[(COUNTY, "秀洲区人大常委会"), (TOWNSHIP, "王店镇人大主席团")]).await;
    let town = fed.node(TOWNSHIP).store.clone();
    let mut ids: Vec<RecordId> = Vec::new();
    for i in 0..200 {
        ids.push(common::fed::write_opinion(&town, code(TOWNSHIP), format!("第{i}条")).await);
    }
    sync(&fed, false).await;

    // Damage the county behind the sync's back: five records vanish from its database.
    let lost: Vec<String> = ids.iter().step_by(40).map(|id| id.to_string()).collect();
    {
        let db =
            rusqlite::Connection::open(fed.node(COUNTY).dir.path().join("renda.sqlite")).unwrap();
        for id in &lost {
            db.execute("DELETE FROM records WHERE id = ?1", [id])
                .unwrap();
        }
    }
    let held = |fed: &Federation| {
        let county = fed.node(COUNTY).store.clone();
        let ids = ids.clone();
        async move {
            county
                .call(move |s| Ok(ids.iter().filter(|id| s.get(id).is_ok()).count()))
                .await
                .unwrap()
        }
    };
    assert_eq!(held(&fed).await, 195);
    let plain = sync(&fed, false).await;
    assert_eq!(
        plain.changes_sent, 0,
        "the checkpoints say the county is up to date"
    );
    assert_eq!(held(&fed).await, 195);

    let repair = sync(&fed, true).await;
    assert_eq!(
        held(&fed).await,
        200,
        "the repair brought back every lost record"
    );
    assert_eq!(
        repair.changes_sent,
        lost.len(),
        "only the lost records were resent"
    );
    let again = sync(&fed, true).await;
    assert_eq!(
        (again.changes_sent, again.changes_received),
        (0, 0),
        "equal digests, nothing to resend"
    );
    assert!(
        again.wire_bytes_sent < 4_096,
        "an equal digest costs {} bytes",
        again.wire_bytes_sent
    );
}
