//! The store's side of rollups: counting the node's own records from their projection rows,
//! reading the rollups its children sent, and writing the node's own rollup record.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::Connection;

use super::{Store, StoreError, WriteTx};
use crate::record::rollup::{CountedRow, Metrics, Rollup};
use crate::record::{Body, RecordId, RecordKind};
use crate::region::RegionCode;

/// The user a node's own computations are recorded under.
const SYSTEM_USER: &str = "renda";

/// Counts the records homed at `me` (never those replicated from children).
fn own_metrics(
    conn: &Connection,
    me: &RegionCode,
    today: NaiveDate,
) -> Result<Metrics, StoreError> {
    let mut metrics = Metrics::default();
    let mut stmt = conn.prepare_cached(
        "SELECT kind, status, occurred_on, due_on, summary FROM records
         WHERE home = ?1 AND kind NOT IN ('rollup', 'personal')",
    )?;
    let mut rows = stmt.query([me.as_str()])?;
    while let Some(row) = rows.next()? {
        let kind: String = row.get(0)?;
        let Some(kind) = RecordKind::parse(&kind) else {
            continue;
        };
        let status: Option<String> = row.get(1)?;
        let date = |i: usize| -> Result<Option<NaiveDate>, rusqlite::Error> {
            Ok(row
                .get::<_, Option<String>>(i)?
                .and_then(|d| d.parse::<NaiveDate>().ok()))
        };
        let summary: String = row.get(4)?;
        let summary: serde_json::Value = serde_json::from_str(&summary).unwrap_or_default();
        metrics.count(
            &CountedRow {
                kind,
                status: status.as_deref(),
                occurred_on: date(2)?,
                due_on: date(3)?,
                summary: &summary,
            },
            today,
        );
    }
    Ok(metrics)
}

/// Every rollup record held here, by the region it counts.
fn rollups(
    store_get: impl Fn(&RecordId) -> Result<crate::record::Record, StoreError>,
    conn: &Connection,
) -> Result<BTreeMap<RegionCode, (RecordId, Rollup)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT id FROM records WHERE kind = 'rollup'")?;
    let ids = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = BTreeMap::new();
    for id in ids {
        let Ok(id) = RecordId::parse("id", &id) else {
            continue;
        };
        let record = store_get(&id)?;
        if let Body::Rollup(rollup) = record.body {
            out.insert(record.header.home, (id, *rollup));
        }
    }
    Ok(out)
}

impl Store {
    /// The rollup of `region` held here: this node's own, or one a descendant sent up.
    pub fn rollup(&self, region: &RegionCode) -> Result<Option<Rollup>, StoreError> {
        Ok(rollups(|id| self.get(id), &self.conn)?
            .remove(region)
            .map(|(_, r)| r))
    }

    /// Every rollup held here, by region.
    pub fn rollups(&self) -> Result<BTreeMap<RegionCode, Rollup>, StoreError> {
        Ok(rollups(|id| self.get(id), &self.conn)?
            .into_iter()
            .map(|(region, (_, r))| (region, r))
            .collect())
    }
}

impl WriteTx<'_> {
    /// Recomputes this node's rollup from its own records and its children's rollups, and
    /// writes it if any number or the list of stale descendants changed; a rollup that says the
    /// same as before is not written again, so an idle node makes no changes to sync.
    pub fn refresh_rollup(
        &mut self,
        now: DateTime<Utc>,
        stale_after: chrono::Duration,
    ) -> Result<Rollup, StoreError> {
        let me = self.node.region;
        let own = own_metrics(&self.tx, &me, now.date_naive())?;
        let mut held = rollups(|id| self.get(id), &self.tx)?;
        let mine = held.remove(&me);
        let children: BTreeMap<RegionCode, Rollup> = held
            .into_iter()
            .filter(|(region, _)| region.parent() == Some(me))
            .map(|(region, (_, r))| (region, r))
            .collect();
        // Every child this node has linked with is expected to send a rollup.
        let mut stmt = self.tx.prepare_cached("SELECT peer FROM sync_peers")?;
        let expected: Vec<RegionCode> = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter_map(|p| RegionCode::parse("peer", &p).ok())
            .filter(|p| p.parent() == Some(me))
            .collect();
        drop(stmt);
        let rollup = Rollup::compose(now, own, children, &expected, stale_after);
        match mine {
            None => {
                self.create(RecordKind::Rollup, SYSTEM_USER, &rollup)?;
                Ok(rollup)
            }
            Some((_, current)) if current.same_numbers(&rollup) => Ok(current),
            Some((id, _)) => {
                self.modify(&id, |doc, _| {
                    let change = doc
                        .set_fields(&rollup, now.timestamp_millis(), "refresh rollup")
                        .map_err(|source| StoreError::Corrupt {
                            id: id.to_string(),
                            source,
                        })?;
                    Ok(change.into_iter().collect())
                })?;
                Ok(rollup)
            }
        }
    }
}
