//! Records of kinds a newer release added, which this release stores as they came: their
//! changes join the change sequence like any record's and travel on by the routes their sender
//! claimed (`records.route`), but nothing is derived from their bodies, which this release
//! cannot read. They count in no number, appear in no list, and are counted apart in
//! [`Store::newer_kinds`]. When the node is upgraded to a release that knows the kind, the next
//! open derives their rows like any other record's ([`Store::adopt_newer_kinds`]).
//!
//! Architecture invariant: a row with `newer_kind = 1` is the only row whose `kind` this release
//! need not know; every query that reads `records` without naming a kind either skips such rows
//! or reads only their header and route.

use rusqlite::{OptionalExtension, params};

use super::{History, Prior, Row, Store, StoreError, WriteTx, load_doc};
use crate::record::authority::{Sender, check_authors};
use crate::record::merge::KeptAsCame;
use crate::record::{AnyHeader, Record, RecordId, RecordKind};
use crate::region::RegionCode;

impl WriteTx<'_> {
    /// Stores a peer's changes to a record of a kind this release does not know, with the hints
    /// it travels by, leaving every derived column empty.
    pub(super) fn persist_newer_kind(
        &mut self,
        header: &AnyHeader,
        kept: KeptAsCame,
        origin: &RegionCode,
        prior: Prior,
    ) -> Result<(), StoreError> {
        let id = header.id.to_string();
        let (stored, inserted) = self.insert_changes(&id, &kept.applied, Some(origin))?;
        let held = self.held(&id, prior)?;
        let last_seq = stored.or(held.as_ref().map(|h| h.last_seq)).unwrap_or(0);
        let tail = held.as_ref().map_or(0, |h| h.tail) + inserted;
        let compact = tail > super::MAX_DOC_TAIL;
        let (saved, doc_seq, tail) = if compact {
            (kept.doc.save(), last_seq, 0)
        } else {
            (Vec::new(), 0, tail)
        };
        let route = serde_json::to_string(&kept.hints).unwrap_or_else(|_| "{}".into());
        self.tx
            .prepare_cached(
                "INSERT INTO records (id, kind, home, created_at, created_by, doc, last_seq, label, summary, route,
                                      doc_tail, heads_hash, doc_seq, newer_kind, personal_claimed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?2, '{}', ?8, ?9, ?10, ?11, 1, ?13)
                 ON CONFLICT(id) DO UPDATE SET
                   doc = CASE WHEN ?12 THEN excluded.doc ELSE records.doc END,
                   doc_seq = CASE WHEN ?12 THEN excluded.doc_seq ELSE records.doc_seq END,
                   doc_tail = excluded.doc_tail, heads_hash = excluded.heads_hash,
                   last_seq = excluded.last_seq,
                   route = CASE WHEN ?14 THEN excluded.route ELSE records.route END,
                   personal_claimed = max(records.personal_claimed, excluded.personal_claimed)",
            )?
            .execute(params![
                id,
                header.kind,
                header.home.as_str(),
                header.created_at.to_rfc3339(),
                header.created_by.to_string(),
                saved,
                last_seq,
                route,
                tail,
                crate::record::doc::heads_hash(&kept.heads),
                doc_seq,
                compact,
                kept.hints.personal,
                kept.replaces_routes,
            ])?;
        Ok(())
    }
}

/// The kind of a record this node keeps from a newer release, or `None` for any other.
pub(super) fn newer_kind_of(
    conn: &rusqlite::Connection,
    id: &RecordId,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT kind FROM records WHERE id = ?1 AND newer_kind = 1")?
        .query_row([id.to_string()], |r| r.get(0))
        .optional()?)
}

impl Store {
    /// How many records of kinds this release does not know the node holds, by kind name.
    pub fn newer_kinds(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT kind, count(*) FROM records WHERE newer_kind = 1 GROUP BY kind ORDER BY kind",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Derives the rows of the records this node kept as they came whose kind this release
    /// knows: the node was upgraded since. Each is read, counted and listed as if it had just
    /// arrived, once who wrote each of its changes is checked against the peer it came from, as
    /// for any record ([`check_authors`]). One that does not read, or fails the check, stays as
    /// it came, and the node opens all the same. Runs on open; a node that holds none reads one
    /// index entry.
    pub(super) fn adopt_newer_kinds(&mut self) -> Result<usize, StoreError> {
        let known: Vec<(String, String)> = {
            let mut stmt = self
                .conn
                .prepare("SELECT id, kind FROM records WHERE newer_kind = 1")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<Vec<(String, String)>, _>>()?
                .into_iter()
                .filter(|(_, kind)| RecordKind::parse(kind).is_some())
                .collect()
        };
        let mut adopted = 0;
        for (id, kind) in &known {
            match self.adopt(id) {
                Ok(Ok(())) => adopted += 1,
                Ok(Err(why)) => {
                    tracing::warn!(record = %id, kind, why, "a record kept from a newer release stays as it came")
                }
                Err(e) => {
                    tracing::warn!(record = %id, kind, error = %e, "a record kept from a newer release could not be read; it stays as it came")
                }
            }
        }
        if adopted > 0 {
            tracing::info!(
                records = adopted,
                "derived the rows of records kept from a newer release, whose kinds this release knows"
            );
        }
        Ok(adopted)
    }

    /// Derives one kept record's row in a transaction of its own. `Ok(Err(why))`: it stays as
    /// it came.
    fn adopt(&mut self, id: &str) -> Result<Result<(), String>, StoreError> {
        let me = self.node.region;
        self.write(|tx| {
            let id = RecordId::parse("id", id)?;
            let doc = load_doc(&tx.tx, tx.actor, &id)?;
            let record = match Record::from_doc(&doc) {
                Ok(record) => record,
                Err(e) => return Ok(Err(format!("it does not read as its kind: {e}"))),
            };
            // Each change as the peer it came from sent it: a child's only if written in its
            // subtree, and the record created there if the child brought it first.
            let origins: Vec<(Vec<u8>, Option<String>)> = tx
                .tx
                .prepare_cached(super::record_changes::ALL_WITH_ORIGIN)?
                .query_map([id.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            for (n, (bytes, origin)) in origins.iter().enumerate() {
                let Some(origin) = origin
                    .as_deref()
                    .and_then(|o| RegionCode::parse("origin", o).ok())
                else {
                    continue;
                };
                let sender = if origin.parent() == Some(me) {
                    Sender::Child(origin)
                } else {
                    Sender::Parent(origin)
                };
                let change = match automerge::Change::from_bytes(bytes.clone()) {
                    Ok(change) => change,
                    Err(e) => return Ok(Err(format!("a stored change does not decode: {e}"))),
                };
                let created_by = (n == 0).then_some(&record.header.created_by);
                if let Err(rejection) = check_authors(sender, &id, created_by, [change.actor_id()])
                {
                    return Ok(Err(format!("{} [{}]", rejection.reason, rejection.rule)));
                }
            }
            tx.persist_decoded(
                Some(&doc),
                Row::Derive(&doc.heads()),
                record,
                History::Extend(Vec::new()),
                None,
                Prior::Unknown,
            )?;
            Ok(Ok(()))
        })
    }
}
