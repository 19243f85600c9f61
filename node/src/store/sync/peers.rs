//! Each link's counters and health, and the audit log of changes refused from peers.

use super::*;

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

/// The id of the revocation of `region`'s certificate `serial` held here, the oldest if two.
fn revocation_id(
    conn: &rusqlite::Connection,
    region: &RegionCode,
    serial: &str,
) -> Result<Option<crate::record::RecordId>, StoreError> {
    let id: Option<String> = conn
        .prepare_cached(
            "SELECT id FROM records WHERE kind = 'revocation' AND newer_kind = 0
             AND addressed_to = ?1 AND tag = ?2 ORDER BY id LIMIT 1",
        )?
        .query_row(params![region.as_str(), serial], |r| r.get(0))
        .optional()?;
    Ok(id.and_then(|id| crate::record::RecordId::parse("id", &id).ok()))
}

type RevocationRecord = (crate::record::Header, crate::record::revocation::Revocation);

fn revocation_record(
    record: crate::record::Record,
) -> Result<Option<RevocationRecord>, StoreError> {
    Ok(match record.body {
        crate::record::Body::Revocation(r) => Some((record.header, r)),
        _ => None,
    })
}

/// Why a child's certificate may not be renewed here although it verifies: one of its lineage
/// was renewed since, so this one is a copy (a stolen PC's, an old disk image's).
pub fn superseded_renewal(
    conn: &rusqlite::Connection,
    child: &RegionCode,
    serial: &str,
) -> Result<Option<String>, StoreError> {
    // Renewed from already: whoever renews from it again holds a copy.
    let renewed_from: Option<String> = conn
        .query_row(
            "SELECT new_serial FROM renewals WHERE child = ?1 AND old_serial = ?2
             ORDER BY rowid DESC LIMIT 1",
            params![child.as_str(), serial],
            |r| r.get(0),
        )
        .optional()?;
    Ok(renewed_from)
}

impl WriteTx<'_> {
    /// Notes a certificate this node renewed for its child `child`: from which serial, to
    /// which, ending when. The log of a child's lineage, which refuses a second renewal from a
    /// certificate already renewed ([`superseded_renewal`]), and audited for the staff.
    pub fn note_renewal(
        &mut self,
        child: &RegionCode,
        old_serial: &str,
        new_serial: &str,
        not_after: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = Utc::now().to_rfc3339();
        self.tx.execute(
            "INSERT INTO renewals (child, old_serial, new_serial, at, not_after)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                child.as_str(),
                old_serial,
                new_serial,
                now,
                not_after.to_rfc3339()
            ],
        )?;
        self.tx.execute(
            "INSERT INTO audit (at, peer, record_id, kind, rule, reason, changes)
             VALUES (?1, ?2, ?3, 'certificate', 'certificate.renewed', ?4, 0)",
            params![
                now,
                child.as_str(),
                new_serial,
                format!(
                    "为下级节点 {child} 换发证书：序列号 {old_serial} 换为 {new_serial}，有效至 {}",
                    not_after.format("%Y-%m-%d %H:%M")
                )
            ],
        )?;
        Ok(())
    }

    /// Notes a renewal refused because the certificate was already renewed.
    pub fn audit_superseded(&mut self, child: &RegionCode, reason: &str) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO audit (at, peer, record_id, kind, rule, reason, changes)
             VALUES (?1, ?2, '', 'certificate', 'certificate.superseded', ?3, 1)",
            params![Utc::now().to_rfc3339(), child.as_str(), reason],
        )?;
        Ok(())
    }

    /// The revocation held here of `region`'s certificate `serial`, as [`Store::revocation_of`].
    pub fn revocation_of(
        &self,
        region: &RegionCode,
        serial: &str,
    ) -> Result<Option<RevocationRecord>, StoreError> {
        match revocation_id(&self.tx, region, serial)? {
            None => Ok(None),
            Some(id) => revocation_record(self.get(&id)?),
        }
    }

    /// Notes in the audit log a link this node refused from `peer` because its certificate is
    /// revoked: the revocation's record, the rule, and the reason in Chinese for the staff.
    /// Attempts within the hour of the last entry add to its count (`changes` counts the
    /// attempts here) rather than each writing a row: a stolen PC redialling every few seconds
    /// must not keep the writer busy or flood the log.
    pub fn audit_revoked_link(
        &mut self,
        peer: &RegionCode,
        revocation: &crate::record::RecordId,
        reason: &str,
    ) -> Result<(), StoreError> {
        let an_hour_ago = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
        let merged = self.tx.execute(
            "UPDATE audit SET changes = changes + 1 WHERE rowid = (
                 SELECT rowid FROM audit WHERE peer = ?1 AND record_id = ?2
                 AND rule = 'certificate.revoked' AND at > ?3 ORDER BY rowid DESC LIMIT 1)",
            params![peer.as_str(), revocation.to_string(), an_hour_ago],
        )?;
        if merged > 0 {
            return Ok(());
        }
        self.tx.execute(
            "INSERT INTO audit (at, peer, record_id, kind, rule, reason, changes)
             VALUES (?1, ?2, ?3, 'revocation', 'certificate.revoked', ?4, 1)",
            params![
                Utc::now().to_rfc3339(),
                peer.as_str(),
                revocation.to_string(),
                reason
            ],
        )?;
        Ok(())
    }
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

/// A stored record's header, of a kind this release knows or one it keeps as it came.
pub(super) fn header_from_columns(
    id: &str,
    kind: &str,
    home: &str,
    created_at: &str,
    created_by: &str,
) -> Result<AnyHeader, StoreError> {
    let bad = |what: &str| StoreError::Corrupt {
        id: id.to_string(),
        source: DocError::Header(format!("header column {what} is malformed")),
    };
    if !crate::record::Header::is_kind_name(kind) {
        return Err(bad("kind"));
    }
    Ok(AnyHeader {
        id: RecordId::parse("id", id).map_err(|_| bad("id"))?,
        kind: kind.to_string(),
        home: RegionCode::parse("home", home).map_err(|_| bad("home"))?,
        created_at: DateTime::parse_from_rfc3339(created_at)
            .map_err(|_| bad("created_at"))?
            .with_timezone(&Utc),
        created_by: Author::parse(created_by).ok_or_else(|| bad("created_by"))?,
    })
}

impl Store {
    /// Records held back from `peer` ([`WriteTx::hold_back`]).
    pub fn held_back(&self, peer: &RegionCode) -> Result<Vec<RecordId>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT record_id FROM held_back WHERE peer = ?1 ORDER BY record_id")?;
        let ids = stmt
            .query_map([peer.as_str()], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        ids.iter()
            .map(|id| RecordId::parse("held_back.record_id", id).map_err(StoreError::from))
            .collect()
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
    /// The revocation held here of the certificate of `region` with `serial` (normalised, as
    /// [`crate::record::revocation::Revocation::normalise_serial`] gives it), if any: its
    /// record's header and what it says.
    pub fn revocation_of(
        &self,
        region: &RegionCode,
        serial: &str,
    ) -> Result<Option<RevocationRecord>, StoreError> {
        match revocation_id(&self.conn, region, serial)? {
            None => Ok(None),
            Some(id) => revocation_record(self.get(&id)?),
        }
    }

    /// The serial a child's certificate `serial` was already renewed to here, if it was: a
    /// second renewal from it comes from a copy.
    pub fn superseded_renewal(
        &self,
        child: &RegionCode,
        serial: &str,
    ) -> Result<Option<String>, StoreError> {
        superseded_renewal(&self.conn, child, serial)
    }

    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(self
            .audit_page(None, limit)?
            .into_iter()
            .map(|(_, entry)| entry)
            .collect())
    }

    /// Up to `limit` entries of the audit log older than the entry numbered `before` (all
    /// when `None`), newest first, each with its number: a page of the log that the next
    /// page goes on from, whatever is logged meanwhile.
    pub fn audit_page(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(i64, AuditEntry)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT at, peer, record_id, kind, rule, reason, changes, id FROM audit
             WHERE id < ?2 ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit as i64, before.unwrap_or(i64::MAX)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(7)?,
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
            let (at, number, mut entry) = row?;
            entry.at = DateTime::parse_from_rfc3339(&at)
                .map_err(|_| StoreError::Corrupt {
                    id: format!("audit {}", entry.record),
                    source: DocError::Header(format!("audit time {at:?} is malformed")),
                })?
                .with_timezone(&Utc);
            out.push((number, entry));
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
    /// Records the running node's link timeout, by which `renda status`, the metrics and the
    /// sync page judge a link stalled.
    pub fn set_link_timeout(&mut self, timeout: std::time::Duration) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE node SET link_timeout_secs = ?1 WHERE singleton = 1 AND link_timeout_secs IS NOT ?1",
            [i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX)],
        )?;
        Ok(())
    }

    pub(super) fn ensure_peer(&mut self, peer: &RegionCode) -> Result<(), StoreError> {
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

    /// Records that `peer` has stored this node's sequence up to `seq` with its checkpoint (it
    /// acknowledged a batch ending there). Unlike `acked_seq`, which a `CaughtUp` moves as it is
    /// sent, this is a position the peer may name in its next Hello or a later one, so the
    /// position of a replaced change is kept until every peer has confirmed past it
    /// (`retired_changes`).
    pub fn record_confirmed(&mut self, peer: &RegionCode, seq: i64) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE sync_peers SET confirmed_seq = ?2 WHERE peer = ?1 AND confirmed_seq < ?2",
            params![peer.as_str(), seq],
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

    /// Notes records not sent to `peer` because its protocol version cannot carry their kind
    /// ([`crate::sync::version::newer_kinds_reach`]), to send once it can.
    pub fn hold_back(&mut self, peer: &RegionCode, ids: &[RecordId]) -> Result<(), StoreError> {
        let mut insert = self
            .tx
            .prepare_cached("INSERT OR IGNORE INTO held_back (peer, record_id) VALUES (?1, ?2)")?;
        for id in ids {
            insert.execute(params![peer.as_str(), id.to_string()])?;
        }
        Ok(())
    }

    /// Forgets records held back from `peer` that a completed round has now sent.
    pub fn forget_held_back(
        &mut self,
        peer: &RegionCode,
        ids: &[RecordId],
    ) -> Result<(), StoreError> {
        let mut delete = self
            .tx
            .prepare_cached("DELETE FROM held_back WHERE peer = ?1 AND record_id = ?2")?;
        for id in ids {
            delete.execute(params![peer.as_str(), id.to_string()])?;
        }
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
}
