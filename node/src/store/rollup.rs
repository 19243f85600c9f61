//! The store's side of rollups: counting the node's own records from their projection rows,
//! reading the rollups its children sent, and writing the node's own rollup record.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension};

use super::{ListQuery, ListRow, Store, StoreError, WriteTx};
use crate::record::projection::FilterKeys;
use crate::record::rollup::{
    CountedRow, Involvement, Metrics, Period, Quota, QuotaRules, Rollup, RollupRules, contribution,
    delegate_quota_counters, group_quota_counters, quota_contribution,
};
use crate::record::{Body, RecordId, RecordKind};
use crate::region::RegionCode;

/// The user a node's own computations are recorded under.
pub(super) const SYSTEM_USER: &str = "renda";

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

/// How records count toward their node's own counters. Raise it when `contribution` counts
/// differently, and every node rebuilds its counters from its rows on its next open.
pub(crate) const COUNTERS_VERSION: i64 = 3;

/// What a row with these derived columns contributes to this node's counters: its own numbers
/// if it is homed here (`own`), and what it adds to the quota counters in any case.
pub(super) fn row_contribution(
    kind: RecordKind,
    own: bool,
    columns: &super::DerivedColumns,
) -> BTreeMap<String, i64> {
    let day = |d: &Option<String>| d.as_deref().and_then(|d| d.parse::<NaiveDate>().ok());
    let occurred_on = day(&columns.occurred_on);
    let mut out = if own {
        contribution(&CountedRow {
            kind,
            status: columns.status.as_deref(),
            occurred_on,
            due_on: day(&columns.due_on),
            summary: &columns.summary,
        })
    } else {
        BTreeMap::new()
    };
    for (name, n) in quota_contribution(
        kind,
        &columns.people,
        columns.keys.tag.as_deref(),
        columns.keys.group.as_deref(),
        occurred_on,
    ) {
        *out.entry(name).or_default() += n;
    }
    out
}

/// Moves the own counters from a row's contribution `before` to its contribution `now`: only
/// the counters that differ are written, and a counter back at zero is removed.
pub(super) fn move_counters(
    conn: &Connection,
    before: &BTreeMap<String, i64>,
    now: &BTreeMap<String, i64>,
) -> Result<(), StoreError> {
    let mut add = conn.prepare_cached(
        "INSERT INTO own_counters (name, value) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
    )?;
    let mut zero = conn.prepare_cached("DELETE FROM own_counters WHERE name = ?1 AND value = 0")?;
    for name in before
        .keys()
        .chain(now.keys().filter(|k| !before.contains_key(*k)))
    {
        let delta = now.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0);
        if delta != 0 {
            add.execute(rusqlite::params![name, delta])?;
            zero.execute([name])?;
        }
    }
    Ok(())
}

/// Builds the own counters from the rows if they were built by another version of the counting
/// (or never: a file from before them). Runs under the write lock and reads the version again
/// there, so two processes opening the file at once build them once.
pub(super) fn ensure_counters(conn: &Connection, me: &RegionCode) -> Result<(), StoreError> {
    let version = |conn: &Connection| -> Result<i64, StoreError> {
        Ok(conn.query_row("SELECT counters_version FROM node", [], |r| r.get(0))?)
    };
    if version(conn)? == COUNTERS_VERSION {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let built = (|| -> Result<(), StoreError> {
        if version(conn)? == COUNTERS_VERSION {
            return Ok(());
        }
        conn.execute_batch(
            "DELETE FROM own_counters; UPDATE records SET counted = NULL WHERE counted IS NOT NULL;",
        )?;
        let mut totals: BTreeMap<String, i64> = BTreeMap::new();
        {
            let mut rows = conn.prepare(
                "SELECT id, kind, home, status, occurred_on, due_on, summary, tag, group_id FROM records",
            )?;
            let mut people = conn.prepare(
                "SELECT delegate_id, role FROM record_people WHERE record_id = ?1 ORDER BY delegate_id, role",
            )?;
            let mut mark = conn.prepare("UPDATE records SET counted = ?2 WHERE id = ?1")?;
            let mut found = rows.query([])?;
            while let Some(row) = found.next()? {
                let id: String = row.get(0)?;
                let Some(kind) = RecordKind::parse(&row.get::<_, String>(1)?) else {
                    continue;
                };
                let own = row.get::<_, String>(2)? == me.as_str();
                let status: Option<String> = row.get(3)?;
                let day = |i: usize| -> Result<Option<NaiveDate>, rusqlite::Error> {
                    Ok(row
                        .get::<_, Option<String>>(i)?
                        .and_then(|d| d.parse::<NaiveDate>().ok()))
                };
                let summary: serde_json::Value =
                    serde_json::from_str(&row.get::<_, String>(6)?).unwrap_or_default();
                let tag: Option<String> = row.get(7)?;
                let group: Option<String> = row.get(8)?;
                let involved: Vec<(String, String)> = people
                    .query_map([&id], |p| Ok((p.get(0)?, p.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                let mut counted = if own {
                    contribution(&CountedRow {
                        kind,
                        status: status.as_deref(),
                        occurred_on: day(4)?,
                        due_on: day(5)?,
                        summary: &summary,
                    })
                } else {
                    BTreeMap::new()
                };
                for (name, n) in
                    quota_contribution(kind, &involved, tag.as_deref(), group.as_deref(), day(4)?)
                {
                    *counted.entry(name).or_default() += n;
                }
                if counted.is_empty() {
                    continue;
                }
                for (name, n) in &counted {
                    *totals.entry(name.clone()).or_default() += n;
                }
                mark.execute(rusqlite::params![
                    id,
                    serde_json::to_string(&counted).unwrap_or_else(|_| "{}".into())
                ])?;
            }
        }
        move_counters(conn, &BTreeMap::new(), &totals)?;
        conn.execute("UPDATE node SET counters_version = ?1", [COUNTERS_VERSION])?;
        Ok(())
    })();
    match built {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    Ok(())
}

/// The delegates a congress holds to its quotas, by person id: those with a serving seat it
/// granted (a mandate homed here), and persons homed here that carry their seats inside the
/// record (registered before mandates were records), as such persons always were; only those
/// have a standing (`status`) of their own.
const QUOTA_DELEGATES: &str = "
    SELECT id FROM records
    WHERE kind = 'delegate' AND home = ?1 AND status IS NOT NULL
    UNION
    SELECT p.delegate_id FROM records m JOIN record_people p ON p.record_id = m.id
    WHERE m.kind = 'mandate' AND m.home = ?1 AND m.status = 'serving' AND p.role = 'mandate'";

/// The quota subjects, each a person as they stand now (a person merged into another counts
/// as the one they were merged into), with every id that stands for them.
fn quota_delegates(
    conn: &Connection,
    me: &RegionCode,
) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
    let redirects = redirects(conn)?;
    let subjects: Vec<String> = conn
        .prepare_cached(QUOTA_DELEGATES)?
        .query_map([me.as_str()], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    let merged = merged_into_each(&redirects);
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for subject in subjects {
        let person = current(&redirects, &subject);
        let mut ids = vec![person.clone()];
        ids.extend(merged.get(&person).into_iter().flatten().cloned());
        out.insert(person, ids);
    }
    Ok(out)
}

/// For each person, the records merged into them, directly or through others: the redirects
/// turned around once, so a lookup per person does not walk them all.
pub(super) fn merged_into_each(
    redirects: &BTreeMap<String, String>,
) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for from in redirects.keys() {
        let person = current(redirects, from);
        if person != *from {
            out.entry(person).or_default().push(from.clone());
        }
    }
    out
}

/// Person records merged into another, by id, each with the id it was merged into.
pub(super) fn redirects(conn: &Connection) -> Result<BTreeMap<String, String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT id, merged_into FROM records WHERE merged_into IS NOT NULL")?
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<Result<_, _>>()?)
}

/// The id `id` stands for now, following merges to their end. A loop, which only a forged
/// record could make, stands for its smallest id, whichever of its ids one starts from.
pub(super) fn current(redirects: &BTreeMap<String, String>, id: &str) -> String {
    let mut seen = vec![id.to_string()];
    while let Some(into) = redirects.get(&seen[seen.len() - 1]) {
        if let Some(at) = seen.iter().position(|s| s == into) {
            return seen[at..]
                .iter()
                .min()
                .cloned()
                .unwrap_or_else(|| into.clone());
        }
        seen.push(into.clone());
    }
    seen.pop().unwrap_or_else(|| id.to_string())
}

/// This node's own numbers from its counters, as of `today`.
fn own_from_counters(conn: &Connection, today: NaiveDate) -> Result<Metrics, StoreError> {
    let counters: Vec<(String, i64)> = conn
        .prepare_cached("SELECT name, value FROM own_counters")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(Metrics::from_counters(
        counters.iter().map(|(name, n)| (name.as_str(), *n)),
        today,
    ))
}

/// The quotas of the groups and delegates homed at `me`, judged from the counters as of
/// `today`: a lookup per group and delegate, whatever the node holds.
fn quotas_from_counters(
    conn: &Connection,
    me: &RegionCode,
    today: NaiveDate,
    rules: QuotaRules,
) -> Result<(Quota, Quota), StoreError> {
    use chrono::Datelike;
    let year = today.year();
    let ids = |kind: &str| -> Result<Vec<String>, StoreError> {
        Ok(conn
            .prepare_cached("SELECT id FROM records WHERE kind = ?1 AND home = ?2")?
            .query_map([kind, me.as_str()], |r| r.get::<_, String>(0))?
            .collect::<Result<_, _>>()?)
    };
    let mut counter = conn.prepare_cached("SELECT value FROM own_counters WHERE name = ?1")?;
    let mut value = |name: &str| -> Result<u32, StoreError> {
        let n: Option<i64> = counter.query_row([name], |r| r.get(0)).optional()?;
        Ok(u32::try_from(n.unwrap_or(0).max(0)).unwrap_or(u32::MAX))
    };
    let mut groups = Vec::new();
    for group in ids("group")? {
        let mut by_quarter = [0u32; 4];
        for (q, name) in group_quota_counters(&group, year).iter().enumerate() {
            by_quarter[q] = value(name)?;
        }
        groups.push(by_quarter);
    }
    let mut delegates = Vec::new();
    for ids in quota_delegates(conn, me)?.values() {
        let (mut receptions, mut suggestions) = (0u32, 0u32);
        for id in ids {
            let [r, s] = delegate_quota_counters(id, year);
            receptions = receptions.saturating_add(value(&r)?);
            suggestions = suggestions.saturating_add(value(&s)?);
        }
        delegates.push((receptions, suggestions));
    }
    Ok((
        rules.group_quota_of(&groups, today),
        rules.delegate_quota_of(&delegates),
    ))
}

/// The quotas of the groups and delegates homed at `me`, over the activities and suggestions of
/// `today`'s year held here. The store lists the facts (groups, delegates, what each took part
/// in that year); which of them count is the record model's rule ([`QuotaRules`]).
fn quotas(
    conn: &Connection,
    me: &RegionCode,
    today: NaiveDate,
    rules: QuotaRules,
) -> Result<(Quota, Quota), StoreError> {
    use chrono::Datelike;
    // The year as a range of dates, so the indexes on occurred_on answer it.
    let from = format!("{:04}-01-01", today.year());
    let until = format!("{:04}-01-01", today.year() + 1);
    let ids = |kind: &str| -> Result<Vec<String>, StoreError> {
        Ok(conn
            .prepare_cached("SELECT id FROM records WHERE kind = ?1 AND home = ?2")?
            .query_map([kind, me.as_str()], |r| r.get::<_, String>(0))?
            .collect::<Result<_, _>>()?)
    };
    let groups = ids("group")?;
    let mut stmt = conn.prepare_cached(
        "SELECT group_id, occurred_on FROM records
         WHERE kind = 'activity' AND occurred_on >= ?1 AND occurred_on < ?2
           AND group_id IS NOT NULL",
    )?;
    let held: Vec<(String, NaiveDate)> = stmt
        .query_map([&from, &until], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })?
        .filter_map(|row| match row {
            Ok((group, on)) => on.and_then(|d| d.parse().ok()).map(|on| Ok((group, on))),
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<_, _>>()?;
    let group_quota =
        rules.group_quota(&groups, held.iter().map(|(g, on)| (g.as_str(), *on)), today);
    let subjects = quota_delegates(conn, me)?;
    let standing_for: BTreeMap<&str, &str> = subjects
        .iter()
        .flat_map(|(person, ids)| ids.iter().map(move |id| (id.as_str(), person.as_str())))
        .collect();
    let delegates: Vec<String> = subjects.keys().cloned().collect();
    let mut stmt = conn.prepare_cached(
        "SELECT p.delegate_id, p.role, r.kind, r.tag
         FROM record_people p JOIN records r ON r.id = p.record_id
         WHERE r.occurred_on >= ?1 AND r.occurred_on < ?2",
    )?;
    let involvements: Vec<Involvement> = stmt
        .query_map([from.as_str(), until.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?
        .filter_map(|row| match row {
            Ok((delegate, role, kind, tag)) => {
                let person = standing_for.get(delegate.as_str())?;
                RecordKind::parse(&kind).map(|kind| {
                    Ok(Involvement {
                        delegate: person.to_string(),
                        role,
                        kind,
                        tag,
                    })
                })
            }
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<_, _>>()?;
    let delegate_quota = rules.delegate_quota(&delegates, &involvements);
    Ok((group_quota, delegate_quota))
}

/// The rollup records held here of the regions `wanted` picks, by the region each counts.
fn rollups(
    store_get: impl Fn(&RecordId) -> Result<crate::record::Record, StoreError>,
    conn: &Connection,
    wanted: impl Fn(&RegionCode) -> bool,
) -> Result<BTreeMap<RegionCode, (crate::record::Header, Rollup)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT id, home FROM records WHERE kind = 'rollup'")?;
    let ids = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = BTreeMap::new();
    for (id, home) in ids {
        // Only the documents wanted are loaded: a city holds every descendant's rollup, and a
        // refresh needs its own and its children's.
        match RegionCode::parse("home", &home) {
            Ok(home) if wanted(&home) => {}
            _ => continue,
        }
        let Ok(id) = RecordId::parse("id", &id) else {
            continue;
        };
        let record = store_get(&id)?;
        if let Body::Rollup(rollup) = record.body {
            out.insert(record.header.home, (record.header, *rollup));
        }
    }
    Ok(out)
}

impl Store {
    /// The rollup of `region` held here: this node's own, or one a descendant sent up.
    pub fn rollup(&self, region: &RegionCode) -> Result<Option<Rollup>, StoreError> {
        let id: Option<String> = self
            .conn
            .prepare_cached("SELECT id FROM records WHERE kind = 'rollup' AND home = ?1")?
            .query_row([region.as_str()], |r| r.get(0))
            .optional()?;
        let Some(id) = id.and_then(|id| RecordId::parse("id", &id).ok()) else {
            return Ok(None);
        };
        match self.get(&id)?.body {
            Body::Rollup(rollup) => Ok(Some(*rollup)),
            _ => Ok(None),
        }
    }

    /// A delegate's duty record for `year`: every activity and suggestion of theirs held here
    /// that happened in that year, counted against this node's quotas.
    pub fn duty_record(&self, delegate: &RecordId, year: i32) -> Result<DutyRecord, StoreError> {
        let not_found = || StoreError::NotFound {
            kind: "delegate",
            id: delegate.to_string(),
        };
        // The person's record, or, for a delegate of this congress registered where this node
        // does not reach (a township person with a provincial seat), the seat granted here.
        // A person merged into another has the other's duty record.
        let redirects = redirects(&self.conn)?;
        let person = RecordId::parse("id", &current(&redirects, &delegate.to_string()))?;
        let delegate = &person;
        let record = match self.get(delegate) {
            Ok(record) if record.header.kind == RecordKind::Delegate => record,
            Ok(_) => return Err(not_found()),
            Err(StoreError::NotFound { .. }) => {
                let me = self.node.region;
                let (header, _) = self
                    .mandates_of(delegate)?
                    .into_iter()
                    .find(|(h, _)| h.home == me)
                    .ok_or_else(not_found)?;
                self.get(&header.id)?
            }
            Err(e) => return Err(e),
        };
        let period = Period::parse(&format!("{year:04}")).map_err(|rule| {
            StoreError::Invalid(crate::validate::ValidationError::new("year", rule))
        })?;
        // Its own records and those of every person merged into it.
        let mut ids = vec![*delegate];
        for from in merged_into_each(&redirects)
            .remove(&delegate.to_string())
            .unwrap_or_default()
        {
            ids.push(RecordId::parse("id", &from)?);
        }
        let of = |kind| -> Result<Vec<ListRow>, StoreError> {
            let mut rows = Vec::new();
            for id in &ids {
                rows.extend(self.list(&ListQuery {
                    kind: Some(kind),
                    delegate: Some(*id),
                    period: Some(period.clone()),
                    ..ListQuery::default()
                })?);
            }
            rows.sort_by_key(|r| r.id);
            rows.dedup_by_key(|r| r.id);
            Ok(rows)
        };
        let activities = of(RecordKind::Activity)?;
        let suggestions = of(RecordKind::Suggestion)?;
        let receptions = activities
            .iter()
            .filter(|a| {
                let keys = FilterKeys::of(RecordKind::Activity, &a.summary);
                crate::record::rollup::is_reception(keys.tag.as_deref())
            })
            .count() as u32;
        let quotas = self
            .rollup(&self.node.region)?
            .map(|r| r.quotas)
            .unwrap_or_default();
        Ok(DutyRecord {
            delegate: record,
            year,
            activities,
            suggestions,
            receptions,
            quotas,
        })
    }

    /// Checks the node's own counters against a count of its records one by one, as of
    /// `today`: the names of the numbers that differ, with both values; empty when they agree.
    /// `renda rollup --verify` prints it; the tests check every node with it.
    pub fn verify_own_counters(&self, today: NaiveDate) -> Result<Vec<String>, StoreError> {
        let me = self.node.region;
        // The quotas are judged by the node's own rules; any rules do, as both sides use them.
        let rules = self.rollup(&me)?.map(|r| r.quotas).unwrap_or_default();
        let mut from_counters = own_from_counters(&self.conn, today)?;
        (from_counters.group_quota, from_counters.delegate_quota) =
            quotas_from_counters(&self.conn, &me, today, rules)?;
        let mut recount = own_metrics(&self.conn, &me, today)?;
        (recount.group_quota, recount.delegate_quota) = quotas(&self.conn, &me, today, rules)?;
        if from_counters == recount {
            return Ok(Vec::new());
        }
        let (a, b) = (
            serde_json::to_value(&from_counters).unwrap_or_default(),
            serde_json::to_value(&recount).unwrap_or_default(),
        );
        let mut out = Vec::new();
        if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
            for (name, counted) in a {
                let recounted = b.get(name).cloned().unwrap_or_default();
                if *counted != recounted {
                    out.push(format!("{name}: counters {counted}, records {recounted}"));
                }
            }
        }
        if out.is_empty() {
            out.push("the counters and the records differ".into());
        }
        Ok(out)
    }

    /// The rollups held here as anything but one publication (a save, or more than one change
    /// row), by region: empty once every home has published since publications began, for a
    /// holder keeps each rollup as its newest publication alone.
    pub fn unpublished_rollups(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.home, length(r.doc), (SELECT count(*) FROM changes c WHERE c.record_id = r.id)
             FROM records r WHERE r.kind = 'rollup'",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (home, saved, changes) = row?;
            if saved.unwrap_or(0) > 0 || changes != 1 {
                out.push(format!(
                    "{home}: {changes} changes, a save of {} bytes",
                    saved.unwrap_or(0)
                ));
            }
        }
        Ok(out)
    }

    /// Every rollup held here, by region.
    pub fn rollups(&self) -> Result<BTreeMap<RegionCode, Rollup>, StoreError> {
        Ok(rollups(|id| self.get(id), &self.conn, |_| true)?
            .into_iter()
            .map(|(region, (_, r))| (region, r))
            .collect())
    }
}

/// A delegate's duty record (履职档案) for one year, from what this node holds.
#[derive(Clone, Debug)]
pub struct DutyRecord {
    /// The person record, or the seat granted here where the person is registered at a node
    /// whose records do not reach this one.
    pub delegate: crate::record::Record,
    pub year: i32,
    /// The year's activities the delegate signed in at.
    pub activities: Vec<ListRow>,
    /// The year's suggestions the delegate led or co-signed.
    pub suggestions: Vec<ListRow>,
    /// Of the activities, the receptions of constituents.
    pub receptions: u32,
    /// The quotas of this node, which the counts are held against.
    pub quotas: QuotaRules,
}

impl DutyRecord {
    pub fn meets_quota(&self) -> bool {
        self.quotas
            .delegate_meets(self.receptions, self.suggestions.len() as u32)
    }
}

impl WriteTx<'_> {
    /// Recomputes this node's rollup from its own records and its children's rollups, and
    /// writes it if any number or the list of stale descendants changed; a rollup that says the
    /// same as before is not written again, so an idle node makes no changes to sync.
    pub fn refresh_rollup(
        &mut self,
        now: DateTime<Utc>,
        rules: &RollupRules,
    ) -> Result<Rollup, StoreError> {
        let me = self.node.region;
        let mut own = own_from_counters(&self.tx, crate::calendar::day_of(now))?;
        (own.group_quota, own.delegate_quota) =
            quotas_from_counters(&self.tx, &me, crate::calendar::day_of(now), rules.quotas)?;
        let mut held = rollups(
            |id| self.get(id),
            &self.tx,
            |region| *region == me || region.parent() == Some(me),
        )?;
        let mine = held.remove(&me);
        let children: BTreeMap<RegionCode, Rollup> = held
            .into_iter()
            .filter(|(region, _)| region.parent() == Some(me))
            .map(|(region, (_, r))| (region, r))
            .collect();
        // Every child this node has linked with is expected to send a rollup; when each last
        // completed a round is the freshness shown beside its numbers.
        let links: BTreeMap<RegionCode, Option<DateTime<Utc>>> =
            super::sync::peer_statuses(&self.tx)?
                .into_iter()
                .filter(|p| p.peer.parent() == Some(me))
                .map(|p| (p.peer, p.last_success))
                .collect();
        let mut rollup = Rollup::compose(now, own, children, &links, rules);
        rollup.name = self.node.name.clone();
        let held = match mine {
            None => None,
            // A rollup from before publications (generation 0) is published once even if its
            // numbers stand, so that its history is replaced everywhere.
            Some((_, current)) if current.same_numbers(&rollup) && current.generation > 0 => {
                return Ok(current);
            }
            Some((header, current)) => Some((header, current.generation)),
        };
        self.publish_rollup(held, &mut rollup)?;
        Ok(rollup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_are_followed_to_their_end_and_a_forged_loop_has_one_answer() {
        let redirects: BTreeMap<String, String> = [("A", "B"), ("B", "C"), ("X", "Y"), ("Y", "X")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(current(&redirects, "A"), "C");
        assert_eq!(current(&redirects, "C"), "C");
        assert_eq!(current(&redirects, "Q"), "Q");
        assert_eq!(current(&redirects, "X"), "X");
        assert_eq!(current(&redirects, "Y"), "X");
    }
}
