//! Lists page by key and count no further than a cap: following the dashboard's "下一页" links
//! through a county's opinions shows each once, and a count beyond the cap says "more than".

mod common;

use common::fed::{Federation, XIUZHOU, code, start_node, write_opinion};
use common::http::request;
use renda_node::access::Role;
use renda_node::record::RecordKind;
use renda_node::store::ListQuery;

/// The `href` of the first link with `rel` on a page, unescaped.
fn link(body: &str, rel: &str) -> Option<String> {
    let at = body.find(&format!("rel=\"{rel}\""))?;
    let tag_start = body[..at].rfind('<')?;
    let tag = &body[tag_start..body[at..].find('>')? + at];
    let href = tag.split("href=\"").nth(1)?.split('"').next()?;
    Some(href.replace("&amp;", "&"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_page_by_key_and_counts_are_capped() {
    let _errors = Federation::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), code(XIUZHOU), "秀洲区人大常委会", |c| {
        c.http = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let store = node.store().clone();
    let token = store
        .write(|tx| tx.add_credential("区人大 领导", Role::Viewer))
        .await
        .unwrap();
    for n in 0..120 {
        write_opinion(&store, code(XIUZHOU), format!("第{n}条民情")).await;
    }
    store
        .write(|tx| {
            tx.refresh_rollup(
                chrono::Utc::now(),
                &renda_node::record::rollup::RollupRules::default(),
            )
        })
        .await
        .unwrap();

    let auth = format!("Bearer {token}");
    let web = node.http_addr().unwrap();
    let mut path = "/records?kind=opinion".to_string();
    let mut seen = std::collections::BTreeSet::new();
    let mut pages = 0;
    loop {
        let page = request(web, "GET", &path, &[("Authorization", &auth)], "").await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(
            page.body.contains("data-metric=\"records.held\">120<"),
            "{}",
            page.body
        );
        let rows: Vec<&str> = page
            .body
            .split("tr data-id=\"")
            .skip(1)
            .filter_map(|r| r.split('"').next())
            .collect();
        for id in &rows {
            assert!(seen.insert(id.to_string()), "{id} shown twice");
        }
        pages += 1;
        if pages > 1 {
            assert!(
                link(&page.body, "first").is_some(),
                "a later page links to the first"
            );
        }
        match link(&page.body, "next") {
            Some(next) => {
                assert!(next.contains("after="), "{next}");
                path = next;
            }
            None => break,
        }
    }
    assert_eq!((pages, seen.len()), (3, 120));

    // Counting stops at the cap and says so.
    let q = ListQuery {
        kind: Some(RecordKind::Opinion),
        ..ListQuery::default()
    };
    let capped = store
        .read(move |s| Ok((s.count_capped(&q, 100)?, s.count_capped(&q, 500)?)))
        .await
        .unwrap();
    assert_eq!(capped, ((100, true), (120, false)));
    node.shutdown().await;
}
