//! Applying a peer's changes together with the checkpoint that covers them, and the
//! checkpoints themselves: how far this node applied each peer's sequence, and resyncs.

use super::*;
use crate::record::{RawChange, RecordDoc};

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

impl Store {
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

    /// The hash of the change at `seq` in this node's sequence, if there is one: a stored
    /// change, or one a newer publication replaced that a peer may still name (schema 14).
    pub fn change_hash_at(&self, seq: i64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT hash FROM changes WHERE seq = ?1
                 UNION ALL SELECT hash FROM retired_changes WHERE seq = ?1",
            )?
            .query_row([seq], |r| r.get(0))
            .optional()?)
    }
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
        let mut prepared = Vec::with_capacity(records.len());
        for record in records {
            let stored = stored_state(&self.tx, &record.header.id.to_string(), true)?;
            prepared.push(PreparedRecord::new(record, stored.as_ref(), &ctx));
        }
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
        // The counters move once for the whole batch; a failure below fails the transaction,
        // and the moves with it.
        self.counter_moves = Some(BTreeMap::new());
        let mut outcome = ApplyOutcome::default();
        let mut bytes = 0usize;
        let mut total_changes = 0usize;
        for prepared in records {
            let id = prepared.header.id;
            let kind = prepared.header.kind.clone();
            let sent = prepared.sent;
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
                            kind,
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
        if let Some(moves) = self.counter_moves.take() {
            rollup::move_counters(&self.tx, &BTreeMap::new(), &moves)?;
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
    pub(super) fn apply_record(
        &mut self,
        prepared: PreparedRecord,
        ctx: &MergeContext,
    ) -> Result<Result<(usize, bool), Rejection>, StoreError> {
        let id = prepared.header.id.to_string();
        // Read once: the merge's freshness check and the write both use it.
        let current = self.held_row(&id)?;
        let (merge, row) = match prepared.merged {
            (base, merge) if base == current.as_ref().map(|h| h.last_seq) => (merge, prepared.row),
            // A write landed on the record since it was merged: merge again, onto what the
            // store holds now.
            _ => match crate::record::merge::decode_changes(&prepared.raw) {
                Err(rejection) => (Merge::Refused(rejection), None),
                Ok(changes) => {
                    let stored = match &current {
                        Some(_) => stored_state(&self.tx, &id, true)?,
                        None => None,
                    };
                    let merge = crate::record::merge::merge_any(
                        ctx,
                        &prepared.header,
                        prepared.hints.as_ref(),
                        &changes,
                        stored.as_ref().map(|s| &s.held),
                    );
                    (merge, None)
                }
            },
        };
        let held_tail = current.as_ref().map_or(0, |held| held.tail);
        let prior = current.map_or(Prior::Absent, Prior::Stored);
        match merge {
            Merge::Refused(rejection) => Ok(Err(rejection)),
            Merge::Unchanged { complete } => Ok(Ok((0, complete))),
            Merge::KeptAsCame(kept) => {
                let count = kept.applied.len();
                let complete = kept.complete;
                self.persist_newer_kind(&prepared.header, *kept, &ctx.peer, prior)?;
                Ok(Ok((count, complete)))
            }
            Merge::Changed(merged) => {
                let row = match row {
                    None if merged.personal_claimed => {
                        Some(Box::new(RowValues::of_merged(&merged, &ctx.me)))
                    }
                    row => row,
                };
                let Merged {
                    doc,
                    heads,
                    record,
                    applied,
                    complete,
                    replaces,
                    personal_claimed: _,
                } = *merged;
                let count = applied.len();
                // A replay merged these changes without automerge. Storing them makes the
                // record's tail long enough to be saved, which loads it with automerge: load it
                // first, and refuse the record if automerge does not.
                let doc = match doc {
                    None if !replaces && held_tail + count as i64 > crate::store::MAX_DOC_TAIL => {
                        match self.compaction_doc(&id, &applied)? {
                            Ok(doc) => Some(doc),
                            Err(rejection) => return Ok(Err(rejection)),
                        }
                    }
                    doc => doc,
                };
                let row = match row {
                    Some(row) => Row::Derived(row),
                    None => Row::Derive(&heads),
                };
                self.persist_decoded(
                    doc.as_ref(),
                    row,
                    record,
                    if replaces {
                        History::Replace(applied)
                    } else {
                        History::Extend(applied)
                    },
                    Some(&ctx.peer),
                    prior,
                )?;
                Ok(Ok((count, complete)))
            }
        }
    }

    /// Record `id` as automerge loads it from what the store holds with `applied` after it:
    /// the document a compaction saves, loaded before anything of the merge is written. Should
    /// automerge not load what a replay accepted (the change reader's or the replay's invariant
    /// broken), the record is refused here; found only at the compaction, the load would fail
    /// the whole batch, and again on every resend.
    fn compaction_doc(
        &self,
        id: &str,
        applied: &[RawChange],
    ) -> Result<Result<RecordDoc, Rejection>, StoreError> {
        let mut bytes = stored_state(&self.tx, id, false)?
            .map(|state| state.doc_bytes())
            .unwrap_or_default();
        for change in applied {
            bytes.extend_from_slice(change.raw_bytes());
        }
        match RecordDoc::load(&bytes, self.actor) {
            Ok(doc) => Ok(Ok(doc)),
            Err(e) => {
                tracing::error!(record = id, error = %e, "automerge does not load a record merged without it; the record is refused");
                Ok(Err(Rejection::new(
                    "merge.unloadable",
                    format!("记录 {id} 合并后的文档无法载入，已拒收：{e}"),
                )))
            }
        }
    }
}
