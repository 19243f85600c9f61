//! The store's side of sync: reading the changes a peer lacks, and applying a peer's changes
//! together with the checkpoint that covers them.
//!
//! Checkpoints are positions in change sequences. A node remembers, per peer, how far into the
//! *peer's* sequence it has applied (`received_seq`, written in the same transaction as the
//! changes) and tells the peer on connect; the peer then sends only what follows. So a link cut
//! mid-batch resumes after the last batch that was durably applied, and a batch delivered twice
//! is a no-op: its changes are already held (unique by hash) and the checkpoint only moves forward.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Prior, Store, StoreError, WriteTx};
use automerge::{ActorId, Change, ChangeHash};

use crate::record::authority::{Held, Sender, check_incoming, needs_before};
use crate::record::event::Rejection;
use crate::record::replay::{Declined, DecodedChange, Replay};
use crate::record::{Author, DocError, Header, Record, RecordDoc, RecordId, RecordKind};
use crate::region::RegionCode;
use crate::route::{RouteHints, RoutePolicy, holds};

/// One record's changes in a batch, with its header so the receiver can route and authorise it
/// before touching the document.
#[derive(Clone, Debug, PartialEq)]
pub struct OutgoingRecord {
    pub header: Header,
    pub changes: Vec<Vec<u8>>,
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

/// A position in a peer's change sequence with the hash of the change the peer holds there: a
/// node's checkpoint of how far it has applied that peer's changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    /// Empty for position 0, and for checkpoints written before hashes were kept.
    pub hash: Vec<u8>,
}

/// Who is merging a peer's changes and from whom: everything a merge needs that is neither in
/// the record nor in the store, so that a merge can run on any thread.
#[derive(Clone, Copy, Debug)]
pub struct MergeContext {
    /// This node's region.
    pub me: RegionCode,
    /// The peer the changes came from.
    pub peer: RegionCode,
    pub policy: RoutePolicy,
}

impl MergeContext {
    fn sender(&self) -> Sender {
        if self.peer.parent() == Some(self.me) {
            Sender::Child(self.peer)
        } else {
            Sender::Parent(self.peer)
        }
    }
}

/// A record as the store held it when a batch was prepared: what a merge off the store thread
/// starts from, and the mark by which the store tells at write time whether it still holds.
#[derive(Debug)]
pub struct StoredState {
    /// `records.last_seq`: every write that changes a record stores a change and so moves it,
    /// so the same value means the same document.
    last_seq: i64,
    /// The last full save (empty until the first compaction) and the position in the change
    /// sequence it covers.
    saved: Vec<u8>,
    doc_seq: i64,
    /// `records.heads_hash`, which a replay of the change rows must reproduce before it is
    /// trusted to stand for the stored document.
    heads_hash: Option<Vec<u8>>,
    /// The record's change rows by sequence: all of them when read for a merge, which replays
    /// them, or only those after the save when read to load the document.
    changes: Vec<(i64, Vec<u8>)>,
    /// `records.addressed_to`: the congress a suggestion was addressed to, as the model derived
    /// it from the stored document.
    addressed_to: Option<String>,
}

impl StoredState {
    /// The last full save followed by the changes stored after it, which automerge loads as one
    /// byte string.
    pub fn doc_bytes(&self) -> Vec<u8> {
        let tail = self.changes.iter().filter(|(seq, _)| *seq > self.doc_seq);
        let mut bytes = Vec::with_capacity(
            self.saved.len() + tail.clone().map(|(_, c)| c.len()).sum::<usize>(),
        );
        bytes.extend_from_slice(&self.saved);
        for (_, change) in tail {
            bytes.extend_from_slice(change);
        }
        bytes
    }

    /// Every stored change, decoded for a replay.
    fn decoded(&self) -> Result<Vec<DecodedChange>, DocError> {
        self.changes
            .iter()
            .map(|(_, bytes)| RecordDoc::decode_change_ops(bytes))
            .collect()
    }
}

/// A peer's record made ready for the store without the store: its changes decoded and merged
/// onto the record as the store held it when the batch arrived (onto nothing, for a record new
/// here, which is every record of a first sync). Merging is most of the work of applying a
/// batch and none of it touches SQLite, so a link merges a batch on every core while the store
/// thread writes the batch before it. The store uses the merge only if the record is still as
/// it was merged onto; otherwise it merges again itself.
pub struct PreparedRecord {
    header: Header,
    /// Encoded size of the changes, for the link statistics.
    bytes: usize,
    /// The decoded changes, or the rule the record broke while decoding them.
    changes: Result<Vec<DecodedChange>, Rejection>,
    /// The merge, and the `last_seq` of the state it was done onto (`None`: the record was
    /// absent). `None` until merged.
    merged: Option<(Option<i64>, Merge)>,
}

/// What merging one record's incoming changes came to.
pub(crate) enum Merge {
    /// The changes break a rule; none of them is stored.
    Refused(Rejection),
    /// Nothing new to store: every change was held already, or none could be applied yet.
    /// `complete` is false while some wait for changes the sender has not sent.
    Unchanged { complete: bool },
    /// New changes, boxed: a merged record is large beside a refusal.
    Changed(Box<Merged>),
}

/// New changes to a record, the record and heads they make, and whether any change still waits
/// for one the sender has not sent.
pub(crate) struct Merged {
    /// The merged document, when automerge merged it; `None` when a replay did, and then the
    /// store loads it only to compact the record's stored tail.
    doc: Option<RecordDoc>,
    heads: Vec<ChangeHash>,
    record: Record,
    applied: Vec<Change>,
    complete: bool,
}

impl PreparedRecord {
    /// Decodes a peer's record and merges it onto nothing, which is right if this node does
    /// not hold the record; [`PreparedRecord::rebase`] merges it onto a stored state instead.
    pub fn new(incoming: IncomingRecord, ctx: &MergeContext) -> PreparedRecord {
        let bytes = incoming.changes.iter().map(Vec::len).sum();
        let changes: Result<Vec<DecodedChange>, Rejection> = incoming
            .changes
            .iter()
            .map(|b| {
                RecordDoc::decode_change_ops(b)
                    .map_err(|e| Rejection::new("decode.change", e.to_string()))
            })
            .collect();
        let mut prepared = PreparedRecord {
            header: incoming.header,
            bytes,
            changes,
            merged: None,
        };
        prepared.merge_onto(None, ctx);
        prepared
    }

    pub fn id(&self) -> RecordId {
        self.header.id
    }

    /// Merges again, onto the record as the store held it.
    pub fn rebase(&mut self, stored: &StoredState, ctx: &MergeContext) {
        self.merge_onto(Some(stored), ctx);
    }

    fn merge_onto(&mut self, stored: Option<&StoredState>, ctx: &MergeContext) {
        let merge = match &self.changes {
            Ok(changes) => merge(ctx, &self.header, changes, stored),
            Err(rejection) => Merge::Refused(rejection.clone()),
        };
        self.merged = Some((stored.map(|s| s.last_seq), merge));
    }
}

/// The actor of documents a node only merges into: merging writes no operation, and the store
/// reloads a document with the node's own actor before the node writes to it.
fn merging_actor() -> ActorId {
    ActorId::from([0u8; 16])
}

/// What the checks need of a record as this node held it before a peer's changes.
#[derive(Default)]
struct Before {
    /// The whole record, for the kinds whose checks compare it ([`needs_before`]).
    record: Option<Record>,
    /// A workflow record's event texts.
    events: Option<Vec<String>>,
    /// A suggestion's addressed congress, as written.
    addressed: Option<String>,
}

impl Before {
    fn held(&self) -> Held<'_> {
        match (&self.record, &self.events) {
            (Some(record), _) => Held::Record(record),
            (None, Some(events)) => Held::Workflow {
                events,
                addressed_to: self.addressed.as_deref(),
            },
            (None, None) => Held::Unread,
        }
    }
}

/// A merge before the checks, however it was computed.
struct Candidate {
    doc: Option<RecordDoc>,
    heads: Vec<ChangeHash>,
    record: Record,
    after_events: Vec<String>,
    applied: Vec<Change>,
    complete: bool,
    /// `None`: the record is new here.
    before: Option<Before>,
}

/// A workflow record's event texts read from its root, as [`RecordDoc::event_texts`] reads them
/// from the document: an entry that is not text reads as an empty string.
fn event_texts_of(root: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
    match root.get("events") {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().unwrap_or_default().to_string())
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether automerge, given `changes` for a record it does not hold, would apply none of them
/// and keep them all queued without an error: none can start a document (each depends on
/// another), and none repeats another's actor and sequence number or carries an author footer,
/// which automerge refuses. This is every update to a record a receiver holds, merged as if
/// new while the store reads what it holds.
fn all_queued(changes: &[DecodedChange]) -> bool {
    let mut seqs = std::collections::HashSet::new();
    let mut hashes = std::collections::HashSet::new();
    changes.iter().all(|c| {
        let change = &c.change;
        !change.deps().is_empty()
            && change.author().is_none()
            && (!hashes.insert(change.hash()) || seqs.insert((change.actor_id(), change.seq())))
    })
}

/// Merges by replaying the stored changes and the peer's (`record::replay`), without automerge.
/// `Ok(None)`: nothing to store, every change held already or none applicable yet. [`Declined`]
/// when the history is one only automerge may judge, or when anything fails to read: automerge
/// then merges, and reports.
fn replayed(
    declared: &Header,
    changes: &[DecodedChange],
    stored: Option<&StoredState>,
) -> Result<Result<Candidate, Merge>, Declined> {
    let unreadable = |_| Declined("the replayed document does not read");
    let kind = declared.kind;
    let mut replay = Replay::new();
    let mut header_before = None;
    let before = match stored {
        None if all_queued(changes) => return Ok(Err(Merge::Unchanged { complete: false })),
        None => None,
        // A long history loads faster from its last save than it replays change by change
        // (a save follows every `MAX_DOC_TAIL` changes).
        Some(state) if state.changes.len() > 2 * super::MAX_DOC_TAIL as usize => {
            return Err(Declined("a long history loads faster from its save"));
        }
        Some(state) => {
            let held = state
                .decoded()
                .map_err(|_| Declined("a stored change does not decode"))?;
            replay.apply(&held)?;
            if state.heads_hash.as_deref() != Some(super::heads_hash(&replay.heads()).as_slice()) {
                return Err(Declined("the stored changes do not make the stored heads"));
            }
            let root = replay.root_json().map_err(unreadable)?;
            header_before = root.get("header").cloned();
            let mut before = Before::default();
            if kind.has_workflow() {
                before.events = Some(event_texts_of(&root));
            }
            if kind == RecordKind::Suggestion {
                before.addressed = state.addressed_to.clone();
            }
            if needs_before(kind) {
                before.record = Some(Record::from_root(root).map_err(unreadable)?);
            }
            Some(before)
        }
    };
    let applied = replay.apply(changes)?;
    if applied.is_empty() {
        return match stored {
            Some(_) => Ok(Err(Merge::Unchanged { complete: true })),
            None => Err(Declined("a new record with no changes")),
        };
    }
    let root = replay.root_json().map_err(unreadable)?;
    // The header is written once. A change to it is automerge's to refuse
    // (`DocError::HeaderChanged`), with the rule the sender is told.
    if stored.is_some() && root.get("header") != header_before.as_ref() {
        return Err(Declined("a change rewrites the header"));
    }
    let after_events = if kind.has_workflow() {
        event_texts_of(&root)
    } else {
        Vec::new()
    };
    let record = Record::from_root(root).map_err(unreadable)?;
    Ok(Ok(Candidate {
        doc: None,
        heads: replay.heads(),
        record,
        after_events,
        applied: applied.iter().map(|&i| changes[i].change.clone()).collect(),
        complete: true,
        before,
    }))
}

/// Merges with automerge: loads the stored document, reads what the checks need of it, and
/// applies the peer's changes. `Err` is the merge's outcome without a candidate: a refusal, or
/// nothing new.
fn merged_by_automerge(
    declared: &Header,
    changes: &[DecodedChange],
    stored: Option<&StoredState>,
) -> Result<Candidate, Merge> {
    let kind = declared.kind;
    let incoming: Vec<Change> = changes.iter().map(|c| c.change.clone()).collect();
    let hashes: Vec<_> = incoming.iter().map(|c| c.hash()).collect();
    // A damaged local copy refuses the peer's changes to that record instead of failing the
    // whole link: every other record still syncs.
    let damaged = |e: &dyn std::fmt::Display| {
        Merge::Refused(Rejection::new(
            "store.damaged_local_copy",
            format!("本节点保存的记录 {} 已损坏，无法合并：{e}", declared.id),
        ))
    };
    let apply_failed = |e: DocError| Merge::Refused(Rejection::new("decode.apply", e.to_string()));
    let unreadable = |e: DocError| Merge::Refused(Rejection::new("decode.record", e.to_string()));
    let (doc, applied, before) = match stored {
        // Nothing applies to a record this node has never seen when its first changes are
        // missing: it stays absent until the sender resends its whole history.
        None => {
            let mut doc = RecordDoc::empty(&merging_actor());
            let applied = doc.apply_changes(incoming).map_err(apply_failed)?;
            if doc.heads().is_empty() {
                return Err(Merge::Unchanged { complete: false });
            }
            (doc, applied, None)
        }
        Some(state) => {
            let mut doc =
                RecordDoc::load(&state.doc_bytes(), &merging_actor()).map_err(|e| damaged(&e))?;
            let mut before = Before::default();
            if needs_before(kind) {
                before.record = Some(Record::from_doc(&doc).map_err(|e| damaged(&e))?);
            }
            if kind.has_workflow() {
                before.events = Some(doc.event_texts().map_err(|e| damaged(&e))?);
            }
            if kind == RecordKind::Suggestion {
                before.addressed = doc.field_text("addressed_to").map_err(|e| damaged(&e))?;
            }
            let applied = doc.apply_changes(incoming).map_err(apply_failed)?;
            if applied.is_empty() {
                return Err(Merge::Unchanged {
                    complete: hashes.iter().all(|h| doc.has_change(h)),
                });
            }
            (doc, applied, Some(before))
        }
    };
    let record = Record::from_doc(&doc).map_err(unreadable)?;
    let after_events = if kind.has_workflow() {
        doc.event_texts().map_err(unreadable)?
    } else {
        Vec::new()
    };
    // A change whose dependencies are missing waits outside the document: the record is
    // incomplete until the sender resends its full history.
    let complete = hashes.iter().all(|h| doc.has_change(h));
    Ok(Candidate {
        heads: doc.heads(),
        doc: Some(doc),
        record,
        after_events,
        applied,
        complete,
        before,
    })
}

/// Merges a peer's changes to one record onto the stored state (`None`: the record is new
/// here), and checks the result against every rule that does not need the store: the sender's
/// subtree, the header, routing and authority. Pure: it runs on any thread. The merge is a
/// replay of the changes where the history allows one, automerge's otherwise; the checks are
/// the same either way.
fn merge(
    ctx: &MergeContext,
    declared: &Header,
    changes: &[DecodedChange],
    stored: Option<&StoredState>,
) -> Merge {
    let sender = ctx.sender();
    let peer = ctx.peer;
    // A child may only send records homed in its own subtree.
    if matches!(sender, Sender::Child(_)) && !declared.home.is_within(&peer) {
        return Merge::Refused(Rejection::new(
            "authority.child_subtree",
            format!(
                "{peer} 不能写入记录 {}：它属于 {}，不在 {peer} 的辖区内",
                declared.id, declared.home
            ),
        ));
    }
    let candidate = match replayed(declared, changes, stored) {
        Ok(Ok(candidate)) => candidate,
        Ok(Err(merge)) => return merge,
        Err(_) => match merged_by_automerge(declared, changes, stored) {
            Ok(candidate) => candidate,
            Err(merge) => return merge,
        },
    };
    let Candidate {
        doc,
        heads,
        record,
        after_events,
        applied,
        complete,
        before,
    } = candidate;
    if record.header != *declared {
        return Merge::Refused(Rejection::new(
            "header.mismatch",
            format!("记录 {} 的文档头与声明的不符", declared.id),
        ));
    }
    let hints = RouteHints::of(&record);
    if !holds(&ctx.me, &record.header, &hints, &ctx.policy) {
        return Merge::Refused(Rejection::new(
            "route.outside",
            format!("记录 {} 不应发往本节点 {}", declared.id, ctx.me),
        ));
    }
    let held = before.as_ref().map_or(Held::Nothing, Before::held);
    if let Err(rejection) = check_incoming(
        sender,
        held,
        &record,
        &after_events,
        applied.iter().map(|c| c.actor_id()),
    ) {
        return Merge::Refused(rejection);
    }
    Merge::Changed(Box::new(Merged {
        doc,
        heads,
        record,
        applied,
        complete,
    }))
}

/// What applying a batch did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ApplyOutcome {
    pub changes_applied: usize,
    pub records_touched: usize,
    /// Records whose changes could not all be applied because earlier changes are missing; the
    /// sender is asked for their full history.
    pub missing: Vec<RecordId>,
    /// Records whose changes were refused, none of them stored; each is also in the audit log.
    pub rejected: Vec<Refused>,
}

/// A record whose incoming changes a node refused, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Refused {
    pub record: String,
    /// A stable English rule id, such as `authority.addressed_congress`.
    pub rule: String,
    /// What was wrong, in Chinese, for the staff who read the audit log.
    pub reason: String,
}

/// One line of the audit log: a peer's changes this node refused.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub peer: String,
    pub record: String,
    pub kind: String,
    pub rule: String,
    pub reason: String,
    /// How many changes of the record the peer sent in the refused set.
    pub changes: i64,
}

/// Sync health of one link, for `renda status`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PeerStatus {
    pub peer: RegionCode,
    pub received_seq: i64,
    pub acked_seq: i64,
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub records_in: i64,
    pub records_out: i64,
    pub changes_in: i64,
    pub changes_out: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    /// How far this node's sequence is ahead of what the peer acknowledged.
    pub lag: i64,
    /// Records this node refused from the peer (each is in the audit log).
    pub refused_in: i64,
    /// Records the peer refused from this node, and the peer's word on the last of them.
    pub refused_out: i64,
    pub last_refusal: Option<String>,
    /// [`PeerStatus::stalled`] now, by the running node's link timeout (the default when no
    /// node has run here).
    pub stalled: bool,
}

impl PeerStatus {
    /// Whether the link is stalled: the peer owes acknowledgements (lag) and none has arrived
    /// for longer than `after`, the link timeout. A live link that silently stopped forwarding
    /// shows as stalled until it is dropped and redialled, and a child that is away while its
    /// parent has news for it shows as stalled too; an idle link owes nothing and never is.
    pub fn stalled(&self, now: DateTime<Utc>, after: std::time::Duration) -> bool {
        let after = chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX);
        self.lag > 0 && self.last_success.is_none_or(|at| now - at > after)
    }
}

fn header_from_columns(
    id: &str,
    kind: &str,
    home: &str,
    created_at: &str,
    created_by: &str,
) -> Result<Header, StoreError> {
    let bad = |what: &str| StoreError::Corrupt {
        id: id.to_string(),
        source: DocError::Header(format!("header column {what} is malformed")),
    };
    Ok(Header {
        id: RecordId::parse("id", id).map_err(|_| bad("id"))?,
        kind: RecordKind::parse(kind).ok_or_else(|| bad("kind"))?,
        home: RegionCode::parse("home", home).map_err(|_| bad("home"))?,
        created_at: DateTime::parse_from_rfc3339(created_at)
            .map_err(|_| bad("created_at"))?
            .with_timezone(&Utc),
        created_by: Author::parse(created_by).ok_or_else(|| bad("created_by"))?,
    })
}

impl Store {
    /// The newest position in this node's change sequence.
    pub fn last_seq(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| {
                r.get(0)
            })?)
    }

    /// Whether this node was restored from a backup and has not yet resynced with `peer` since,
    /// or owes `peer` a resync it started and did not finish.
    pub fn needs_resync(&self, peer: &RegionCode) -> Result<bool, StoreError> {
        let owed: bool = self
            .conn
            .query_row(
                "SELECT resync_owed FROM sync_peers WHERE peer = ?1",
                [peer.as_str()],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(false);
        if owed {
            return Ok(true);
        }
        let restore: Option<String> =
            self.conn
                .query_row("SELECT restore_id FROM node WHERE singleton = 1", [], |r| {
                    r.get(0)
                })?;
        let Some(restore) = restore else {
            return Ok(false);
        };
        let done: Option<String> = self
            .conn
            .query_row(
                "SELECT resynced_restore FROM sync_peers WHERE peer = ?1",
                [peer.as_str()],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        Ok(done.as_deref() != Some(restore.as_str()))
    }

    /// How far into `peer`'s sequence this node has applied.
    pub fn received_seq(&self, peer: &RegionCode) -> Result<i64, StoreError> {
        Ok(self.received_checkpoint(peer)?.seq)
    }

    /// How far into `peer`'s sequence this node has applied, with the hash the peer named for
    /// that position: what this node claims in its Hello.
    pub fn received_checkpoint(&self, peer: &RegionCode) -> Result<Checkpoint, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT received_seq, coalesce(received_hash, x'') FROM sync_peers WHERE peer = ?1",
                [peer.as_str()],
                |r| {
                    Ok(Checkpoint {
                        seq: r.get(0)?,
                        hash: r.get(1)?,
                    })
                },
            )
            .optional()?
            .unwrap_or_default())
    }

    /// The hash of the change at `seq` in this node's sequence, if there is one.
    pub fn change_hash_at(&self, seq: i64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT hash FROM changes WHERE seq = ?1")?
            .query_row([seq], |r| r.get(0))
            .optional()?)
    }

    /// The next batch for `peer`: changes after `after_seq` that the peer holds by its routes and
    /// did not send itself, up to about `max_bytes`.
    pub fn outgoing(
        &self,
        peer: &RegionCode,
        after_seq: i64,
        max_bytes: usize,
        policy: &RoutePolicy,
    ) -> Result<OutgoingBatch, StoreError> {
        self.outgoing_from(peer, after_seq, max_bytes, policy, true)
    }

    /// Like [`Store::outgoing`]; `skip_peer_origin: false` also sends the peer's own changes back,
    /// for a peer restored from a backup that lost them.
    pub fn outgoing_from(
        &self,
        peer: &RegionCode,
        after_seq: i64,
        max_bytes: usize,
        policy: &RoutePolicy,
        skip_peer_origin: bool,
    ) -> Result<OutgoingBatch, StoreError> {
        const CHUNK: i64 = 2_000;
        let mut batch = OutgoingBatch {
            up_to_seq: after_seq,
            ..Default::default()
        };
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.seq, c.record_id, c.bytes, c.origin, r.kind, r.home, r.created_at, r.created_by, r.route, c.hash
             FROM changes c JOIN records r ON r.id = c.record_id
             WHERE c.seq > ?1 ORDER BY c.seq LIMIT ?2",
        )?;
        // A batch that scans nothing stays where it started; name the change there too.
        if after_seq > 0 {
            batch.up_to_hash = self.change_hash_at(after_seq)?.unwrap_or_default();
        }
        loop {
            let mut rows = stmt.query(params![batch.up_to_seq, CHUNK])?;
            let mut scanned = 0;
            while let Some(row) = rows.next()? {
                scanned += 1;
                let seq: i64 = row.get(0)?;
                let id: String = row.get(1)?;
                let origin: Option<String> = row.get(3)?;
                batch.up_to_seq = seq;
                batch.up_to_hash = row.get(9)?;
                if skip_peer_origin && origin.as_deref() == Some(peer.as_str()) {
                    continue;
                }
                let header = header_from_columns(
                    &id,
                    &row.get::<_, String>(4)?,
                    &row.get::<_, String>(5)?,
                    &row.get::<_, String>(6)?,
                    &row.get::<_, String>(7)?,
                )?;
                let hints: RouteHints =
                    serde_json::from_str(&row.get::<_, String>(8)?).unwrap_or_default();
                if !holds(peer, &header, &hints, policy) {
                    continue;
                }
                let bytes: Vec<u8> = row.get(2)?;
                batch.bytes += bytes.len();
                batch.changes += 1;
                let at = *index.entry(id).or_insert_with(|| {
                    batch.records.push(OutgoingRecord {
                        header,
                        changes: Vec::new(),
                    });
                    batch.records.len() - 1
                });
                batch.records[at].changes.push(bytes);
                if batch.bytes >= max_bytes {
                    return Ok(batch);
                }
            }
            if scanned < CHUNK {
                return Ok(batch);
            }
        }
    }

    /// Every change of these records that `peer` holds, for a peer that found gaps.
    pub fn full_records(
        &self,
        peer: &RegionCode,
        ids: &[RecordId],
        policy: &RoutePolicy,
    ) -> Result<Vec<OutgoingRecord>, StoreError> {
        let mut out = Vec::new();
        for id in ids {
            let row = self
                .conn
                .query_row(
                    "SELECT kind, home, created_at, created_by, route FROM records WHERE id = ?1",
                    [id.to_string()],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, String>(4)?,
                        ))
                    },
                )
                .optional()?;
            let Some((kind, home, created_at, created_by, route)) = row else {
                continue;
            };
            let header =
                header_from_columns(&id.to_string(), &kind, &home, &created_at, &created_by)?;
            let hints: RouteHints = serde_json::from_str(&route).unwrap_or_default();
            if !holds(peer, &header, &hints, policy) {
                continue;
            }
            let mut stmt = self
                .conn
                .prepare_cached("SELECT bytes FROM changes WHERE record_id = ?1 ORDER BY seq")?;
            let changes = stmt
                .query_map([id.to_string()], |r| r.get::<_, Vec<u8>>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            out.push(OutgoingRecord { header, changes });
        }
        Ok(out)
    }

    pub fn peers(&self) -> Result<Vec<PeerStatus>, StoreError> {
        peer_statuses(&self.conn)
    }

    /// How many entries the audit log holds.
    pub fn audit_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM audit", [], |r| r.get::<_, i64>(0))?
            .max(0) as u64)
    }

    /// The newest `limit` entries of the audit log, newest first.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT at, peer, record_id, kind, rule, reason, changes FROM audit ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                AuditEntry {
                    at: DateTime::<Utc>::UNIX_EPOCH,
                    peer: r.get(1)?,
                    record: r.get(2)?,
                    kind: r.get(3)?,
                    rule: r.get(4)?,
                    reason: r.get(5)?,
                    changes: r.get(6)?,
                },
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (at, mut entry) = row?;
            entry.at = DateTime::parse_from_rfc3339(&at)
                .map_err(|_| StoreError::Corrupt {
                    id: format!("audit {}", entry.record),
                    source: DocError::Header(format!("audit time {at:?} is malformed")),
                })?
                .with_timezone(&Utc);
            out.push(entry);
        }
        Ok(out)
    }
}

/// Sync health of every link, read from `sync_peers`.
pub(crate) fn peer_statuses(conn: &rusqlite::Connection) -> Result<Vec<PeerStatus>, StoreError> {
    let last: i64 = conn.query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| {
        r.get(0)
    })?;
    let timeout: Option<i64> = conn.query_row(
        "SELECT link_timeout_secs FROM node WHERE singleton = 1",
        [],
        |r| r.get(0),
    )?;
    let timeout = timeout.and_then(|s| u64::try_from(s).ok()).map_or(
        crate::sync::DEFAULT_LINK_TIMEOUT,
        std::time::Duration::from_secs,
    );
    let now = Utc::now();
    let mut stmt = conn.prepare(
            "SELECT peer, received_seq, acked_seq, last_success, last_error, changes_in, changes_out, bytes_in, bytes_out,
                    records_in, records_out, refused_in, refused_out, last_refusal FROM sync_peers ORDER BY peer",
        )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, i64>(6)?,
            r.get::<_, i64>(7)?,
            r.get::<_, i64>(8)?,
            r.get::<_, i64>(9)?,
            r.get::<_, i64>(10)?,
            (
                r.get::<_, i64>(11)?,
                r.get::<_, i64>(12)?,
                r.get::<_, Option<String>>(13)?,
            ),
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (
            peer,
            received_seq,
            acked_seq,
            last_success,
            last_error,
            changes_in,
            changes_out,
            bytes_in,
            bytes_out,
            records_in,
            records_out,
            (refused_in, refused_out, last_refusal),
        ) = row?;
        out.push(PeerStatus {
            peer: RegionCode::parse("peer", &peer).map_err(StoreError::from)?,
            received_seq,
            acked_seq,
            last_success: last_success
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc)),
            last_error,
            records_in,
            records_out,
            changes_in,
            changes_out,
            bytes_in,
            bytes_out,
            lag: (last - acked_seq).max(0),
            refused_in,
            refused_out,
            last_refusal,
            stalled: false,
        });
        if let Some(status) = out.last_mut() {
            status.stalled = status.stalled(now, timeout);
        }
    }
    Ok(out)
}

impl WriteTx<'_> {
    /// Records that the resync with `peer` after the latest restore is complete.
    pub fn mark_resynced(&mut self, peer: &RegionCode) -> Result<(), StoreError> {
        self.ensure_peer(peer)?;
        self.tx.execute(
            "UPDATE sync_peers SET resynced_restore = (SELECT restore_id FROM node WHERE singleton = 1), resync_owed = 0
             WHERE peer = ?1",
            [peer.as_str()],
        )?;
        Ok(())
    }

    /// Records the running node's link timeout, by which `renda status`, the metrics and the
    /// sync page judge a link stalled.
    pub fn set_link_timeout(&mut self, timeout: std::time::Duration) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE node SET link_timeout_secs = ?1 WHERE singleton = 1 AND link_timeout_secs IS NOT ?1",
            [i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX)],
        )?;
        Ok(())
    }

    /// Records that this node owes `peer` a completed resync (see [`Store::needs_resync`]).
    pub fn owe_resync(&mut self, peer: &RegionCode) -> Result<(), StoreError> {
        self.ensure_peer(peer)?;
        self.tx.execute(
            "UPDATE sync_peers SET resync_owed = 1 WHERE peer = ?1",
            [peer.as_str()],
        )?;
        Ok(())
    }

    /// Forgets how far this node has applied `peer`'s sequence, because the peer asked to resync:
    /// its history may not be the one the checkpoint was about (a restore), and it resends from
    /// the start. Lowering a checkpoint costs a resend of changes this node already holds, which
    /// are no-ops; keeping it could skip positions the peer now uses for other changes.
    pub fn forget_received(&mut self, peer: &RegionCode) -> Result<(), StoreError> {
        self.ensure_peer(peer)?;
        self.tx.execute(
            "UPDATE sync_peers SET received_seq = 0, received_hash = NULL WHERE peer = ?1",
            [peer.as_str()],
        )?;
        Ok(())
    }

    fn ensure_peer(&mut self, peer: &RegionCode) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO sync_peers (peer) VALUES (?1) ON CONFLICT(peer) DO NOTHING",
            [peer.as_str()],
        )?;
        Ok(())
    }

    /// Records that `peer` acknowledged this node's sequence up to `seq`, having sent `changes`
    /// changes of `bytes` bytes.
    pub fn record_acked(
        &mut self,
        peer: &RegionCode,
        seq: i64,
        records: usize,
        changes: usize,
        bytes: usize,
    ) -> Result<(), StoreError> {
        self.ensure_peer(peer)?;
        // An acknowledgement that moves nothing writes nothing: the round's end records the
        // link's success.
        self.tx.execute(
            "UPDATE sync_peers SET acked_seq = max(acked_seq, ?2), records_out = records_out + ?6,
               changes_out = changes_out + ?3, bytes_out = bytes_out + ?4, last_success = ?5, last_error = NULL
             WHERE peer = ?1 AND (acked_seq < ?2 OR ?3 > 0 OR ?6 > 0 OR last_error IS NOT NULL)",
            params![peer.as_str(), seq, changes as i64, bytes as i64, Utc::now().to_rfc3339(), records as i64],
        )?;
        Ok(())
    }

    /// Notes that `peer` refused records this node sent, with the peer's reasons.
    pub fn record_refused_by_peer(
        &mut self,
        peer: &RegionCode,
        refused: &[Refused],
    ) -> Result<(), StoreError> {
        let Some(last) = refused.last() else {
            return Ok(());
        };
        self.ensure_peer(peer)?;
        self.tx.execute(
            "UPDATE sync_peers SET refused_out = refused_out + ?2, last_refusal = ?3 WHERE peer = ?1",
            params![
                peer.as_str(),
                refused.len() as i64,
                format!("{} 拒收记录 {}：{} [{}]", peer, last.record, last.reason, last.rule)
            ],
        )?;
        Ok(())
    }

    /// Notes a link failure for `renda status`.
    pub fn record_link_error(&mut self, peer: &RegionCode, error: &str) -> Result<(), StoreError> {
        self.ensure_peer(peer)?;
        // The text may quote the peer: kept short for `renda status` and the sync page.
        self.tx.execute(
            "UPDATE sync_peers SET last_error = ?2 WHERE peer = ?1",
            params![peer.as_str(), crate::validate::clip(error, 300)],
        )?;
        Ok(())
    }

    /// Marks a round with `peer` as complete (both sides caught up).
    pub fn record_link_success(&mut self, peer: &RegionCode) -> Result<(), StoreError> {
        self.ensure_peer(peer)?;
        self.tx.execute(
            "UPDATE sync_peers SET last_success = ?2, last_error = NULL WHERE peer = ?1",
            params![peer.as_str(), Utc::now().to_rfc3339()],
        )?;
        Ok(())
    }

    fn merge_context(&self, peer: &RegionCode, policy: &RoutePolicy) -> MergeContext {
        MergeContext {
            me: self.node.region,
            peer: *peer,
            policy: *policy,
        }
    }

    /// Applies a peer's batch and moves the checkpoint to `up_to_seq` in the same transaction.
    /// Records that break a rule are refused and reported; the rest are applied.
    pub fn apply_incoming(
        &mut self,
        peer: &RegionCode,
        up_to_seq: Option<Checkpoint>,
        records: Vec<IncomingRecord>,
        policy: &RoutePolicy,
    ) -> Result<ApplyOutcome, StoreError> {
        let ctx = self.merge_context(peer, policy);
        let prepared = records
            .into_iter()
            .map(|r| PreparedRecord::new(r, &ctx))
            .collect();
        self.apply_prepared(peer, up_to_seq, prepared, policy)
    }

    /// [`WriteTx::apply_incoming`] for records already prepared off the store thread.
    pub fn apply_prepared(
        &mut self,
        peer: &RegionCode,
        up_to_seq: Option<Checkpoint>,
        records: Vec<PreparedRecord>,
        policy: &RoutePolicy,
    ) -> Result<ApplyOutcome, StoreError> {
        let ctx = self.merge_context(peer, policy);
        let mut outcome = ApplyOutcome::default();
        let mut bytes = 0usize;
        let mut total_changes = 0usize;
        for prepared in records {
            let id = prepared.header.id;
            let kind = prepared.header.kind;
            let sent = prepared.changes.as_ref().map_or(0, Vec::len);
            total_changes += sent;
            bytes += prepared.bytes;
            match self.apply_record(prepared, &ctx)? {
                Ok((applied, complete)) => {
                    outcome.changes_applied += applied;
                    if applied > 0 {
                        outcome.records_touched += 1;
                    }
                    if !complete {
                        outcome.missing.push(id);
                    }
                }
                Err(rejection) => {
                    // The peer and the audit log both learn which record, whatever the rule.
                    let reason = if rejection.reason.contains(&id.to_string()) {
                        rejection.reason
                    } else {
                        format!("记录 {id}：{}", rejection.reason)
                    };
                    self.tx
                        .prepare_cached(
                            "INSERT INTO audit (at, peer, record_id, kind, rule, reason, changes)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        )?
                        .execute(params![
                            Utc::now().to_rfc3339(),
                            peer.as_str(),
                            id.to_string(),
                            kind.as_str(),
                            rejection.rule,
                            reason,
                            sent as i64
                        ])?;
                    outcome.rejected.push(Refused {
                        record: id.to_string(),
                        rule: rejection.rule,
                        reason,
                    });
                }
            }
        }
        self.ensure_peer(peer)?;
        // A checkpoint that does not move and no records change no row, so a no-op round
        // commits nothing and costs no disk flush. The hash moves with the position (SQLite
        // reads the old row on the right of every assignment).
        // A checkpoint written before hashes were kept gets its hash from the next CaughtUp at
        // the same position, so it does not stay unchecked for good.
        let up_to = up_to_seq.unwrap_or_default();
        self.tx.execute(
            "UPDATE sync_peers SET received_seq = max(received_seq, ?2),
               received_hash = CASE WHEN ?2 > received_seq
                                      OR (?2 = received_seq AND coalesce(received_hash, x'') = x'')
                                    THEN ?7 ELSE received_hash END,
               changes_in = changes_in + ?3,
               bytes_in = bytes_in + ?4, records_in = records_in + ?5, refused_in = refused_in + ?6
             WHERE peer = ?1 AND (received_seq < ?2 OR ?3 > 0 OR ?6 > 0
                                  OR (received_seq = ?2 AND ?2 > 0 AND length(?7) > 0
                                      AND coalesce(received_hash, x'') = x''))",
            params![
                peer.as_str(),
                up_to.seq,
                total_changes as i64,
                bytes as i64,
                outcome.records_touched as i64,
                outcome.rejected.len() as i64,
                up_to.hash
            ],
        )?;
        Ok(outcome)
    }

    /// Stores one record's merge, merging here first if the record changed since the merge
    /// was prepared. Returns how many changes were new and whether every change could be
    /// applied, or the rule a refused record broke (nothing of it is then written). The outer
    /// error is the store failing, which fails the whole batch.
    fn apply_record(
        &mut self,
        prepared: PreparedRecord,
        ctx: &MergeContext,
    ) -> Result<Result<(usize, bool), Rejection>, StoreError> {
        let id = prepared.header.id.to_string();
        let current: Option<(i64, i64)> = self
            .tx
            .prepare_cached("SELECT last_seq, doc_tail FROM records WHERE id = ?1")?
            .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let merge = match prepared.merged {
            Some((base, merge)) if base == current.map(|(seq, _)| seq) => merge,
            _ => match prepared.changes {
                Err(rejection) => Merge::Refused(rejection),
                Ok(changes) => {
                    let stored = match current {
                        Some(_) => stored_state(&self.tx, &id, true)?,
                        None => None,
                    };
                    merge(ctx, &prepared.header, &changes, stored.as_ref())
                }
            },
        };
        match merge {
            Merge::Refused(rejection) => Ok(Err(rejection)),
            Merge::Unchanged { complete } => Ok(Ok((0, complete))),
            Merge::Changed(merged) => {
                let Merged {
                    doc,
                    heads,
                    record,
                    applied,
                    complete,
                } = *merged;
                let count = applied.len();
                let prior = match current {
                    Some((last_seq, tail)) => Prior::Stored { last_seq, tail },
                    None => Prior::Absent,
                };
                self.persist_decoded(
                    doc.as_ref(),
                    &heads,
                    record,
                    applied,
                    Some(&ctx.peer),
                    prior,
                )?;
                Ok(Ok((count, complete)))
            }
        }
    }
}

impl Store {
    /// The stored state of each record in `ids` (`None` where absent), for merging a batch
    /// off the store thread.
    pub fn stored_states(&self, ids: &[RecordId]) -> Result<Vec<Option<StoredState>>, StoreError> {
        ids.iter()
            .map(|id| stored_state(&self.conn, &id.to_string(), true))
            .collect()
    }
}

/// A record's stored save, change rows and `last_seq`, or `None` if the record is absent. With
/// `all_changes`, every change row; otherwise only those after the save, which is all that
/// loading the document needs.
pub(super) fn stored_state(
    conn: &rusqlite::Connection,
    id: &str,
    all_changes: bool,
) -> Result<Option<StoredState>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT doc, doc_seq, last_seq, heads_hash, addressed_to FROM records WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok(StoredState {
                saved: r.get(0)?,
                doc_seq: r.get(1)?,
                last_seq: r.get(2)?,
                heads_hash: r.get(3)?,
                changes: Vec::new(),
                addressed_to: r.get(4)?,
            })
        })
        .optional()?;
    let Some(mut state) = row else {
        return Ok(None);
    };
    // Every change after the save, whatever the row's counters say: the change table is the
    // record of what this node holds.
    let mut stmt = conn.prepare_cached(
        "SELECT seq, bytes FROM changes WHERE record_id = ?1 AND seq > ?2 ORDER BY seq",
    )?;
    let from = if all_changes { 0 } else { state.doc_seq };
    state.changes = stmt
        .query_map(params![id, from], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<(i64, Vec<u8>)>, _>>()?;
    Ok(Some(state))
}

/// Subtree digests: how two nodes find the records on which they differ without listing all.
pub const DIGEST_BUCKETS: usize = 256;

fn digest_bucket(id: &str) -> usize {
    use sha2::{Digest, Sha256};
    Sha256::digest(id.as_bytes())[0] as usize
}

fn digest_value(id: &str, heads: &[u8]) -> u64 {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(id.as_bytes());
    hasher.update(heads);
    let h = hasher.finalize();
    u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
}

impl Store {
    /// Every record this node holds that `peer` should hold too, with its heads hash.
    fn shared_records(
        &self,
        peer: &RegionCode,
        policy: &RoutePolicy,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, kind, home, created_at, created_by, route, heads_hash FROM records",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<Vec<u8>>>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kind, home, created_at, created_by, route, heads) = row?;
            let header = header_from_columns(&id, &kind, &home, &created_at, &created_by)?;
            let hints: RouteHints = serde_json::from_str(&route).unwrap_or_default();
            if !holds(peer, &header, &hints, policy) {
                continue;
            }
            let heads = match heads {
                Some(h) => h,
                // Rows written before heads were hashed: hash them now.
                None => super::heads_hash(&self.load_doc(&header.id)?.heads()),
            };
            out.push((id, heads));
        }
        Ok(out)
    }

    /// The digest of the records this node and `peer` should both hold.
    pub fn digest(&self, peer: &RegionCode, policy: &RoutePolicy) -> Result<Vec<u64>, StoreError> {
        let mut buckets = vec![0u64; DIGEST_BUCKETS];
        for (id, heads) in self.shared_records(peer, policy)? {
            buckets[digest_bucket(&id)] ^= digest_value(&id, &heads);
        }
        Ok(buckets)
    }

    /// The records behind the buckets marked in `differing`.
    pub fn digest_entries(
        &self,
        peer: &RegionCode,
        policy: &RoutePolicy,
        differing: &[bool],
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .shared_records(peer, policy)?
            .into_iter()
            .filter(|(id, _)| differing.get(digest_bucket(id)).copied().unwrap_or(false))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::office;
    use crate::record::opinion::{OpinionAction, OpinionFields, OpinionSource};

    fn code(s: &str) -> RegionCode {
        RegionCode::parse("region", s).unwrap()
    }

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 10, 1).unwrap()
    }

    /// What the township sends the county after `after_seq`.
    fn sent(town: &Store, county: RegionCode, after_seq: i64) -> (Vec<IncomingRecord>, i64) {
        let batch = town
            .outgoing(&county, after_seq, usize::MAX, &RoutePolicy::default())
            .unwrap();
        (batch.records, batch.up_to_seq)
    }

    /// A county (秀洲区) and one of its townships (王店镇), each a store of its own under `dir`.
    fn county_and_town(dir: &std::path::Path) -> (RegionCode, RegionCode, Store, Store) {
        let (county_code, town_code) = (code("330411000000"), code("330411101000"));
        let county = Store::init(&dir.join("county"), county_code, "秀洲区人大常委会", None);
        let town = Store::init(&dir.join("town"), town_code, "王店镇人大主席团", None);
        (county_code, town_code, county.unwrap(), town.unwrap())
    }

    /// A street-lamp opinion received at the township `town`, with no delegate or activity.
    fn lamp_opinion(town: RegionCode) -> OpinionFields {
        OpinionFields {
            source: OpinionSource::Reception,
            content: "村道路灯损坏，夜间出行不便".into(),
            place: "梅北村3组".into(),
            region: town,
            delegate: None,
            activity: None,
            category: None,
        }
    }

    /// A serving mandate at the township `town`'s congress, of term `term`.
    fn town_mandate(town: RegionCode, term: u32) -> crate::record::delegate::Mandate {
        crate::record::delegate::Mandate {
            congress: town,
            level: crate::region::Level::Township,
            term,
            constituency: "第三选区".into(),
            status: crate::record::delegate::MandateStatus::Serving,
            status_since: None,
        }
    }

    /// A township delegate named `name`, with a seventeenth-term mandate.
    fn town_delegate(town: RegionCode, name: &str) -> crate::record::delegate::Delegate {
        use crate::record::delegate::{Delegate, Gender, Mandate};
        Delegate {
            name: name.into(),
            gender: Gender::Female,
            birth_year: Some(1971),
            ethnicity: Some("汉族".into()),
            party: None,
            occupation: "村党总支书记".into(),
            station: None,
            mandates: [(Mandate::key(&town, 17), town_mandate(town, 17))].into(),
        }
    }

    /// Two batches merged off the store thread onto the same stored state, the second building
    /// on the first: once the first is stored, the second's merge is out of date, and storing it
    /// as prepared would leave the second change waiting for the first forever. The store sees
    /// the record's `last_seq` moved and merges the second batch again.
    #[test]
    fn a_merge_prepared_onto_an_older_state_is_merged_again() {
        let dir = tempfile::tempdir().unwrap();
        let (county_code, town_code, mut county, mut town) = county_and_town(dir.path());
        let fields = lamp_opinion(town_code);
        let id = town
            .write(|tx| office::add_opinion(tx, "clerk", fields, office::Contact::default(), day()))
            .unwrap()
            .id;
        let (first, seq) = sent(&town, county_code, 0);
        county
            .write(|tx| {
                tx.apply_incoming(
                    &town_code,
                    Some(Checkpoint {
                        seq,
                        hash: Vec::new(),
                    }),
                    first,
                    &RoutePolicy::default(),
                )
            })
            .unwrap();

        let step = |town: &mut Store, action: OpinionAction| {
            town.write(|tx| office::opinion_step(tx, "clerk", &id, action, day()))
                .unwrap();
        };
        step(
            &mut town,
            OpinionAction::PassOn {
                to: "镇建设办".into(),
            },
        );
        let (second, seq2) = sent(&town, county_code, seq);
        step(
            &mut town,
            OpinionAction::Start {
                note: "已派人查看".into(),
            },
        );
        let (third, seq3) = sent(&town, county_code, seq2);

        let ctx = MergeContext {
            me: county_code,
            peer: town_code,
            policy: RoutePolicy::default(),
        };
        let state = county
            .stored_states(&[id])
            .unwrap()
            .pop()
            .flatten()
            .unwrap();
        let prepare = |records: Vec<IncomingRecord>| -> Vec<PreparedRecord> {
            records
                .into_iter()
                .map(|r| {
                    let mut p = PreparedRecord::new(r, &ctx);
                    p.rebase(&state, &ctx);
                    p
                })
                .collect()
        };
        let (second, third) = (prepare(second), prepare(third));
        let policy = RoutePolicy::default();
        let applied = county
            .write(|tx| {
                tx.apply_prepared(
                    &town_code,
                    Some(Checkpoint {
                        seq: seq2,
                        hash: Vec::new(),
                    }),
                    second,
                    &policy,
                )
            })
            .unwrap();
        assert_eq!((applied.changes_applied, applied.missing.len()), (1, 0));
        let applied = county
            .write(|tx| {
                tx.apply_prepared(
                    &town_code,
                    Some(Checkpoint {
                        seq: seq3,
                        hash: Vec::new(),
                    }),
                    third,
                    &policy,
                )
            })
            .unwrap();
        assert_eq!(
            (applied.changes_applied, applied.missing.clone()),
            (1, Vec::new()),
            "the third change is merged onto the second, not left waiting for it"
        );
        let town_record = town.get(&id).unwrap();
        assert_eq!(county.get(&id).unwrap(), town_record);
    }

    /// Merges `records` both ways, by replay and by automerge, onto what `county` holds, and
    /// checks they agree and that the replay did not decline.
    fn both_merges_agree(county: &Store, records: &[IncomingRecord]) {
        for incoming in records {
            let decoded: Vec<DecodedChange> = incoming
                .changes
                .iter()
                .map(|b| RecordDoc::decode_change_ops(b).unwrap())
                .collect();
            let stored = county
                .stored_states(&[incoming.header.id])
                .unwrap()
                .pop()
                .flatten();
            let header = &incoming.header;
            let Ok(Ok(replayed)) = replayed(header, &decoded, stored.as_ref()) else {
                panic!(
                    "the replay of {} {} declined",
                    header.kind.as_str(),
                    header.id
                );
            };
            let Ok(merged) = merged_by_automerge(header, &decoded, stored.as_ref()) else {
                panic!("automerge did not merge {}", header.id);
            };
            assert_eq!(replayed.record, merged.record);
            assert_eq!(replayed.heads, merged.heads);
            assert_eq!(replayed.after_events, merged.after_events);
            assert_eq!(replayed.complete, merged.complete);
            let hashes = |c: &Candidate| c.applied.iter().map(|c| c.hash()).collect::<Vec<_>>();
            assert_eq!(hashes(&replayed), hashes(&merged));
            match (&replayed.before, &merged.before) {
                (None, None) => {}
                (Some(r), Some(m)) => {
                    assert_eq!(r.record, m.record);
                    assert_eq!(r.events, m.events);
                    assert_eq!(r.addressed, m.addressed);
                }
                _ => panic!("one merge held {} and the other did not", header.id),
            }
        }
    }

    /// A county's two ways of merging a township's records agree, for new records and for
    /// changes to held ones, and the replay takes every one of an honest township's: a
    /// delegate, an opinion with its constituent's contact, and later steps and edits.
    #[test]
    fn a_replayed_merge_is_what_automerge_merges() {
        let dir = tempfile::tempdir().unwrap();
        let (county_code, town_code, mut county, mut town) = county_and_town(dir.path());
        let delegate = town
            .write(|tx| {
                let delegate = town_delegate(town_code, "沈月娥");
                office::add_delegate(tx, "clerk", delegate, office::Contact::default())
            })
            .unwrap()
            .id;
        let opinion = town
            .write(|tx| {
                office::add_opinion(
                    tx,
                    "clerk",
                    OpinionFields {
                        delegate: Some(delegate),
                        ..lamp_opinion(town_code)
                    },
                    office::Contact {
                        name: Some("王阿姨".into()),
                        phone: Some("13800000000".into()),
                        id_number: None,
                    },
                    day(),
                )
            })
            .unwrap()
            .id;
        let policy = RoutePolicy::default();
        let (first, seq) = sent(&town, county_code, 0);
        assert_eq!(
            first.len(),
            3,
            "the delegate, the opinion and its personal data"
        );
        both_merges_agree(&county, &first);
        county
            .write(|tx| {
                tx.apply_incoming(
                    &town_code,
                    Some(Checkpoint {
                        seq,
                        hash: Vec::new(),
                    }),
                    first,
                    &policy,
                )
            })
            .unwrap();

        town.write(|tx| {
            office::opinion_step(
                tx,
                "clerk",
                &opinion,
                OpinionAction::PassOn {
                    to: "镇建设办".into(),
                },
                day(),
            )?;
            office::add_mandate(tx, &delegate, town_mandate(town_code, 18))
        })
        .unwrap();
        let (second, seq2) = sent(&town, county_code, seq);
        assert_eq!(second.len(), 2);
        both_merges_agree(&county, &second);
        county
            .write(|tx| {
                tx.apply_incoming(
                    &town_code,
                    Some(Checkpoint {
                        seq: seq2,
                        hash: Vec::new(),
                    }),
                    second,
                    &policy,
                )
            })
            .unwrap();
        assert_eq!(county.get(&opinion).unwrap(), town.get(&opinion).unwrap());
        assert!(county.derived_mismatches().unwrap().is_empty());
    }

    /// A record that takes more changes by sync than a stored tail holds is compacted on the
    /// way (the replay has no document to save, so the store loads one), and later rounds
    /// replay it from its change rows beside the saved document: the county ends with the
    /// township's record and columns that match its document.
    #[test]
    fn a_record_synced_past_its_tail_is_compacted_and_still_replays() {
        let dir = tempfile::tempdir().unwrap();
        let (county_code, town_code, mut county, mut town) = county_and_town(dir.path());
        let delegate = town_delegate(town_code, "周建国");
        let id = town
            .write(|tx| office::add_delegate(tx, "clerk", delegate, office::Contact::default()))
            .unwrap()
            .id;
        let policy = RoutePolicy::default();
        let mut seq = 0;
        for round in 0..6u32 {
            town.write(|tx| {
                for term in 18 + round * 8..18 + (round + 1) * 8 {
                    office::add_mandate(tx, &id, town_mandate(town_code, term))?;
                }
                Ok(())
            })
            .unwrap();
            let (records, up_to) = sent(&town, county_code, seq);
            seq = up_to;
            county
                .write(|tx| {
                    tx.apply_incoming(
                        &town_code,
                        Some(Checkpoint {
                            seq,
                            hash: Vec::new(),
                        }),
                        records,
                        &policy,
                    )
                })
                .unwrap();
        }
        let doc_seq: i64 = county
            .conn
            .query_row(
                "SELECT doc_seq FROM records WHERE id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .unwrap();
        assert!(doc_seq > 0, "49 changes were never compacted");
        assert_eq!(county.get(&id).unwrap(), town.get(&id).unwrap());
        assert!(county.derived_mismatches().unwrap().is_empty());
    }

    /// A township's change that rewrites the header of a record the county holds (here who
    /// created it, declared so in the batch, so that the record still reads) is refused
    /// whichever way the county merges, and the county keeps the record as it was.
    #[test]
    fn a_change_rewriting_a_held_header_is_refused() {
        use automerge::transaction::Transactable;
        let dir = tempfile::tempdir().unwrap();
        let (county_code, town_code, mut county, mut town) = county_and_town(dir.path());
        let id = town
            .write(|tx| {
                let fields = lamp_opinion(town_code);
                office::add_opinion(tx, "clerk", fields, office::Contact::default(), day())
            })
            .unwrap()
            .id;
        let policy = RoutePolicy::default();
        let (first, seq) = sent(&town, county_code, 0);
        county
            .write(|tx| {
                tx.apply_incoming(
                    &town_code,
                    Some(Checkpoint {
                        seq,
                        hash: Vec::new(),
                    }),
                    first,
                    &policy,
                )
            })
            .unwrap();
        let held = county.get(&id).unwrap();

        let mut forged = automerge::Automerge::load(&town.load_doc(&id).unwrap().save())
            .unwrap()
            .with_actor(crate::record::authority::node_actor(&town_code));
        let mut header = held.header.clone();
        header.created_by.user = "另一位文书".into();
        let mut tx = forged.transaction();
        tx.put(
            automerge::ROOT,
            "header",
            serde_json::to_string(&header).unwrap(),
        )
        .unwrap();
        tx.commit();
        let change = forged.get_last_local_change().unwrap().raw_bytes().to_vec();
        let incoming = vec![IncomingRecord {
            header,
            changes: vec![change],
        }];
        let outcome = county
            .write(|tx| tx.apply_incoming(&town_code, None, incoming, &policy))
            .unwrap();
        assert_eq!(outcome.changes_applied, 0);
        assert_eq!(outcome.rejected.len(), 1, "{outcome:?}");
        assert_eq!(outcome.rejected[0].rule, "decode.apply", "{outcome:?}");
        assert_eq!(county.get(&id).unwrap(), held);
        assert!(county.derived_mismatches().unwrap().is_empty());
    }
}
