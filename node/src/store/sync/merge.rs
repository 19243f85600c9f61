//! A peer's records made ready for the store: decoded, and merged once by the model's pure merge
//! (`record::merge`) onto the record as the store holds it.

use super::*;

pub use crate::record::merge::{Merge, MergeContext, Merged, Stored};

/// A record as the store held it when a batch was prepared: the bytes a merge starts from, and
/// the mark by which the store tells at write time whether it still holds.
#[derive(Debug)]
pub struct StoredState {
    /// `records.last_seq`: every write that changes a record stores a change and so moves it,
    /// so the same value means the same document.
    pub(super) last_seq: i64,
    pub(super) held: Stored,
}

impl StoredState {
    /// The last full save followed by the changes stored after it, which automerge loads as one
    /// byte string.
    pub fn doc_bytes(&self) -> Vec<u8> {
        self.held.doc_bytes()
    }
}

/// A peer's record decoded and merged off the store thread, onto the record as the store held
/// it when the batch was prepared (onto nothing, for a record new here, which is every record
/// of a first sync). Merging is most of the work of applying a batch and none of it touches
/// SQLite, so a link merges a batch on every core while the store thread writes the batch
/// before it. The store keeps the merge if the record is still as it was merged onto, which it
/// is unless a write landed on the record in between (the batch before this one carrying the
/// same record, or a clerk's write); only then does the store merge that record again.
pub struct PreparedRecord {
    pub(super) header: AnyHeader,
    /// The hints the sender claimed, for a record of a kind this release does not know.
    pub(super) hints: Option<RouteHints>,
    /// Encoded size of the changes, for the link statistics.
    pub(super) bytes: usize,
    /// The changes as they came, for the rare merge again on the store thread. Their decoded
    /// form is dropped where it was made: freeing a batch's decoded operations on the store
    /// thread, which every write waits for, cost it a tenth of its time in a first sync.
    pub(super) raw: Vec<Vec<u8>>,
    /// How many changes decoded: all of them, or none when one broke a rule.
    pub(super) sent: usize,
    /// The merge, and the `last_seq` of the state it was done onto (`None`: the record was
    /// absent).
    pub(super) merged: (Option<i64>, Merge),
    /// The merged record's row, derived here rather than on the store thread; `None` unless
    /// the merge changed the record.
    pub(super) row: Option<Box<RowValues>>,
}

impl PreparedRecord {
    /// Decodes a peer's record and merges it onto `stored` (`None`: this node does not hold it).
    pub fn new(
        incoming: IncomingRecord,
        stored: Option<&StoredState>,
        ctx: &MergeContext,
    ) -> PreparedRecord {
        let bytes = incoming.changes.iter().map(Vec::len).sum();
        let changes = crate::record::merge::decode_changes(&incoming.changes);
        let sent = changes.as_ref().map_or(0, Vec::len);
        let merged = match &changes {
            Ok(changes) => crate::record::merge::merge_any(
                ctx,
                &incoming.header,
                incoming.hints.as_ref(),
                changes,
                stored.map(|s| &s.held),
            ),
            Err(rejection) => Merge::Refused(rejection.clone()),
        };
        let row = match &merged {
            Merge::Changed(m) => Some(Box::new(RowValues::of_merged(m, &ctx.me))),
            _ => None,
        };
        PreparedRecord {
            header: incoming.header,
            hints: incoming.hints,
            bytes,
            raw: incoming.changes,
            sent,
            merged: (stored.map(|s| s.last_seq), merged),
            row,
        }
    }

    pub fn id(&self) -> RecordId {
        self.header.id
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
/// `all_changes`, every change row (a merge replays them); otherwise only those after the save,
/// which is all that loading the document needs.
pub(in crate::store) fn stored_state(
    conn: &rusqlite::Connection,
    id: &str,
    all_changes: bool,
) -> Result<Option<StoredState>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT doc, doc_seq, last_seq, heads_hash, addressed_to, group_id FROM records WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok((
                r.get::<_, i64>(1)?,
                StoredState {
                    last_seq: r.get(2)?,
                    held: Stored {
                        saved: r.get(0)?,
                        changes: Vec::new(),
                        saved_covers: 0,
                        heads_hash: r.get(3)?,
                        addressed_to: r.get(4)?,
                        group_id: r.get(5)?,
                    },
                },
            ))
        })
        .optional()?;
    let Some((doc_seq, mut state)) = row else {
        return Ok(None);
    };
    // Every change after the save, whatever the row's counters say: the change table is the
    // record of what this node holds.
    let mut stmt = conn.prepare_cached(crate::store::record_changes::AFTER)?;
    let from = if all_changes { 0 } else { doc_seq };
    let rows = stmt
        .query_map(params![id, from], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?)))?
        .collect::<Result<Vec<(i64, Vec<u8>)>, _>>()?;
    state.held.saved_covers = rows.iter().filter(|(seq, _)| *seq <= doc_seq).count();
    state.held.changes = rows.into_iter().map(|(_, bytes)| bytes).collect();
    Ok(Some(state))
}
