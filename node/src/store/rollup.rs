//! The store's side of rollups: counting the node's own records from their projection rows,
//! reading the rollups its children sent, and writing the node's own rollup record.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension};

use super::{ListQuery, ListRow, Store, StoreError, WriteTx};
use crate::record::group::GroupKind;
use crate::record::projection::FilterKeys;
use crate::record::quota::{QuotaRule, QuotaSubject, RuleBook, SUGGESTION, SubjectStanding, Tally};
use crate::record::rollup::{
    CountedRow, Metrics, Period, Quota, QuotaRules, Rollup, RollupRules, add_quota_counter,
    contribution, quota_contribution, quota_counter_range,
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
pub(crate) const COUNTERS_VERSION: i64 = 4;

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

/// Adds to `moves` what moving the counters from `before` to `now` would change: a batch's
/// moves summed, for one [`move_counters`] from nothing to their sum.
pub(super) fn sum_moves(
    moves: &mut BTreeMap<String, i64>,
    before: &BTreeMap<String, i64>,
    now: &BTreeMap<String, i64>,
) {
    for (name, n) in now {
        *moves.entry(name.clone()).or_default() += n;
    }
    for (name, n) in before {
        *moves.entry(name.clone()).or_default() -= n;
    }
}

/// Moves the own counters from a row's contribution `before` to its contribution `now`: only
/// the counters that differ are written, and a counter back at zero is removed.
pub(super) fn move_counters(
    conn: &Connection,
    before: &BTreeMap<String, i64>,
    now: &BTreeMap<String, i64>,
) -> Result<(), StoreError> {
    // The sum comes back with the write, so a counter is looked up again only to delete it
    // when it reaches zero, not after every move.
    let mut add = conn.prepare_cached(
        "INSERT INTO own_counters (name, value) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET value = value + excluded.value
         RETURNING value",
    )?;
    let mut zero = conn.prepare_cached("DELETE FROM own_counters WHERE name = ?1 AND value = 0")?;
    for name in before
        .keys()
        .chain(now.keys().filter(|k| !before.contains_key(*k)))
    {
        let delta = now.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0);
        if delta != 0 {
            let value: i64 = add.query_row(rusqlite::params![name, delta], |r| r.get(0))?;
            if value == 0 {
                zero.execute([name])?;
            }
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

/// The duty rules a congress set, held here (its own, or an ancestor's sent down), each with
/// its record id, oldest first. Read from the projection, which holds the whole rule.
pub(super) fn quota_rules_of(
    conn: &Connection,
    congress: &RegionCode,
) -> Result<Vec<(RecordId, QuotaRule)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, summary FROM records WHERE kind = 'quota_rule' AND home = ?1
         ORDER BY occurred_on, id",
    )?;
    let rows = stmt
        .query_map([congress.as_str()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::new();
    for (id, summary) in rows {
        // A projection this release cannot read as a rule was written by no release; it
        // binds nobody rather than failing every rollup.
        let summary: serde_json::Value = serde_json::from_str(&summary).unwrap_or_default();
        let (Ok(id), Some(rule)) = (
            RecordId::parse("id", &id),
            QuotaRule::from_projection(&summary),
        ) else {
            continue;
        };
        out.push((id, rule));
    }
    Ok(out)
}

/// A group or delegate a congress holds to its rules: the ids that stand for it (a person's
/// own and those merged into it) and what the rules need to know of it.
struct QuotaSubjectRow {
    subject: QuotaSubject,
    id: String,
    ids: Vec<String>,
    name: String,
    group_kind: Option<GroupKind>,
}

/// The groups and delegates of the congress at `me`; the delegates' names only if `named` (a
/// rollup needs none, and looks up none).
fn quota_subjects(
    conn: &Connection,
    me: &RegionCode,
    named: bool,
) -> Result<Vec<QuotaSubjectRow>, StoreError> {
    let mut out = Vec::new();
    let groups: Vec<(String, String, Option<String>)> = conn
        .prepare_cached("SELECT id, label, tag FROM records WHERE kind = 'group' AND home = ?1")?
        .query_map([me.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (id, name, kind) in groups {
        let group_kind = kind.and_then(|k| GroupKind::parse("kind", &k).ok());
        out.push(QuotaSubjectRow {
            subject: QuotaSubject::Group,
            ids: vec![id.clone()],
            id,
            name,
            group_kind,
        });
    }
    let mut label = conn.prepare_cached(
        "SELECT label FROM records WHERE id = ?1
         UNION ALL
         SELECT m.label FROM records m JOIN record_people p ON p.record_id = m.id
         WHERE p.delegate_id = ?1 AND p.role = 'mandate' AND m.home = ?2
         LIMIT 1",
    )?;
    for (person, ids) in quota_delegates(conn, me)? {
        let name: Option<String> = if named {
            label
                .query_row([person.as_str(), me.as_str()], |r| r.get(0))
                .optional()?
        } else {
            None
        };
        out.push(QuotaSubjectRow {
            subject: QuotaSubject::Delegate,
            name: name.unwrap_or_else(|| person.clone()),
            id: person,
            ids,
            group_kind: None,
        });
    }
    Ok(out)
}

/// A subject's tally of `year` from the counters: one range scan per id that stands for it.
fn tally_from_counters(
    conn: &Connection,
    subject: QuotaSubject,
    ids: &[String],
    year: i32,
) -> Result<Tally, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT name, value FROM own_counters WHERE name >= ?1 AND name < ?2")?;
    let mut tally = Tally::default();
    for id in ids {
        let (from, until) = quota_counter_range(subject, id, year);
        let mut rows = stmt.query([from, until])?;
        while let Some(row) = rows.next()? {
            add_quota_counter(&mut tally, &row.get::<_, String>(0)?, row.get(1)?);
        }
    }
    Ok(tally)
}

/// Every subject's tally of `year` counted from the records held here, one by one: what the
/// counters must agree with.
fn tallies_from_records(
    conn: &Connection,
    year: i32,
) -> Result<BTreeMap<(QuotaSubject, String), Tally>, StoreError> {
    let from = format!("{year:04}-01-01");
    let until = format!("{:04}-01-01", year + 1);
    let mut out: BTreeMap<(QuotaSubject, String), Tally> = BTreeMap::new();
    let mut add = |subject, id: String, on: NaiveDate, what: &str| {
        out.entry((subject, id)).or_default().add(on, what, 1);
    };
    let what_of = |kind: &str, tag: Option<String>| -> Option<String> {
        match kind {
            "activity" => Some(tag.unwrap_or_else(|| "unknown".into())),
            "suggestion" => Some(SUGGESTION.to_string()),
            _ => None,
        }
    };
    // Both lists give (kind, tag, date, subject): groups that held an activity someone
    // signed in at or made a suggestion, and delegates signed in or who led or co-signed.
    for (subject, sql) in [
        (
            QuotaSubject::Group,
            "SELECT kind, tag, occurred_on, group_id FROM records r
             WHERE kind IN ('activity', 'suggestion') AND group_id IS NOT NULL
               AND occurred_on >= ?1 AND occurred_on < ?2
               AND (kind = 'suggestion' OR EXISTS (
                   SELECT 1 FROM record_people p WHERE p.record_id = r.id AND p.role = 'participant'))",
        ),
        (
            QuotaSubject::Delegate,
            "SELECT r.kind, r.tag, r.occurred_on, p.delegate_id
             FROM record_people p JOIN records r ON r.id = p.record_id
             WHERE r.occurred_on >= ?1 AND r.occurred_on < ?2
               AND ((r.kind = 'activity' AND p.role = 'participant')
                 OR (r.kind = 'suggestion' AND p.role IN ('lead', 'cosigner')))
             GROUP BY r.id, p.delegate_id",
        ),
    ] {
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = stmt.query([&from, &until])?;
        while let Some(row) = rows.next()? {
            let on: Option<NaiveDate> = row
                .get::<_, Option<String>>(2)?
                .and_then(|d| d.parse().ok());
            if let (Some(what), Some(on)) = (what_of(&row.get::<_, String>(0)?, row.get(1)?), on) {
                add(subject, row.get(3)?, on, &what);
            }
        }
    }
    Ok(out)
}

/// The duty rules of the congress at `me` in force on some day of `year`, oldest first.
fn rules_of_year(
    conn: &Connection,
    me: &RegionCode,
    year: i32,
) -> Result<Vec<QuotaRule>, StoreError> {
    let (Some(first), Some(last)) = (
        NaiveDate::from_ymd_opt(year, 1, 1),
        NaiveDate::from_ymd_opt(year, 12, 31),
    ) else {
        return Ok(Vec::new());
    };
    Ok(quota_rules_of(conn, me)?
        .into_iter()
        .map(|(_, rule)| rule)
        .filter(|rule| rule.from <= last && rule.until.is_none_or(|until| until > first))
        .collect())
}

/// Calls `judged` with each group and delegate of the congress at `me` that a rule of `book`
/// binds, and its tally of `year`: from the counters or, for a check, from the records.
fn each_tally(
    conn: &Connection,
    me: &RegionCode,
    year: i32,
    book: &RuleBook<'_>,
    from_records: bool,
    named: bool,
    mut judged: impl FnMut(QuotaSubjectRow, &Tally),
) -> Result<(), StoreError> {
    let recounted = if from_records {
        Some(tallies_from_records(conn, year)?)
    } else {
        None
    };
    for subject in quota_subjects(conn, me, named)? {
        if !book.binds(subject.subject, subject.group_kind) {
            continue;
        }
        let tally = match &recounted {
            None => tally_from_counters(conn, subject.subject, &subject.ids, year)?,
            Some(all) => {
                let mut tally = Tally::default();
                for id in &subject.ids {
                    if let Some(t) = all.get(&(subject.subject, id.clone())) {
                        tally.absorb(t);
                    }
                }
                tally
            }
        };
        judged(subject, &tally);
    }
    Ok(())
}

/// Where each group and delegate of the congress at `me` stands against its rules of `year`
/// as of `today`, tallied from the counters or, for a check, from the records; with the rules
/// of the year they were judged by.
fn standings(
    conn: &Connection,
    me: &RegionCode,
    year: i32,
    today: NaiveDate,
    from_records: bool,
    named: bool,
) -> Result<(Vec<QuotaRule>, Vec<SubjectStanding>), StoreError> {
    let rules = rules_of_year(conn, me, year)?;
    let book = RuleBook::new(&rules);
    let mut out = Vec::new();
    each_tally(
        conn,
        me,
        year,
        &book,
        from_records,
        named,
        |subject, tally| {
            out.extend(SubjectStanding::judge(
                subject.subject,
                subject.id,
                subject.name,
                subject.group_kind,
                &book,
                tally,
                year,
                today,
            ));
        },
    )?;
    Ok((rules, out))
}

/// The groups' and the delegates' quota figures of the congress at `me` this year, as a
/// rollup counts them (the standings alone, nothing copied per subject), and the rules in
/// force today.
fn quota_figures(
    conn: &Connection,
    me: &RegionCode,
    today: NaiveDate,
) -> Result<(Quota, Quota, Vec<QuotaRule>), StoreError> {
    use chrono::Datelike;
    let year = today.year();
    let rules = rules_of_year(conn, me, year)?;
    let book = RuleBook::new(&rules);
    let (mut groups, mut delegates) = (Quota::default(), Quota::default());
    each_tally(conn, me, year, &book, false, false, |subject, tally| {
        if let Some(standing) =
            book.standing(subject.subject, subject.group_kind, tally, year, today)
        {
            match subject.subject {
                QuotaSubject::Group => groups.count(standing),
                QuotaSubject::Delegate => delegates.count(standing),
            }
        }
    })?;
    let in_force = rules.into_iter().filter(|r| r.in_force_on(today)).collect();
    Ok((groups, delegates, in_force))
}

/// The groups' and the delegates' quota figures of a list of standings.
fn quota_totals(standings: &[SubjectStanding]) -> (Quota, Quota) {
    let (mut groups, mut delegates) = (Quota::default(), Quota::default());
    for s in standings {
        match s.subject {
            QuotaSubject::Group => groups.count(s.standing),
            QuotaSubject::Delegate => delegates.count(s.standing),
        }
    }
    (groups, delegates)
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
                // The seat may still name a record merged into the person, where this
                // congress has not applied the merge yet.
                let me = self.node.region;
                let mut named = vec![delegate.to_string()];
                named.extend(
                    merged_into_each(&redirects)
                        .remove(&delegate.to_string())
                        .unwrap_or_default(),
                );
                let mut seat = None;
                for id in named {
                    let id = RecordId::parse("id", &id)?;
                    seat = self
                        .mandates_of(&id)?
                        .into_iter()
                        .find(|(h, _)| h.home == me);
                    if seat.is_some() {
                        break;
                    }
                }
                let (header, _) = seat.ok_or_else(not_found)?;
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
        // The tally of the rows shown, held against the rules of this congress.
        let mut tally = Tally::default();
        for row in &activities {
            let keys = FilterKeys::of(RecordKind::Activity, &row.summary);
            if let Some(on) = row.occurred_on {
                tally.add(on, keys.tag.as_deref().unwrap_or("unknown"), 1);
            }
        }
        for row in &suggestions {
            if let Some(on) = row.occurred_on {
                tally.add(on, SUGGESTION, 1);
            }
        }
        // Only this congress's own delegates are held to its rules: a township delegate's
        // duty record read at the county is not judged by the county's.
        let today = crate::calendar::today();
        let me = self.node.region;
        let standing = if quota_delegates(&self.conn, &me)?.contains_key(&delegate.to_string()) {
            SubjectStanding::judge(
                QuotaSubject::Delegate,
                record.header.id.to_string(),
                String::new(),
                None,
                &RuleBook::new(&rules_of_year(&self.conn, &me, year)?),
                &tally,
                year,
                today,
            )
        } else {
            None
        };
        Ok(DutyRecord {
            delegate: record,
            year,
            activities,
            suggestions,
            receptions,
            standing,
        })
    }

    /// The duty rules set by `congress` held here (this node's own, or an ancestor's), oldest
    /// first, each with its record id.
    pub fn quota_rules(
        &self,
        congress: &RegionCode,
    ) -> Result<Vec<(RecordId, QuotaRule)>, StoreError> {
        quota_rules_of(&self.conn, congress)
    }

    /// Where each group and delegate of this node's congress stands against the rules in
    /// force for `year`, as of `today`, with the rules judged by; the subjects no rule binds
    /// are left out.
    pub fn quota_standings(
        &self,
        year: i32,
        today: NaiveDate,
    ) -> Result<(Vec<QuotaRule>, Vec<SubjectStanding>), StoreError> {
        standings(&self.conn, &self.node.region, year, today, false, true)
    }

    /// Checks the node's own counters against a count of its records one by one, as of
    /// `today`: the names of the numbers that differ, with both values; empty when they agree.
    /// `renda rollup --verify` prints it; the tests check every node with it.
    pub fn verify_own_counters(&self, today: NaiveDate) -> Result<Vec<String>, StoreError> {
        use chrono::Datelike;
        let me = self.node.region;
        let mut from_counters = own_from_counters(&self.conn, today)?;
        let (_, counted) = standings(&self.conn, &me, today.year(), today, false, false)?;
        (from_counters.group_quota, from_counters.delegate_quota) = quota_totals(&counted);
        let mut recount = own_metrics(&self.conn, &me, today)?;
        let (_, recounted) = standings(&self.conn, &me, today.year(), today, true, false)?;
        (recount.group_quota, recount.delegate_quota) = quota_totals(&recounted);
        if counted != recounted {
            for (a, b) in counted.iter().zip(&recounted) {
                if a != b {
                    return Ok(vec![format!(
                        "quota of {} {}: counters {:?}, records {:?}",
                        a.subject.as_str(),
                        a.id,
                        a.judgements
                            .iter()
                            .map(|j| j.judgement.have)
                            .collect::<Vec<_>>(),
                        b.judgements
                            .iter()
                            .map(|j| j.judgement.have)
                            .collect::<Vec<_>>(),
                    )]);
                }
            }
        }
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
    /// The year held against the rules this congress set for its delegates; `None` where
    /// no rule binds them.
    pub standing: Option<SubjectStanding>,
}

impl DutyRecord {
    /// Whether every rule's minimum for the year is reached.
    pub fn meets_quota(&self) -> bool {
        self.standing
            .as_ref()
            .is_some_and(|s| s.standing == crate::record::quota::Standing::Met)
    }
}

impl WriteTx<'_> {
    /// Notes when the certificate the node links with ends (`None`: it links without TLS), as
    /// it starts and each time the certificate is renewed; its rollup states it.
    pub fn record_certificate(
        &mut self,
        not_after: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE node SET certificate_not_after = ?1",
            [not_after.map(|t| t.to_rfc3339())],
        )?;
        Ok(())
    }

    /// What this node states about itself in its rollup: its release and protocol range, and
    /// its certificate's end, last sound check and last backup as its node row notes them. The check's and the backup's times are kept to the day (UTC), so a node that
    /// backs up every few hours republishes its rollup for them at most once a day; the
    /// certificate's end, which moves only when it is replaced, to the minute.
    fn facts(&self) -> Result<crate::record::fleet::NodeFacts, StoreError> {
        use chrono::DurationRound;
        let minute = |t: DateTime<Utc>| t.duration_trunc(chrono::Duration::minutes(1)).unwrap_or(t);
        type Row = (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let (check_at, check, backup_at, certificate): Row = self.tx.query_row(
            "SELECT last_check_at, last_check_result, last_backup_at, certificate_not_after FROM node",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        let day = |t: DateTime<Utc>| t.duration_trunc(chrono::Duration::days(1)).unwrap_or(t);
        let time = |t: Option<String>| {
            t.and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| day(t.with_timezone(&Utc)))
        };
        Ok(crate::record::fleet::NodeFacts {
            version: env!("CARGO_PKG_VERSION").to_string(),
            min_protocol: crate::sync::version::Versions::this_build().min,
            max_protocol: crate::sync::version::Versions::this_build().max,
            certificate_not_after: certificate
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| minute(t.with_timezone(&Utc))),
            last_sound_check: if check.as_deref() == Some("ok") {
                time(check_at)
            } else {
                None
            },
            last_backup: time(backup_at),
        })
    }

    /// The duty rules set by `congress` held here, oldest first, each with its record id.
    pub fn quota_rules(
        &self,
        congress: &RegionCode,
    ) -> Result<Vec<(RecordId, QuotaRule)>, StoreError> {
        quota_rules_of(&self.tx, congress)
    }

    /// Gives this node's congress its first duty rules, from the numbers the process flags or
    /// the configuration name (the defaults where they name none), in force since the
    /// earliest date Renda records. Runs once in a node's life (`node.quota_rules_seeded`):
    /// at `Store::init`, or at the first rollup of a node from before rule records. Writes
    /// nothing where the congress has set any rule, ended or not: the flags only seed the
    /// rules, and never override them. Returns how many rules it wrote.
    pub fn seed_quota_rules(&mut self, first: QuotaRules) -> Result<usize, StoreError> {
        let congress = self.node.region;
        let seeded: bool = self
            .tx
            .query_row("SELECT quota_rules_seeded FROM node", [], |r| r.get(0))?;
        if seeded {
            return Ok(0);
        }
        let rules = if congress.has_congress() && quota_rules_of(&self.tx, &congress)?.is_empty() {
            first.first_rules(congress, crate::calendar::EARLIEST)
        } else {
            Vec::new()
        };
        for rule in &rules {
            rule.validate(&congress)?;
            self.create(RecordKind::QuotaRule, SYSTEM_USER, rule)?;
        }
        self.tx
            .execute("UPDATE node SET quota_rules_seeded = 1", [])?;
        Ok(rules.len())
    }

    /// Recomputes this node's rollup from its own records and its children's rollups, and
    /// writes it if any number or the list of stale descendants changed; a rollup that says the
    /// same as before is not written again, so an idle node makes no changes to sync.
    pub fn refresh_rollup(
        &mut self,
        now: DateTime<Utc>,
        rules: &RollupRules,
    ) -> Result<Rollup, StoreError> {
        let me = self.node.region;
        let today = crate::calendar::day_of(now);
        let mut own = own_from_counters(&self.tx, today)?;
        let in_force;
        (own.group_quota, own.delegate_quota, in_force) = quota_figures(&self.tx, &me, today)?;
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
        // What this node states about itself, and its own line of the fleet view.
        let facts = self.facts()?;
        rollup.fleet.add(&crate::record::fleet::Fleet::of_node(
            me,
            &self.node.name,
            &facts,
            now,
            rules.backup_max_age,
        ));
        rollup.facts = Some(facts);
        rollup.quotas = QuotaRules::as_said_by(&in_force);
        rollup.rules = in_force;
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
