//! Reading what a peer lacks: the changes after its checkpoint that its routes let it hold,
//! and whole records to resend.

use super::*;

/// What waits to reach a peer ([`Store::waiting_for`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Waiting {
    pub records: usize,
    /// The count stopped at its cap: at least this many.
    pub more: bool,
    pub last_success: Option<chrono::DateTime<chrono::Utc>>,
}

/// The newest position in this node's change sequence.
/// Cached: the store handle reads it after every write, to wake the links only when a write
/// added changes.
fn last_seq(conn: &rusqlite::Connection) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT coalesce(max(seq), 0) FROM changes")?
        .query_row([], |r| r.get(0))?)
}

impl WriteTx<'_> {
    /// The newest position in this node's change sequence, this transaction's writes included.
    pub fn last_seq(&self) -> Result<i64, StoreError> {
        last_seq(&self.tx)
    }
}

impl Store {
    /// The newest position in this node's change sequence.
    pub fn last_seq(&self) -> Result<i64, StoreError> {
        last_seq(&self.conn)
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
        self.outgoing_in_chunks(peer, after_seq, max_bytes, policy, skip_peer_origin, 2_000)
    }

    /// [`Store::outgoing_from`], reading at most `chunk` rows a statement.
    pub(super) fn outgoing_in_chunks(
        &self,
        peer: &RegionCode,
        after_seq: i64,
        max_bytes: usize,
        policy: &RoutePolicy,
        skip_peer_origin: bool,
        chunk: i64,
    ) -> Result<OutgoingBatch, StoreError> {
        let mut batch = OutgoingBatch {
            up_to_seq: after_seq,
            ..Default::default()
        };
        let mut index: HashMap<String, usize> = HashMap::new();
        // The peer's own changes are passed over in the scan, before their records are looked
        // up: a parent's live link reads again after every batch its child sent is stored, and
        // joined to their records only to be dropped, a first sync's 12,000 such changes cost
        // eight times what passing them over does (docs/benchmarks.md). The scan's last change
        // is kept whoever sent it, so the batch's position still reaches the end of what was
        // read; every change passed over before a kept one is the peer's. An empty `?3`
        // matches no origin.
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.seq, c.record_id, c.bytes, c.origin, r.kind, r.home, r.created_at, r.created_by, r.route, c.hash,
                    r.personal_claimed
             FROM changes c JOIN records r ON r.id = c.record_id
             WHERE c.seq > ?1 AND (c.origin IS NOT ?3 OR c.seq = (SELECT max(seq) FROM changes))
             ORDER BY c.seq LIMIT ?2",
        )?;
        let passed_over = if skip_peer_origin { peer.as_str() } else { "" };
        // A batch that scans nothing stays where it started; name the change there too.
        if after_seq > 0 {
            batch.up_to_hash = self.change_hash_at(after_seq)?.unwrap_or_default();
        }
        loop {
            let mut rows = stmt.query(params![batch.up_to_seq, chunk, passed_over])?;
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
                let hints = stored_hints(&header, &row.get::<_, String>(8)?, row.get(10)?);
                if !holds(peer, &header.home, &hints, policy) {
                    continue;
                }
                let bytes: Vec<u8> = row.get(2)?;
                batch.bytes += bytes.len();
                batch.changes += 1;
                let at = *index.entry(id).or_insert_with(|| {
                    batch.records.push(OutgoingRecord {
                        header,
                        hints: Some(hints),
                        changes: Vec::new(),
                    });
                    batch.records.len() - 1
                });
                batch.records[at].changes.push(bytes);
                if batch.bytes >= max_bytes {
                    return Ok(batch);
                }
            }
            if scanned < chunk {
                return Ok(batch);
            }
        }
    }

    /// What waits to reach `peer`: the records with changes it holds by its routes and has not
    /// acknowledged (its changes are not counted back to it), and when a link with it last
    /// completed. Counted through the same batches the link sends, at most `cap` bytes of
    /// them; `more` says the count stopped there. The workbench shows it, so a township clerk
    /// sees what has not yet reached the county.
    pub fn waiting_for(
        &self,
        peer: &RegionCode,
        policy: &RoutePolicy,
        cap: usize,
    ) -> Result<Waiting, StoreError> {
        let status = self.peers()?.into_iter().find(|p| p.peer == *peer);
        let acked = status.as_ref().map_or(0, |p| p.acked_seq);
        let batch = self.outgoing(peer, acked, cap, policy)?;
        let more = batch.bytes >= cap;
        Ok(Waiting {
            records: batch.records.len(),
            more,
            last_success: status.and_then(|p| p.last_success),
        })
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
                    "SELECT kind, home, created_at, created_by, route, personal_claimed FROM records WHERE id = ?1",
                    [id.to_string()],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, String>(4)?,
                            r.get::<_, bool>(5)?,
                        ))
                    },
                )
                .optional()?;
            let Some((kind, home, created_at, created_by, route, personal_claimed)) = row else {
                continue;
            };
            let header =
                header_from_columns(&id.to_string(), &kind, &home, &created_at, &created_by)?;
            let hints = stored_hints(&header, &route, personal_claimed);
            if !holds(peer, &header.home, &hints, policy) {
                continue;
            }
            let mut stmt = self
                .conn
                .prepare_cached(crate::store::record_changes::ALL)?;
            let changes = stmt
                .query_map([id.to_string()], |r| r.get::<_, Vec<u8>>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            out.push(OutgoingRecord {
                header,
                hints: Some(hints),
                changes,
            });
        }
        Ok(out)
    }
}
