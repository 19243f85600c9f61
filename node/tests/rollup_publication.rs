//! The stored form of a rollup publication (protocol version 4, schema 14): one automerge
//! change, no dependencies, carrying its generation and a counter a later release added. The
//! committed fixture must keep loading as the same rollup in every later release; it is
//! written once (`RENDA_WRITE_FIXTURES=1`) and never edited.

use std::path::PathBuf;

use renda_node::record::rollup::Rollup;
use renda_node::record::{Author, Body, Header, Record, RecordDoc, RecordId, RecordKind};
use renda_node::region::RegionCode;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rollup-publication-v4.automerge")
}

/// The publication the fixture holds, made as `WriteTx::publish_rollup` makes one.
fn publication() -> Vec<u8> {
    let home = RegionCode::parse("home", "330411101000").unwrap();
    let at = chrono::DateTime::from_timestamp_millis(1_764_720_000_000).unwrap();
    let header = Header {
        id: RecordId::parse("id", "01KBHQ8ZZ00000000000000002").unwrap(),
        kind: RecordKind::Rollup,
        home,
        created_at: at,
        created_by: Author {
            node: home,
            user: "renda".into(),
        },
    };
    let rollup: Rollup = serde_json::from_value(serde_json::json!({
        "name": "王店镇人大主席团",
        "computed_at": at,
        "generation": 2,
        "own": { "opinions": { "received": 3 }, "motions": { "submitted": 1 } },
        "total": { "opinions": { "received": 3 }, "motions": { "submitted": 1 } }
    }))
    .unwrap();
    let doc = RecordDoc::create(
        &header,
        &rollup,
        &renda_node::record::authority::node_actor(&home),
    )
    .unwrap();
    let changes = doc.changes_since(&[]);
    assert_eq!(changes.len(), 1, "a publication is one change");
    assert!(
        changes[0].deps().is_empty(),
        "a publication depends on nothing"
    );
    changes[0].raw_bytes().to_vec()
}

#[test]
fn the_committed_rollup_publication_still_loads_as_written() {
    let path = fixture();
    if std::env::var_os("RENDA_WRITE_FIXTURES").is_some() && !path.exists() {
        std::fs::write(&path, publication()).unwrap();
    }
    let bytes = std::fs::read(&path).expect("the committed fixture");
    let doc = RecordDoc::load(&bytes, &automerge::ActorId::from(vec![0u8; 16])).unwrap();
    let record = Record::from_doc(&doc).unwrap();
    assert_eq!(record.header.kind, RecordKind::Rollup);
    let Body::Rollup(rollup) = record.body else {
        panic!("not a rollup: {:?}", record.body)
    };
    assert_eq!(rollup.generation, 2);
    assert_eq!(rollup.total.opinions["received"], 3);
    // The fixture's example of a counter from a later release, motions by state, is one this
    // release keeps itself (议案): it reads into the known field, with its numbers.
    assert_eq!(rollup.total.motions["submitted"], 1);
    assert!(!rollup.total.later.contains_key("motions"));
}
