//! A change's operations, read straight from its columns: what a [`super::Replay`] applies.
//!
//! Why a reader of our own. Automerge hands out a change's operations only through its `legacy`
//! expansion, which decodes every column a second time (its parser walked them all once to
//! verify the change), clones an actor id into every operation id and allocates per operation:
//! a tenth of a county's processor time in a first sync went there. The change format itself is
//! automerge's documented, versioned binary format, so this module reads it: one pass over a
//! change's columns, yielding operations that name actors by their index in the change's own
//! actor list.
//!
//! It is also the parser of the changes it reads. Automerge's parser walked every column of a
//! change to verify it before this reader walked them again, another tenth of a first sync; so
//! a change this reader reads from its bytes ([`read_bytes`]) is not parsed by automerge unless a
//! merge falls back on automerge. That holds only because the reader refuses whatever automerge's
//! parser refuses: its header numbers as strictly, its checksum against its hash, its columns in
//! automerge's order and layout, its operations to the same end (the action column's). Architecture
//! invariant: [`read_bytes`] never reads a change `Change::try_from` refuses;
//! [`compare_mangled`] checks it on byte-mangled changes in the proptests and the `replay` fuzz
//! target, and `compare_with_automerge` has automerge parse every change a replay read.
//!
//! It reads only what Renda writes: maps, lists, puts of the plain scalars records hold, deletes.
//! Anything else (a counter, a timestamp, bytes, text, a mark, an unknown column, a layout it
//! does not expect) and it gives up with [`Unread`]; the caller then expands the change through
//! automerge ([`expand`]), which screens it and remains the authority. So on every change
//! automerge accepts, [`read`] either gives up or yields exactly what [`expand`] yields; the
//! differential checks ([`compare_reader`], run over forged and byte-mangled changes by the
//! proptests and the `replay` fuzz target) hold it to that. Each decoder below follows
//! automerge 0.12's decoder of the same column type, step for step.

use automerge::legacy::{self, ElementId, Key, ObjectId, OpType};
use automerge::{ActorId, Change, ChangeHash, ObjType, ScalarValue};

use super::super::DocError;

/// An operation id as a change names it: a counter and the index of its actor in the change's
/// actor list (0 is the change's author, then its other actors in the order listed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpRef {
    pub counter: u64,
    pub actor: u32,
}

/// Where an operation writes in its object.
#[derive(Clone, Debug, PartialEq)]
pub enum OpKey {
    /// A map key.
    Map(String),
    /// The start of a list (an insert at the front).
    Head,
    /// A list element, named by the operation that inserted it.
    Elem(OpRef),
}

/// What an operation does. The variants are the only ones records use; [`expand`] refuses
/// counters, text, tables, increments and marks before anything is applied.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    MakeMap,
    MakeList,
    Put(ScalarValue),
    Delete,
}

/// One operation of a change.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    /// The object written: `None` is the document's root.
    pub obj: Option<OpRef>,
    pub key: OpKey,
    pub insert: bool,
    pub action: Action,
    /// The operations this one hides.
    pub pred: Vec<OpRef>,
}

/// What a replay needs of a change beside its operations: its header, as automerge's accessors
/// give it ([`ChangeMeta::of`]) or as [`read_bytes`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeMeta {
    pub hash: ChangeHash,
    pub deps: Vec<ChangeHash>,
    pub actor: ActorId,
    /// The other actors the change lists, in order: an operation's actor index 1 is the first.
    pub others: Vec<ActorId>,
    pub seq: u64,
    pub start_op: u64,
    /// Whether the change carries an author footer (automerge's `Change::author`).
    pub authored: bool,
}

impl ChangeMeta {
    /// The header of a change automerge parsed.
    pub fn of(change: &Change) -> ChangeMeta {
        ChangeMeta {
            hash: change.hash(),
            deps: change.deps().to_vec(),
            actor: change.actor_id().clone(),
            others: change.other_actor_ids().to_vec(),
            seq: change.seq(),
            start_op: change.start_op().get(),
            authored: change.author().is_some(),
        }
    }
}

/// A change as a replay applies it: its header and its operations.
#[derive(Clone, Debug)]
pub struct ReadChange {
    pub meta: ChangeMeta,
    pub ops: Vec<Op>,
}

impl AsRef<ReadChange> for ReadChange {
    fn as_ref(&self) -> &ReadChange {
        self
    }
}

/// Why [`read`] gave up: the change is outside what it reads, and [`expand`] must read it.
#[derive(Debug, PartialEq, Eq)]
pub struct Unread(pub &'static str);

/// The most operations [`read`] takes from one change: no more than a replay applies to a whole
/// record.
const MAX_OPS: u64 = super::MAX_OPS as u64;
/// The most operations one operation may hide.
const MAX_PRED: u64 = 1_024;
/// The most map key text [`read`] decodes from one change, or four times the change's length if
/// that is more.
const MAX_KEY_BYTES: usize = 1 << 20;
/// Counters and actor indexes are 32-bit inside automerge.
const MAX_U32: u64 = u32::MAX as u64;

/// The most dependencies and other actors [`read_bytes`] takes from one change (a merge of
/// many replicas' work names a few of each).
const MAX_DEPS: u64 = 1_024;
const MAX_ACTORS: u64 = 1_024;
/// The tag of automerge's author footer in a change's extra bytes.
const AUTHOR_FOOTER: u64 = 1;

/// The magic bytes every automerge chunk starts with.
pub(super) const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
/// The chunk type of an uncompressed change.
pub(super) const CHANGE_CHUNK: u8 = 1;

// Column specifications: the column's id shifted left by four, or'ed with its type (automerge's
// binary format). A change's operation columns, in the ascending order they are stored in.
const OBJ_ACTOR: u64 = 1;
const OBJ_CTR: u64 = 2;
const KEY_ACTOR: u64 = 0x11;
const KEY_CTR: u64 = 0x13;
const KEY_STR: u64 = 0x15;
const INSERT: u64 = 0x34;
const ACTION: u64 = 0x42;
const VAL_META: u64 = 0x56;
const VAL_RAW: u64 = 0x57;
const PRED_GROUP: u64 = 0x70;
const PRED_ACTOR: u64 = 0x71;
const PRED_CTR: u64 = 0x73;
const EXPAND: u64 = 0x94;
const MARK_NAME: u64 = 0xa5;
const COLUMNS: [u64; 14] = [
    OBJ_ACTOR, OBJ_CTR, KEY_ACTOR, KEY_CTR, KEY_STR, INSERT, ACTION, VAL_META, VAL_RAW, PRED_GROUP,
    PRED_ACTOR, PRED_CTR, EXPAND, MARK_NAME,
];

/// Reads `change`, which automerge has parsed and whose operations it verified, or gives up.
pub fn read(change: &Change) -> Result<ReadChange, Unread> {
    read_chunk(change.raw_bytes(), Some(change.hash()))
}

/// Reads a change from its bytes, header and operations, without automerge, or gives up: how a
/// peer's change is decoded (`RecordDoc::decode_change_ops`) and how a merge reads the changes a
/// node already holds. Numbers in the header and integer values are read as strictly as
/// automerge's parser reads them, and whatever that parser refuses this refuses too (the
/// module's invariant), so a change it reads may be stored without automerge parsing it. The
/// checksum is checked against the bytes, so a change damaged on disk is not read here: the
/// merge's decoding then refuses it for its checksum, and so does loading the record.
pub fn read_bytes(bytes: &[u8]) -> Result<ReadChange, Unread> {
    read_chunk(bytes, None)
}

/// [`read_bytes`], given the change's hash when automerge has computed it (automerge's parser
/// does not check the checksum against it; this does, as `RecordDoc::decode_change_ops` does).
fn read_chunk(bytes: &[u8], known: Option<ChangeHash>) -> Result<ReadChange, Unread> {
    use sha2::{Digest, Sha256};
    let mut chunk = Cursor::new(bytes);
    if chunk.take(4)? != MAGIC {
        return Err(Unread("not an automerge chunk"));
    }
    let checksum = chunk.take(4)?;
    // A change's hash is the SHA-256 of its chunk after the magic bytes and the checksum, and
    // the checksum is the hash's first four bytes.
    let hash = match known {
        Some(hash) => hash,
        None => ChangeHash(Sha256::digest(chunk.bytes).into()),
    };
    if hash.0[..4] != *checksum {
        return Err(Unread("a checksum that does not match"));
    }
    if chunk.byte()? != CHANGE_CHUNK {
        return Err(Unread("not an uncompressed change chunk"));
    }
    let len = chunk.uleb_strict()?;
    if len != chunk.remaining() as u64 {
        return Err(Unread("a chunk whose length is not its data's"));
    }
    let count = chunk.uleb_strict()?;
    if count > MAX_DEPS {
        return Err(Unread("more dependencies than a record's change has"));
    }
    let mut deps = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let dep: [u8; 32] = chunk
            .take(32)?
            .try_into()
            .map_err(|_| Unread("a short dependency"))?;
        deps.push(ChangeHash(dep));
    }
    let len = chunk.uleb_strict()?;
    let actor = ActorId::from(chunk.take_u64(len)?);
    let seq = chunk.uleb_strict()?;
    let start_op = chunk.uleb_strict()?;
    if start_op == 0 || start_op > MAX_U32 {
        return Err(Unread(
            "a change starting at operation zero or past 32 bits",
        ));
    }
    chunk.sleb_strict()?; // time
    let len = chunk.uleb_strict()?;
    std::str::from_utf8(chunk.take_u64(len)?).map_err(|_| Unread("a message that is not UTF-8"))?;
    let count = chunk.uleb_strict()?;
    if count > MAX_ACTORS {
        return Err(Unread("more actors than a record's change lists"));
    }
    let mut others = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = chunk.uleb_strict()?;
        others.push(ActorId::from(chunk.take_u64(len)?));
    }
    let actors = count + 1;

    // The column layout, then the columns' data in the same order.
    let count = chunk.uleb_strict()?;
    if count > COLUMNS.len() as u64 {
        return Err(Unread("more columns than a change has"));
    }
    let mut layout = Vec::with_capacity(count as usize);
    for _ in 0..count {
        layout.push((chunk.uleb_strict()?, chunk.uleb_strict()?));
    }
    let mut columns: [&[u8]; COLUMNS.len()] = [&[]; COLUMNS.len()];
    let mut listed = [false; COLUMNS.len()];
    let mut last = None;
    for (spec, len) in layout {
        // Known columns only, each once, in ascending order, none deflated (a deflated spec has
        // the 8 bit set and matches none of them).
        let at = COLUMNS
            .iter()
            .position(|&c| c == spec)
            .ok_or(Unread("a column a change does not have"))?;
        if last.is_some_and(|l| l >= at) {
            return Err(Unread("columns out of order"));
        }
        last = Some(at);
        listed[at] = true;
        columns[at] = chunk.take_u64(len)?;
    }
    // What follows the columns is the change's extra bytes; automerge reads an author there
    // when they start with the author footer's tag and a length that fits.
    let authored = {
        let mut extra = Cursor::new(chunk.bytes);
        matches!(
            (extra.uleb(), extra.uleb()),
            (Ok(AUTHOR_FOOTER), Ok(len)) if len <= extra.remaining() as u64
        )
    };
    let at = |spec: u64| COLUMNS.iter().position(|&c| c == spec).unwrap_or(0);
    let column = |spec: u64| columns[at(spec)];
    let is_listed = |spec: u64| listed[at(spec)];
    // A value's bytes listed without its metadata, or a group's members without the group (or
    // with one member of two), are layouts automerge refuses or groups differently.
    if (is_listed(VAL_RAW) && !is_listed(VAL_META))
        || ((is_listed(PRED_ACTOR) || is_listed(PRED_CTR)) && !is_listed(PRED_GROUP))
        || (is_listed(PRED_GROUP) && is_listed(PRED_ACTOR) != is_listed(PRED_CTR))
    {
        return Err(Unread("a column without the one it belongs to"));
    }

    // As automerge reads them: an object column pair that is empty on either side makes every
    // operation's object the root.
    let mut objects = (!column(OBJ_ACTOR).is_empty() && !column(OBJ_CTR).is_empty()).then(|| {
        (
            Rle::new(column(OBJ_ACTOR), Cursor::uleb),
            Rle::new(column(OBJ_CTR), Cursor::uleb),
        )
    });
    let mut key_actor = Rle::new(column(KEY_ACTOR), Cursor::uleb);
    let mut key_ctr = Delta::new(column(KEY_CTR));
    let mut key_str = Rle::new(column(KEY_STR), text);
    let mut insert = Boolean::new(column(INSERT));
    let mut action = Rle::new(column(ACTION), Cursor::uleb);
    let mut meta = Rle::new(column(VAL_META), Cursor::uleb);
    let mut raw = Cursor::new(column(VAL_RAW));
    let mut pred_count = Rle::new(column(PRED_GROUP), Cursor::uleb);
    let mut pred_actor = Rle::new(column(PRED_ACTOR), Cursor::uleb);
    let mut pred_ctr = Delta::new(column(PRED_CTR));
    let mut expand = Boolean::new(column(EXPAND));
    let mut mark_name = Rle::new(column(MARK_NAME), text);

    let actor_of = |index: u64| -> Result<u32, Unread> {
        if index < actors && index <= MAX_U32 {
            Ok(index as u32)
        } else {
            Err(Unread("an actor index past the change's actors"))
        }
    };
    let counter = |value: i64| -> Result<u64, Unread> {
        u64::try_from(value)
            .ok()
            .filter(|&c| c <= MAX_U32)
            .ok_or(Unread("a counter out of range"))
    };

    let mut ops = Vec::new();
    // What the operations decode to is bounded by the bytes they came in: a run of one long
    // key repeated by its run length, or a run of long `pred` lists, would otherwise turn a
    // few bytes into gigabytes.
    let (mut key_bytes, mut preds) = (0usize, 0u64);
    let max_key_bytes = MAX_KEY_BYTES.max(4 * bytes.len());
    while !action.done() {
        if ops.len() as u64 >= MAX_OPS {
            return Err(Unread("more operations than a record's change has"));
        }
        let obj = match &mut objects {
            None => None,
            Some((actor, ctr)) => match (actor.next()?, ctr.next()?) {
                (None | Some(None), None | Some(None)) => None,
                (Some(Some(_)), Some(Some(0))) => return Err(Unread("a root named by id")),
                (Some(Some(a)), Some(Some(c))) if c <= MAX_U32 => Some(OpRef {
                    counter: c,
                    actor: actor_of(a)?,
                }),
                _ => return Err(Unread("an object id half missing")),
            },
        };
        let key = match (key_actor.next()?, key_ctr.next()?, key_str.next()?) {
            (None | Some(None), None | Some(None), Some(Some(name))) => {
                key_bytes += name.len();
                if key_bytes > max_key_bytes {
                    return Err(Unread("more key text than a record's change has"));
                }
                OpKey::Map(name)
            }
            (None | Some(None), Some(Some(0)), None | Some(None)) => OpKey::Head,
            (Some(Some(a)), Some(Some(c)), None | Some(None)) if c > 0 => OpKey::Elem(OpRef {
                counter: counter(c)?,
                actor: actor_of(a)?,
            }),
            _ => return Err(Unread("a key of a shape Renda does not write")),
        };
        let insert = insert.next()?.ok_or(Unread("the insert column ended"))?;
        let action = match action.next()? {
            Some(Some(a)) => a,
            _ => return Err(Unread("a missing action")),
        };
        let value = match meta.next()? {
            Some(Some(meta)) => value(meta, &mut raw)?,
            _ => return Err(Unread("a missing value")),
        };
        let pred = match pred_count.next()? {
            Some(Some(n)) if n <= MAX_PRED => {
                preds += n;
                if preds > MAX_OPS {
                    return Err(Unread("more hidden operations than a record's change has"));
                }
                let mut pred = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    match (pred_actor.next()?, pred_ctr.next()?) {
                        (Some(Some(a)), Some(Some(c))) => pred.push(OpRef {
                            counter: counter(c)?,
                            actor: actor_of(a)?,
                        }),
                        _ => return Err(Unread("a pred half missing")),
                    }
                }
                pred
            }
            _ => return Err(Unread("a missing or endless pred")),
        };
        // The expand and mark name columns may be absent; anything set in them is a mark.
        if !column(EXPAND).is_empty() && expand.next()? == Some(true) {
            return Err(Unread("an expanding mark"));
        }
        if let Some(Some(_)) = mark_name.next()? {
            return Err(Unread("a mark"));
        }
        let action = match (action, value) {
            (0, ScalarValue::Null) => Action::MakeMap,
            (1, value) => Action::Put(value),
            (2, ScalarValue::Null) => Action::MakeList,
            (3, ScalarValue::Null) => Action::Delete,
            _ => return Err(Unread("an action records do not use")),
        };
        ops.push(Op {
            obj,
            key,
            insert,
            action,
            pred,
        });
    }
    if start_op + (ops.len() as u64).saturating_sub(1) > MAX_U32 {
        return Err(Unread("operation counters past 32 bits"));
    }
    Ok(ReadChange {
        meta: ChangeMeta {
            hash,
            deps,
            actor,
            others,
            seq,
            start_op,
            authored,
        },
        ops,
    })
}

/// A value from its metadata (its length shifted left by four, or'ed with its type) and the
/// raw value column. Only the scalars records hold are read.
fn value(meta: u64, raw: &mut Cursor<'_>) -> Result<ScalarValue, Unread> {
    let len = meta >> 4;
    Ok(match meta & 0xf {
        0 => ScalarValue::Null,
        1 => ScalarValue::Boolean(false),
        2 => ScalarValue::Boolean(true),
        3 => ScalarValue::Uint(whole(raw.take_u64(len)?, Cursor::uleb_strict)?),
        4 => ScalarValue::Int(whole(raw.take_u64(len)?, Cursor::sleb_strict)?),
        5 => {
            let bytes: [u8; 8] = raw
                .take_u64(len)?
                .try_into()
                .map_err(|_| Unread("a float that is not eight bytes"))?;
            ScalarValue::F64(f64::from_le_bytes(bytes))
        }
        6 => {
            let text = std::str::from_utf8(raw.take_u64(len)?)
                .map_err(|_| Unread("a string that is not UTF-8"))?;
            ScalarValue::Str(text.into())
        }
        _ => return Err(Unread("a scalar kind records do not use")),
    })
}

/// A number that fills `bytes` exactly, as automerge reads an integer value.
fn whole<'a, T>(
    bytes: &'a [u8],
    number: fn(&mut Cursor<'a>) -> Result<T, Unread>,
) -> Result<T, Unread> {
    let mut bytes = Cursor::new(bytes);
    let value = number(&mut bytes)?;
    if bytes.remaining() > 0 {
        return Err(Unread("a value with bytes to spare"));
    }
    Ok(value)
}

/// Bytes read front to back.
struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { bytes }
    }

    fn remaining(&self) -> usize {
        self.bytes.len()
    }

    fn done(&self) -> bool {
        self.bytes.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Unread> {
        if n > self.bytes.len() {
            return Err(Unread("a length past the end of its bytes"));
        }
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(taken)
    }

    fn take_u64(&mut self, n: u64) -> Result<&'a [u8], Unread> {
        self.take(usize::try_from(n).map_err(|_| Unread("a length past the end of its bytes"))?)
    }

    fn byte(&mut self) -> Result<u8, Unread> {
        Ok(self.take(1)?[0])
    }

    fn uleb(&mut self) -> Result<u64, Unread> {
        leb128::read::unsigned(&mut self.bytes).map_err(|_| Unread("a malformed number"))
    }

    fn sleb(&mut self) -> Result<i64, Unread> {
        leb128::read::signed(&mut self.bytes).map_err(|_| Unread("a malformed number"))
    }

    /// An unsigned LEB128 number as automerge's parser reads a change's header and its integer
    /// values: an encoding padded with a trailing zero byte, or one past 64 bits, is refused
    /// (the column decoders, [`Cursor::uleb`], take either).
    fn uleb_strict(&mut self) -> Result<u64, Unread> {
        let (mut value, mut shift) = (0u64, 0u32);
        loop {
            let byte = self.byte()?;
            if shift < 64 {
                value |= u64::from(byte & 0x7f) << shift;
            }
            shift += 7;
            if byte & 0x80 == 0 {
                if (shift > 64 && byte > 1) || (shift > 7 && byte == 0) {
                    return Err(Unread("a number automerge's parser refuses"));
                }
                return Ok(value);
            } else if shift > 64 {
                return Err(Unread("a number automerge's parser refuses"));
            }
        }
    }

    /// A signed LEB128 number as automerge's parser reads one ([`Cursor::uleb_strict`]).
    fn sleb_strict(&mut self) -> Result<i64, Unread> {
        let (mut value, mut shift, mut prev) = (0i64, 0u32, 0u8);
        loop {
            let byte = self.byte()?;
            if shift < 64 {
                value |= i64::from(byte & 0x7f) << shift;
            }
            shift += 7;
            if byte & 0x80 == 0 {
                if (shift > 64 && byte != 0 && byte != 0x7f)
                    || (shift > 7
                        && ((byte == 0 && prev & 0x40 == 0) || (byte == 0x7f && prev & 0x40 > 0)))
                {
                    return Err(Unread("a number automerge's parser refuses"));
                }
                if shift < 64 && byte & 0x40 > 0 {
                    value |= -1i64 << shift;
                }
                return Ok(value);
            } else if shift > 64 {
                return Err(Unread("a number automerge's parser refuses"));
            }
            prev = byte;
        }
    }
}

/// A run-length encoded column, as automerge's `RleDecoder` reads it: a positive count is a run
/// of one value, a negative count that many literal values, and zero a run of nulls whose
/// length follows. `Ok(None)` is the column's end; `Ok(Some(None))` a null.
struct Rle<'a, T> {
    bytes: Cursor<'a>,
    /// How one value is read.
    value: fn(&mut Cursor<'a>) -> Result<T, Unread>,
    /// Values left in the current run.
    count: u64,
    literal: bool,
    /// The repeated value of a run (`None` in a run of nulls).
    last: Option<T>,
}

impl<'a, T: Clone> Rle<'a, T> {
    fn new(bytes: &'a [u8], value: fn(&mut Cursor<'a>) -> Result<T, Unread>) -> Rle<'a, T> {
        Rle {
            bytes: Cursor::new(bytes),
            value,
            count: 0,
            literal: false,
            last: None,
        }
    }

    fn done(&self) -> bool {
        self.bytes.done() && self.count == 0
    }

    fn next(&mut self) -> Result<Option<Option<T>>, Unread> {
        while self.count == 0 {
            if self.bytes.done() {
                return Ok(None);
            }
            match self.bytes.sleb()? {
                count if count > 0 => {
                    self.count = count as u64;
                    self.literal = false;
                    self.last = Some((self.value)(&mut self.bytes)?);
                }
                // Automerge negates the count in its own type: the least number does not
                // negate (a panic where overflow is checked, a different run where not).
                i64::MIN => return Err(Unread("a run automerge cannot count")),
                count if count < 0 => {
                    self.count = count.unsigned_abs();
                    self.literal = true;
                }
                _ => {
                    // Automerge keeps the count in an isize; a longer run is one it misreads.
                    let nulls = self.bytes.uleb()?;
                    if nulls > isize::MAX as u64 {
                        return Err(Unread("a run of nulls past what automerge counts"));
                    }
                    self.count = nulls;
                    self.literal = false;
                    self.last = None;
                }
            }
        }
        self.count -= 1;
        if self.literal {
            Ok(Some(Some((self.value)(&mut self.bytes)?)))
        } else {
            Ok(Some(self.last.clone()))
        }
    }
}

/// The longest text automerge decodes from a column.
const MAX_TEXT: u64 = 1_000_000_000;

/// A column's text value: its length, then UTF-8.
fn text(cursor: &mut Cursor<'_>) -> Result<String, Unread> {
    let len = cursor.uleb()?;
    if len > MAX_TEXT {
        return Err(Unread("a text longer than automerge decodes"));
    }
    std::str::from_utf8(cursor.take_u64(len)?)
        .map(str::to_owned)
        .map_err(|_| Unread("a string that is not UTF-8"))
}

/// A delta-encoded column: run-length encoded differences, each added to the running value
/// (saturating, as automerge adds them); a null leaves it as it was.
struct Delta<'a> {
    rle: Rle<'a, i64>,
    value: i64,
}

impl<'a> Delta<'a> {
    fn new(bytes: &'a [u8]) -> Delta<'a> {
        Delta {
            rle: Rle::new(bytes, Cursor::sleb),
            value: 0,
        }
    }

    fn next(&mut self) -> Result<Option<Option<i64>>, Unread> {
        Ok(match self.rle.next()? {
            Some(Some(delta)) => {
                self.value = self.value.saturating_add(delta);
                Some(Some(self.value))
            }
            Some(None) => Some(None),
            None => None,
        })
    }
}

/// A boolean column: lengths of alternating runs, the first of `false`.
struct Boolean<'a> {
    bytes: Cursor<'a>,
    value: bool,
    count: u64,
}

impl<'a> Boolean<'a> {
    fn new(bytes: &'a [u8]) -> Boolean<'a> {
        Boolean {
            bytes: Cursor::new(bytes),
            value: true,
            count: 0,
        }
    }

    fn next(&mut self) -> Result<Option<bool>, Unread> {
        while self.count == 0 {
            if self.bytes.done() {
                return Ok(None);
            }
            self.count = self.bytes.uleb()?;
            self.value = !self.value;
        }
        self.count -= 1;
        Ok(Some(self.value))
    }
}

/// Reads the operations of `change` through automerge's expansion, refusing what has no place
/// in a record (a counter, text, a table, an increment, a mark): the path for every change
/// [`read`] gives up on.
pub fn expand(change: &Change) -> Result<Vec<Op>, DocError> {
    // Bounds as in `read`: automerge's expansion shares one copy of a repeated key among the
    // operations that name it, which the copies below would not.
    if change.len() as u64 > MAX_OPS {
        return Err(DocError::Change(
            "a change with more operations than any record's".into(),
        ));
    }
    let max_key_bytes = MAX_KEY_BYTES.max(4 * change.raw_bytes().len());
    let (mut key_bytes, mut preds) = (0usize, 0usize);
    let actors: Vec<&ActorId> = std::iter::once(change.actor_id())
        .chain(change.other_actor_ids())
        .collect();
    let index = |id: &legacy::OpId| -> Result<OpRef, DocError> {
        let actor = actors
            .iter()
            .position(|a| *a == id.actor())
            .ok_or_else(|| DocError::Change("an operation names an unlisted actor".into()))?;
        Ok(OpRef {
            counter: id.counter(),
            actor: actor as u32,
        })
    };
    change
        .decode()
        .operations
        .into_iter()
        .map(|op| {
            let action = match op.action {
                OpType::Make(ObjType::Map) => Action::MakeMap,
                OpType::Make(ObjType::List) => Action::MakeList,
                OpType::Delete => Action::Delete,
                OpType::Put(ScalarValue::Counter(_)) => {
                    return Err(DocError::Change(
                        "a counter has no place in a record".into(),
                    ));
                }
                OpType::Put(value) => Action::Put(value),
                OpType::Make(other) => {
                    return Err(DocError::Change(format!(
                        "a {other:?} object has no place in a record"
                    )));
                }
                OpType::Increment(_) | OpType::MarkBegin(_) | OpType::MarkEnd(_) => {
                    return Err(DocError::Change(
                        "counters and marks have no place in a record".into(),
                    ));
                }
            };
            preds += op.pred.len();
            if let Key::Map(name) = &op.key {
                key_bytes += name.len();
            }
            if key_bytes > max_key_bytes || preds as u64 > MAX_OPS {
                return Err(DocError::Change(
                    "a change with more keys or hidden operations than any record's".into(),
                ));
            }
            Ok(Op {
                obj: match &op.obj {
                    ObjectId::Root => None,
                    ObjectId::Id(id) => Some(index(id)?),
                },
                key: match &op.key {
                    Key::Map(name) => OpKey::Map(name.to_string()),
                    Key::Seq(ElementId::Head) => OpKey::Head,
                    Key::Seq(ElementId::Id(id)) => OpKey::Elem(index(id)?),
                },
                insert: op.insert,
                action,
                pred: op.pred.iter().map(index).collect::<Result<_, _>>()?,
            })
        })
        .collect()
}

/// Holds [`read`] to automerge on one change: wherever it reads the change, [`expand`] must
/// read it too and to the same operations. `Err` names the disagreement, a bug in [`read`].
pub fn compare_reader(change: &Change) -> Result<(), String> {
    let Ok(ReadChange { meta, ops: ours }) = read_bytes(change.raw_bytes()) else {
        return Ok(());
    };
    let header = ChangeMeta::of(change);
    if meta != header {
        return Err(format!(
            "the reader's header {meta:?} differs from automerge's {header:?}"
        ));
    }
    let theirs = expand(change)
        .map_err(|e| format!("automerge's expansion refused a change the reader read: {e}"))?;
    let (ours, theirs) = (named(change, &ours), named(change, &theirs));
    if ours != theirs {
        return Err(format!(
            "the reader's operations {ours:?} differ from automerge's {theirs:?}"
        ));
    }
    Ok(())
}

/// `ops` as a comparison needs them: printed (so that a NaN equals itself and 0.0 differs
/// from -0.0), with every operation id naming its actor rather than an index (a change may list
/// one actor twice) and each `pred` sorted (automerge sorts it; the order hides nothing more).
fn named(change: &Change, ops: &[Op]) -> Vec<String> {
    let actors: Vec<&ActorId> = std::iter::once(change.actor_id())
        .chain(change.other_actor_ids())
        .collect();
    let name = |id: &OpRef| {
        let actor = actors.get(id.actor as usize).map(|a| a.to_hex_string());
        (id.counter, actor)
    };
    ops.iter()
        .map(|op| {
            let mut pred: Vec<_> = op.pred.iter().map(name).collect();
            pred.sort();
            let key = match &op.key {
                OpKey::Elem(id) => format!("{:?}", name(id)),
                other => format!("{other:?}"),
            };
            format!(
                "{:?} {key} {} {:?} {pred:?}",
                op.obj.as_ref().map(name),
                op.insert,
                op.action
            )
        })
        .collect()
}

/// Mangles each of `changes` with `edits`, in place ([`super::forge::mangle`]) and spliced
/// into its columns ([`super::forge::splice`]), and holds [`read`] to automerge on every
/// mangled change automerge still parses. Returns how many it parsed; `Err`
/// names a disagreement, a bug in [`read`].
pub fn compare_mangled(changes: &[Vec<u8>], edits: &[u8]) -> Result<usize, String> {
    let mut parsed = 0;
    for (i, chunk) in changes.iter().enumerate() {
        // Each change gets its own slice of the edits, so that they do not all break alike.
        let edits = edits.get(3 * i % edits.len().max(1)..).unwrap_or_default();
        let edits = &edits[..edits.len().min(12)];
        // Bytes overwritten in place, and bytes spliced into and out of the columns.
        let variants = [
            super::forge::mangle(chunk, edits),
            super::forge::splice(chunk, edits),
        ];
        for mangled in variants.into_iter().flatten() {
            parsed += compare_one(&mangled)?;
        }
    }
    Ok(parsed)
}

/// [`compare_mangled`] on one mangled change: 1 if automerge parsed it.
fn compare_one(mangled: &[u8]) -> Result<usize, String> {
    let parsed = super::super::doc::guarded("parse", || {
        Change::try_from(mangled).map_err(|e| DocError::Change(e.to_string()))
    });
    // The reader reads a peer's changes and a node's stored ones without automerge: it must
    // refuse whatever automerge's parser refuses.
    let change = match parsed {
        Ok(change) => change,
        Err(refused) => {
            return match read_bytes(mangled) {
                Ok(read) => Err(format!(
                    "the reader read a change automerge refuses ({refused}): {:?}; bytes {mangled:?}",
                    read.meta
                )),
                Err(_) => Ok(0),
            };
        }
    };
    // A panic inside automerge's expansion is automerge refusing, as in decoding.
    let compared =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| compare_reader(&change)));
    match compared {
        Ok(result) => result.map_err(|e| format!("{e}; mangled change {mangled:?}"))?,
        Err(_) if read(&change).is_err() => {}
        Err(_) => {
            return Err(format!(
                "automerge's expansion panicked on a change the reader read: {mangled:?}"
            ));
        }
    }
    Ok(1)
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{Automerge, ROOT};
    use chrono::Utc;
    use proptest::prelude::*;

    use super::*;
    use crate::record::doc::RecordDoc;
    use crate::record::event::Event;
    use crate::record::replay::forge;
    use crate::record::{Author, Header, RecordId, RecordKind};
    use crate::region::RegionCode;

    fn actor(n: u8) -> ActorId {
        ActorId::from(vec![n; 16])
    }

    /// Reads `change` both ways and insists the reader read it, to what automerge reads.
    fn read_alike(change: &Change) -> Vec<Op> {
        let ours = read(change).unwrap_or_else(|e| panic!("the reader gave up: {e:?}"));
        compare_reader(change).unwrap();
        ours.ops
    }

    /// An opinion as a township writes it, then edited at the county (whose change names the
    /// township's operations) and stepped on: every change Renda writes is one the reader reads.
    #[test]
    fn every_change_renda_writes_is_read_by_the_reader_as_automerge_reads_it() {
        let home = RegionCode::parse("home", "330411101000").unwrap();
        let author = Author {
            node: home,
            user: "王店镇人大".into(),
        };
        let header = Header {
            id: RecordId::new(),
            kind: RecordKind::Opinion,
            home,
            created_at: Utc::now(),
            created_by: author.clone(),
        };
        let fields = serde_json::json!({
            "summary": "梅北村路灯损坏，夜间出行不便",
            "count": 12,
            "below_zero": -3,
            "share": 0.25,
            "urgent": true,
            "closed": null,
            "place": {"village": "梅北村", "group": 3},
            "tags": ["路灯", "安全"],
        });
        let event = |n: u64, step: &str| Event {
            id: RecordId::new(),
            lamport: n,
            recorded_at: Utc::now(),
            date: chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            author: author.clone(),
            action: serde_json::json!({ "step": step }),
        };
        let mut township =
            RecordDoc::create_with_event(&header, &fields, Some(&event(1, "collect")), &actor(1))
                .unwrap();
        let mut county = RecordDoc::load(&township.save(), &actor(2)).unwrap();
        let mut edited = fields.clone();
        edited["summary"] = "梅北村路灯损坏（已报修）".into();
        edited["tags"] = serde_json::json!(["路灯"]);
        edited.as_object_mut().unwrap().remove("closed");
        edited["place"]["group"] = 4.into();
        county.set_fields(&edited, 0, "edit").unwrap().unwrap();
        county.append_event(&event(2, "pass_on")).unwrap();
        township.append_event(&event(2, "reply")).unwrap();
        let mut changes = county.changes_since(&[]);
        changes.extend(township.changes_since(&county.heads()));
        assert!(changes.len() >= 4, "{} changes", changes.len());
        let mut named_other = false;
        for change in &changes {
            let ops = read_alike(change);
            named_other |= ops.iter().any(|op| op.pred.iter().any(|p| p.actor > 0));
        }
        assert!(named_other, "no change named another actor's operation");
    }

    #[test]
    fn what_records_do_not_hold_is_left_to_automerge() {
        let mut doc = Automerge::new().with_actor(actor(1));
        let mut tx = doc.transaction();
        tx.put(ROOT, "when", ScalarValue::Timestamp(7)).unwrap();
        tx.put(ROOT, "blob", ScalarValue::Bytes(vec![1, 2]))
            .unwrap();
        tx.commit();
        let mut tx = doc.transaction();
        tx.put(ROOT, "n", ScalarValue::counter(1)).unwrap();
        tx.commit();
        let mut tx = doc.transaction();
        let text = tx.put_object(ROOT, "text", ObjType::Text).unwrap();
        tx.splice_text(&text, 0, 0, "路灯").unwrap();
        tx.commit();
        let changes = doc.get_changes(&[]);
        for change in &changes {
            assert!(read(change).is_err(), "read {:?}", read(change));
        }
        // Automerge's expansion reads the scalars records do not use (a replay then declines)
        // and refuses counters and text.
        assert!(matches!(
            expand(&changes[0]).unwrap()[0].action,
            Action::Put(ScalarValue::Timestamp(7))
        ));
        assert!(expand(&changes[1]).is_err());
        assert!(expand(&changes[2]).is_err());
    }

    #[test]
    fn a_mangled_change_with_no_edits_is_the_change() {
        let change = one_put();
        // The checksum recomputed over unchanged data is the one automerge wrote.
        assert_eq!(
            forge::mangle(change.raw_bytes(), &[]).unwrap(),
            change.raw_bytes()
        );
        let mangled = forge::mangle(change.raw_bytes(), &[0, 0, 9]).unwrap();
        assert_ne!(mangled, change.raw_bytes());
    }

    /// A held change damaged on disk is not read from its bytes: its checksum no longer
    /// matches, and automerge, which the merge then asks, refuses it.
    #[test]
    fn a_damaged_stored_change_is_not_read_from_its_bytes() {
        let mut doc = Automerge::new().with_actor(actor(1));
        let mut tx = doc.transaction();
        tx.put(ROOT, "header", "{}").unwrap();
        tx.commit();
        let change = doc.get_changes(&[]).remove(0);
        let read = read_bytes(change.raw_bytes()).unwrap();
        assert_eq!(read.meta, ChangeMeta::of(&change));
        let mut damaged = change.raw_bytes().to_vec();
        let last = damaged.len() - 1;
        damaged[last] ^= 0x40;
        assert_eq!(
            read_bytes(&damaged).unwrap_err(),
            Unread("a checksum that does not match")
        );
        assert!(RecordDoc::decode_change_ops(&damaged).is_err());
    }

    /// A run of one long key, repeated by its run length, decodes to far more text than the
    /// change's bytes: both readers refuse it rather than copy the key for every operation.
    #[test]
    fn a_long_key_repeated_by_its_run_is_refused_not_copied() {
        let mut doc = Automerge::new().with_actor(actor(1));
        let key = "键".repeat(700);
        let mut tx = doc.transaction();
        for i in 0..600 {
            tx.put(ROOT, key.as_str(), i as i64).unwrap();
        }
        tx.commit();
        let change = doc.get_changes(&[]).remove(0);
        assert!(
            change.raw_bytes().len() < 20_000,
            "{}",
            change.raw_bytes().len()
        );
        assert_eq!(
            read(&change).unwrap_err(),
            Unread("more key text than a record's change has")
        );
        assert!(expand(&change).is_err());
    }

    /// Numbers padded with a trailing zero byte, or past 64 bits, are what automerge's parser
    /// refuses in a change's header and integer values; the column decoders take them.
    #[test]
    fn header_numbers_are_read_as_strictly_as_automerge_reads_them() {
        let strict = |bytes: &[u8]| Cursor::new(bytes).uleb_strict();
        let signed = |bytes: &[u8]| Cursor::new(bytes).sleb_strict();
        assert_eq!(strict(&[0x01]), Ok(1));
        assert_eq!(strict(&[0x81, 0x01]), Ok(129));
        assert!(strict(&[0x81, 0x00]).is_err());
        assert_eq!(Cursor::new(&[0x81, 0x00]).uleb(), Ok(1));
        assert_eq!(
            strict(&[0xff; 9].iter().chain(&[0x01]).copied().collect::<Vec<_>>()),
            Ok(u64::MAX)
        );
        assert!(strict(&[0xff; 9].iter().chain(&[0x02]).copied().collect::<Vec<_>>()).is_err());
        assert_eq!(signed(&[0x7f]), Ok(-1));
        assert_eq!(signed(&[0xff, 0x00]), Ok(127));
        assert!(signed(&[0x80, 0x00]).is_err());
        assert!(signed(&[0xff, 0x7f]).is_err());

        // A change whose sequence number is padded: automerge refuses it, and so does the
        // reader of stored bytes (a chunk rebuilt around the padded header, checksum and all).
        let mut parts = forge::ChangeParts::of(one_put().raw_bytes()).unwrap();
        // No dependencies (one byte), the actor (its length and 16 bytes), then the sequence
        // number 1, padded to two bytes.
        assert_eq!(
            (parts.header[0], parts.header[1], parts.header[18]),
            (0, 16, 1)
        );
        parts.header.splice(18..19, [0x81, 0x00]);
        let chunk = parts.chunk();
        assert!(Change::try_from(&chunk[..]).is_err());
        assert_eq!(
            read_bytes(&chunk).unwrap_err(),
            Unread("a number automerge's parser refuses")
        );
    }

    /// A change that puts one root key, `k`, as automerge writes it.
    fn one_put() -> Change {
        let mut doc = Automerge::new().with_actor(actor(1));
        let mut tx = doc.transaction();
        tx.put(ROOT, "k", "v").unwrap();
        tx.commit();
        doc.get_changes(&[]).remove(0)
    }

    /// A literal run whose count is the least 64-bit number: automerge takes its absolute value
    /// in the count's own type, which overflows (a panic where overflow is checked, a run it
    /// counts differently where not), so the reader refuses it rather than read a change
    /// automerge's parser may refuse. Found by reading the two decoders side by side. Only the
    /// reader's refusal is asserted: whether automerge's parser refuses depends on the build's
    /// overflow checks (a release build takes it).
    #[test]
    fn a_run_count_automerge_cannot_negate_is_refused() {
        let bytes = one_put().raw_bytes().to_vec();
        assert!(read_bytes(&bytes).is_ok());
        let mut parts = forge::ChangeParts::of(&bytes).unwrap();
        // The key column holds one literal run of one string: `7f 01 6b`. It becomes a literal
        // run of i64::MIN, whose first value is the same string.
        let (_, keys) = parts
            .columns
            .iter_mut()
            .find(|(spec, _)| *spec == KEY_STR)
            .unwrap();
        assert_eq!(keys, &[0x7f, 0x01, b'k']);
        keys.splice(
            0..1,
            [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f],
        );
        assert_eq!(
            read_bytes(&parts.chunk()).unwrap_err(),
            Unread("a run automerge cannot count")
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Forged histories with bytes of their changes overwritten and their checksums made
        /// right: wherever automerge still parses a change and the reader reads it, both read
        /// the same operations.
        #[test]
        fn the_reader_never_disagrees_with_automerge_on_mangled_changes(
            program in proptest::collection::vec(any::<u8>(), 0..120),
            edits in proptest::collection::vec(any::<u8>(), 0..48),
        ) {
            let forged = forge::history(&program);
            let changes: Vec<Vec<u8>> = forged.held.into_iter().chain(forged.incoming).collect();
            if let Err(disagreement) = compare_mangled(&changes, &edits) {
                return Err(TestCaseError::fail(format!(
                    "{disagreement}; program {program:?}, edits {edits:?}"
                )));
            }
        }
    }

    /// Runs forged changes, each mangled by `mangler` with `edit_len` seeded bytes, through
    /// automerge's parser and the reader, and insists the run reached every side: many parsed,
    /// a good share of those read (each as automerge reads it), many refused by automerge (each
    /// refused by the reader too), and the reader giving up for several reasons.
    fn reaches(mangler: fn(&[u8], &[u8]) -> Option<Vec<u8>>, edit_len: usize) {
        let mut next = forge::seeded(0x9e37_79b9_7f4a_7c15_u64);
        let (mut parsed, mut read_ok, mut refused) = (0, 0, 0);
        let mut reasons = std::collections::BTreeSet::new();
        for _ in 0..1500 {
            let program: Vec<u8> = (0..(next() % 60)).map(|_| next() as u8).collect();
            let edits: Vec<u8> = (0..edit_len).map(|_| next() as u8).collect();
            let forged = forge::history(&program);
            for chunk in forged.held.iter().chain(&forged.incoming) {
                let Some(mangled) = mangler(chunk, &edits) else {
                    continue;
                };
                let Ok(change) = crate::record::doc::guarded("parse", || {
                    Change::try_from(&mangled[..]).map_err(|e| DocError::Change(e.to_string()))
                }) else {
                    // What automerge's parser refuses, the reader of stored bytes refuses.
                    refused += 1;
                    assert!(read_bytes(&mangled).is_err(), "{mangled:?}");
                    continue;
                };
                parsed += 1;
                match read(&change) {
                    Ok(_) => {
                        read_ok += 1;
                        compare_reader(&change).unwrap();
                    }
                    Err(Unread(why)) => {
                        reasons.insert(why);
                    }
                }
            }
        }
        println!("parsed {parsed}, read {read_ok}, refused {refused}, gave up for {reasons:#?}");
        assert!(
            parsed >= 500 && read_ok >= 200 && refused >= 200,
            "parsed {parsed}, read {read_ok}, refused {refused}"
        );
        assert!(reasons.len() >= 3, "{reasons:#?}");
    }

    /// The property above reaches the reader: many mangled changes still parse, and the reader
    /// reads a good share of those and gives up on others, for several reasons.
    #[test]
    fn mangled_changes_reach_the_reader() {
        reaches(forge::mangle, 3);
    }

    /// So do changes with a byte spliced into, out of or over their header, one of their
    /// columns or what follows the columns, or with a column dropped.
    #[test]
    fn spliced_changes_reach_the_reader() {
        reaches(forge::splice, 4);
    }

    /// A change spliced with no edits is the change: the layout, length and checksum are
    /// rebuilt as automerge wrote them.
    #[test]
    fn a_spliced_change_with_no_edits_is_the_change() {
        let change = one_put();
        assert_eq!(
            forge::splice(change.raw_bytes(), &[]).unwrap(),
            change.raw_bytes()
        );
        // Inserting a byte grows the first column by one, and the chunk with it; dropping the
        // first column takes its layout entry and its bytes.
        let spliced = forge::splice(change.raw_bytes(), &[1, 0, 0, 9]).unwrap();
        assert_eq!(spliced.len(), change.raw_bytes().len() + 1);
        let dropped = forge::splice(change.raw_bytes(), &[1, 0, 3, 0]).unwrap();
        assert!(dropped.len() < change.raw_bytes().len());
    }
}
