//! [`RecordDoc`]: a record's automerge document and the only code that reads or writes its layout.
//!
//! Layout of every document:
//!
//! ```text
//! { header: "{ id, kind, home, created_at, created_by }",   JSON text, written once
//!   fields: { ...kind-specific... },                       a map: last writer wins per key
//!   events: [ "{ id, lamport, recorded_at, date, author, action, ... }" ] }
//!                                                          JSON text per event, workflow kinds only
//! ```
//!
//! An edit writes only the keys whose value differs from the fields as this version reads them
//! (`set_fields`), recursing into nested maps and lists, so a change touches only the keys that
//! changed, concurrent edits of different fields both survive a merge, and keys a newer release
//! wrote, which this version does not read, survive its edits. The header and the events are
//! never edited, so nothing is gained by giving each of their keys its own automerge operation:
//! each is one scalar holding its JSON.
//! That makes a new opinion about half as many operations as nested maps would, and applying and
//! reading operations is most of what a node does when a township's records arrive. Concurrent
//! appends to the event list still both survive, as list inserts do.

use automerge::hydrate;
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, Change, ChangeHash, ObjType, ROOT, ReadDoc, ScalarValue};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::event::{Event, EventEntry};
use super::replay::DecodedChange;
use super::replay::ops::ReadChange;
use super::{AnyHeader, Header};

/// A document that could not be read or written. Every variant is an input problem (bytes from
/// disk or a peer), never a reason to panic.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("automerge document failed to load: {0}")]
    Load(String),
    #[error("document has no valid header: {0}")]
    Header(String),
    #[error("document fields do not match the record kind: {0}")]
    Fields(String),
    #[error("document events are malformed: {0}")]
    Events(String),
    #[error("automerge change failed to decode: {0}")]
    Change(String),
    #[error("a change would alter the immutable header of record {0}")]
    HeaderChanged(String),
    /// Boxed: automerge's error is large, and every `Result` that carries a `DocError` would
    /// pay for its size.
    #[error("automerge operation failed: {0}")]
    Automerge(Box<automerge::AutomergeError>),
    #[error("document value could not be written: {0}")]
    Update(String),
    /// Automerge panicked on the input (it does on some malformed changes and documents; the
    /// fuzzer found them, `fuzz/artifacts/`). The panic is caught so that bytes from a peer or
    /// a file cannot stop the node.
    #[error("automerge could not process the input: {0}")]
    Malformed(String),
}

/// Runs automerge on untrusted input, turning a panic inside it into [`DocError::Malformed`].
/// The closures only touch documents the caller throws away on error, so nothing half-updated
/// survives a caught panic.
pub(crate) fn guarded<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, DocError>,
) -> Result<T, DocError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let detail = panic_message(panic.as_ref()).unwrap_or_default();
        Err(DocError::Malformed(format!("{what}: {detail}")))
    })
}

/// The message a caught panic carries, if it carries one as text.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> Option<String> {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
}

impl From<automerge::AutomergeError> for DocError {
    fn from(e: automerge::AutomergeError) -> Self {
        DocError::Automerge(Box::new(e))
    }
}

/// One record's automerge document.
#[derive(Debug)]
pub struct RecordDoc {
    doc: Automerge,
}

impl RecordDoc {
    /// Creates a document with its header, fields and (for workflow kinds) an empty event list,
    /// as one automerge change written by `actor`.
    pub fn create<T: Serialize>(
        header: &Header,
        fields: &T,
        actor: &ActorId,
    ) -> Result<RecordDoc, DocError> {
        Self::create_with_event::<T, ()>(header, fields, None, actor)
    }

    /// Creates a workflow record with its first event (收集, 提交) in the same change: one
    /// change instead of two for every new opinion or suggestion, which is most of what a
    /// township sends up.
    pub fn create_with_event<T: Serialize, A: Serialize>(
        header: &Header,
        fields: &T,
        first: Option<&Event<A>>,
        actor: &ActorId,
    ) -> Result<RecordDoc, DocError> {
        let mut doc = Automerge::new().with_actor(actor.clone());
        let header_text =
            serde_json::to_string(header).map_err(|e| DocError::Header(e.to_string()))?;
        let fields_value = to_hydrate(
            &serde_json::to_value(fields).map_err(|e| DocError::Fields(e.to_string()))?,
        )?;
        let first_text = match first {
            Some(event) => {
                Some(serde_json::to_string(event).map_err(|e| DocError::Events(e.to_string()))?)
            }
            None => None,
        };
        let mut tx = doc.transaction();
        tx.put(ROOT, "header", header_text)?;
        tx.batch_create_object(ROOT, "fields", &fields_value, false)?;
        if header.kind.has_workflow() {
            let events = tx.put_object(ROOT, "events", ObjType::List)?;
            if let Some(text) = first_text {
                tx.insert(&events, 0, text)?;
            }
        }
        // No commit message: the header and events say what the change is, and a message would
        // cost bytes on every change of every sync.
        tx.commit_with(CommitOptions::default().with_time(header.created_at.timestamp_millis()));
        Ok(RecordDoc { doc })
    }

    /// A document with no changes yet, for a record first seen as changes from a peer.
    pub fn empty(actor: &ActorId) -> RecordDoc {
        RecordDoc {
            doc: Automerge::new().with_actor(actor.clone()),
        }
    }

    /// Loads saved bytes. Fails cleanly on anything that is not a valid automerge document.
    pub fn load(bytes: &[u8], actor: &ActorId) -> Result<RecordDoc, DocError> {
        let doc = guarded("load", || {
            Automerge::load(bytes).map_err(|e| DocError::Load(e.to_string()))
        })?;
        Ok(RecordDoc {
            doc: doc.with_actor(actor.clone()),
        })
    }

    pub fn save(&self) -> Vec<u8> {
        self.doc.save()
    }

    pub fn heads(&self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// Changes not covered by `have` (all of them for an empty slice).
    pub fn changes_since(&self, have: &[ChangeHash]) -> Vec<Change> {
        self.doc.get_changes(have)
    }

    /// The document's root as JSON, hydrated once.
    pub(crate) fn root(&self) -> Result<serde_json::Map<String, serde_json::Value>, DocError> {
        match guarded("read", || Ok(self.doc.hydrate(None)))? {
            hydrate::Value::Map(root) => {
                let mut out = serde_json::Map::new();
                for (key, value) in root.iter() {
                    let json = from_hydrate(&value.value)
                        .map_err(|e| DocError::Fields(format!("`{key}`: {e}")))?;
                    out.insert(key.clone(), json);
                }
                Ok(out)
            }
            _ => Err(DocError::Header("document root is not a map".into())),
        }
    }

    /// The header, read without hydrating the rest of the document.
    pub fn header(&self) -> Result<Header, DocError> {
        parse_header(&self.header_text()?)
    }

    /// The header with its kind as written, for a record of any kind, this release's or a
    /// newer one's.
    pub fn any_header(&self) -> Result<AnyHeader, DocError> {
        serde_json::from_str(&self.header_text()?).map_err(|e| DocError::Header(e.to_string()))
    }

    fn header_text(&self) -> Result<String, DocError> {
        match self.doc.get(ROOT, "header")? {
            Some((automerge::Value::Scalar(s), _)) => match s.as_ref() {
                ScalarValue::Str(text) => Ok(text.to_string()),
                _ => Err(DocError::Header("`header` is not text".into())),
            },
            Some(_) => Err(DocError::Header("`header` is not text".into())),
            None => Err(DocError::Header("no `header`".into())),
        }
    }

    /// The event list's entries as the JSON text each was written as, in list order, without
    /// hydrating the rest of the document: what a receiver compares before and after a peer's
    /// changes. An entry that is not text reads as an empty string, which no event decodes from.
    pub fn event_texts(&self) -> Result<Vec<String>, DocError> {
        let events = match self.doc.get(ROOT, "events")? {
            Some((automerge::Value::Object(ObjType::List), id)) => id,
            _ => return Ok(Vec::new()),
        };
        let mut out = Vec::with_capacity(self.doc.length(&events));
        for index in 0..self.doc.length(&events) {
            out.push(match self.doc.get(&events, index)? {
                Some((automerge::Value::Scalar(s), _)) => match s.as_ref() {
                    ScalarValue::Str(text) => text.to_string(),
                    _ => String::new(),
                },
                _ => String::new(),
            });
        }
        Ok(out)
    }

    /// One text field as written, without hydrating the document; `None` if absent or not text.
    pub fn field_text(&self, key: &str) -> Result<Option<String>, DocError> {
        let fields = match self.doc.get(ROOT, "fields")? {
            Some((automerge::Value::Object(ObjType::Map), id)) => id,
            _ => return Ok(None),
        };
        Ok(match self.doc.get(&fields, key)? {
            Some((automerge::Value::Scalar(s), _)) => match s.as_ref() {
                ScalarValue::Str(text) => Some(text.to_string()),
                _ => None,
            },
            _ => None,
        })
    }

    pub fn fields<T: DeserializeOwned>(&self) -> Result<T, DocError> {
        decode_fields(&mut self.root()?)
    }

    /// The event list as written, each entry decoded on its own so one unreadable event does not
    /// hide the others.
    pub fn events<A: DeserializeOwned>(&self) -> Result<Vec<EventEntry<A>>, DocError> {
        decode_events(&mut self.root()?)
    }

    /// Writes new field values as one change. Only what the edit means to change is written:
    /// the keys whose value differs from the fields as this version reads them (`T` decoded from
    /// the document), set or, when `fields` leaves them out, deleted. Keys this version does not
    /// know, written by a newer node, are never touched, in nested maps and lists too (lists are
    /// matched by position: see `write_list`), so an office on an older release cannot delete
    /// them for the whole federation by editing the record. Returns the change, or `None` when nothing differed.
    pub fn set_fields<T: Serialize + DeserializeOwned>(
        &mut self,
        fields: &T,
        time_ms: i64,
        message: &str,
    ) -> Result<Option<Change>, DocError> {
        let to_json =
            |value: &T| serde_json::to_value(value).map_err(|e| DocError::Fields(e.to_string()));
        let new = to_json(fields)?;
        let serde_json::Value::Object(new) = new else {
            return Err(DocError::Fields("record fields are not a map".into()));
        };
        // Fields that do not read as `T` (damaged, or from a release that wrote them
        // differently) are overwritten key by key, and still nothing unknown is deleted.
        let old = match self.fields::<T>().map(|old| to_json(&old)) {
            Ok(Ok(serde_json::Value::Object(old))) => Some(old),
            _ => None,
        };
        let fields_id = match self.doc.get(ROOT, "fields")? {
            Some((automerge::Value::Object(ObjType::Map), id)) => id,
            _ => return Err(DocError::Fields("no `fields` map".into())),
        };
        let mut tx = self.doc.transaction();
        write_changed(&mut tx, &fields_id, old.as_ref(), &new)?;
        if tx.pending_ops() == 0 {
            tx.rollback();
            return Ok(None);
        }
        let (hash, _) = tx.commit_with(
            CommitOptions::default()
                .with_time(time_ms)
                .with_message(message.to_string()),
        );
        Ok(hash.and_then(|h| self.doc.get_change_by_hash(&h)))
    }

    /// Appends an event to the workflow list as one change.
    pub fn append_event<A: Serialize>(&mut self, event: &Event<A>) -> Result<Change, DocError> {
        let text = serde_json::to_string(event).map_err(|e| DocError::Events(e.to_string()))?;
        let events_id = match self.doc.get(ROOT, "events")? {
            Some((automerge::Value::Object(ObjType::List), id)) => id,
            _ => {
                return Err(DocError::Events(
                    "this record kind has no event list".into(),
                ));
            }
        };
        let len = self.doc.length(&events_id);
        let mut tx = self.doc.transaction();
        tx.insert(&events_id, len, text)?;
        let (hash, _) = tx
            .commit_with(CommitOptions::default().with_time(event.recorded_at.timestamp_millis()));
        hash.and_then(|h| self.doc.get_change_by_hash(&h))
            .ok_or_else(|| DocError::Events("appending the event produced no change".into()))
    }

    /// Whether the change with this hash is applied to the document (not merely queued while
    /// its dependencies are missing). Cheap: it reads the change graph's metadata, whereas
    /// fetching the change itself re-encodes it from the document's columns. (Asking for the
    /// hash's missing dependencies is not the same question: automerge adds every queued
    /// change's, so while anything is queued even an applied change looked missing.)
    pub fn has_change(&self, hash: &ChangeHash) -> bool {
        self.doc.get_change_meta_by_hash(hash).is_some()
    }

    /// Applies changes from elsewhere (a replica or a peer) and returns the ones that were new.
    /// Applying a change the document already has is a no-op. A change that would alter the
    /// header is refused and the document is left as it was.
    pub fn apply_changes(&mut self, changes: Vec<Change>) -> Result<Vec<Change>, DocError> {
        // A document still empty has no header to protect yet. The header is compared as any
        // kind's, so the rule holds for a record of a kind a newer release added as well.
        let header_before = if self.doc.get_heads().is_empty() {
            None
        } else {
            Some(self.any_header()?)
        };
        let fresh: Vec<Change> = changes
            .into_iter()
            .filter(|c| !self.has_change(&c.hash()))
            .collect();
        if fresh.is_empty() {
            return Ok(fresh);
        }
        if header_before.is_none() {
            // Nothing to protect yet: apply in place instead of copying the document. If
            // automerge panics half-way, the document starts over empty.
            let applied = guarded("apply", || Ok(self.doc.apply_changes(fresh.clone())?));
            if let Err(e) = applied {
                let actor = self.doc.get_actor().clone();
                self.doc = Automerge::new().with_actor(actor);
                return Err(e);
            }
            return Ok(fresh
                .into_iter()
                .filter(|c| self.has_change(&c.hash()))
                .collect());
        }
        let mut candidate = self.doc.fork();
        guarded("apply", || Ok(candidate.apply_changes(fresh.clone())?))?;
        let candidate = RecordDoc { doc: candidate };
        if let Some(before) = header_before
            && candidate.any_header()? != before
        {
            return Err(DocError::HeaderChanged(before.id.to_string()));
        }
        let actor = self.doc.get_actor().clone();
        self.doc = candidate.doc.with_actor(actor);
        // Changes whose dependencies are missing wait in automerge's queue; only the ones now in
        // the document count as applied.
        Ok(fresh
            .into_iter()
            .filter(|c| self.has_change(&c.hash()))
            .collect())
    }

    /// Decodes one change from its wire bytes, and screens its operations: a record's document
    /// only ever holds maps, lists and plain scalars, so a change with text objects, tables,
    /// counters or marks came from no Renda node. Screening matters beyond tidiness: automerge
    /// 0.12 aborts the process (a panic during unwinding, which nothing can catch) on some
    /// malformed mark operations, found by the fuzzer (`fuzz/artifacts/link_message/`).
    pub fn decode_change(bytes: &[u8]) -> Result<Change, DocError> {
        Self::decode_change_ops(bytes)?.to_automerge()
    }

    /// [`RecordDoc::decode_change`], keeping the change's operations, which is what a
    /// [`super::replay::Replay`] applies: read by Renda's own reader without automerge where
    /// it can ([`super::replay::ops::read_bytes`], which refuses whatever automerge's parser
    /// refuses), else parsed by automerge and expanded and screened ([`DecodedChange::expanded`]).
    ///
    /// A change whose checksum does not match its bytes is refused here: automerge's parser
    /// takes it, but its loader refuses it, so a record that stored it would not load again (at
    /// its next compaction, or the next merge that loads it). Renda's reader checks it too.
    pub fn decode_change_ops(bytes: &[u8]) -> Result<DecodedChange, DocError> {
        match super::replay::ops::read_bytes(bytes) {
            Ok(read) => Ok(DecodedChange::read_from(bytes, read)),
            Err(_) => Self::parse_change_ops(bytes),
        }
    }

    /// A change's operations as a [`super::replay::Replay`] applies them, read as
    /// [`RecordDoc::decode_change_ops`] reads them but without keeping the change's bytes: how
    /// a merge reads the changes a node already holds.
    pub fn read_change_ops(bytes: &[u8]) -> Result<ReadChange, DocError> {
        match super::replay::ops::read_bytes(bytes) {
            Ok(read) => Ok(read),
            Err(_) => Self::parse_change_ops(bytes).map(|decoded| decoded.read),
        }
    }

    /// A change Renda's reader gave up on: parsed by automerge (its checksum checked, which
    /// automerge's parser does not), then read through automerge's expansion.
    fn parse_change_ops(bytes: &[u8]) -> Result<DecodedChange, DocError> {
        guarded("decode change", || {
            let change = Change::try_from(bytes).map_err(|e| DocError::Change(e.to_string()))?;
            // A chunk's checksum is the first four bytes of its hash, whether the chunk is the
            // change itself or the change compressed.
            if bytes.get(4..8) != Some(&change.hash().0[..4]) {
                return Err(DocError::Change(
                    "a change whose checksum does not match its bytes".into(),
                ));
            }
            // A change sent compressed is one the reader reads once automerge has inflated it.
            if change.raw_bytes() != bytes {
                return DecodedChange::new(change);
            }
            DecodedChange::expanded(change)
        })
    }
}

/// A short hash of a record's heads: equal exactly when two replicas hold the same changes. The
/// store keeps it as a column; a merge checks a replay of the held changes against it.
pub fn heads_hash(heads: &[ChangeHash]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut sorted: Vec<&ChangeHash> = heads.iter().collect();
    sorted.sort();
    let mut hasher = Sha256::new();
    for h in sorted {
        hasher.update(h.as_ref());
    }
    hasher.finalize()[..16].to_vec()
}

pub(crate) fn decode_header(
    root: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<Header, DocError> {
    match root.remove("header") {
        Some(serde_json::Value::String(text)) => parse_header(&text),
        Some(_) => Err(DocError::Header("`header` is not text".into())),
        None => Err(DocError::Header("no `header`".into())),
    }
}

fn parse_header(text: &str) -> Result<Header, DocError> {
    serde_json::from_str(text).map_err(|e| DocError::Header(e.to_string()))
}

pub(crate) fn decode_fields<T: DeserializeOwned>(
    root: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<T, DocError> {
    let value = root
        .remove("fields")
        .ok_or_else(|| DocError::Fields("no `fields` map".into()))?;
    serde_json::from_value(value).map_err(|e| DocError::Fields(e.to_string()))
}

pub(crate) fn decode_events<A: DeserializeOwned>(
    root: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<EventEntry<A>>, DocError> {
    match root.remove("events") {
        None => Ok(Vec::new()),
        Some(serde_json::Value::Array(items)) => Ok(items
            .into_iter()
            .map(|item| match item {
                serde_json::Value::String(text) => EventEntry::decode_text(&text),
                other => EventEntry::Undecodable {
                    error: "an event is not JSON text".into(),
                    raw: other,
                },
            })
            .collect()),
        Some(_) => Err(DocError::Events("`events` is not a list".into())),
    }
}

/// Writes into the map `obj` the keys of `new` whose value differs from `old` (the map as this
/// version read it; `None` where it read nothing there), recursing into maps and lists the
/// document already holds so that unknown keys inside them survive, and deletes the keys `old`
/// has and `new` leaves out. A key in neither is left alone.
fn write_changed(
    tx: &mut automerge::transaction::Transaction<'_>,
    obj: &automerge::ObjId,
    old: Option<&serde_json::Map<String, serde_json::Value>>,
    new: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), DocError> {
    for (key, value) in new {
        let before = old.and_then(|old| old.get(key));
        if before == Some(value) {
            continue;
        }
        let held = held_object(tx.get(obj, key.as_str()).map_err(update_failed)?);
        write_value(tx, obj, key.as_str().into(), before, value, held, false)?;
    }
    if let Some(old) = old {
        for key in old.keys().filter(|k| !new.contains_key(*k)) {
            if tx.get(obj, key.as_str()).map_err(update_failed)?.is_some() {
                tx.delete(obj, key.as_str()).map_err(update_failed)?;
            }
        }
    }
    Ok(())
}

/// [`write_changed`] for a list: element by element, by position, recursing into the maps and
/// lists it holds; elements past the new end are deleted (only where this version read the
/// list), new ones appended. By position: an element removed from the middle shifts the ones
/// after it onto their neighbours' maps, where keys a newer release wrote stay behind. No list
/// of maps a record's fields hold is edited that way today (such lists are written whole or
/// appended to); one that comes to be should carry ids and be matched by them.
fn write_list(
    tx: &mut automerge::transaction::Transaction<'_>,
    list: &automerge::ObjId,
    old: Option<&Vec<serde_json::Value>>,
    new: &[serde_json::Value],
) -> Result<(), DocError> {
    let held_len = tx.length(list);
    for (index, value) in new.iter().enumerate() {
        let before = old.and_then(|old| old.get(index));
        if index < held_len {
            if before == Some(value) {
                continue;
            }
            let held = held_object(tx.get(list, index).map_err(update_failed)?);
            write_value(tx, list, index.into(), before, value, held, false)?;
        } else {
            write_value(tx, list, index.into(), None, value, None, true)?;
        }
    }
    if old.is_some() {
        for index in (new.len()..held_len).rev() {
            tx.delete(list, index).map_err(update_failed)?;
        }
    }
    Ok(())
}

/// Writes `value` at `prop` of `obj` (inserting it there when `insert`), into what the
/// document holds there where both are maps or both lists.
fn write_value(
    tx: &mut automerge::transaction::Transaction<'_>,
    obj: &automerge::ObjId,
    prop: automerge::Prop,
    before: Option<&serde_json::Value>,
    value: &serde_json::Value,
    held: Option<(ObjType, automerge::ObjId)>,
    insert: bool,
) -> Result<(), DocError> {
    use serde_json::Value as J;
    match (value, held) {
        (J::Object(inner), Some((ObjType::Map, id))) => {
            write_changed(tx, &id, before.and_then(J::as_object), inner)
        }
        (J::Array(items), Some((ObjType::List, id))) => {
            write_list(tx, &id, before.and_then(J::as_array), items)
        }
        (J::Object(_) | J::Array(_), _) => {
            tx.batch_create_object(obj, prop, &to_hydrate(value)?, insert)
                .map_err(update_failed)?;
            Ok(())
        }
        (scalar, _) => {
            let hydrate::Value::Scalar(s) = to_hydrate(scalar)? else {
                return Err(DocError::Update("a value is not a scalar".into()));
            };
            match (prop, insert) {
                (automerge::Prop::Seq(index), true) => tx.insert(obj, index, s),
                (prop, _) => tx.put(obj, prop, s),
            }
            .map_err(update_failed)
        }
    }
}

/// The object a document holds at a key or index, if it holds one there.
fn held_object(
    held: Option<(automerge::Value<'_>, automerge::ObjId)>,
) -> Option<(ObjType, automerge::ObjId)> {
    match held {
        Some((automerge::Value::Object(kind), id)) => Some((kind, id)),
        _ => None,
    }
}

fn update_failed(e: automerge::AutomergeError) -> DocError {
    DocError::Update(e.to_string())
}

/// JSON (from serde) to automerge's hydrate tree. Strings become scalar strings, not text
/// objects: record fields are replaced whole, never edited character by character.
pub(crate) fn to_hydrate(value: &serde_json::Value) -> Result<hydrate::Value, DocError> {
    use serde_json::Value as J;
    Ok(match value {
        J::Null => hydrate::Value::Scalar(ScalarValue::Null),
        J::Bool(b) => hydrate::Value::Scalar(ScalarValue::Boolean(*b)),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                hydrate::Value::Scalar(ScalarValue::Int(i))
            } else if let Some(u) = n.as_u64() {
                hydrate::Value::Scalar(ScalarValue::Uint(u))
            } else {
                hydrate::Value::Scalar(ScalarValue::F64(n.as_f64().unwrap_or(0.0)))
            }
        }
        J::String(s) => hydrate::Value::from(s.as_str()),
        J::Array(items) => {
            let list: Result<Vec<_>, _> = items.iter().map(to_hydrate).collect();
            hydrate::Value::List(hydrate::List::from(list?))
        }
        J::Object(map) => {
            let mut out = std::collections::HashMap::new();
            for (k, v) in map {
                out.insert(k.clone(), to_hydrate(v)?);
            }
            hydrate::Value::Map(hydrate::Map::from(out))
        }
    })
}

/// The hydrate tree back to JSON, for serde to decode into typed fields.
pub(crate) fn from_hydrate(value: &hydrate::Value) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match value {
        hydrate::Value::Scalar(s) => match s {
            ScalarValue::Null => J::Null,
            ScalarValue::Boolean(b) => J::Bool(*b),
            ScalarValue::Int(i) | ScalarValue::Timestamp(i) => J::from(*i),
            ScalarValue::Uint(u) => J::from(*u),
            ScalarValue::F64(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            ScalarValue::Counter(c) => J::from(i64::from(c)),
            ScalarValue::Str(s) => J::String(s.to_string()),
            ScalarValue::Bytes(_) | ScalarValue::Unknown { .. } => {
                return Err("unsupported scalar type (bytes or unknown)".into());
            }
        },
        hydrate::Value::Text(t) => J::String(t.to_string()),
        hydrate::Value::List(list) => J::Array(
            list.iter()
                .map(|v| from_hydrate(&v.value))
                .collect::<Result<_, _>>()?,
        ),
        hydrate::Value::Map(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map.iter() {
                out.insert(k.clone(), from_hydrate(&v.value)?);
            }
            J::Object(out)
        }
    })
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::record::notice::Notice;
    use crate::record::{Author, RawChange, RecordId, RecordKind};
    use crate::region::RegionCode;

    fn notice_doc(actor: u8) -> (Header, Notice, RecordDoc) {
        let home = RegionCode::parse("home", "330411000000").unwrap();
        let header = Header {
            id: RecordId::new(),
            kind: RecordKind::Notice,
            home,
            created_at: Utc::now(),
            created_by: Author {
                node: home,
                user: "县人大办".into(),
            },
        };
        let notice = Notice {
            title: "关于开展代表活动月的通知".into(),
            body: "各乡镇人大：……".into(),
            category: "通知".into(),
            issued_on: chrono::NaiveDate::from_ymd_opt(2026, 5, 1).unwrap(),
            audience: home,
        };
        let doc = RecordDoc::create(&header, &notice, &ActorId::from(vec![actor; 16])).unwrap();
        (header, notice, doc)
    }

    /// Automerge's parser takes a change whose checksum is wrong and its loader refuses it: a
    /// peer's change like that is refused on the way in, or the record that stored it would
    /// not load again.
    #[test]
    fn a_change_whose_checksum_is_wrong_is_refused() {
        let (_, _, doc) = notice_doc(1);
        let change = doc.changes_since(&[]).remove(0);
        let mut bytes = change.raw_bytes().to_vec();
        assert!(RecordDoc::decode_change_ops(&bytes).is_ok());
        bytes[4] ^= 0xff;
        assert!(
            Change::try_from(&bytes[..]).is_ok(),
            "automerge's parser takes it"
        );
        assert!(
            automerge::Automerge::load(&bytes).is_err(),
            "automerge's loader refuses it"
        );
        let refused = RecordDoc::decode_change_ops(&bytes).unwrap_err();
        assert!(refused.to_string().contains("checksum"), "{refused}");
    }

    /// A change Renda writes is read by Renda's reader without automerge, and comes out as the
    /// change automerge parses from the same bytes: the hash, the actor and the bytes the store
    /// keeps, and automerge's own parse when a merge falls back on automerge.
    #[test]
    fn a_change_read_without_automerge_is_the_change_automerge_parses() {
        let (_, mut notice, mut doc) = notice_doc(1);
        notice.title = "关于开展代表活动月的补充通知".into();
        doc.set_fields(&notice, 0, "retitle").unwrap();
        for change in doc.changes_since(&[]) {
            let decoded = RecordDoc::decode_change_ops(change.raw_bytes()).unwrap();
            assert!(decoded.parsed.is_none(), "the reader read it alone");
            assert_eq!(decoded.hash(), change.hash());
            assert_eq!(decoded.to_raw(), RawChange::from(&change));
            let parsed = decoded.to_automerge().unwrap();
            assert_eq!(parsed.hash(), change.hash());
            assert_eq!(parsed.raw_bytes(), change.raw_bytes());
            assert_eq!(parsed.decode(), change.decode());
        }
    }

    /// A change sent compressed is one Renda's reader does not read: automerge parses and
    /// expands it, and it is the same change as sent uncompressed.
    #[test]
    fn a_compressed_change_is_parsed_by_automerge_and_is_the_same_change() {
        let (_, _, doc) = notice_doc(1);
        let mut change = doc.changes_since(&[]).remove(0);
        let compressed = change.bytes().into_owned();
        assert_ne!(&compressed[..], change.raw_bytes(), "the change compresses");
        assert!(super::super::replay::ops::read_bytes(&compressed).is_err());
        let decoded = RecordDoc::decode_change_ops(&compressed).unwrap();
        assert!(decoded.parsed.is_some(), "automerge parsed it");
        let plain = RecordDoc::decode_change_ops(change.raw_bytes()).unwrap();
        assert_eq!(decoded.to_raw(), plain.to_raw());
        assert_eq!(decoded.read.meta, plain.read.meta);
        assert_eq!(decoded.read.ops, plain.read.ops);
    }

    #[test]
    fn a_document_round_trips_through_save_and_load() {
        let (header, notice, doc) = notice_doc(1);
        let loaded = RecordDoc::load(&doc.save(), &ActorId::from(vec![2; 16])).unwrap();
        assert_eq!(loaded.header().unwrap(), header);
        assert_eq!(loaded.fields::<Notice>().unwrap(), notice);
        assert_eq!(loaded.heads(), doc.heads());
    }

    #[test]
    fn writing_unchanged_fields_makes_no_change_and_a_changed_key_makes_one() {
        let (_, mut notice, mut doc) = notice_doc(1);
        assert!(doc.set_fields(&notice, 0, "same").unwrap().is_none());
        notice.title = "关于开展代表活动月的补充通知".into();
        let change = doc
            .set_fields(&notice, 0, "retitle")
            .unwrap()
            .expect("a change");
        assert_eq!(doc.fields::<Notice>().unwrap().title, notice.title);
        // Only the title was written: the change is small, not a copy of every field.
        assert!(
            change.raw_bytes().len() < 200,
            "{} bytes",
            change.raw_bytes().len()
        );
    }

    /// What a newer node writes and this version does not know: a field, a key inside a nested
    /// map this version knows, and a key beside `fields` at the document's root.
    fn add_newer_keys(doc: &mut RecordDoc) {
        let fields = match doc.doc.get(ROOT, "fields").unwrap() {
            Some((automerge::Value::Object(ObjType::Map), id)) => id,
            other => panic!("no fields map: {other:?}"),
        };
        let mut tx = doc.doc.transaction();
        tx.put(&fields, "newer_field", "kept").unwrap();
        if let Some((automerge::Value::Object(ObjType::Map), inner)) =
            tx.get(&fields, "inner").unwrap()
        {
            tx.put(&inner, "newer_inner", 7i64).unwrap();
        }
        if let Some((automerge::Value::Object(ObjType::List), items)) =
            tx.get(&fields, "items").unwrap()
            && let Some((automerge::Value::Object(ObjType::Map), first)) =
                tx.get(&items, 0).unwrap()
        {
            tx.put(&first, "newer_inner", 8i64).unwrap();
        }
        tx.put(ROOT, "newer_root", true).unwrap();
        tx.commit();
    }

    #[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Outer {
        title: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        inner: Inner,
        #[serde(default)]
        items: Vec<Inner>,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Inner {
        a: String,
    }

    #[test]
    fn an_edit_keeps_the_fields_a_newer_node_wrote() {
        let (mut header, _, _) = notice_doc(1);
        header.kind = RecordKind::Group;
        let mut outer = Outer {
            title: "旧".into(),
            note: Some("备注".into()),
            inner: Inner { a: "甲".into() },
            items: vec![Inner { a: "一".into() }, Inner { a: "二".into() }],
        };
        let mut doc = RecordDoc::create(&header, &outer, &ActorId::from(vec![1; 16])).unwrap();
        add_newer_keys(&mut doc);
        // Writing what this version reads back changes nothing, unknown keys and all.
        let read: Outer = doc.fields().unwrap();
        assert_eq!(read, outer);
        assert!(doc.set_fields(&read, 0, "same").unwrap().is_none());
        // An edit of known fields, a nested one and a cleared one among them.
        outer.title = "新".into();
        outer.note = None;
        outer.inner.a = "乙".into();
        outer.items[1].a = "贰".into();
        outer.items.push(Inner { a: "三".into() });
        doc.set_fields(&outer, 0, "edit")
            .unwrap()
            .expect("a change");
        let root = doc.root().unwrap();
        let fields = root["fields"].as_object().unwrap();
        assert_eq!(fields["title"], "新");
        assert!(!fields.contains_key("note"), "{fields:?}");
        assert_eq!(fields["inner"]["a"], "乙");
        assert_eq!(fields["newer_field"], "kept");
        assert_eq!(fields["inner"]["newer_inner"], 7);
        assert_eq!(root["newer_root"], true);
        // Inside a list of maps too, and the list's own edits are made.
        assert_eq!(fields["items"][0]["newer_inner"], 8);
        assert_eq!(fields["items"][0]["a"], "一");
        assert_eq!(fields["items"][1]["a"], "贰");
        assert_eq!(fields["items"][2]["a"], "三");
        // And it survives a save and load, as a peer receives it.
        let loaded = RecordDoc::load(&doc.save(), &ActorId::from(vec![2; 16])).unwrap();
        assert_eq!(loaded.root().unwrap(), root);
        // A shorter list loses its last elements and nothing else.
        outer.items.truncate(1);
        doc.set_fields(&outer, 0, "shorten")
            .unwrap()
            .expect("a change");
        let fields = doc.root().unwrap()["fields"].clone();
        assert_eq!(fields["items"].as_array().map(Vec::len), Some(1));
        assert_eq!(fields["items"][0]["newer_inner"], 8);
    }

    #[test]
    fn concurrent_edits_of_different_fields_both_survive() {
        let (_, notice, mut a) = notice_doc(1);
        let mut b = RecordDoc::load(&a.save(), &ActorId::from(vec![2; 16])).unwrap();
        let mut on_a = notice.clone();
        on_a.title = "新标题".into();
        let mut on_b = notice.clone();
        on_b.body = "新正文".into();
        let ca = a.set_fields(&on_a, 0, "a").unwrap().unwrap();
        let cb = b.set_fields(&on_b, 0, "b").unwrap().unwrap();
        assert_eq!(a.apply_changes(vec![cb.clone()]).unwrap().len(), 1);
        b.apply_changes(vec![ca]).unwrap();
        let merged: Notice = a.fields().unwrap();
        assert_eq!(
            (merged.title.as_str(), merged.body.as_str()),
            ("新标题", "新正文")
        );
        assert_eq!(b.fields::<Notice>().unwrap(), merged);
        assert!(
            a.apply_changes(vec![cb]).unwrap().is_empty(),
            "applying twice is a no-op"
        );
    }

    #[test]
    fn a_change_to_the_header_is_refused_and_leaves_the_document_alone() {
        let (header, _, a) = notice_doc(1);
        let mut forged = Automerge::load(&a.save())
            .unwrap()
            .with_actor(ActorId::from(vec![9; 16]));
        let mut moved = header.clone();
        moved.home = RegionCode::parse("home", "330411102000").unwrap();
        let mut tx = forged.transaction();
        tx.put(ROOT, "header", serde_json::to_string(&moved).unwrap())
            .unwrap();
        tx.commit();
        let change = forged.get_last_local_change().unwrap();
        let mut victim = RecordDoc::load(&a.save(), &ActorId::from(vec![2; 16])).unwrap();
        let heads = victim.heads();
        assert!(matches!(
            victim.apply_changes(vec![change]),
            Err(DocError::HeaderChanged(_))
        ));
        assert_eq!(victim.heads(), heads);
        assert_eq!(victim.header().unwrap(), header);
    }

    /// Of a first, a second and a third change, the first and the third arrive: the first is
    /// applied and reported so, the third waits for the second, and only it is missing.
    #[test]
    fn a_change_waiting_for_another_does_not_hide_the_ones_applied() {
        let (_, mut notice, mut source) = notice_doc(1);
        for title in ["补充通知", "再次补充通知"] {
            notice.title = title.into();
            source.set_fields(&notice, 0, "retitle").unwrap().unwrap();
        }
        let changes = source.changes_since(&[]);
        let mut doc = RecordDoc::empty(&ActorId::from(vec![2; 16]));
        let applied = doc
            .apply_changes(vec![changes[0].clone(), changes[2].clone()])
            .unwrap();
        assert_eq!(applied.len(), 1);
        assert_eq!(applied[0].hash(), changes[0].hash());
        assert!(doc.has_change(&changes[0].hash()));
        assert!(!doc.has_change(&changes[2].hash()));
        // The second arrives: the third, queued until now, is applied with it.
        let applied = doc.apply_changes(vec![changes[1].clone()]).unwrap();
        assert_eq!(applied.len(), 1);
        assert!(doc.has_change(&changes[2].hash()));
        assert_eq!(doc.heads(), source.heads());
        assert_eq!(doc.fields::<Notice>().unwrap(), notice);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let actor = ActorId::from(vec![1; 16]);
        assert!(matches!(
            RecordDoc::load(b"not automerge", &actor),
            Err(DocError::Load(_))
        ));
        assert!(RecordDoc::decode_change(&[0x85, 0x6f, 0x4a, 0x83, 1, 2, 3]).is_err());
        // A valid but empty document has no header.
        let empty = RecordDoc::load(&Automerge::new().save(), &actor).unwrap();
        assert!(matches!(
            crate::record::Record::from_doc(&empty),
            Err(DocError::Header(_))
        ));
    }
}

#[cfg(test)]
mod append_tests {
    use automerge::transaction::Transactable;
    use automerge::{ActorId, Automerge, ROOT};

    #[test]
    fn a_saved_document_followed_by_change_chunks_loads_whole() {
        let mut doc = Automerge::new().with_actor(ActorId::from(vec![1; 16]));
        let mut tx = doc.transaction();
        tx.put(ROOT, "a", 1).unwrap();
        tx.commit();
        let mut blob = doc.save();
        for i in 0..3 {
            let mut tx = doc.transaction();
            tx.put(ROOT, "a", 2 + i).unwrap();
            tx.commit();
            blob.extend_from_slice(doc.get_last_local_change().unwrap().raw_bytes());
        }
        let loaded = Automerge::load(&blob).unwrap();
        assert_eq!(loaded.get_heads(), doc.get_heads());
        // Change chunks alone load too.
        let only_changes: Vec<u8> = doc
            .get_changes(&[])
            .iter()
            .flat_map(|c| c.raw_bytes().to_vec())
            .collect();
        assert_eq!(
            Automerge::load(&only_changes).unwrap().get_heads(),
            doc.get_heads()
        );
    }
}
