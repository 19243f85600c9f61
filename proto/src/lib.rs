//! Renda's gRPC protocol: the .proto files under `proto/` and the tonic/prost code generated
//! from them at build time (by protox, so no protoc is needed).
//!
//! The sync service (`v1`) and the Query API for programs (`query::v1`, with the Google type it
//! uses in `google`) are defined here; their clients and servers live in the node and hub
//! crates. [`FILE_DESCRIPTOR_SET`] holds every file's descriptors for server reflection.
//! Architecture invariant: this crate holds wire types only; it knows nothing of records,
//! SQLite or routing.

/// The protocol version this build speaks. A peer sending another version is refused.
///
/// 3: checkpoints carry the hash of the change at their position (`Hello.received_hash`,
/// `ChangeBatch.up_to_hash`, `CaughtUp.hash`), and a `Resync` makes its receiver forget its
/// checkpoint of the sender's sequence instead of the sender moving its sequence past the
/// receiver's claim. A version-2 peer would keep that checkpoint and skip positions a restored
/// node reuses, so the two do not link (negotiating versions is issue 20's work).
///
/// 4: a rollup travels as a publication, one change that is its whole document, and a holder
/// keeps the newest publication instead of merging them. A version-3 node would try to merge a
/// publication into the history it holds and refuse it (automerge already holds another first
/// change by the same actor), so it would keep a child's old numbers for good.
///
/// 5: records of kind `mandate` (a delegate's seat, homed at the congress that grants it) and
/// routes that address nodes below a record's home. A version-4 node cannot read the kind and
/// would refuse every batch carrying one, and it would let a township write a county seat
/// inside a person record, which a version-5 node refuses. A 回头看 may also find a B or C
/// answer solved (`solved`), which a version-4 node's fold would ignore, keeping the
/// suggestion in tracking where every version-5 replica has it waiting to be closed. A person
/// merged into another (`merged_into`) and a seat marked `merged` would count again at a
/// version-4 node.
///
/// 6: records of kind `quota_rule` (a congress's duty rule, sent down its subtree), which a
/// version-5 node cannot read and would refuse every batch carrying; a suggestion may name the
/// group it was made in the name of (`group`), which a version-5 node would not count toward
/// the group's quota; rollups judge quotas by rule records and say where each subject stands
/// (`on_track`, `behind`, `short`). Records of kind `motion` (议案) are new too, and a merged
/// person's redirect names how high it must climb (`merge_route`), which a version-5 node
/// would not route to a province that granted the duplicate a seat.
///
/// 7: `Hello` carries the range of versions its sender speaks, its capabilities and the
/// federation's shared settings (`full_record_depth`); both ends speak the highest version they
/// share. A record's header carries its routes and a personal flag (`RecordRoute`), so a node
/// keeps and passes on a record of a kind it does not know; a version-6 node would fail every
/// batch holding one, so a version-7 node sends none on a link of version 6 and speaks version
/// 6 to a node of the release before, which requires every message to carry exactly 6.
pub const PROTOCOL_VERSION: u32 = 7;

/// The oldest protocol version this build still speaks: the previous release's, so that a
/// federation upgrades one node at a time (`docs/compatibility.md`).
pub const MIN_PROTOCOL_VERSION: u32 = 6;

pub mod v1 {
    tonic::include_proto!("renda.v1");
}

/// The Query API for programs (`renda.query.v1`, docs/api.md).
pub mod query {
    pub mod v1 {
        tonic::include_proto!("renda.query.v1");
    }
}

/// The Google API common types the Query API uses, from `proto/google/` (`google.type` is
/// `google::types` here: generated code spells the keyword apart).
pub mod google {
    pub mod types {
        tonic::include_proto!("google.r#type");
    }
}

/// Every .proto file of this crate and what they import, as one encoded `FileDescriptorSet`,
/// for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/renda.fds"));

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::v1::{ChangeBatch, LinkMessage, RecordChanges, RecordHeader, link_message::Body};

    #[test]
    fn a_batch_survives_the_wire_and_garbage_is_an_error() {
        let msg = LinkMessage {
            protocol_version: super::PROTOCOL_VERSION,
            body: Some(Body::Batch(ChangeBatch {
                batch_id: 7,
                up_to_seq: 42,
                records: vec![RecordChanges {
                    header: Some(RecordHeader {
                        id: "01M81MKWSYFXAJWX1BBZQ5S45M".into(),
                        kind: "suggestion".into(),
                        home: "330411101000".into(),
                        created_at_ms: 1,
                        created_by: "clerk@330411101000".into(),
                        route: Some(super::v1::RecordRoute {
                            owner_level: "county".into(),
                            down: Vec::new(),
                            to: vec!["330411101000".into()],
                            personal: false,
                        }),
                    }),
                    changes: vec![vec![1, 2, 3]],
                }],
                deflated_records: Vec::new(),
                up_to_hash: vec![9; 32],
            })),
        };
        let bytes = msg.encode_to_vec();
        assert_eq!(LinkMessage::decode(bytes.as_slice()).unwrap(), msg);
        assert!(LinkMessage::decode(&[0xff, 0xff, 0xff][..]).is_err());
    }
}
