//! Raw automerge changes forged from arbitrary bytes, as a buggy or hostile peer could send them:
//! the input of the differential checks that hold a [`super::Replay`] to automerge
//! ([`super::compare_with_automerge`]), from the property tests and the `replay` fuzz target.
//!
//! The bytes are a program. Most of what it builds is shaped like a record (a header, a fields
//! map, an event list, edits by three replicas that sometimes merge what the others wrote), so
//! that the checks reach deep into the replay; the rest is what no honest node writes: a second
//! header, a root key no record has, events rewritten or deleted, scalars and objects records do
//! not use, operations on unknown objects, `pred`s naming the wrong operation or none, repeated
//! sequence numbers, reused operation ids, missing dependencies. Changes are built with
//! automerge's own encoder, so they carry valid hashes and reach the replay rather than being
//! stopped at decoding; byte-level mangling is left to the other fuzz targets.

use std::collections::{BTreeSet, HashMap};
use std::num::NonZeroU64;

use automerge::legacy::{self, ElementId, Key, ObjectId, OpType};
use automerge::{ActorId, Change, ChangeHash, ObjType, ScalarValue};

/// A forged history: the changes a receiver holds already and those a peer sends, as raw bytes.
#[derive(Clone, Debug, Default)]
pub struct Forged {
    pub held: Vec<Vec<u8>>,
    pub incoming: Vec<Vec<u8>>,
}

/// Reads the program a byte at a time; past its end every read is zero.
struct Program<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Program<'_> {
    fn next(&mut self) -> u8 {
        let b = self.bytes.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }
}

/// A replica's view: the changes it has seen, its sequence and its last operation counter.
#[derive(Default, Clone)]
struct Replica {
    known: BTreeSet<ChangeHash>,
    seq: u64,
    max_op: u64,
}

#[derive(Default)]
struct Forge {
    actors: Vec<ActorId>,
    replicas: Vec<Replica>,
    /// Every change forged: its dependencies and the greatest operation counter it and its past
    /// used.
    changes: HashMap<ChangeHash, (Vec<ChangeHash>, u64)>,
    order: Vec<(ChangeHash, Vec<u8>)>,
    /// Objects made so far (maps and lists), the root's `fields` and `events` first.
    maps: Vec<legacy::OpId>,
    lists: Vec<legacy::OpId>,
    fields: Option<legacy::OpId>,
    events: Option<legacy::OpId>,
    /// Elements inserted into each list.
    elements: HashMap<legacy::OpId, Vec<legacy::OpId>>,
    /// Operations made on each map key or list element, for `pred`s.
    written: HashMap<(ObjectId, String), Vec<legacy::OpId>>,
    /// The change (by its place in `order`) each operation was made in, and the replica making
    /// the change being forged: an honest replica names only operations it has seen.
    made_in: HashMap<legacy::OpId, usize>,
    current: usize,
    /// Forge only what an honest replica writes (concurrent edits included).
    honest: bool,
}

const KEYS: [&str; 6] = ["k0", "k1", "k2", "k3", "", "header"];

fn scalar(p: &mut Program) -> ScalarValue {
    let b = p.next();
    match b % 64 {
        0..=29 => ScalarValue::Str(format!("值{}", p.next()).into()),
        30..=41 => ScalarValue::Int(i64::from(p.next() as i8)),
        42..=45 => ScalarValue::Uint(u64::from(p.next())),
        46..=49 => ScalarValue::F64(f64::from(p.next()) / 4.0),
        50..=53 => ScalarValue::Null,
        54..=58 => ScalarValue::Boolean(b & 0x80 != 0),
        59..=60 => ScalarValue::Timestamp(i64::from(p.next())),
        61..=62 => ScalarValue::Bytes(vec![p.next()]),
        // Screened out before any replay (a counter has no place in a record).
        _ => ScalarValue::counter(i64::from(p.next())),
    }
}

impl Forge {
    fn heads_of(&self, known: &BTreeSet<ChangeHash>) -> Vec<ChangeHash> {
        let covered: BTreeSet<&ChangeHash> = known
            .iter()
            .filter_map(|h| self.changes.get(h))
            .flat_map(|(deps, _)| deps)
            .collect();
        known
            .iter()
            .filter(|h| !covered.contains(h))
            .copied()
            .collect()
    }

    fn past_max(&self, known: &BTreeSet<ChangeHash>) -> u64 {
        known
            .iter()
            .filter_map(|h| self.changes.get(h))
            .map(|(_, max)| *max)
            .max()
            .unwrap_or(0)
    }

    /// Whether the replica forging a change has seen the operation `id`.
    fn seen(&self, id: &legacy::OpId) -> bool {
        match self.made_in.get(id) {
            Some(&at) => self
                .order
                .get(at)
                .is_none_or(|(hash, _)| self.replicas[self.current].known.contains(hash)),
            None => false,
        }
    }

    /// Picks one of `ids`: mostly one the forging replica has seen, now and then one it has not,
    /// or an id no change made (a counter far past any, by a fourth actor).
    fn pick(&self, p: &mut Program, ids: &[legacy::OpId]) -> legacy::OpId {
        let b = p.next() as usize;
        let seen: Vec<&legacy::OpId> = ids.iter().filter(|id| self.seen(id)).collect();
        if self.honest && !seen.is_empty() {
            return seen[b % seen.len()].clone();
        }
        match b % 64 {
            63 => legacy::OpId::new(1000 + b as u64, &ActorId::from(vec![0xee; 16])),
            56..=62 if !ids.is_empty() => ids[b % ids.len()].clone(),
            _ if !seen.is_empty() => seen[b % seen.len()].clone(),
            _ => legacy::OpId::new(1000 + b as u64, &ActorId::from(vec![0xee; 16])),
        }
    }

    fn pred(&self, p: &mut Program, obj: &ObjectId, key: &str) -> Vec<legacy::OpId> {
        let written = self
            .written
            .get(&(obj.clone(), key.to_string()))
            .cloned()
            .unwrap_or_default();
        let choice = if self.honest { 0 } else { p.next() % 16 };
        match choice {
            // Honest: everything written there that the replica has seen.
            0..=11 => written.into_iter().filter(|id| self.seen(id)).collect(),
            // Everything written there, seen or not; the last write only; none.
            12 => written,
            13 => written.last().cloned().into_iter().collect(),
            14 => Vec::new(),
            // An operation made elsewhere, or one never made.
            _ => {
                let all: Vec<legacy::OpId> = self.written.values().flatten().cloned().collect();
                vec![self.pick(p, &all)]
            }
        }
    }

    /// One operation, chosen by the program, with the id `id` it will get.
    fn op(&mut self, p: &mut Program, id: &legacy::OpId) -> legacy::Op {
        let choice = match p.next() % 64 {
            // Mostly edits of the fields and events added, as honest nodes write.
            0..=15 => 0,
            16..=19 => 4,
            20..=22 => 11,
            23..=36 => 5,
            37..=42 => 8,
            43..=46 => 9,
            47..=54 => 1,
            // Now and then what no honest node writes.
            55..=57 => 10,
            58..=59 => 12,
            // Screened out before any replay.
            60 => 13,
            _ => 14,
        };
        let choice = match choice {
            10 | 12 | 13 | 14 if self.honest => 0,
            8 | 9 if self.lists.is_empty() => 0,
            other => other,
        };
        let (obj, key, action, insert) = match choice {
            // Edits inside the fields and the maps nested there.
            0..=4 | 11 => {
                let obj = ObjectId::Id(self.pick(p, &self.maps.clone()));
                let key = KEYS[p.next() as usize % 4].to_string();
                let action = match choice {
                    11 => OpType::Delete,
                    4 => OpType::Make(if p.next().is_multiple_of(2) {
                        ObjType::Map
                    } else {
                        ObjType::List
                    }),
                    _ => OpType::Put(scalar(p)),
                };
                (obj, Key::Map(key.into()), action, false)
            }
            // An event added after the last one, or after any, or at the head.
            5..=7 => {
                let list = self.events.clone().unwrap_or_else(|| self.pick(p, &[]));
                let elements = self.elements.get(&list).cloned().unwrap_or_default();
                let reference = match p.next() % 4 {
                    0 => ElementId::Head,
                    1 => ElementId::Id(self.pick(p, &elements)),
                    _ => elements
                        .last()
                        .cloned()
                        .map_or(ElementId::Head, ElementId::Id),
                };
                let value = if p.next().is_multiple_of(8) {
                    scalar(p)
                } else {
                    ScalarValue::Str(format!("{{\"id\":\"事件{}\"}}", p.next()).into())
                };
                (
                    ObjectId::Id(list),
                    Key::Seq(reference),
                    OpType::Put(value),
                    true,
                )
            }
            // A list in the fields: an insert, or a put or delete on an element.
            8 | 9 => {
                let list = self.pick(p, &self.lists.clone());
                let elements = self.elements.get(&list).cloned().unwrap_or_default();
                let reference = if elements.is_empty() || p.next().is_multiple_of(3) {
                    ElementId::Head
                } else {
                    ElementId::Id(self.pick(p, &elements))
                };
                if choice == 8 {
                    (
                        ObjectId::Id(list),
                        Key::Seq(reference),
                        OpType::Put(scalar(p)),
                        true,
                    )
                } else {
                    let action = if p.next().is_multiple_of(2) {
                        OpType::Delete
                    } else {
                        OpType::Put(scalar(p))
                    };
                    (ObjectId::Id(list), Key::Seq(reference), action, false)
                }
            }
            // The root: what the first change writes, again or anew, or a key no record has.
            10 | 12 => {
                let key = ["header", "fields", "events", "extra"][p.next() as usize % 4];
                let action = match key {
                    "fields" => OpType::Make(ObjType::Map),
                    "events" => OpType::Make(ObjType::List),
                    _ => OpType::Put(scalar(p)),
                };
                (ObjectId::Root, Key::Map(key.into()), action, false)
            }
            // What no record holds at all.
            13 => (
                ObjectId::Id(self.pick(p, &self.maps.clone())),
                Key::Map("k0".into()),
                match p.next() % 3 {
                    0 => OpType::Increment(1),
                    1 => OpType::Make(ObjType::Text),
                    _ => OpType::Make(ObjType::Table),
                },
                false,
            ),
            // An event rewritten or removed.
            _ => {
                let list = self.events.clone().unwrap_or_else(|| self.pick(p, &[]));
                let elements = self.elements.get(&list).cloned().unwrap_or_default();
                let element = self.pick(p, &elements);
                let action = if p.next().is_multiple_of(2) {
                    OpType::Delete
                } else {
                    OpType::Put("{\"id\":\"改写\"}".into())
                };
                (
                    ObjectId::Id(list),
                    Key::Seq(ElementId::Id(element)),
                    action,
                    false,
                )
            }
        };
        let slot = match &key {
            Key::Map(name) => name.to_string(),
            Key::Seq(ElementId::Id(e)) if !insert => e.to_string(),
            Key::Seq(_) => id.to_string(),
        };
        let pred = if insert {
            Vec::new()
        } else {
            self.pred(p, &obj, &slot)
        };
        op(obj, key, action, insert, pred)
    }

    /// Notes what an operation made, so that later ones can name it.
    fn note(&mut self, op: &legacy::Op, id: &legacy::OpId) {
        self.made_in.insert(id.clone(), self.order.len());
        let slot = match &op.key {
            Key::Map(name) => name.to_string(),
            Key::Seq(ElementId::Id(e)) if !op.insert => e.to_string(),
            Key::Seq(_) => id.to_string(),
        };
        self.written
            .entry((op.obj.clone(), slot))
            .or_default()
            .push(id.clone());
        if op.insert
            && let ObjectId::Id(list) = &op.obj
        {
            self.elements
                .entry(list.clone())
                .or_default()
                .push(id.clone());
        }
        match (&op.obj, &op.key, &op.action) {
            (ObjectId::Root, Key::Map(name), OpType::Make(ObjType::Map)) if name == "fields" => {
                self.fields.get_or_insert(id.clone());
                self.maps.push(id.clone());
            }
            (ObjectId::Root, Key::Map(name), OpType::Make(ObjType::List)) if name == "events" => {
                self.events.get_or_insert(id.clone());
            }
            (_, _, OpType::Make(ObjType::Map)) => self.maps.push(id.clone()),
            (_, _, OpType::Make(ObjType::List)) => self.lists.push(id.clone()),
            _ => {}
        }
    }

    /// Forges one change by `replica` from the program, or `None` if automerge's encoder would
    /// not take it.
    fn change(&mut self, p: &mut Program, replica: usize, mode: u8) -> Option<Vec<u8>> {
        self.current = replica;
        let view = self.replicas[replica].clone();
        let mut deps = self.heads_of(&view.known);
        if mode == 0 {
            // Missing or invented dependencies.
            deps = match p.next() % 3 {
                0 => Vec::new(),
                1 => deps.into_iter().skip(1).collect(),
                _ => vec![ChangeHash([p.next(); 32])],
            };
        }
        let seq = if mode == 1 {
            view.seq.max(1)
        } else {
            view.seq + 1
        };
        let mut start = self.past_max(&view.known).max(view.max_op) + 1;
        if mode == 2 {
            start = start.saturating_sub(u64::from(p.next() % 4) + 1).max(1);
        }
        let count = 1 + p.next() as usize % 4;
        let actor = self.actors[replica].clone();
        let mut operations = Vec::with_capacity(count);
        for i in 0..count {
            let id = legacy::OpId::new(start + i as u64, &actor);
            let op = self.op(p, &id);
            self.note(&op, &id);
            operations.push(op);
        }
        let expanded = automerge::ExpandedChange {
            operations,
            actor_id: actor,
            hash: None,
            seq,
            start_op: NonZeroU64::new(start)?,
            time: 0,
            message: None,
            deps: deps.clone(),
            extra_bytes: Vec::new(),
            author: None,
        };
        let change = std::panic::catch_unwind(|| Change::from(expanded)).ok()?;
        let hash = change.hash();
        let max = start + count as u64 - 1;
        let past = deps
            .iter()
            .filter_map(|d| self.changes.get(d))
            .map(|(_, m)| *m)
            .max()
            .unwrap_or(0);
        self.changes.insert(hash, (deps, max.max(past)));
        let replica = &mut self.replicas[replica];
        replica.known.insert(hash);
        replica.seq = seq;
        replica.max_op = replica.max_op.max(max);
        let bytes = change.raw_bytes().to_vec();
        self.order.push((hash, bytes.clone()));
        Some(bytes)
    }

    /// A record's first change, as `RecordDoc::create_with_event` writes it, by the first replica.
    fn create(&mut self) -> Option<Vec<u8>> {
        let actor = self.actors[0].clone();
        let id = |n: u64| legacy::OpId::new(n, &actor);
        let operations = vec![
            op(
                ObjectId::Root,
                Key::Map("header".into()),
                OpType::Put("{\"id\":\"01J0000000000000000000000\"}".into()),
                false,
                Vec::new(),
            ),
            op(
                ObjectId::Root,
                Key::Map("fields".into()),
                OpType::Make(ObjType::Map),
                false,
                Vec::new(),
            ),
            op(
                ObjectId::Id(id(2)),
                Key::Map("k0".into()),
                OpType::Put("路灯".into()),
                false,
                Vec::new(),
            ),
            op(
                ObjectId::Root,
                Key::Map("events".into()),
                OpType::Make(ObjType::List),
                false,
                Vec::new(),
            ),
            op(
                ObjectId::Id(id(4)),
                Key::Seq(ElementId::Head),
                OpType::Put("{\"id\":\"收集\"}".into()),
                true,
                Vec::new(),
            ),
        ];
        for (i, op) in operations.iter().enumerate() {
            self.note(op, &id(i as u64 + 1));
        }
        let expanded = automerge::ExpandedChange {
            operations,
            actor_id: actor,
            hash: None,
            seq: 1,
            start_op: NonZeroU64::MIN,
            time: 0,
            message: None,
            deps: Vec::new(),
            extra_bytes: Vec::new(),
            author: None,
        };
        let change = std::panic::catch_unwind(|| Change::from(expanded)).ok()?;
        let hash = change.hash();
        self.changes.insert(hash, (Vec::new(), 5));
        let replica = &mut self.replicas[0];
        replica.known.insert(hash);
        replica.seq = 1;
        replica.max_op = 5;
        let bytes = change.raw_bytes().to_vec();
        self.order.push((hash, bytes.clone()));
        Some(bytes)
    }
}

/// One operation, as a change lists it.
pub(super) fn op(
    obj: ObjectId,
    key: Key,
    action: OpType,
    insert: bool,
    pred: Vec<legacy::OpId>,
) -> legacy::Op {
    legacy::Op {
        action,
        obj,
        key,
        pred: pred.into_iter().collect(),
        insert,
    }
}

/// The history `program` describes. Its first byte says whether it starts from a record's first
/// change (as `RecordDoc` writes it), whether every replica is honest, how many of the changes
/// the receiver holds already and how the rest are ordered; each following group of bytes is
/// one change by one of three replicas (or a replica merging another's view).
pub fn history(program: &[u8]) -> Forged {
    let mut p = Program {
        bytes: program,
        at: 0,
    };
    let mut forge = Forge {
        actors: (1..=3u8).map(|i| ActorId::from(vec![i; 16])).collect(),
        replicas: vec![Replica::default(); 3],
        ..Forge::default()
    };
    let opening = p.next();
    forge.honest = opening & 0x80 != 0;
    // One history in sixteen starts from nothing a record's first change wrote.
    if opening & 0x0f != 0x0f {
        forge.create();
        // Every replica starts from the record as created.
        let first = forge.replicas[0].known.clone();
        for replica in &mut forge.replicas[1..] {
            replica.known = first.clone();
        }
    }
    let mut steps = 0;
    while !p.done() && steps < 64 {
        steps += 1;
        let step = p.next();
        let replica = step as usize % 3;
        // 0: dependencies missing or invented; 1: a sequence number repeated; 2: operation ids
        // reused; 3 to 5: a merge; else an honest change.
        let mode = (step >> 2) % 16;
        if (3..=5).contains(&mode) {
            // A merge: the replica learns what another has seen.
            let other = (step as usize >> 6) % 3;
            let seen = forge.replicas[other].known.clone();
            forge.replicas[replica].known.extend(seen);
            continue;
        }
        let mode = if forge.honest { 15 } else { mode };
        forge.change(&mut p, replica, mode);
    }
    let held_count = (opening as usize >> 2) % (forge.order.len() + 1);
    let mut incoming: Vec<Vec<u8>> = forge
        .order
        .iter()
        .skip(held_count)
        .map(|(_, bytes)| bytes.clone())
        .collect();
    // Changes arrive in any order: rotate them as the opening byte says.
    if !incoming.is_empty() {
        let by = (opening as usize >> 4) % incoming.len();
        incoming.rotate_left(by);
    }
    Forged {
        held: forge
            .order
            .iter()
            .take(held_count)
            .map(|(_, bytes)| bytes.clone())
            .collect(),
        incoming,
    }
}

/// `chunk` (one change as automerge encodes it) with bytes of its data overwritten as `edits`
/// says, three bytes an edit (a position in the data, little-endian, and the byte written
/// there), and its checksum made right again, so that automerge's parser judges the bytes
/// rather than its checksum refusing them: the byte-level input of
/// [`super::ops::compare_reader`]. `None` when `chunk` is no chunk with data.
pub fn mangle(chunk: &[u8], edits: &[u8]) -> Option<Vec<u8>> {
    use sha2::{Digest, Sha256};
    // Magic (4 bytes), checksum (4), chunk type (1), the data's length, the data.
    let mut length = chunk.get(9..)?;
    let len = leb128::read::unsigned(&mut length).ok()?;
    let start = chunk.len() - length.len();
    if len == 0 || len != length.len() as u64 {
        return None;
    }
    let mut out = chunk.to_vec();
    for edit in edits.chunks_exact(3) {
        let at = u16::from_le_bytes([edit[0], edit[1]]) as usize % len as usize;
        out[start + at] = edit[2];
    }
    let checksum = Sha256::digest(&out[8..]);
    out[4..8].copy_from_slice(&checksum[..4]);
    Some(out)
}

/// A change chunk taken apart: the header's bytes (dependencies to other actors), the
/// operation columns with their specifications, and what follows the columns (an author
/// footer, say). [`ChangeParts::chunk`] puts it back together with its layout, length and
/// checksum made right, whatever was done to the parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeParts {
    pub header: Vec<u8>,
    pub columns: Vec<(u64, Vec<u8>)>,
    pub extra: Vec<u8>,
}

impl ChangeParts {
    /// `chunk` taken apart, or `None` when it is no uncompressed change chunk whose header and
    /// layout read (at most its first 64 columns are taken).
    pub fn of(chunk: &[u8]) -> Option<ChangeParts> {
        fn uleb(bytes: &mut &[u8]) -> Option<u64> {
            leb128::read::unsigned(bytes).ok()
        }
        fn skip(bytes: &mut &[u8], n: u64) -> Option<()> {
            *bytes = bytes.get(usize::try_from(n).ok()?..)?;
            Some(())
        }
        if chunk.get(..4)? != super::ops::MAGIC || chunk.get(8) != Some(&super::ops::CHANGE_CHUNK) {
            return None;
        }
        let mut rest = chunk.get(9..)?;
        let len = uleb(&mut rest)?;
        if len != rest.len() as u64 {
            return None;
        }
        let data = rest;
        let deps = uleb(&mut rest)?;
        skip(&mut rest, deps.checked_mul(32)?)?;
        let actor = uleb(&mut rest)?;
        skip(&mut rest, actor)?;
        uleb(&mut rest)?; // sequence
        uleb(&mut rest)?; // first operation
        leb128::read::signed(&mut rest).ok()?; // time
        let message = uleb(&mut rest)?;
        skip(&mut rest, message)?;
        for _ in 0..uleb(&mut rest)? {
            let other = uleb(&mut rest)?;
            skip(&mut rest, other)?;
        }
        let header = data[..data.len() - rest.len()].to_vec();
        let count = uleb(&mut rest)?;
        let mut layout = Vec::new();
        for _ in 0..count.min(64) {
            layout.push((uleb(&mut rest)?, uleb(&mut rest)?));
        }
        let mut columns = Vec::with_capacity(layout.len());
        for (spec, len) in layout {
            let at = usize::try_from(len).ok()?;
            columns.push((spec, rest.get(..at)?.to_vec()));
            rest = &rest[at..];
        }
        Some(ChangeParts {
            header,
            columns,
            extra: rest.to_vec(),
        })
    }

    /// The parts as one change chunk: the header, the layout the columns now have, the
    /// columns, the extra bytes, framed, with the checksum of what they now are.
    pub fn chunk(&self) -> Vec<u8> {
        use sha2::{Digest, Sha256};
        fn uleb(out: &mut Vec<u8>, n: u64) {
            // Writing into memory does not fail.
            let _ = leb128::write::unsigned(out, n);
        }
        let mut data = self.header.clone();
        uleb(&mut data, self.columns.len() as u64);
        for (spec, column) in &self.columns {
            uleb(&mut data, *spec);
            uleb(&mut data, column.len() as u64);
        }
        for (_, column) in &self.columns {
            data.extend_from_slice(column);
        }
        data.extend_from_slice(&self.extra);
        let mut body = vec![super::ops::CHANGE_CHUNK];
        uleb(&mut body, data.len() as u64);
        body.extend_from_slice(&data);
        let mut chunk = super::ops::MAGIC.to_vec();
        chunk.extend_from_slice(&Sha256::digest(&body)[..4]);
        chunk.extend_from_slice(&body);
        chunk
    }
}

/// `chunk` (one uncompressed change, [`ChangeParts`]) with bytes spliced into, out of or over
/// its parts as `edits` says, and put back together with its framing made right. Four bytes an
/// edit: which part (the header, one of its operation columns, or the bytes after the columns),
/// where in it, what to do (insert, remove or overwrite a byte; at a part's end, removing or
/// overwriting appends; or drop a column from the layout), and the byte. So the header's fields
/// and the columns grow and shrink, runs are cut short or lengthened and columns go missing,
/// while the chunk stays one automerge's parser reads to the end: the parser, not the framing,
/// judges them, as it judges bytes overwritten in place by [`mangle`]. `None` when `chunk` does
/// not come apart.
pub fn splice(chunk: &[u8], edits: &[u8]) -> Option<Vec<u8>> {
    let mut parts = ChangeParts::of(chunk)?;
    for edit in edits.chunks_exact(4) {
        let part = edit[0] as usize % (parts.columns.len() + 2);
        if edit[2] % 4 == 3 {
            if (1..=parts.columns.len()).contains(&part) {
                parts.columns.remove(part - 1);
            }
            continue;
        }
        let bytes = match part {
            0 => &mut parts.header,
            p if p > parts.columns.len() => &mut parts.extra,
            p => &mut parts.columns[p - 1].1,
        };
        let at = edit[1] as usize % (bytes.len() + 1);
        match edit[2] % 4 {
            0 => bytes.insert(at, edit[3]),
            1 if at < bytes.len() => {
                bytes.remove(at);
            }
            _ if at < bytes.len() => bytes[at] = edit[3],
            _ => bytes.push(edit[3]),
        }
    }
    Some(parts.chunk())
}

/// A fixed pseudo-random sequence (xorshift64) from `seed`, for the seeded runs that must reach
/// every side of the differential checks: the same numbers on every run, so a failure replays.
pub fn seeded(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
