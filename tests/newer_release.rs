//! A township of a newer release writes into one of its records what this release does not
//! know, a field and a step, and sends it to its county of this release over a real link. The
//! county stores it as it came, shows the record's state as unknown in its lists, counts it for
//! `renda status` and the metrics, offers no step on it in the workbench (as a headless browser
//! shows it, too) and refuses one asking for an upgrade. And records of a kind this release
//! does not know at all travel through three levels of it by the routes they came with.

mod common;

use common::browser::{browser, login, start_driver, text};
use common::fed::{CITY, Federation, WANGDIAN, XINCHENG, XIUZHOU, write_opinion};
use common::http::request;
use common::peer::{send_batch, wire, wire_routed};
use fantoccini::Locator;
use renda_node::access::Role;
use renda_node::record::authority::node_actor;
use renda_node::record::event::{Event, UNKNOWN_STATE, UNKNOWN_STATE_LABEL};
use renda_node::record::opinion::OpinionAction;
use renda_node::record::{AnyHeader, Author, RecordDoc, RecordId};
use renda_node::store::StoreError;
use renda_proto::v1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_keeps_what_a_newer_township_wrote_and_takes_no_step_it_cannot_judge() {
    let fed = Federation::start(&[
        (XIUZHOU, "秀洲区人大常委会"),
        (WANGDIAN, "王店镇人大主席团"),
    ])
    .await;
    let town = fed.node(WANGDIAN);
    let id = write_opinion(&town.store, town.region, "村道路灯损坏".into()).await;
    fed.sync_once(WANGDIAN).await;

    // The newer release's changes, written onto the township's copy under its own actor.
    let region = town.region;
    let (header, changes) = town
        .store
        .call(move |s| {
            let saved = s.load_doc(&id)?.save();
            let mut doc = RecordDoc::load(&saved, &node_actor(&region)).expect("reload");
            let mut fields: serde_json::Value = doc.fields().expect("fields");
            fields["newer_field"] = serde_json::json!("新版本的字段");
            let field = doc
                .set_fields(&fields, chrono::Utc::now().timestamp_millis(), "newer")
                .expect("a field")
                .expect("a change");
            let step = doc
                .append_event(&Event {
                    id: renda_node::record::RecordId::new(),
                    lamport: 50,
                    recorded_at: chrono::Utc::now(),
                    date: chrono::NaiveDate::from_ymd_opt(2026, 10, 2).unwrap(),
                    author: Author {
                        node: region,
                        user: "clerk".into(),
                    },
                    action: serde_json::json!({ "action": "future_step", "note": "新版本的步骤" }),
                })
                .expect("a step");
            let header = s.get(&id)?.header;
            Ok::<_, StoreError>((
                header,
                vec![field.raw_bytes().to_vec(), step.raw_bytes().to_vec()],
            ))
        })
        .await
        .unwrap();
    let ack = send_batch(&fed, WANGDIAN, 0, 0, vec![wire(&header, changes)]).await;
    assert!(ack.rejected.is_empty(), "{:?}", ack.rejected);

    let county = fed.node(XIUZHOU).store.clone();
    let (status, unknown, newer_field) = county
        .call(move |s| {
            let rows = s.list(&renda_node::store::ListQuery {
                kind: Some(renda_node::record::RecordKind::Opinion),
                ..Default::default()
            })?;
            let fields: serde_json::Value = s.load_doc(&id)?.fields().expect("fields");
            Ok((
                rows.into_iter().find(|r| r.id == id).and_then(|r| r.status),
                s.stats()?.unknown_state,
                fields["newer_field"].clone(),
            ))
        })
        .await
        .unwrap();
    assert_eq!(status.as_deref(), Some(UNKNOWN_STATE));
    assert_eq!(unknown, 1);
    assert_eq!(newer_field, "新版本的字段");

    // The workbench offers no step and says why; the list shows the state as unknown.
    let token = county
        .write(|tx| tx.add_credential("区人大 办事员", Role::Clerk))
        .await
        .unwrap();
    let bearer = format!("Bearer {token}");
    // The dashboard shows a node once its numbers are rolled up.
    common::data::roll_up(&fed).await;
    let web = fed.serve_dashboard(XIUZHOU).await;
    let page = request(
        web,
        "GET",
        &format!("/records/{id}"),
        &[("Authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("data-steps=\"newer-version\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("请升级本节点"), "{}", page.body);
    assert!(!page.body.contains("<form class=\"work"), "{}", page.body);
    let list = request(
        web,
        "GET",
        "/records?kind=opinion",
        &[("Authorization", &bearer)],
        "",
    )
    .await;
    assert!(list.body.contains(UNKNOWN_STATE_LABEL), "{}", list.body);

    // And as staff see it in a browser: the steps section says why there is none to take, and
    // the list names the state.
    let driver = start_driver().await;
    let c = browser(&driver).await;
    login(&c, web, &token).await;
    c.goto(&format!("http://{web}/records/{id}")).await.unwrap();
    let said = text(&c, "section.steps [data-steps=newer-version]").await;
    assert!(said.contains("请升级本节点"), "{said}");
    assert!(
        c.find_all(Locator::Css("section.steps form"))
            .await
            .unwrap()
            .is_empty(),
        "no step is offered"
    );
    c.goto(&format!("http://{web}/records?kind=opinion"))
        .await
        .unwrap();
    assert!(text(&c, "main").await.contains(UNKNOWN_STATE_LABEL));
    c.close().await.unwrap();

    // A step this release takes on it is refused, asking for an upgrade.
    let refused = county
        .write(move |tx| {
            renda_node::office::opinion_step(
                tx,
                "clerk",
                &id,
                OpinionAction::Start {
                    note: "已派人查看".into(),
                },
                chrono::NaiveDate::from_ymd_opt(2026, 10, 3).unwrap(),
            )
        })
        .await
        .unwrap_err();
    match refused {
        StoreError::Rejected { rejection, .. } => {
            assert_eq!(rejection.rule, "record.newer_version")
        }
        other => panic!("expected a refusal, got {other}"),
    }
    fed.assert_derived_columns_sound().await;
}

/// A record of a kind a newer release added, written as that release would: its header (the
/// kind included) as JSON text and its fields as a map, under the home's actor.
fn newer_kind_record(kind: &str, home: &str, note: &str) -> (AnyHeader, automerge::AutoCommit) {
    newer_kind_record_by(kind, home, home, note)
}

/// [`newer_kind_record`] with its changes written under `writer`'s actor.
fn newer_kind_record_by(
    kind: &str,
    home: &str,
    writer: &str,
    note: &str,
) -> (AnyHeader, automerge::AutoCommit) {
    use automerge::transaction::Transactable;
    let home = common::fed::code(home);
    let writer = common::fed::code(writer);
    let header = AnyHeader {
        id: RecordId::new(),
        kind: kind.into(),
        home,
        created_at: chrono::DateTime::from_timestamp_millis(chrono::Utc::now().timestamp_millis())
            .unwrap(),
        created_by: Author {
            node: home,
            user: "clerk".into(),
        },
    };
    let mut doc = automerge::AutoCommit::new().with_actor(node_actor(&writer));
    doc.put(
        automerge::ROOT,
        "header",
        serde_json::to_string(&header).unwrap(),
    )
    .unwrap();
    let fields = doc
        .put_object(automerge::ROOT, "fields", automerge::ObjType::Map)
        .unwrap();
    doc.put(&fields, "note", note).unwrap();
    doc.commit();
    (header, doc)
}

fn changes_since(doc: &mut automerge::AutoCommit, have: &[automerge::ChangeHash]) -> Vec<Vec<u8>> {
    doc.get_changes(have)
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect()
}

fn route(owner_level: &str, down: &[&str], personal: bool) -> Option<v1::RecordRoute> {
    Some(v1::RecordRoute {
        owner_level: owner_level.into(),
        down: down.iter().map(|s| s.to_string()).collect(),
        to: Vec::new(),
        personal,
    })
}

/// Records of kinds a newer release added travel through three levels of this release: a
/// township of the newer release sends its county one beside a record of a kind the county
/// knows; the county stores it as it came, counts it, and passes it on to the city by the routes
/// it came with, and an edit follows it. A personal one stops at the county, as the flag says.
/// Routes that name another township's subtree, and a newer kind sent with no routes at all,
/// are refused record by record: the batch they came in is applied all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_this_release_does_not_know_travels_by_its_routes() {
    let fed = Federation::start(&[
        (CITY, "嘉兴市人大常委会"),
        (XIUZHOU, "秀洲区人大常委会"),
        (WANGDIAN, "王店镇人大主席团"),
        (XINCHENG, "新塍镇人大主席团"),
    ])
    .await;
    let town = fed.node(WANGDIAN);
    let opinion = write_opinion(&town.store, town.region, "村道路灯损坏".into()).await;
    let (opinion_header, opinion_changes) = town
        .store
        .call(move |s| {
            let doc = s.load_doc(&opinion)?;
            Ok::<_, StoreError>((
                s.get(&opinion)?.header,
                doc.changes_since(&[])
                    .iter()
                    .map(|c| c.raw_bytes().to_vec())
                    .collect::<Vec<_>>(),
            ))
        })
        .await
        .unwrap();

    let (petition, mut petition_doc) = newer_kind_record("petition", WANGDIAN, "联名请愿");
    let (contact, mut contact_doc) = newer_kind_record("petition_contact", WANGDIAN, "联系电话");
    let (across, mut across_doc) = newer_kind_record("petition", WANGDIAN, "发往邻镇");
    let (unrouted, mut unrouted_doc) = newer_kind_record("petition", WANGDIAN, "没有路由");
    // Written under the county's name by the township: a forgery a node that knows the kind
    // would take for the county's own relay, were it passed on.
    let (forged, mut forged_doc) = newer_kind_record_by("petition", WANGDIAN, XIUZHOU, "冒名写入");
    let petition_created = petition_doc.get_heads();
    let ack = send_batch(
        &fed,
        WANGDIAN,
        0,
        1,
        vec![
            wire_routed(
                &petition,
                route("province", &[], false),
                changes_since(&mut petition_doc, &[]),
            ),
            wire(&opinion_header, opinion_changes),
            wire_routed(
                &contact,
                route("", &[], true),
                changes_since(&mut contact_doc, &[]),
            ),
            wire_routed(
                &across,
                route("", &[XINCHENG], false),
                changes_since(&mut across_doc, &[]),
            ),
            wire_routed(&unrouted, None, changes_since(&mut unrouted_doc, &[])),
            wire_routed(
                &forged,
                route("province", &[], false),
                changes_since(&mut forged_doc, &[]),
            ),
        ],
    )
    .await;
    let mut refused: Vec<(String, String)> = ack
        .rejected
        .iter()
        .map(|r| (r.record.clone(), r.rule.clone()))
        .collect();
    refused.sort();
    let mut expected = vec![
        (across.id.to_string(), "route.claim".to_string()),
        (unrouted.id.to_string(), "route.missing".to_string()),
        (forged.id.to_string(), "authority.change_author".to_string()),
    ];
    expected.sort();
    assert_eq!(refused, expected, "{:?}", ack.rejected);

    // An edit by the newer township follows the record.
    {
        use automerge::transaction::Transactable;
        let fields = match automerge::ReadDoc::get(&petition_doc, automerge::ROOT, "fields") {
            Ok(Some((_, id))) => id,
            other => panic!("no fields map: {other:?}"),
        };
        petition_doc.put(&fields, "signatures", 27_i64).unwrap();
        petition_doc.commit();
    }
    let ack = send_batch(
        &fed,
        WANGDIAN,
        1,
        2,
        vec![wire_routed(
            &petition,
            route("province", &[], false),
            changes_since(&mut petition_doc, &petition_created),
        )],
    )
    .await;
    assert!(ack.rejected.is_empty(), "{:?}", ack.rejected);

    fed.sync_once(XIUZHOU).await;
    fed.sync_once(XINCHENG).await;
    fed.sync_once(XIUZHOU).await;

    let fed = &fed;
    let holders = |id| async move {
        let mut held = fed.holders(id).await;
        held.sort();
        held
    };
    assert_eq!(holders(petition.id).await, vec![CITY, XIUZHOU]);
    assert_eq!(holders(contact.id).await, vec![XIUZHOU]);
    assert_eq!(holders(across.id).await, Vec::<String>::new());
    assert_eq!(holders(opinion).await, vec![CITY, XIUZHOU, WANGDIAN]);
    // The city holds the petition as the newer township wrote it, edit included.
    let heads = petition_doc.get_heads();
    let at_city = fed
        .node(CITY)
        .store
        .call(move |s| Ok(s.load_doc(&petition.id)?.heads()))
        .await
        .unwrap();
    assert_eq!(at_city, heads);

    let newer = |c: &'static str| async move {
        fed.node(c)
            .store
            .call(|s| Ok(s.stats()?.newer_kinds))
            .await
            .unwrap()
    };
    assert_eq!(
        newer(XIUZHOU).await,
        vec![
            ("petition".to_string(), 1),
            ("petition_contact".to_string(), 1)
        ]
    );
    assert_eq!(newer(CITY).await, vec![("petition".to_string(), 1)]);
    assert!(newer(XINCHENG).await.is_empty());
    // And as an operator reads it.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_renda"))
        .arg("status")
        .env("RENDA_DATA_DIR", fed.node(XIUZHOU).dir.path())
        .output()
        .expect("renda status");
    let said = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{said}");
    assert!(said.contains("未知类型记录（需升级）"), "{said}");
    assert!(
        said.contains("petition 1 条、petition_contact 1 条"),
        "{said}"
    );
    // Kept as it came, it is in no list of this release.
    let listed = fed
        .node(XIUZHOU)
        .store
        .call(|s| s.list(&renda_node::store::ListQuery::default()))
        .await
        .unwrap();
    assert!(listed.iter().any(|r| r.id == opinion));
    assert!(
        listed
            .iter()
            .all(|r| r.id != petition.id && r.id != contact.id),
        "a record this release cannot read is listed"
    );
    // Its page says why it cannot be shown, to a program and in a browser.
    let county = fed.node(XIUZHOU).store.clone();
    let token = county
        .write(|tx| tx.add_credential("区人大 办事员", Role::Clerk))
        .await
        .unwrap();
    common::data::roll_up(fed).await;
    let web = fed.serve_dashboard(XIUZHOU).await;
    let page = request(
        web,
        "GET",
        &format!("/records/{}", petition.id),
        &[("Authorization", &format!("Bearer {token}"))],
        "",
    )
    .await;
    assert_eq!(page.status, 409, "{}", page.body);
    assert!(page.body.contains("“petition”由更新版本"), "{}", page.body);
    let driver = start_driver().await;
    let c = browser(&driver).await;
    login(&c, web, &token).await;
    c.goto(&format!("http://{web}/records/{}", petition.id))
        .await
        .unwrap();
    assert!(text(&c, "main").await.contains("升级后才能查看"));
    c.close().await.unwrap();
    fed.assert_derived_columns_sound().await;
}

/// A node of protocol 6 fails every batch that holds a kind it does not know, so a link of
/// that version carries none: a township of the release before keeps linking with its county
/// while one of this release receives what its county kept from a newer parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_of_protocol_6_is_sent_no_kind_it_would_refuse() {
    use renda_node::route::{RouteHints, RoutePolicy};
    use renda_node::store::IncomingRecord;
    let fed = Federation::start(&[
        (XIUZHOU, "秀洲区人大常委会"),
        (WANGDIAN, "王店镇人大主席团"),
        (XINCHENG, "新塍镇人大主席团"),
    ])
    .await;
    // A bulletin to every township of the county, homed there by a newer release and received
    // from the county's parent as it would be.
    let (bulletin, mut doc) = newer_kind_record("bulletin", XIUZHOU, "全区通告");
    let changes = changes_since(&mut doc, &[]);
    let id = bulletin.id;
    let outcome = fed
        .node(XIUZHOU)
        .store
        .write(move |tx| {
            tx.apply_incoming(
                &common::fed::code(CITY),
                None,
                vec![IncomingRecord {
                    header: bulletin,
                    hints: Some(RouteHints {
                        down: vec![common::fed::code(XIUZHOU)],
                        ..RouteHints::default()
                    }),
                    changes,
                }],
                &RoutePolicy::default(),
            )
        })
        .await
        .unwrap();
    assert!(outcome.rejected.is_empty(), "{outcome:?}");
    // And a certificate revocation, a kind this release knows but protocol 6 did not: it goes
    // down to every township of the county, but not on a link of 6, which would fail it.
    let revocation = fed
        .node(XIUZHOU)
        .store
        .write(|tx| {
            renda_node::office::revoke_certificate(
                tx,
                "运维",
                common::fed::code(XINCHENG),
                "0a1b2c",
                renda_node::record::revocation::RevocationReason::Superseded,
                "",
            )
        })
        .await
        .unwrap()
        .id;

    let town = fed.node(WANGDIAN);
    let mut older = fed.link_config(WANGDIAN);
    older.versions = renda_node::sync::version::Versions { min: 6, max: 6 };
    renda_node::sync::client::sync_with_parent(
        town.store.clone(),
        town.region,
        &fed.node(XIUZHOU).addr.to_string(),
        renda_node::sync::Mode::Once,
        older,
    )
    .await
    .expect("a node of the release before links");
    fed.sync_once(XINCHENG).await;
    let mut holders = fed.holders(id).await;
    holders.sort();
    assert_eq!(holders, vec![XIUZHOU, XINCHENG]);
    let mut holders = fed.holders(revocation).await;
    holders.sort();
    assert_eq!(
        holders,
        vec![XIUZHOU, XINCHENG],
        "no revocation on a link of 6"
    );

    // Upgraded, the township links at this release's version and is sent what was held back,
    // though its checkpoint had moved past it.
    fed.sync_once(WANGDIAN).await;
    let mut holders = fed.holders(id).await;
    holders.sort();
    assert_eq!(holders, vec![XIUZHOU, WANGDIAN, XINCHENG]);
    let mut holders = fed.holders(revocation).await;
    holders.sort();
    assert_eq!(holders, vec![XIUZHOU, WANGDIAN, XINCHENG]);
    // The county notes the completed round beside the link, a moment after the township's
    // side ends.
    let mut owed = Vec::new();
    for _ in 0..50 {
        owed = fed
            .node(XIUZHOU)
            .store
            .call(|s| s.held_back(&common::fed::code(WANGDIAN)))
            .await
            .unwrap();
        if owed.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        owed.is_empty(),
        "still owed after a completed round: {owed:?}"
    );
}
