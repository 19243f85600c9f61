//! The paths bytes from the network take before anything is stored, one function per kind of
//! input. The fuzz targets in `fuzz/` and the hostile-input property tests drive these, and the
//! committed fuzz corpus and crashers are replayed through them in the normal test run
//! (`node/tests/fuzz_replay.rs`), so a fixed crash stays fixed.
//!
//! None of them may panic or allocate without bound, whatever the bytes: a batch inflates at
//! most to the largest message a node accepts, and automerge's decoders return errors.

use super::{Body, LinkMessage, open, open_batch};
use crate::record::{Record, RecordDoc};
use crate::store::{MergeContext, PreparedRecord};

/// Decodes `bytes` as a link message and, if it is a batch, opens it and prepares every record
/// as a receiving link does (decoding the changes, replaying them or building the document,
/// reading the record). Returns
/// how many records were prepared.
pub fn receive_link_message(bytes: &[u8]) -> usize {
    let Ok(msg) = <LinkMessage as prost::Message>::decode(bytes) else {
        return 0;
    };
    // As a link that agreed on the message's version, if this build speaks it: the committed
    // seeds are messages of earlier versions, which a link with an older peer still receives.
    let speaks = super::version::Versions::this_build();
    let version = msg.protocol_version;
    if version < speaks.min || version > speaks.max {
        return 0;
    }
    let Ok(Body::Batch(batch)) = super::open_at(version, msg) else {
        return 0;
    };
    let Ok((records, _, _)) = open_batch(batch.records, batch.deflated_records) else {
        return 0;
    };
    let count = records.len();
    let ctx = sample_context();
    for record in records {
        let _ = PreparedRecord::new(record, None, &ctx);
    }
    count
}

/// Forges a history of raw changes from `bytes` (`record::replay::forge`) and holds a replay
/// of it to automerge (`record::replay::compare_with_automerge`), as the `replay` fuzz target
/// does; then mangles the forged changes, bytes overwritten and bytes spliced into their parts
/// (the input read backwards says where), and holds Renda's change reader to automerge on every
/// one automerge still parses (`record::replay::ops::compare_mangled`). Panics when they
/// disagree: that is a bug in the replay or the reader, and the fuzzer's finding.
pub fn replay_against_automerge(bytes: &[u8]) -> crate::record::replay::Compared {
    use crate::record::replay::{compare_with_automerge, forge, ops};
    let forged = forge::history(bytes);
    let compared = match compare_with_automerge(&forged.held, &forged.incoming) {
        Ok(compared) => compared,
        Err(disagreement) => panic!("the replay disagrees with automerge: {disagreement}"),
    };
    let edits: Vec<u8> = bytes.iter().rev().copied().collect();
    let changes: Vec<Vec<u8>> = forged.held.into_iter().chain(forged.incoming).collect();
    if let Err(disagreement) = ops::compare_mangled(&changes, &edits) {
        panic!("the change reader disagrees with automerge: {disagreement}");
    }
    compared
}

/// A county receiving from one of its townships, as the fuzz targets merge.
pub fn sample_context() -> MergeContext {
    use crate::region::RegionCode;
    let county = RegionCode::parse("region", "330411000000").unwrap_or(RegionCode::NATIONAL);
    let township = RegionCode::parse("region", "330411101000").unwrap_or(RegionCode::NATIONAL);
    MergeContext {
        me: county,
        peer: township,
        policy: crate::route::RoutePolicy::default(),
    }
}

/// Loads `bytes` as a saved document and reads it as a record, as the store does with what it
/// reads back from disk. Returns whether it was a readable record.
pub fn load_document(bytes: &[u8]) -> bool {
    let actor = automerge::ActorId::from(vec![0u8; 16]);
    match RecordDoc::load(bytes, &actor) {
        Ok(doc) => Record::from_doc(&doc).is_ok(),
        Err(_) => false,
    }
}

/// A batch message as a county sends it: a notice to its townships, compressed. A seed for the
/// fuzzer and a sanity check for the replay test.
pub fn sample_batch_message() -> Vec<u8> {
    use chrono::Utc;

    use crate::record::notice::Notice;
    use crate::record::{Author, Header, RecordId, RecordKind};
    use crate::region::RegionCode;
    use crate::store::OutgoingRecord;

    let home = RegionCode::NATIONAL;
    let header = Header {
        id: RecordId::new(),
        kind: RecordKind::Notice,
        home,
        created_at: chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis())
            .unwrap_or_default(),
        created_by: Author {
            node: home,
            user: "clerk".into(),
        },
    };
    let notice = Notice {
        title: "关于做好代表联络站活动的通知".into(),
        category: "工作通知".into(),
        issued_on: Utc::now().date_naive(),
        audience: home,
        body: "各地人大：请于月底前完成。".into(),
    };
    let changes = RecordDoc::create(
        &header,
        &notice,
        &crate::record::authority::node_actor(&home),
    )
    .map(|doc| {
        doc.changes_since(&[])
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect()
    })
    .unwrap_or_default();
    prost::Message::encode_to_vec(&super::batch_message(
        1,
        crate::store::Checkpoint {
            seq: 1,
            hash: Vec::new(),
        },
        vec![OutgoingRecord {
            header: header.into(),
            hints: Some(crate::route::RouteHints {
                down: vec![home],
                ..Default::default()
            }),
            changes,
        }],
    ))
}

/// A saved document of the same notice.
pub fn sample_document() -> Vec<u8> {
    let bytes = sample_batch_message();
    let Ok(msg) = <LinkMessage as prost::Message>::decode(bytes.as_slice()) else {
        return Vec::new();
    };
    let Ok(Body::Batch(batch)) = open(msg) else {
        return Vec::new();
    };
    let Ok((records, _, _)) = open_batch(batch.records, batch.deflated_records) else {
        return Vec::new();
    };
    let mut doc = RecordDoc::empty(&automerge::ActorId::from(vec![1u8; 16]));
    let changes: Vec<_> = records
        .iter()
        .flat_map(|r| &r.changes)
        .filter_map(|c| RecordDoc::decode_change(c).ok())
        .collect();
    match doc.apply_changes(changes) {
        Ok(_) => doc.save(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_samples_are_what_a_node_would_accept() {
        assert_eq!(receive_link_message(&sample_batch_message()), 1);
        assert!(load_document(&sample_document()));
        assert_eq!(receive_link_message(b"garbage"), 0);
        assert!(!load_document(b"garbage"));
    }
}
