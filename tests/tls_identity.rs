//! Mutual TLS on real loopback sockets: the identity matrix. A county serves its townships over
//! TLS; of the peers that dial it, only one with a valid certificate from the federation's CA
//! naming one of its townships syncs. The others are refused and leave nothing behind: no
//! certificate, another CA's, an expired one, one with two URI SANs, one for a region outside the
//! county, and a valid one whose Hello claims another region. A child also refuses a server
//! whose certificate does not name its parent.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::fed::{WANGDIAN, XIUZHOU, code, start_node, write_opinion};
use renda_hub::node::Node;
use renda_node::pki::{CertificateAuthority, NodeCertificateSpec, region_uri};
use renda_node::record::RecordKind;
use renda_node::store::{ListQuery, Store, StoreHandle};
use renda_node::sync::client::sync_with_parent;
use renda_node::sync::{LinkConfig, Mode, SyncError};
use renda_node::tls::NodeTls;
use renda_proto::v1::sync_client::SyncClient;
use renda_proto::v1::{Hello, LinkMessage, link_message::Body};

/// 南湖区's 凤桥镇: a township, but not one of 秀洲区's.
const FENGQIAO: &str = "330402101000";

fn tls(ca: &CertificateAuthority, region: &str, spec: Option<NodeCertificateSpec>) -> NodeTls {
    let region = code(region);
    let cert = match spec {
        None => ca.issue(&region, "node", 30).unwrap(),
        Some(spec) => ca.issue_with(spec).unwrap(),
    };
    NodeTls::from_pem_unchecked(region, ca.root_pem(), &cert.cert_pem, &cert.key_pem).unwrap()
}

struct Town {
    store: StoreHandle,
    _dir: tempfile::TempDir,
}

async fn town(region: &str) -> Town {
    let dir = tempfile::tempdir().unwrap();
    let store =
        StoreHandle::spawn(Store::init(dir.path(), code(region), "乡镇", None).unwrap()).unwrap();
    write_opinion(&store, code(region), "路灯不亮".into()).await;
    Town { store, _dir: dir }
}

async fn dial(town: &Town, region: &str, addr: &str, node: NodeTls) -> Result<(), SyncError> {
    let config = LinkConfig {
        tls: Some(Arc::new(node)),
        ..LinkConfig::default()
    };
    tokio::time::timeout(
        Duration::from_secs(20),
        sync_with_parent(town.store.clone(), code(region), addr, Mode::Once, config),
    )
    .await
    .expect("a refused link ends promptly")
    .map(|_| ())
}

/// A node serving sync on a free loopback port with `tls` as its certificate, whatever it is.
async fn serving(region: &str, name: &str, tls: NodeTls) -> (Node, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), code(region), name, move |c| {
        c.link.tls = Some(Arc::new(tls));
    })
    .await;
    let addr = node.sync_addr().unwrap().to_string();
    (node, dir, addr)
}

async fn opinions_at(store: &StoreHandle) -> usize {
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
async fn only_a_valid_certificate_naming_a_child_syncs() {
    let ca = CertificateAuthority::create("联邦 CA", 365).unwrap();
    let other_ca = CertificateAuthority::create("别处的 CA", 365).unwrap();
    let county_tls = tls(&ca, XIUZHOU, None);
    let (county_node, _county_dir, addr) = serving(XIUZHOU, "秀洲区人大常委会", county_tls).await;
    let county = county_node.store().clone();

    let wangdian = town(WANGDIAN).await;
    let spec = |uris: Vec<String>, days, backdate_days| NodeCertificateSpec {
        uris,
        name: "node".into(),
        days,
        backdate: chrono::Duration::days(backdate_days),
    };
    // A foreign CA's certificate for the right region: the peer trusts our CA for the server,
    // but presents a certificate our CA never signed.
    let foreign = {
        let cert = other_ca.issue(&code(WANGDIAN), "冒充", 30).unwrap();
        NodeTls::from_pem_unchecked(code(WANGDIAN), &ca.cert_pem, &cert.cert_pem, &cert.key_pem)
            .unwrap()
    };
    let refused: Vec<(&str, &str, NodeTls)> = vec![
        ("another CA's certificate", WANGDIAN, foreign),
        (
            "an expired certificate",
            WANGDIAN,
            tls(
                &ca,
                WANGDIAN,
                Some(spec(vec![region_uri(&code(WANGDIAN))], 1, 10)),
            ),
        ),
        (
            "two URI SANs",
            WANGDIAN,
            tls(
                &ca,
                WANGDIAN,
                Some(spec(
                    vec![region_uri(&code(WANGDIAN)), region_uri(&code(XIUZHOU))],
                    30,
                    0,
                )),
            ),
        ),
        (
            "a Hello claiming 王店镇 under 凤桥镇's certificate",
            WANGDIAN,
            tls(&ca, FENGQIAO, None),
        ),
        (
            "an HTTPS server certificate from renda ca issue --server",
            WANGDIAN,
            https_cert_as_node(&ca, WANGDIAN),
        ),
    ];
    for (what, region, node) in refused {
        let result = dial(&wangdian, region, &addr, node).await;
        assert!(result.is_err(), "{what} was accepted");
        println!("{what}: refused: {}", result.unwrap_err());
        assert_eq!(opinions_at(&county).await, 0, "{what} left a record");
    }

    // A valid certificate for a township of another county. Its own node would refuse to dial a
    // county that is not its parent; a hostile copy that skips that check is refused by the
    // county as not a child.
    let fengqiao = tls(&ca, FENGQIAO, None)
        .client_config(code(XIUZHOU))
        .unwrap();
    let err = hello(&addr, fengqiao, FENGQIAO).await.unwrap_err();
    assert!(err.contains("not a child"), "{err}");
    assert_eq!(opinions_at(&county).await, 0);
    assert!(county.call(|s| s.peers()).await.unwrap().is_empty());

    // No certificate at all: the handshake itself fails.
    let anonymous = renda_node::tls::anonymous_client_config(
        vec![renda_node::pki::pem_cert(&ca.cert_pem, std::path::Path::new("ca.pem")).unwrap()],
        code(XIUZHOU),
    )
    .unwrap();
    assert!(
        hello(&addr, anonymous, WANGDIAN).await.is_err(),
        "a peer without a certificate was let in"
    );
    assert_eq!(opinions_at(&county).await, 0);

    // The valid one syncs, and the county learns who it is from its certificate.
    dial(&wangdian, WANGDIAN, &addr, tls(&ca, WANGDIAN, None))
        .await
        .expect("a valid certificate syncs");
    assert_eq!(opinions_at(&county).await, 1);
    let peers = county.call(|s| s.peers()).await.unwrap();
    assert_eq!(
        peers.iter().map(|p| p.peer).collect::<Vec<_>>(),
        vec![code(WANGDIAN)]
    );

    // A child refuses a server that is not its parent: 王店镇 dialing a server whose
    // certificate names 凤桥镇's county.
    let (impostor_node, _impostor_dir, impostor_addr) =
        serving("330402000000", "冒充的上级", tls(&ca, "330402000000", None)).await;
    let impostor = impostor_node.store().clone();
    let err = dial(
        &wangdian,
        WANGDIAN,
        &impostor_addr,
        tls(&ca, WANGDIAN, None),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("330402000000"), "{err}");
    assert_eq!(opinions_at(&impostor).await, 0);

    // Nor does an HTTPS server certificate make a parent: it names no region. (A second
    // county node serves with it; the first one's records are not involved.)
    let (https_node, _https_dir, https_addr) = serving(
        XIUZHOU,
        "秀洲区人大常委会",
        https_cert_as_node(&ca, XIUZHOU),
    )
    .await;
    let county = https_node.store().clone();
    let before = opinions_at(&county).await;
    let err = dial(&wangdian, WANGDIAN, &https_addr, tls(&ca, WANGDIAN, None))
        .await
        .unwrap_err();
    println!("an HTTPS certificate as the parent's: refused: {err}");
    assert_eq!(opinions_at(&county).await, before);
}

/// A dashboard's HTTPS certificate (serverAuth only, DNS and IP names, no region) loaded as if
/// it were a node's certificate for `region`.
fn https_cert_as_node(ca: &CertificateAuthority, region: &str) -> NodeTls {
    let cert = ca
        .issue_server(
            "秀洲区人大看板",
            &["renda-county.internal".to_string()],
            &["127.0.0.1".parse().unwrap()],
            30,
        )
        .unwrap();
    NodeTls::from_pem_unchecked(code(region), &ca.cert_pem, &cert.cert_pem, &cert.key_pem).unwrap()
}

/// Opens a TLS connection with `config` and sends a Hello naming `region`, as a hand-made
/// client would; the error is whatever the county answered.
async fn hello(addr: &str, config: rustls::ClientConfig, region: &str) -> Result<(), String> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let target = addr.to_string();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let (connector, target) = (connector.clone(), target.clone());
            async move {
                let tcp = tokio::net::TcpStream::connect(&target).await?;
                let name = rustls::pki_types::ServerName::try_from(renda_node::tls::SERVER_NAME)
                    .map_err(std::io::Error::other)?;
                let stream = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| e.to_string())?;
    let hello = LinkMessage {
        protocol_version: renda_proto::PROTOCOL_VERSION,
        body: Some(Body::Hello(Hello {
            region: region.into(),
            received_seq: 0,
            repair: false,
            received_hash: Vec::new(),
            ..Hello::default()
        })),
    };
    let mut stream = SyncClient::new(channel)
        .link(tokio_stream::iter(vec![hello]))
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    stream.message().await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Delegated issuing on real links: each province's CA issues for its own subtree, and a
/// certificate a province's CA made for another province's node (which `renda ca issue`
/// refuses to make; a CA that ignored the rule made it anyway) is refused by whoever checks
/// it: the parent it dials, and the child that dials it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_province_ca_cannot_make_a_node_of_another_province() {
    const XUANWU: &str = "320117000000";
    const XUANWU_TOWN: &str = "320117101000";
    let root = CertificateAuthority::create("联邦根 CA", 365).unwrap();
    let zhejiang = root
        .create_intermediate(&code("330000000000"), "浙江省 CA", 365)
        .unwrap();
    let jiangsu = root
        .create_intermediate(&code("320000000000"), "江苏省 CA", 365)
        .unwrap();
    let spec = |region: &str| NodeCertificateSpec {
        uris: vec![region_uri(&code(region))],
        name: "冒充".into(),
        days: 30,
        backdate: chrono::Duration::minutes(5),
    };

    // Refused where it would be made.
    assert!(
        zhejiang.issue(&code(XUANWU_TOWN), "冒充", 30).is_err(),
        "浙江's CA issued for a 江苏 township"
    );

    // 溧水区 (江苏) serves with its province CA's certificate.
    let (county_node, _county_dir, addr) =
        serving(XUANWU, "溧水区人大常委会", tls(&jiangsu, XUANWU, None)).await;
    let county = county_node.store().clone();
    let town = town(XUANWU_TOWN).await;

    // A township certificate 浙江's CA made anyway: the county refuses it.
    let err = dial(
        &town,
        XUANWU_TOWN,
        &addr,
        tls(&zhejiang, XUANWU_TOWN, Some(spec(XUANWU_TOWN))),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("outside 330000000000"), "{err}");
    assert_eq!(opinions_at(&county).await, 0);

    // A county certificate 浙江's CA made anyway: the township refuses to link with it.
    let (forged_node, _forged_dir, forged_addr) = serving(
        XUANWU,
        "冒充的溧水区",
        tls(&zhejiang, XUANWU, Some(spec(XUANWU))),
    )
    .await;
    let err = dial(
        &town,
        XUANWU_TOWN,
        &forged_addr,
        tls(&jiangsu, XUANWU_TOWN, None),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("outside 330000000000"), "{err}");
    assert_eq!(opinions_at(forged_node.store()).await, 0);

    // The township's own province CA's certificate links, and a Zhejiang node's from its own
    // province CA is as good at home: the chain, not the CA that made it, is checked.
    dial(&town, XUANWU_TOWN, &addr, tls(&jiangsu, XUANWU_TOWN, None))
        .await
        .expect("a certificate from the township's own province CA links");
    assert_eq!(opinions_at(&county).await, 1);
}

/// A stolen township PC: its county's city revokes the township's certificate; the revocation
/// reaches the county in one sync, the township's next dial is refused there and audited, and
/// a certificate issued anew links.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_is_refused_within_one_sync_and_a_new_one_links() {
    use renda_node::record::revocation::RevocationReason;
    const JIAXING: &str = "330400000000";
    let ca = CertificateAuthority::create("联邦 CA", 365).unwrap();
    let (city_node, _city_dir, city_addr) =
        serving(JIAXING, "嘉兴市人大常委会", tls(&ca, JIAXING, None)).await;
    let county_cert = ca.issue(&code(XIUZHOU), "秀洲区人大常委会", 30).unwrap();
    let county_serial = renda_node::pki::certificate_facts(&county_cert.der().unwrap())
        .unwrap()
        .serial;
    let (county_node, _county_dir, addr) = serving(
        XIUZHOU,
        "秀洲区人大常委会",
        NodeTls::from_pem_unchecked(
            code(XIUZHOU),
            ca.root_pem(),
            &county_cert.cert_pem,
            &county_cert.key_pem,
        )
        .unwrap(),
    )
    .await;
    let county = county_node.store().clone();
    let wangdian = town(WANGDIAN).await;

    let stolen = ca.issue(&code(WANGDIAN), "王店镇人大主席团", 30).unwrap();
    let serial = renda_node::pki::certificate_facts(&stolen.der().unwrap())
        .unwrap()
        .serial;
    let with = |cert: &renda_node::pki::NodeCertificate| {
        NodeTls::from_pem_unchecked(code(WANGDIAN), ca.root_pem(), &cert.cert_pem, &cert.key_pem)
            .unwrap()
    };
    dial(&wangdian, WANGDIAN, &addr, with(&stolen))
        .await
        .expect("the certificate links before it is revoked");
    assert_eq!(opinions_at(&county).await, 1);
    // The stolen PC keeps a live link open meanwhile.
    let live = tokio::spawn({
        let (store, addr) = (wangdian.store.clone(), addr.clone());
        let config = LinkConfig {
            tls: Some(Arc::new(with(&stolen))),
            ..LinkConfig::default()
        };
        async move { sync_with_parent(store, code(WANGDIAN), &addr, Mode::Live, config).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!live.is_finished(), "the live link is up");

    // The city's operator revokes a certificate.
    let revoke = |region: &str, serial: &str, note: &'static str| {
        let (store, region, serial) = (city_node.store().clone(), code(region), serial.to_string());
        async move {
            store
                .write(move |tx| {
                    renda_node::office::revoke_certificate(
                        tx,
                        "运维",
                        region,
                        &serial,
                        RevocationReason::KeyCompromise,
                        note,
                    )
                })
                .await
                .unwrap()
        }
    };
    // One sync of the county with the city.
    let county_syncs = || {
        let county_link = LinkConfig {
            tls: Some(Arc::new(tls(&ca, XIUZHOU, None))),
            ..LinkConfig::default()
        };
        let (county, city_addr) = (county.clone(), city_addr.clone());
        async move {
            sync_with_parent(county, code(XIUZHOU), &city_addr, Mode::Once, county_link)
                .await
                .expect("the county syncs with its city");
        }
    };

    // The city revokes it; its record goes down to the county's subtree, and one sync of the
    // county with the city brings it.
    let revocation = revoke(WANGDIAN, &serial, "办公电脑被盗").await;
    county_syncs().await;
    let (_, held) = {
        let serial = serial.clone();
        county
            .read(move |s| s.revocation_of(&code(WANGDIAN), &serial))
            .await
            .unwrap()
            .expect("the county holds the revocation after one sync")
    };
    assert_eq!(held.reason, RevocationReason::KeyCompromise);
    // The live link is ended as soon as the revocation is stored at the county.
    let ended = tokio::time::timeout(Duration::from_secs(20), live)
        .await
        .expect("the revoked certificate's live link is ended");
    println!("the live link ended: {ended:?}");

    // The stolen PC dials again: refused, nothing of it stored, and the refusal audited.
    write_opinion(&wangdian.store, code(WANGDIAN), "被盗电脑上写的".into()).await;
    let err = dial(&wangdian, WANGDIAN, &addr, with(&stolen))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
    assert_eq!(opinions_at(&county).await, 1);
    // It redials: refused again, and counted on the same line of the log.
    assert!(
        dial(&wangdian, WANGDIAN, &addr, with(&stolen))
            .await
            .is_err()
    );
    let audit = county.read(|s| s.audit_log(10)).await.unwrap();
    let entries: Vec<_> = audit
        .iter()
        .filter(|e| e.rule == "certificate.revoked")
        .collect();
    assert_eq!(entries.len(), 1, "{audit:?}");
    let entry = entries[0];
    assert_eq!(entry.peer, WANGDIAN);
    assert_eq!(entry.record, revocation.id.to_string());
    assert_eq!(entry.changes, 3, "the live link ended, then two attempts");
    assert!(entry.reason.contains(&serial), "{}", entry.reason);

    // A certificate issued anew links, and brings what was written meanwhile.
    let reissued = ca.issue(&code(WANGDIAN), "王店镇人大主席团", 30).unwrap();
    dial(&wangdian, WANGDIAN, &addr, with(&reissued))
        .await
        .expect("the new certificate links");
    assert_eq!(opinions_at(&county).await, 2);

    // Now the county's own certificate is revoked, as if its PC were stolen and served on
    // somewhere: the revocation goes down to the city's subtree, the county's townships among
    // it, and the township refuses to sync with a server presenting it.
    revoke(XIUZHOU, &county_serial, "区人大办公电脑被盗").await;
    county_syncs().await;
    // The township learns of it on its next sync, which the county still serves.
    dial(&wangdian, WANGDIAN, &addr, with(&reissued))
        .await
        .expect("the township syncs before it knows");
    let known = {
        let serial = county_serial.clone();
        wangdian
            .store
            .read(move |s| s.revocation_of(&code(XIUZHOU), &serial))
            .await
            .unwrap()
    };
    assert!(
        known.is_some(),
        "the township holds the county's revocation"
    );
    write_opinion(&wangdian.store, code(WANGDIAN), "不应送达".into()).await;
    let err = dial(&wangdian, WANGDIAN, &addr, with(&reissued))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("parent's certificate is revoked"),
        "{err}"
    );
    assert_eq!(
        opinions_at(&county).await,
        2,
        "nothing sent to a revoked parent"
    );
    let audit = wangdian.store.read(|s| s.audit_log(10)).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.rule == "certificate.revoked" && e.peer == XIUZHOU),
        "{audit:?}"
    );
}
