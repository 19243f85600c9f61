//! Renewal over the link, live: a city, a county and a township over mutual TLS, the county's
//! and the township's certificates lasting twenty seconds. Each asks its parent for a new one
//! halfway through its life, over the link its current certificate authenticates, and swaps it
//! in without a restart, while the township writes and its live link carries every write up to
//! the city. Several renewals later, every write is at the city and no ERROR was logged.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fed::{CITY, Federation, WANGDIAN, XIUZHOU, code, write_opinion};
use renda_node::pki::{CertificateAuthority, Issuing};
use renda_node::record::RecordKind;
use renda_node::store::ListQuery;
use renda_node::tls::NodeTls;

/// A certificate of `lifetime` for `region`, made as a renewal is (a key of the node's own and
/// a request the CA signs), in the node's `tls/` directory as `renda ca issue` lays it out.
fn certificate(
    ca: &CertificateAuthority,
    dir: &std::path::Path,
    region: &str,
    lifetime: chrono::Duration,
) -> NodeTls {
    let request = renda_node::pki::request_certificate(&code(region), region).unwrap();
    let chain = ca
        .sign_request(&request.csr_der, &code(region), lifetime)
        .unwrap();
    let out = dir.join(region);
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("node.pem"), chain).unwrap();
    std::fs::write(out.join("node-key.pem"), &request.key_pem).unwrap();
    std::fs::write(out.join("ca.pem"), ca.root_pem()).unwrap();
    NodeTls::load(&out, code(region)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_of_seconds_are_renewed_over_live_links_and_no_write_is_lost() {
    common::fed::watch_for_errors();
    let certs = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::create("联邦 CA", 365).unwrap();
    let ca_dir = certs.path().join("ca");
    ca.save(&ca_dir).unwrap();
    let issuing = || {
        Some(Arc::new(Issuing {
            ca: CertificateAuthority::load(&ca_dir).unwrap(),
            lifetime: chrono::Duration::seconds(20),
        }))
    };
    let short = chrono::Duration::seconds(20);
    let city_tls = Arc::new(certificate(
        &ca,
        certs.path(),
        CITY,
        chrono::Duration::days(1),
    ));
    let county_tls = Arc::new(certificate(&ca, certs.path(), XIUZHOU, short));
    let town_tls = Arc::new(certificate(&ca, certs.path(), WANGDIAN, short));

    let mut fed = Federation {
        nodes: Default::default(),
        config: Default::default(),
    };
    let (tls, signing) = (city_tls.clone(), issuing());
    fed.add(CITY, "嘉兴市人大常委会", move |config| {
        config.link.tls = Some(tls);
        config.link.issuing = signing;
    })
    .await;
    let city_addr = fed.node(CITY).addr.to_string();
    let (tls, signing) = (county_tls.clone(), issuing());
    fed.add(XIUZHOU, "秀洲区人大常委会", move |config| {
        config.link.tls = Some(tls);
        config.link.issuing = signing;
        config.parent = Some(city_addr);
        config.renew_at = Some(0.5);
    })
    .await;
    let county_addr = fed.node(XIUZHOU).addr.to_string();
    let tls = town_tls.clone();
    fed.add(WANGDIAN, "王店镇人大主席团", move |config| {
        config.link.tls = Some(tls);
        config.parent = Some(county_addr);
        config.renew_at = Some(0.5);
    })
    .await;

    // The township writes the whole time; the serials of both renewing nodes are watched.
    let town_store = fed.node(WANGDIAN).store.clone();
    let mut written = 0usize;
    let mut county_serials = vec![county_tls.serial()];
    let mut town_serials = vec![town_tls.serial()];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(45) {
        write_opinion(&town_store, code(WANGDIAN), format!("第{written}条")).await;
        written += 1;
        for (tls, seen) in [
            (&county_tls, &mut county_serials),
            (&town_tls, &mut town_serials),
        ] {
            let serial = tls.serial();
            if seen.last() != Some(&serial) {
                seen.push(serial);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        county_serials.len() >= 4 && town_serials.len() >= 4,
        "several renewals each: county {county_serials:?}, township {town_serials:?}"
    );
    // Each renewed certificate is written where the node loads it from on a restart. A renewal
    // writes the files before it swaps the certificate in, so one that lands after the last
    // sample above shows on disk first: the node's serial is sampled again until it catches up.
    let deadline = Instant::now() + Duration::from_secs(10);
    let on_disk = loop {
        let on_disk = NodeTls::load(&certs.path().join(WANGDIAN), code(WANGDIAN)).unwrap();
        let serial = town_tls.serial();
        if town_serials.last() != Some(&serial) {
            town_serials.push(serial);
        }
        if town_serials.contains(&on_disk.serial()) || Instant::now() >= deadline {
            break on_disk;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        town_serials.contains(&on_disk.serial()),
        "{} not among {town_serials:?}",
        on_disk.serial()
    );

    // A thief copies the township's files just after a renewal; the township renews again;
    // the copy, still valid, is refused a renewal of its own: the county renewed that serial
    // already, so whoever asks again holds a copy, and the county's audit log says so.
    let wait_for_renewal = || async {
        let before = town_tls.serial();
        let deadline = Instant::now() + Duration::from_secs(30);
        while town_tls.serial() == before {
            assert!(Instant::now() < deadline, "no renewal within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    wait_for_renewal().await;
    let stolen = certs.path().join("stolen");
    std::fs::create_dir_all(&stolen).unwrap();
    for name in ["node.pem", "node-key.pem", "ca.pem"] {
        std::fs::copy(certs.path().join(WANGDIAN).join(name), stolen.join(name)).unwrap();
    }
    wait_for_renewal().await;
    let copy_store = {
        let dir = tempfile::tempdir().unwrap();
        let store = renda_node::store::StoreHandle::spawn(
            renda_node::store::Store::init(dir.path(), code(WANGDIAN), "王店镇人大主席团", None)
                .unwrap(),
        )
        .unwrap();
        (dir, store)
    };
    let copy = renda_node::sync::LinkConfig {
        tls: Some(Arc::new(
            NodeTls::from_pem_unchecked(
                code(WANGDIAN),
                &std::fs::read_to_string(stolen.join("ca.pem")).unwrap(),
                &std::fs::read_to_string(stolen.join("node.pem")).unwrap(),
                &std::fs::read_to_string(stolen.join("node-key.pem")).unwrap(),
            )
            .unwrap(),
        )),
        ..Default::default()
    };
    let county_addr = fed.node(XIUZHOU).addr.to_string();
    let refused =
        renda_node::renewal::renew_once(&copy_store.1, code(WANGDIAN), "冒充", &county_addr, &copy)
            .await;
    let refused = refused.expect_err("a copy of a renewed certificate was renewed");
    assert!(refused.to_string().contains("already renewed"), "{refused}");
    let audit = fed
        .node(XIUZHOU)
        .store
        .read(|s| s.audit_log(100))
        .await
        .unwrap();
    assert!(
        audit.iter().any(|e| e.rule == "certificate.superseded"),
        "{audit:?}"
    );
    assert!(audit.iter().any(|e| e.rule == "certificate.renewed"));

    // Every write reaches the city over the live links.
    let city = fed.node(CITY).store.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    let count = || async {
        city.read(|s| {
            s.count(&ListQuery {
                kind: Some(RecordKind::Opinion),
                ..ListQuery::default()
            })
        })
        .await
        .unwrap() as usize
    };
    while count().await < written {
        assert!(
            Instant::now() < deadline,
            "the city holds {} of {written} writes",
            count().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(count().await, written);
}
