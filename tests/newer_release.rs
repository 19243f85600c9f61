//! A township of a newer release writes into one of its records what this release does not
//! know, a field and a step, and sends it to its county of this release over a real link. The
//! county stores it as it came, shows the record's state as unknown in its lists, counts it for
//! `renda status` and the metrics, offers no step on it in the workbench (as a headless browser
//! shows it, too) and refuses one asking for an upgrade.

mod common;

use common::browser::{browser, login, start_driver, text};
use common::fed::{Federation, WANGDIAN, XIUZHOU, write_opinion};
use common::http::request;
use common::peer::{send_batch, wire};
use fantoccini::Locator;
use renda_node::access::Role;
use renda_node::record::authority::node_actor;
use renda_node::record::event::{Event, UNKNOWN_STATE, UNKNOWN_STATE_LABEL};
use renda_node::record::opinion::OpinionAction;
use renda_node::record::{Author, RecordDoc};
use renda_node::store::StoreError;

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
