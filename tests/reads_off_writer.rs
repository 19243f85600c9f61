//! Reads off the writer: dashboard pages and Query calls read from their own read-only SQLite
//! connections, so they answer while the store's one writer holds a long write transaction
//! (a big sync batch, a rollup refresh), and they see what was committed before it.

mod common;

use std::time::Duration;

use common::fed::{Federation, XIUZHOU, code, start_node, write_opinion};
use common::http::request;
use renda_node::access::Role;
use renda_node::record::RecordKind;
use renda_node::store::ListQuery;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_queries_answer_while_a_write_is_held_open() {
    let _errors = Federation::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), code(XIUZHOU), "秀洲区人大常委会", |c| {
        c.http = Some("127.0.0.1:0".parse().unwrap());
        c.rollup_every = None;
    })
    .await;
    let store = node.store().clone();
    let token = store
        .write(|tx| tx.add_credential("区人大 领导", Role::Viewer))
        .await
        .unwrap();
    write_opinion(&store, code(XIUZHOU), "路灯不亮".into()).await;
    store
        .write(|tx| {
            tx.refresh_rollup(
                chrono::Utc::now(),
                &renda_node::record::rollup::RollupRules::default(),
            )
        })
        .await
        .unwrap();

    // The writer is busy for four seconds in one transaction that writes an opinion.
    let (held_tx, held) = tokio::sync::oneshot::channel();
    let writer = store.clone();
    let busy = tokio::spawn(async move {
        writer
            .write(move |tx| {
                let fields = renda_node::record::opinion::OpinionFields {
                    source: renda_node::record::opinion::OpinionSource::Visit,
                    content: "写入未提交".into(),
                    place: String::new(),
                    region: tx.node().region,
                    delegate: None,
                    activity: None,
                    category: None,
                };
                renda_node::office::add_opinion(
                    tx,
                    "clerk",
                    fields,
                    renda_node::office::Contact::default(),
                    chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
                )?;
                let _ = held_tx.send(());
                std::thread::sleep(Duration::from_secs(4));
                Ok(())
            })
            .await
    });
    held.await.unwrap();

    // A page and a list answer while the write is still in progress, and show the committed
    // state: one opinion, not the one being written.
    let web = node.http_addr().unwrap();
    let page = request(
        web,
        "GET",
        "/",
        &[("Authorization", &format!("Bearer {token}"))],
        "",
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let listed = store
        .read(|s| {
            s.list(&ListQuery {
                kind: Some(RecordKind::Opinion),
                ..ListQuery::default()
            })
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "a read sees the committed snapshot");
    assert!(
        !busy.is_finished(),
        "the page and the list answered while the write was still held"
    );

    // Once the write commits, reads see it.
    busy.await.unwrap().unwrap();
    let listed = store
        .read(|s| {
            s.list(&ListQuery {
                kind: Some(RecordKind::Opinion),
                ..ListQuery::default()
            })
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    node.shutdown().await;
}
