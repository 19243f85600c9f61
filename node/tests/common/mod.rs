//! What the golden-fixture tests share: where the fixtures live, and loading one, written
//! first from its fields when asked to (`RENDA_WRITE_FIXTURES=1`) and missing. A committed
//! fixture is never written again.

use std::path::PathBuf;

use renda_node::record::{Author, Header, Record, RecordDoc, RecordId, RecordKind};
use renda_node::region::RegionCode;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn code(s: &str) -> RegionCode {
    RegionCode::parse("region", s).unwrap()
}

/// A header created by a clerk at `home`, at `created_ms` (milliseconds since the epoch).
pub fn header(id: &str, kind: RecordKind, home: &str, created_ms: i64) -> Header {
    Header {
        id: RecordId::parse("id", id).unwrap(),
        kind,
        home: code(home),
        created_at: chrono::DateTime::from_timestamp_millis(created_ms).unwrap(),
        created_by: Author {
            node: code(home),
            user: "clerk".into(),
        },
    }
}

/// Loads the fixture, writing it first from `fields` when asked to and it is missing.
pub fn load(name: &str, header: &Header, fields: serde_json::Value) -> Record {
    let path = fixture(name);
    if std::env::var_os("RENDA_WRITE_FIXTURES").is_some() && !path.exists() {
        let doc = RecordDoc::create(
            header,
            &fields,
            &renda_node::record::authority::node_actor(&header.home),
        )
        .unwrap();
        std::fs::write(&path, doc.save()).unwrap();
    }
    let bytes = std::fs::read(&path).expect("the committed fixture");
    let doc = RecordDoc::load(&bytes, &automerge::ActorId::from(vec![0u8; 16])).unwrap();
    let record = Record::from_doc(&doc).unwrap();
    assert_eq!(&record.header, header);
    record
}
