//! The store's side of sync: reading the changes a peer lacks, and applying a peer's changes
//! together with the checkpoint that covers them.
//!
//! Checkpoints are positions in change sequences. A node remembers, per peer, how far into the
//! *peer's* sequence it has applied (`received_seq`, written in the same transaction as the
//! changes) and tells the peer on connect; the peer then sends only what follows. So a link cut
//! mid-batch resumes after the last batch that was durably applied, and a batch delivered twice
//! is a no-op: its changes are already held (unique by hash within their record) and the
//! checkpoint only moves forward.

//!
//! Layout: this file holds the records and checkpoints as they cross the store's boundary;
//! [`merge`] reads what the store holds of a peer's records and merges them once through the
//! record model's pure merge (`record::merge`); [`outgoing`] reads what a peer lacks;
//! [`apply`] writes a peer's changes with the checkpoint that covers them; [`peers`] keeps each
//! link's counters and the audit log of refused changes; [`digest`] compares subtrees in
//! buckets for repair.

mod apply;
mod digest;
mod merge;
mod outgoing;
pub use outgoing::Waiting;
mod peers;
#[cfg(test)]
mod tests;

pub use apply::*;
pub use merge::*;
pub use peers::*;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{History, Prior, Row, RowValues, Store, StoreError, WriteTx, rollup};

use crate::record::event::Rejection;
use crate::record::{AnyHeader, Author, DocError, RecordId, RecordKind};
use crate::region::RegionCode;
use crate::route::{RouteHints, RoutePolicy, holds};

/// One record's changes in a batch, with its header so the receiver can route and authorise it
/// before touching the document, and the hints it travels by, so that a node of a release that
/// does not know the record's kind can route it all the same.
#[derive(Clone, Debug, PartialEq)]
pub struct OutgoingRecord {
    pub header: AnyHeader,
    /// Always sent; `None` only from a peer of protocol 6, which sent none.
    pub hints: Option<RouteHints>,
    pub changes: Vec<Vec<u8>>,
}

impl OutgoingRecord {
    /// A record of a kind this release knows, with its hints derived from the record.
    pub fn of(record: &crate::record::Record, changes: Vec<Vec<u8>>) -> OutgoingRecord {
        OutgoingRecord {
            header: record.header.clone().into(),
            hints: Some(RouteHints::of(record)),
            changes,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutgoingBatch {
    /// The position in this node's sequence the batch brings the peer up to. Changes the peer
    /// does not hold are skipped but still counted as covered.
    pub up_to_seq: i64,
    /// The hash of the change at `up_to_seq` (empty for 0), which the peer names back in its
    /// next Hello so this node can check the claim against its own history.
    pub up_to_hash: Vec<u8>,
    pub records: Vec<OutgoingRecord>,
    pub changes: usize,
    pub bytes: usize,
}

pub type IncomingRecord = OutgoingRecord;

/// A stored record's hints as routing reads them: its `route` column, personal as well if a
/// sender once marked it so (`records.personal_claimed`), and personal data's kind keeps it
/// home whatever the column says.
fn stored_hints(header: &AnyHeader, route: &str, personal_claimed: bool) -> RouteHints {
    let mut hints: RouteHints = serde_json::from_str(route).unwrap_or_default();
    hints.personal |= personal_claimed || header.kind == RecordKind::Personal.as_str();
    hints
}

/// A position in a peer's change sequence with the hash of the change the peer holds there: a
/// node's checkpoint of how far it has applied that peer's changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    /// Empty for position 0, and for checkpoints written before hashes were kept.
    pub hash: Vec<u8>,
}
