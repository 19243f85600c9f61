//! The fleet view at the national node: a five-level federation over mutual TLS whose nodes
//! state their release, certificate, checks and backups in their rollups, one township's
//! certificate ending in ten days, and one township still on a release before the fleet view
//! (its rollup, as 0.6.0 writes it, states nothing). The national node's rollup and its 同步状况
//! page count every node by release and list the expiring certificate.

mod common;

use std::sync::Arc;

use common::fed::{
    CITY, FENGQIAO, Federation, NANHU, NATIONAL, PROVINCE, WANGDIAN, XINCHENG, XIUZHOU, YUXIN, code,
};
use common::http::request;
use renda_node::access::Role;
use renda_node::pki::CertificateAuthority;
use renda_node::record::fleet::UNKNOWN_VERSION;
use renda_node::record::rollup::Rollup;
use renda_node::record::{Header, RecordId, RecordKind};
use renda_node::store::IncomingRecord;
use renda_node::tls::NodeTls;

/// A node's certificate as `renda ca issue` writes it and a node loads it: checked, with its
/// real end.
fn certificate(
    ca: &CertificateAuthority,
    dir: &std::path::Path,
    region: &str,
    days: u32,
) -> NodeTls {
    let out = dir.join(region);
    ca.issue(&code(region), region, days)
        .unwrap()
        .save(&out, ca.root_pem())
        .unwrap();
    NodeTls::load(&out, code(region)).unwrap()
}

/// 余新镇's rollup as a node of 0.6.0 publishes it: numbers, no facts, no fleet.
fn old_release_rollup() -> (Header, Vec<Vec<u8>>) {
    let home = code(YUXIN);
    let header = Header {
        id: RecordId::new(),
        kind: RecordKind::Rollup,
        home,
        created_at: chrono::DateTime::from_timestamp_millis(chrono::Utc::now().timestamp_millis())
            .unwrap(),
        created_by: renda_node::record::Author {
            node: home,
            user: "system".into(),
        },
    };
    let fields = serde_json::json!({
        "name": "余新镇人大主席团",
        "computed_at": chrono::Utc::now(),
        "generation": 1,
        "own": { "opinions": { "received": 2 } },
        "total": { "opinions": { "received": 2 } },
    });
    let doc = renda_node::record::RecordDoc::create(
        &header,
        &fields,
        &renda_node::record::authority::node_actor(&home),
    )
    .unwrap();
    let changes = doc
        .changes_since(&[])
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    (header, changes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_national_node_sees_every_release_and_the_expiring_certificate() {
    common::fed::watch_for_errors();
    let certs = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::create("联邦 CA", 3650).unwrap();
    let mut fed = Federation {
        nodes: Default::default(),
        config: Default::default(),
    };
    // Parents first; 凤桥镇's certificate ends in ten days, the others' in a year.
    for (region, name, days) in [
        (NATIONAL, "全国人大常委会", 365),
        (PROVINCE, "浙江省人大常委会", 365),
        (CITY, "嘉兴市人大常委会", 365),
        (XIUZHOU, "秀洲区人大常委会", 365),
        (NANHU, "南湖区人大常委会", 365),
        (WANGDIAN, "王店镇人大主席团", 365),
        (XINCHENG, "新塍镇人大主席团", 365),
        (FENGQIAO, "凤桥镇人大主席团", 10),
    ] {
        let tls = certificate(&ca, certs.path(), region, days);
        fed.add(region, name, move |config| {
            config.link.tls = Some(Arc::new(tls));
        })
        .await;
    }
    // 余新镇 runs 0.6.0: its rollup reached 南湖区 as that release writes it.
    let (header, changes) = old_release_rollup();
    let outcome = fed
        .node(NANHU)
        .store
        .write(move |tx| {
            tx.apply_incoming(
                &code(YUXIN),
                None,
                vec![IncomingRecord {
                    header: header.into(),
                    hints: None,
                    changes,
                }],
                &renda_node::route::RoutePolicy::default(),
            )
        })
        .await
        .unwrap();
    assert!(outcome.rejected.is_empty(), "{outcome:?}");

    // Every node counts and states itself, from the townships up, each sending its rollup to
    // its parent over TLS before the parent counts.
    for level in [
        &[WANGDIAN, XINCHENG, FENGQIAO][..],
        &[XIUZHOU, NANHU],
        &[CITY],
        &[PROVINCE],
        &[NATIONAL],
    ] {
        for region in level {
            let node = fed.node(region);
            let rules = *node.node.rollup_rules();
            node.store
                .write(move |tx| tx.refresh_rollup(chrono::Utc::now(), &rules))
                .await
                .unwrap();
            if *region != NATIONAL {
                fed.sync_once(region).await;
            }
        }
    }

    let national: Rollup = fed
        .node(NATIONAL)
        .store
        .read(|s| s.rollup(&code(NATIONAL)))
        .await
        .unwrap()
        .expect("the national rollup");
    let fleet = &national.fleet;
    assert_eq!(fleet.nodes, 9, "{fleet:?}");
    assert_eq!(
        fleet.by_version,
        [
            (env!("CARGO_PKG_VERSION").to_string(), 8),
            (UNKNOWN_VERSION.to_string(), 1)
        ]
        .into()
    );
    assert_eq!(fleet.expiring_certificates.count, 1, "{fleet:?}");
    let expiring = &fleet.expiring_certificates.nodes[0];
    assert_eq!(expiring.region, code(FENGQIAO));
    assert_eq!(expiring.name, "凤桥镇人大主席团");
    let days = (expiring.at.unwrap() - chrono::Utc::now()).num_days();
    assert!((9..=10).contains(&days), "{days}");
    // None of them took a backup yet.
    assert_eq!(fleet.stale_backups.count, 8);
    let facts = national
        .facts
        .as_ref()
        .expect("the national node states itself");
    assert_eq!(facts.version, env!("CARGO_PKG_VERSION"));
    assert!(facts.certificate_not_after.is_some());
    // The counts hold at every level: 南湖区 sees its two townships and itself.
    let nanhu: Rollup = fed
        .node(NANHU)
        .store
        .read(|s| s.rollup(&code(NANHU)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(nanhu.fleet.nodes, 3);
    assert_eq!(nanhu.fleet.expiring_certificates.count, 1);
    assert_eq!(nanhu.fleet.by_version[UNKNOWN_VERSION], 1);

    // The national dashboard's 同步状况 page says the same.
    let token = fed
        .node(NATIONAL)
        .store
        .write(|tx| tx.add_credential("办公厅 值班", Role::Viewer))
        .await
        .unwrap();
    let web = fed.serve_dashboard(NATIONAL).await;
    let page = request(
        web,
        "GET",
        "/sync",
        &[("Authorization", &format!("Bearer {token}"))],
        "",
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains(r#"data-metric="fleet.nodes">9<"#),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(r#"data-metric="fleet.expiring">1<"#),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(r#"data-list="fleet.expiring""#)
            && page.body.contains(&format!(r#"data-region="{FENGQIAO}""#)),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(r#"data-version="unknown""#),
        "{}",
        page.body
    );
    assert!(page.body.contains("0.7.0 以前的版本"), "{}", page.body);
}
