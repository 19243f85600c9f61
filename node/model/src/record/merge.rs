//! A peer's changes to one record merged onto what this node holds, with the verdict: the one
//! pure merge of the receive path. No SQL and no async: the store hands it a record's held
//! bytes ([`Stored`]) and writes what it returns ([`Merge`]); a link runs it on any thread.
//!
//! Inside, the merge is a [`super::replay::Replay`] of the held changes and the peer's where the
//! history is one Renda writes, and automerge's merge otherwise (the replay declines; automerge
//! remains the authority). A rollup arrives as a publication that replaces, not merges
//! ([`publication`]). Either way the result passes the same checks: the sender's subtree, the
//! header written once, the receiver's routes and the authority rules
//! ([`super::authority::check_incoming`]). Only this module and [`RecordDoc`] read a document's
//! layout.

use automerge::{ActorId, Change, ChangeHash};

use super::authority::{Held, Sender, check_authors, check_incoming, needs_before};
use super::doc::heads_hash;
use super::event::Rejection;
use super::replay::ops::ReadChange;
use super::replay::{Declined, DecodedChange, RawChange, Replay};
use super::{AnyHeader, Body, DocError, Header, Record, RecordDoc, RecordId, RecordKind};
use crate::region::RegionCode;
use crate::route::{RouteHints, RoutePolicy, holds};

/// A held history longer than this loads faster from its last save than it replays change by
/// change (the store saves a record whenever 32 changes follow its last save).
pub const MAX_REPLAYED_HISTORY: usize = 64;

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
    pub fn sender(&self) -> Sender {
        if self.peer.parent() == Some(self.me) {
            Sender::Child(self.peer)
        } else {
            Sender::Parent(self.peer)
        }
    }
}

/// A record as this node holds it, as the store keeps it: what a merge starts from.
#[derive(Clone, Debug, Default)]
pub struct Stored {
    /// The last full save (empty until the first compaction).
    pub saved: Vec<u8>,
    /// Every change held, in the order stored.
    pub changes: Vec<Vec<u8>>,
    /// How many of `changes` the save covers; the rest load on top of it.
    pub saved_covers: usize,
    /// The hash of the held heads ([`heads_hash`]), which a replay of `changes` must
    /// reproduce before it is trusted to stand for the held document.
    pub heads_hash: Option<Vec<u8>>,
    /// A suggestion's addressed congress, as the store derived it from the held document.
    pub addressed_to: Option<String>,
    /// For a suggestion, the group it was made in the name of, likewise.
    pub group_id: Option<String>,
}

impl Stored {
    /// The last full save followed by the changes stored after it, which automerge loads as one
    /// byte string.
    pub fn doc_bytes(&self) -> Vec<u8> {
        let tail = self.changes.iter().skip(self.saved_covers);
        let mut bytes =
            Vec::with_capacity(self.saved.len() + tail.clone().map(Vec::len).sum::<usize>());
        bytes.extend_from_slice(&self.saved);
        for change in tail {
            bytes.extend_from_slice(change);
        }
        bytes
    }

    /// Every held change, read for a replay ([`RecordDoc::read_change_ops`]): from its bytes by
    /// Renda's reader, which checks its checksum, as it read most of them when they came; a
    /// change it does not read goes through automerge, which refuses one damaged on disk (its
    /// checksum) as loading the record would.
    fn decoded(&self) -> Result<Vec<ReadChange>, DocError> {
        self.changes
            .iter()
            .map(|bytes| RecordDoc::read_change_ops(bytes))
            .collect()
    }
}

/// A peer's changes decoded once from the wire, or the rule the first undecodable one broke.
pub fn decode_changes(raw: &[Vec<u8>]) -> Result<Vec<DecodedChange>, Rejection> {
    raw.iter()
        .map(|bytes| {
            RecordDoc::decode_change_ops(bytes)
                .map_err(|e| Rejection::new("decode.change", e.to_string()))
        })
        .collect()
}

/// What merging one record's incoming changes came to.
pub enum Merge {
    /// The changes break a rule; none of them is stored.
    Refused(Rejection),
    /// Nothing new to store: every change was held already, or none could be applied yet.
    /// `complete` is false while some wait for changes the sender has not sent.
    Unchanged { complete: bool },
    /// New changes, boxed: a merged record is large beside a refusal.
    Changed(Box<Merged>),
    /// New changes to a record of a kind a newer release added, which this node keeps as they
    /// came ([`merge_newer_kind`]).
    KeptAsCame(Box<KeptAsCame>),
}

/// New changes to a record of a kind this release does not know. It cannot read the body, so
/// it keeps the document as automerge merged it, with the hints it travels by.
pub struct KeptAsCame {
    pub doc: RecordDoc,
    pub heads: Vec<ChangeHash>,
    pub applied: Vec<RawChange>,
    pub complete: bool,
    /// The routes the sender claimed, checked ([`RouteHints::check_claim`]).
    pub hints: RouteHints,
    /// Whether the claim replaces the routes held: the record is new here, or the claim came
    /// from the home's side of this node.
    pub replaces_routes: bool,
}

/// The most regions a claimed route may name (subtrees and nodes together): a newer release's
/// record addresses a handful, and every outgoing read parses them for every peer.
pub const MAX_CLAIMED_REGIONS: usize = 64;

/// New changes to a record, the record and heads they make, and whether any change still waits
/// for one the sender has not sent.
pub struct Merged {
    /// The merged document, when automerge merged it; `None` when a replay did, and then the
    /// store loads it only to compact the record's stored tail.
    pub doc: Option<RecordDoc>,
    pub heads: Vec<ChangeHash>,
    pub record: Record,
    pub applied: Vec<RawChange>,
    pub complete: bool,
    /// The changes are a publication that replaces the stored history instead of adding to it.
    pub replaces: bool,
    /// The sender marked the record personal although this release does not read its kind as
    /// personal: a newer release's rule, which this node obeys ([`merge_any`]).
    pub personal_claimed: bool,
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
    pub record: Option<Record>,
    /// A workflow record's event texts.
    events: Option<Vec<String>>,
    /// A suggestion's addressed congress, as written.
    addressed: Option<String>,
    /// The group a suggestion was made in the name of, as written.
    group: Option<String>,
}

impl Before {
    fn held(&self) -> Held<'_> {
        match (&self.record, &self.events) {
            (Some(record), _) => Held::Record(record),
            (None, Some(events)) => Held::Workflow {
                events,
                addressed_to: self.addressed.as_deref(),
                group: self.group.as_deref(),
            },
            (None, None) => Held::Unread,
        }
    }
}

/// A merge before the checks, however it was computed.
struct Candidate {
    pub doc: Option<RecordDoc>,
    pub heads: Vec<ChangeHash>,
    pub record: Record,
    after_events: Vec<String>,
    pub applied: Vec<RawChange>,
    pub complete: bool,
    /// `None`: the record is new here, or a publication replaces what was held.
    before: Option<Before>,
    /// A publication: the changes replace the stored history (see [`publication`]).
    pub replaces: bool,
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
        let change = c.meta();
        !change.deps.is_empty()
            && !change.authored
            && (!hashes.insert(change.hash) || seqs.insert((&change.actor, change.seq)))
    })
}

/// Merges by replaying the stored changes and the peer's (`record::replay`), without automerge.
/// `Ok(None)`: nothing to store, every change held already or none applicable yet. [`Declined`]
/// when the history is one only automerge may judge, or when anything fails to read: automerge
/// then merges, and reports.
fn replayed(
    declared: &Header,
    changes: &[DecodedChange],
    stored: Option<&Stored>,
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
        Some(state) if state.changes.len() > MAX_REPLAYED_HISTORY => {
            return Err(Declined("a long history loads faster from its save"));
        }
        Some(state) => {
            let held = state
                .decoded()
                .map_err(|_| Declined("a stored change does not decode"))?;
            replay.apply(&held)?;
            if state.heads_hash.as_deref() != Some(heads_hash(&replay.heads()).as_slice()) {
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
                before.group = state.group_id.clone();
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
        applied: applied.iter().map(|&i| changes[i].to_raw()).collect(),
        complete: true,
        before,
        replaces: false,
    }))
}

/// The peer's changes as automerge applies them: parsed by automerge now where Renda's reader
/// read them without it. A change automerge's parser does not take is refused, as decoding it
/// would have refused it.
fn to_automerge(changes: &[DecodedChange]) -> Result<Vec<Change>, Rejection> {
    changes
        .iter()
        .map(|c| {
            c.to_automerge()
                .map_err(|e| Rejection::new("decode.change", e.to_string()))
        })
        .collect()
}

/// Merges with automerge: loads the stored document, reads what the checks need of it, and
/// applies the peer's changes. `Err` is the merge's outcome without a candidate: a refusal, or
/// nothing new.
fn merged_by_automerge(
    declared: &Header,
    changes: &[DecodedChange],
    stored: Option<&Stored>,
) -> Result<Candidate, Merge> {
    let kind = declared.kind;
    let incoming = to_automerge(changes).map_err(Merge::Refused)?;
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
                before.addressed = state.addressed_to.clone();
                before.group = state.group_id.clone();
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
        applied: applied.into_iter().map(RawChange::from).collect(),
        complete,
        before,
        replaces: false,
    })
}

/// A rollup arrives as a publication: one change that depends on nothing, is the whole
/// document, and carries a generation of at least 1 (`WriteTx::publish_rollup`). A holder keeps
/// the newest publication ([`Rollup::supersedes`], then the larger change hash) and drops the
/// others instead of merging them, so every holder's copy stays one change long however often
/// the numbers move, and a child's new rollup replaces its previous one whatever order they
/// arrive in. A publication replaces only a rollup held under the same header. `None`: the
/// changes are not a publication (a rollup written before publications, sent as its history,
/// whose first change also stands alone but has generation 0) and merge as any record's do,
/// unless a publication is held: such history is older than any publication, and is dropped.
fn publication(
    changes: &[DecodedChange],
    stored: Option<&Stored>,
) -> Option<Result<Candidate, Merge>> {
    let refused =
        |rule: &str, reason: String| Some(Err(Merge::Refused(Rejection::new(rule, reason))));
    let held = |state: &Stored| -> Result<(RecordDoc, Record), DocError> {
        let doc = RecordDoc::load(&state.doc_bytes(), &merging_actor())?;
        let record = Record::from_doc(&doc)?;
        Ok((doc, record))
    };
    let published = |record: &Record| match &record.body {
        Body::Rollup(rollup) if rollup.generation > 0 => Some(rollup.generation),
        _ => None,
    };
    let incoming = match changes {
        [only] if only.meta().deps.is_empty() => {
            let change = match only.to_automerge() {
                Ok(change) => change,
                Err(e) => return refused("decode.change", e.to_string()),
            };
            let mut doc = RecordDoc::empty(&merging_actor());
            match doc.apply_changes(vec![change]) {
                Ok(applied) => Record::from_doc(&doc)
                    .ok()
                    .filter(|record| published(record).is_some())
                    .map(|record| (doc, record, applied)),
                Err(_) => None,
            }
        }
        _ => None,
    };
    let Some((doc, record, applied)) = incoming else {
        // Not a publication: history older than any publication held, or one to merge.
        return match stored.map(held) {
            Some(Ok((_, record))) if published(&record).is_some() => {
                Some(Err(Merge::Unchanged { complete: true }))
            }
            _ => None,
        };
    };
    if let Some(state) = stored {
        let (held_doc, held_record) = match held(state) {
            Ok(held) => held,
            Err(e) => {
                return refused(
                    "store.damaged_local_copy",
                    format!(
                        "本节点保存的记录 {} 已损坏，无法合并：{e}",
                        record.header.id
                    ),
                );
            }
        };
        let Body::Rollup(current) = &held_record.body else {
            return refused(
                "header.mismatch",
                format!(
                    "记录 {} 在本节点不是汇总记录，不能以汇总替换",
                    record.header.id
                ),
            );
        };
        if held_record.header != record.header {
            return refused(
                "header.mismatch",
                format!("记录 {} 的文档头与本节点保存的不符", record.header.id),
            );
        }
        if applied.iter().all(|c| held_doc.has_change(&c.hash())) {
            return Some(Err(Merge::Unchanged { complete: true }));
        }
        let Body::Rollup(new) = &record.body else {
            return None;
        };
        let newer = new.supersedes(current).unwrap_or_else(|| {
            let hash = applied.first().map(|c| c.hash());
            held_doc
                .heads()
                .iter()
                .all(|h| hash.is_some_and(|hash| hash.as_ref() > h.as_ref()))
        });
        if !newer {
            return Some(Err(Merge::Unchanged { complete: true }));
        }
    }
    Some(Ok(Candidate {
        heads: doc.heads(),
        doc: Some(doc),
        record,
        after_events: Vec::new(),
        applied: applied.into_iter().map(RawChange::from).collect(),
        complete: true,
        before: None,
        replaces: true,
    }))
}

/// A child may only send records homed in its own subtree, of whatever kind.
fn within_sender(ctx: &MergeContext, id: &RecordId, home: &RegionCode) -> Result<(), Rejection> {
    let peer = ctx.peer;
    match ctx.sender() {
        Sender::Child(_) if !home.is_within(&peer) => Err(Rejection::new(
            "authority.child_subtree",
            format!("{peer} 不能写入记录 {id}：它属于 {home}，不在 {peer} 的辖区内"),
        )),
        _ => Ok(()),
    }
}

/// Merges a peer's changes to one record onto the stored state (`None`: the record is new
/// here), and checks the result against every rule that does not need the store: the sender's
/// subtree, the header, routing and authority. Pure: it runs on any thread. The merge is a
/// replay of the changes where the history allows one, automerge's otherwise; the checks are
/// the same either way.
pub fn merge(
    ctx: &MergeContext,
    declared: &Header,
    changes: &[DecodedChange],
    stored: Option<&Stored>,
) -> Merge {
    let sender = ctx.sender();
    if let Err(rejection) = within_sender(ctx, &declared.id, &declared.home) {
        return Merge::Refused(rejection);
    }
    let published = match declared.kind {
        RecordKind::Rollup => publication(changes, stored),
        _ => None,
    };
    let candidate = match published {
        Some(Ok(candidate)) => candidate,
        Some(Err(merge)) => return merge,
        None => match replayed(declared, changes, stored) {
            Ok(Ok(candidate)) => candidate,
            Ok(Err(merge)) => return merge,
            Err(_) => match merged_by_automerge(declared, changes, stored) {
                Ok(candidate) => candidate,
                Err(merge) => return merge,
            },
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
        replaces,
    } = candidate;
    if record.header != *declared {
        return Merge::Refused(Rejection::new(
            "header.mismatch",
            format!("记录 {} 的文档头与声明的不符", declared.id),
        ));
    }
    let hints = RouteHints::of(&record);
    if !holds(&ctx.me, &record.header.home, &hints, &ctx.policy) {
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
        replaces,
        personal_claimed: false,
    }))
}

/// Merges a peer's changes to a record of any kind, with the hints the peer claims for it
/// (`None` from a peer of protocol 6, which sent none). A kind this release knows merges by
/// [`merge`], which derives its routes from the body, and obeys a personal flag the sender set
/// beyond that; any other kind is kept as it came ([`merge_newer_kind`]).
pub fn merge_any(
    ctx: &MergeContext,
    declared: &AnyHeader,
    claimed: Option<&RouteHints>,
    changes: &[DecodedChange],
    stored: Option<&Stored>,
) -> Merge {
    let Some(header) = declared.known() else {
        return merge_newer_kind(ctx, declared, claimed, changes, stored);
    };
    let mut merge = merge(ctx, &header, changes, stored);
    if let (Merge::Changed(merged), Some(claimed)) = (&mut merge, claimed)
        && claimed.personal
        && header.kind != RecordKind::Personal
    {
        let personal = RouteHints {
            personal: true,
            ..RouteHints::default()
        };
        if !holds(&ctx.me, &header.home, &personal, &ctx.policy) {
            return Merge::Refused(Rejection::new(
                "route.personal",
                format!(
                    "记录 {} 被发送方标为个人信息，只应保存在 {} 及其上一级",
                    declared.id, declared.home
                ),
            ));
        }
        merged.personal_claimed = true;
    }
    merge
}

/// Merges a peer's changes to a record of a kind a newer release added. This node cannot read
/// the body, so it judges what it can: the sender's subtree, the kind's name, the routes the
/// sender claims (which must name only the home's subtree, at most [`MAX_CLAIMED_REGIONS`] of
/// it, and must lead here), who wrote the changes and created the record (as for any kind:
/// [`check_authors`]), the header written once and as declared, and automerge's own acceptance
/// of the changes. The rest of the kind's authority rules are the newer release's to hold:
/// every node that knows the kind checks them when the record reaches it.
pub fn merge_newer_kind(
    ctx: &MergeContext,
    declared: &AnyHeader,
    claimed: Option<&RouteHints>,
    changes: &[DecodedChange],
    stored: Option<&Stored>,
) -> Merge {
    let refused = |rule: &str, reason: String| Merge::Refused(Rejection::new(rule, reason));
    let (id, kind, home) = (declared.id, &declared.kind, declared.home);
    if let Err(rejection) = within_sender(ctx, &id, &home) {
        return Merge::Refused(rejection);
    }
    if !Header::is_kind_name(kind) {
        return refused(
            "header.kind",
            format!(
                "记录 {id} 的类型名“{}”不合规则",
                crate::validate::quote(kind)
            ),
        );
    }
    let Some(hints) = claimed else {
        return refused(
            "route.missing",
            format!(
                "记录 {id} 的类型“{kind}”本节点不认识（需升级），发送方又未附本节点能读懂的路由信息，无法判断它该去哪里"
            ),
        );
    };
    if hints.down.len() + hints.to.len() > MAX_CLAIMED_REGIONS {
        return refused(
            "route.claim",
            format!(
                "记录 {id} 的路由信息列出 {} 个地区，超过 {MAX_CLAIMED_REGIONS} 个",
                hints.down.len() + hints.to.len()
            ),
        );
    }
    if let Err(region) = hints.check_claim(&home) {
        return refused(
            "route.claim",
            format!("记录 {id} 的路由信息指向 {region}，不在记录所属地区 {home} 的辖区内"),
        );
    }
    if !holds(&ctx.me, &home, hints, &ctx.policy) {
        return refused(
            "route.outside",
            format!("记录 {id} 不应发往本节点 {}", ctx.me),
        );
    }
    let incoming = match to_automerge(changes) {
        Ok(incoming) => incoming,
        Err(rejection) => return Merge::Refused(rejection),
    };
    let hashes: Vec<_> = incoming.iter().map(|c| c.hash()).collect();
    let mut doc = match stored {
        None => RecordDoc::empty(&merging_actor()),
        Some(state) => match RecordDoc::load(&state.doc_bytes(), &merging_actor()) {
            Ok(doc) => doc,
            Err(e) => {
                return refused(
                    "store.damaged_local_copy",
                    format!("本节点保存的记录 {id} 已损坏，无法合并：{e}"),
                );
            }
        },
    };
    let applied = match doc.apply_changes(incoming) {
        Ok(applied) => applied,
        Err(e) => return refused("decode.apply", e.to_string()),
    };
    let complete = hashes.iter().all(|h| doc.has_change(h));
    if applied.is_empty() || doc.heads().is_empty() {
        return Merge::Unchanged {
            complete: complete && stored.is_some(),
        };
    }
    // Who wrote the changes is checked as for any kind: a child sends only what it or a node
    // below it wrote, or a forgery would pass through this node to one that knows the kind
    // and takes it for this node's relay of its child's own changes.
    if let Err(rejection) = check_authors(
        ctx.sender(),
        &id,
        stored.is_none().then_some(&declared.created_by),
        applied.iter().map(|c| c.actor_id()),
    ) {
        return Merge::Refused(rejection);
    }
    match doc.any_header() {
        Ok(header) if header == *declared => {}
        _ => {
            return refused("header.mismatch", format!("记录 {id} 的文档头与声明的不符"));
        }
    }
    // Routes change with the record's body, which its home writes: a claim that comes from the
    // home's side of this node replaces the one held, any other is kept out, so a sender on
    // the far side cannot steer a record it does not write.
    let from_home_side = match ctx.sender() {
        Sender::Child(child) => home.is_within(&child),
        Sender::Parent(_) => !home.is_within(&ctx.me),
    };
    Merge::KeptAsCame(Box::new(KeptAsCame {
        heads: doc.heads(),
        doc,
        applied: applied.into_iter().map(RawChange::from).collect(),
        complete,
        hints: hints.clone(),
        replaces_routes: stored.is_none() || from_home_side,
    }))
}

/// Merges `changes` onto `stored` both ways, by a replay and by automerge, and names the first
/// thing they disagree on: the record, its heads and events, whether it is complete, the changes
/// applied, or what the checks read of the held record. `Ok(false)`: the replay declined (or
/// found nothing new), so there was nothing to compare. For the tests that hold the replay to
/// automerge on real records.
pub fn compare_merges(
    declared: &Header,
    changes: &[DecodedChange],
    stored: Option<&Stored>,
) -> Result<bool, String> {
    let Ok(Ok(replayed)) = replayed(declared, changes, stored) else {
        return Ok(false);
    };
    let merged = merged_by_automerge(declared, changes, stored).map_err(|_| {
        format!(
            "automerge did not merge {} where the replay did",
            declared.id
        )
    })?;
    let hashes = |c: &Candidate| c.applied.iter().map(RawChange::hash).collect::<Vec<_>>();
    let differs = |what: &str| Err(format!("{what} differ for {}", declared.id));
    if replayed.record != merged.record {
        return differs("the records");
    }
    if replayed.heads != merged.heads {
        return differs("the heads");
    }
    if replayed.after_events != merged.after_events {
        return differs("the events");
    }
    if replayed.complete != merged.complete {
        return differs("completeness");
    }
    if hashes(&replayed) != hashes(&merged) {
        return differs("the changes applied");
    }
    match (&replayed.before, &merged.before) {
        (None, None) => {}
        (Some(r), Some(m))
            if r.record == m.record && r.events == m.events && r.addressed == m.addressed => {}
        _ => return differs("the held records"),
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;

    use super::*;
    use crate::record::authority::node_actor;
    use crate::record::{Author, RecordId};

    fn code(s: &str) -> RegionCode {
        RegionCode::parse("region", s).unwrap()
    }

    const CITY: &str = "330400000000";
    const COUNTY: &str = "330411000000";
    const TOWNSHIP: &str = "330411101000";

    /// A record of a kind this release does not know, homed at `home`: its header and first
    /// change as a newer release writes them.
    fn newer(home: &str) -> (AnyHeader, Vec<DecodedChange>) {
        let home = code(home);
        let header = AnyHeader {
            id: RecordId::new(),
            kind: "petition".into(),
            home,
            created_at: chrono::DateTime::from_timestamp_millis(1_780_000_000_000).unwrap(),
            created_by: Author {
                node: home,
                user: "clerk".into(),
            },
        };
        let mut doc = automerge::AutoCommit::new().with_actor(node_actor(&home));
        doc.put(
            automerge::ROOT,
            "header",
            serde_json::to_string(&header).unwrap(),
        )
        .unwrap();
        doc.commit();
        let changes = doc
            .get_changes(&[])
            .iter()
            .map(|c| RecordDoc::decode_change_ops(c.raw_bytes()).unwrap())
            .collect();
        (header, changes)
    }

    fn ctx(me: &str, peer: &str) -> MergeContext {
        MergeContext {
            me: code(me),
            peer: code(peer),
            policy: RoutePolicy::default(),
        }
    }

    /// A claim names at most [`MAX_CLAIMED_REGIONS`] regions: a longer one is refused before
    /// anything is parsed further, however well it lies within the home's subtree.
    #[test]
    fn a_claim_of_too_many_regions_is_refused() {
        let (header, changes) = newer(COUNTY);
        let claim = |n: usize| RouteHints {
            down: vec![code(TOWNSHIP); n],
            ..RouteHints::default()
        };
        let at_city = ctx(CITY, COUNTY);
        let many = merge_newer_kind(
            &at_city,
            &header,
            Some(&claim(MAX_CLAIMED_REGIONS + 1)),
            &changes,
            None,
        );
        assert!(matches!(&many, Merge::Refused(r) if r.rule == "route.claim"));
        let enough = merge_newer_kind(
            &at_city,
            &header,
            Some(&claim(MAX_CLAIMED_REGIONS)),
            &changes,
            None,
        );
        assert!(matches!(enough, Merge::KeptAsCame(_)));
    }

    /// Routes change with the body, which the home writes: a later claim replaces the held
    /// routes only when it comes from the home's side of this node.
    #[test]
    fn a_later_claim_replaces_the_routes_only_from_the_homes_side() {
        let (header, changes) = newer(TOWNSHIP);
        let hints = RouteHints::default();
        let replaces = |ctx: &MergeContext, stored: Option<&Stored>| match merge_newer_kind(
            ctx,
            &header,
            Some(&hints),
            &changes,
            stored,
        ) {
            Merge::KeptAsCame(kept) => kept.replaces_routes,
            _ => panic!("kept as it came"),
        };
        // Held already (nothing held in common with the new change: its own history).
        let held = Stored::default();
        // The county hears from its township, the home: the claim stands.
        assert!(replaces(&ctx(COUNTY, TOWNSHIP), Some(&held)));
        // The county hears from its city about its own township's record: held routes stay.
        assert!(!replaces(&ctx(COUNTY, CITY), Some(&held)));
        // New here, any claim that passed the checks is the routes.
        assert!(replaces(&ctx(COUNTY, CITY), None));
    }
}
