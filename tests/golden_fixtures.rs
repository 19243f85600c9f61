//! The golden fixtures of earlier releases, under `tests/fixtures/<release>/`: a township's and
//! its county's databases and their first link session, written by that release's own code
//! (`scripts/golden-fixtures.sh`) and never edited. This release opens the databases and answers
//! as the release did (every record loads, every list counts what it listed, every derived
//! column and counter is what the release stored), and a county of this release receives the
//! township's side of the link session message for message, refusing nothing.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::fed::{Federation, XIUZHOU};
use renda_node::record::{RecordId, RecordKind};
use renda_node::store::{ListQuery, Store};
use renda_proto::v1::sync_client::SyncClient;
use renda_proto::v1::{LinkMessage, link_message::Body};
use serde_json::Value;

/// Every release whose fixtures are committed; a release adds itself, never removes one.
const RELEASES: &[&str] = &["v0.6.0"];

fn fixtures(release: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(release)
}

fn manifest(release: &str) -> Value {
    let text = std::fs::read_to_string(fixtures(release).join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A data directory holding a copy of the fixture database `name`.
fn data_dir(release: &str, name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures(release).join(format!("{name}.sqlite")),
        dir.path().join(renda_node::store::DB_FILE),
    )
    .unwrap();
    dir
}

fn link_session(release: &str, file: &str) -> Vec<LinkMessage> {
    let bytes = std::fs::read(fixtures(release).join(file)).unwrap();
    let mut rest = bytes.as_slice();
    let mut messages = Vec::new();
    while !rest.is_empty() {
        messages.push(
            <LinkMessage as prost::Message>::decode_length_delimited(&mut rest)
                .expect("a recorded message"),
        );
    }
    messages
}

/// The ids of the records homed at `home` in the database at `db`, read from the file: lists
/// leave personal data out.
fn homed_at(db: &Path, home: &str) -> BTreeSet<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT id FROM records WHERE home = ?1")
        .unwrap();
    stmt.query_map([home], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn the_databases_of_earlier_releases_open_and_answer_as_they_did() {
    for release in RELEASES {
        let manifest = manifest(release);
        for node in ["township", "county"] {
            let held = &manifest[node];
            let dir = data_dir(release, node);
            let store = Store::open(dir.path())
                .unwrap_or_else(|e| panic!("{release} {node} does not open: {e}"));
            let kinds = held["kinds"].as_object().unwrap();
            assert!(kinds.len() >= 8, "{release} {node}: {kinds:?}");
            for (kind_name, count) in kinds {
                let kind = RecordKind::parse(kind_name)
                    .unwrap_or_else(|| panic!("{release}: unknown kind {kind_name}"));
                let all = ListQuery {
                    kind: Some(kind),
                    ..ListQuery::default()
                };
                assert_eq!(
                    store.count(&all).unwrap(),
                    count.as_u64().unwrap(),
                    "{release} {node} {kind_name}"
                );
                for (status, count) in held["statuses"][kind_name]
                    .as_object()
                    .into_iter()
                    .flatten()
                {
                    let some = ListQuery {
                        kind: Some(kind),
                        status: Some(status.clone()),
                        ..ListQuery::default()
                    };
                    assert_eq!(
                        store.count(&some).unwrap(),
                        count.as_u64().unwrap(),
                        "{release} {node} {kind_name} {status}"
                    );
                }
                for id in held["ids"][kind_name].as_array().unwrap() {
                    let id = RecordId::parse("id", id.as_str().unwrap()).unwrap();
                    let record = store
                        .get(&id)
                        .unwrap_or_else(|e| panic!("{release} {node} {id}: {e}"));
                    assert_eq!(record.header.kind, kind);
                }
            }
            common::assert_store_sound(&store, &format!("{release} {node}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_receives_the_link_sessions_of_earlier_releases() {
    for release in RELEASES {
        let recorded = link_session(release, "link-township-to-county.bin");
        let Some(Body::Hello(hello)) = recorded[0].body.clone() else {
            panic!("{release}: the session does not open with Hello")
        };
        let township = hello.region.clone();
        let stamped = recorded[0].protocol_version;
        // The township's Hello and its batches, as it sent them; its acknowledgements name the
        // recorded county's batches, which this county does not send.
        let sent: Vec<LinkMessage> = recorded
            .into_iter()
            .filter(|m| matches!(m.body, Some(Body::Hello(_) | Body::Batch(_))))
            .collect();
        let batches: BTreeSet<u64> = sent
            .iter()
            .filter_map(|m| match &m.body {
                Some(Body::Batch(b)) => Some(b.batch_id),
                _ => None,
            })
            .collect();
        assert!(!batches.is_empty(), "{release}: no batches recorded");

        let fed = Federation::start(&[(XIUZHOU, "秀洲区人大常委会")]).await;
        let addr = fed.node(XIUZHOU).addr;
        let mut client = SyncClient::connect(format!("http://{addr}"))
            .await
            .expect("connect");
        let (tx, rx) = tokio::sync::mpsc::channel(sent.len() + 1);
        for msg in sent {
            tx.send(msg).await.unwrap();
        }
        let mut inbound = client
            .link(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .expect("the link opens")
            .into_inner();
        let first = inbound
            .message()
            .await
            .unwrap()
            .expect("the county's Hello");
        assert_eq!(
            first.protocol_version, stamped,
            "{release}: answered in its version"
        );
        let mut acked = BTreeSet::new();
        while acked != batches {
            let msg = tokio::time::timeout(std::time::Duration::from_secs(20), inbound.message())
                .await
                .expect("the county acknowledges within 20 s")
                .expect("the link stays up")
                .expect("a message");
            assert_eq!(msg.protocol_version, stamped);
            if let Some(Body::Ack(ack)) = msg.body {
                assert!(ack.rejected.is_empty(), "{release}: {:?}", ack.rejected);
                acked.insert(ack.batch_id);
            }
        }
        drop(tx);

        // The county holds every record of the township's that the release's county held.
        let dir = data_dir(release, "county");
        let expected = homed_at(&dir.path().join(renda_node::store::DB_FILE), &township);
        assert!(!expected.is_empty());
        let db = fed
            .node(XIUZHOU)
            .store
            .call(|s| Ok(s.path().to_path_buf()))
            .await
            .unwrap();
        assert_eq!(homed_at(&db, &township), expected, "{release}");
        fed.assert_derived_columns_sound().await;
    }
}
