//! Rollups: a node's numbers for its whole subtree, as a record of its own.
//!
//! A node counts the records homed at itself (`own`) and adds the rollups its direct children
//! sent up (`children`); it never counts the children's records it happens to hold in full, so
//! nothing is counted twice however deep full records travel. The rollup is an ordinary record
//! (kind `rollup`, homed at the node) and syncs up like one: to the parent, and as far as the
//! full-record depth, so a city can drill down to every township's numbers.
//!
//! Counting is a pure function of projected rows ([`CountedRow`]): the store feeds it the
//! projection columns it already keeps, so a rollup never loads a document.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::RecordKind;
use super::quota::{QuotaRule, QuotaSubject, SUGGESTION, Standing, Tally};
use super::suggestion::Satisfaction;
use crate::region::RegionCode;

/// The numbers of one subtree (or of one node's own records).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metrics {
    /// Delegate records by `"{highest level}/{status}"`.
    pub delegates: BTreeMap<String, u64>,
    /// Activities by month (`"2026-05"`) and then by kind.
    pub activities: BTreeMap<String, BTreeMap<String, u64>>,
    /// Delegates signed in at activities.
    pub sign_ins: u64,
    /// Constituents received at activities.
    pub constituents_received: u64,
    /// Sign-ins and constituents received by the month of their activity, so a page for a
    /// period counts only its months.
    pub sign_ins_by_month: BTreeMap<String, u64>,
    pub constituents_by_month: BTreeMap<String, u64>,
    /// Opinions by workflow state.
    pub opinions: BTreeMap<String, u64>,
    /// Opinions by the month they were collected.
    pub opinions_by_month: BTreeMap<String, u64>,
    /// Opinions ever passed on (转交), whatever their state now: a report says how many were
    /// passed on after they have been handled.
    pub opinions_passed_on: u64,
    /// Suggestions by workflow state.
    pub suggestions: BTreeMap<String, u64>,
    /// Suggestions by the month they were made.
    pub suggestions_by_month: BTreeMap<String, u64>,
    /// Motions (议案) by state.
    pub motions: BTreeMap<String, u64>,
    /// Suggestions by the class of their current answer (A–D).
    pub answer_classes: BTreeMap<String, u64>,
    /// Suggestions with a first complete answer, and how many of those came by the deadline.
    pub answered: u64,
    pub answered_on_time: u64,
    /// Suggestions whose awaited answer is past due.
    pub overdue: u64,
    /// Suggestions the delegate evaluated, and how many of those 满意 or 基本满意.
    pub evaluated: u64,
    pub satisfied: u64,
    /// Delegate groups held to their congress's duty rules this year, and where they stand.
    pub group_quota: Quota,
    /// Delegates held to their congress's duty rules this year, and where they stand.
    pub delegate_quota: Quota,
    /// Counters this release does not know, as a later release's child sent them: numbers, or
    /// maps of them to any depth. They are summed by name like the rest and passed on up, so
    /// a node that has not upgraded yet does not drop what its newer children count.
    #[serde(flatten)]
    pub later: BTreeMap<String, serde_json::Value>,
}

/// Adds `from` to `into` by name: numbers add, maps add key by key, anything else (which no
/// release writes) is kept as it first came.
fn add_counter(into: &mut serde_json::Value, from: &serde_json::Value) {
    use serde_json::Value;
    match (into, from) {
        (Value::Number(a), Value::Number(b)) => {
            if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
                *a = x.saturating_add(y).into();
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            for (name, value) in b {
                match a.get_mut(name) {
                    Some(held) => add_counter(held, value),
                    None => {
                        a.insert(name.clone(), value.clone());
                    }
                }
            }
        }
        _ => {}
    }
}

/// How many groups or delegates a congress holds to its duty rules, and where they stand:
/// `met` counts only those who reached every minimum, so a yearly quota is not shown met
/// before it is; `on_track` and `behind` judge the rest pro rata while periods run, `short`
/// those a finished period left below a minimum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Quota {
    pub total: u64,
    pub met: u64,
    pub on_track: u64,
    pub behind: u64,
    pub short: u64,
}

impl Quota {
    fn add(&mut self, other: Quota) {
        self.total += other.total;
        self.met += other.met;
        self.on_track += other.on_track;
        self.behind += other.behind;
        self.short += other.short;
    }

    /// Counts one subject at its standing.
    pub fn count(&mut self, standing: Standing) {
        self.total += 1;
        match standing {
            Standing::Met => self.met += 1,
            Standing::OnTrack => self.on_track += 1,
            Standing::Behind => self.behind += 1,
            Standing::Short => self.short += 1,
        }
    }

    /// Share that meets the quota; `None` when there is nothing to count.
    pub fn rate(self) -> Option<f64> {
        (self.total > 0).then(|| self.met as f64 / self.total as f64)
    }

    /// Those below their minimums: behind during a period, or short after one.
    pub fn falling_short(self) -> u64 {
        self.behind + self.short
    }
}

/// The duty quotas as process flags and configuration gave them before rules were records:
/// now only the first rule set a congress is seeded with ([`super::quota::first_rules`]),
/// and what a rollup says in its `quotas` field for readers that do not know rule records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaRules {
    /// Activities a group holds at least every quarter …
    pub group_per_quarter: u32,
    /// … and at least in a year.
    pub group_per_year: u32,
    /// Receptions of constituents a delegate joins at least in a year …
    pub delegate_receptions: u32,
    /// … and suggestions a delegate makes or co-signs at least in a year.
    pub delegate_suggestions: u32,
}

impl Default for QuotaRules {
    fn default() -> Self {
        QuotaRules {
            group_per_quarter: 1,
            group_per_year: 4,
            delegate_receptions: 3,
            delegate_suggestions: 1,
        }
    }
}

impl QuotaRules {
    /// Numbers that seed no rule at all.
    pub fn none() -> QuotaRules {
        QuotaRules {
            group_per_quarter: 0,
            group_per_year: 0,
            delegate_receptions: 0,
            delegate_suggestions: 0,
        }
    }

    /// The rule records these numbers seed a congress with, in force from `from`.
    pub fn first_rules(self, congress: RegionCode, from: NaiveDate) -> Vec<QuotaRule> {
        super::quota::first_rules(
            congress,
            from,
            self.group_per_quarter,
            self.group_per_year,
            self.delegate_receptions,
            self.delegate_suggestions,
        )
    }

    /// What of `rules` these four numbers can say, for readers that know only them: each
    /// number the rule of its shape sets, or 0 where no rule has that shape.
    pub fn as_said_by(rules: &[QuotaRule]) -> QuotaRules {
        use super::activity::ActivityKind;
        use super::quota::{QuotaCounts, QuotaPeriod, QuotaSubject};
        let find = |subject, counts, kinds: &[ActivityKind], period| {
            rules
                .iter()
                .find(|r| {
                    r.subject == subject
                        && r.group_kind.is_none()
                        && r.counts == counts
                        && r.period == period
                        && r.activity_kinds.iter().copied().eq(kinds.iter().copied())
                })
                .map_or(0, |r| r.minimum)
        };
        QuotaRules {
            group_per_quarter: find(
                QuotaSubject::Group,
                QuotaCounts::Activities,
                &[],
                QuotaPeriod::Quarter,
            ),
            group_per_year: find(
                QuotaSubject::Group,
                QuotaCounts::Activities,
                &[],
                QuotaPeriod::Year,
            ),
            delegate_receptions: find(
                QuotaSubject::Delegate,
                QuotaCounts::Activities,
                &[ActivityKind::Reception],
                QuotaPeriod::Year,
            ),
            delegate_suggestions: find(
                QuotaSubject::Delegate,
                QuotaCounts::Suggestions,
                &[],
                QuotaPeriod::Year,
            ),
        }
    }
}

/// Whether an activity with this filter tag ([`super::projection::FilterKeys::tag`]) is a
/// reception of constituents.
pub fn is_reception(tag: Option<&str>) -> bool {
    tag == Some(super::activity::ActivityKind::Reception.as_str())
}

/// What one record held by a node adds to the raw counts its quotas are judged from, whatever
/// the record's home: per subject (a group, or a delegate), year, quarter and what was done,
/// `quota:{group|delegate}:{id}:{year}:{quarter}:{what}`, where `what` is an activity's kind or
/// [`SUGGESTION`]. An activity counts for each delegate signed in, and for the group that held
/// it once anyone signed in; a suggestion for the group it was made in the name of, its lead
/// and its co-signers.
/// `people` are the record's `(delegate, role)` rows. The rules decide what of it counts when
/// the numbers are read ([`QuotaRule::judge`]).
pub fn quota_contribution(
    kind: RecordKind,
    people: &[(String, String)],
    tag: Option<&str>,
    group: Option<&str>,
    occurred_on: Option<NaiveDate>,
) -> BTreeMap<String, i64> {
    use chrono::Datelike;
    let mut out = BTreeMap::new();
    let Some(on) = occurred_on else {
        return out;
    };
    let (year, quarter) = (on.year(), on.month0() / 3 + 1);
    let sep = COUNTER_SEPARATOR;
    let (what, roles): (&str, &[&str]) = match kind {
        RecordKind::Activity => (tag.unwrap_or("unknown"), &["participant"]),
        RecordKind::Suggestion => (SUGGESTION, &["lead", "cosigner"]),
        _ => return out,
    };
    let mut add = |subject: QuotaSubject, id: &str| {
        *out.entry(format!(
            "quota{sep}{}{sep}{id}{sep}{year}{sep}{quarter}{sep}{what}",
            subject.as_str()
        ))
        .or_default() += 1;
    };
    // An activity counts for its group once someone signed in: one planned ahead (which
    // nobody can sign in to before its day) is not yet done.
    let held = kind != RecordKind::Activity || people.iter().any(|(_, role)| role == "participant");
    if let Some(group) = group
        && held
    {
        add(QuotaSubject::Group, group);
    }
    let mut counted: Vec<&str> = people
        .iter()
        .filter(|(_, role)| roles.contains(&role.as_str()))
        .map(|(delegate, _)| delegate.as_str())
        .collect();
    // A delegate listed twice (lead and co-signer, which validation refuses) counts once.
    counted.sort_unstable();
    counted.dedup();
    for delegate in counted {
        add(QuotaSubject::Delegate, delegate);
    }
    out
}

/// The range of counter names `[from, until)` that [`quota_contribution`] keeps for one
/// subject's `year`, so a store reads them with one range scan.
pub fn quota_counter_range(subject: QuotaSubject, id: &str, year: i32) -> (String, String) {
    let sep = COUNTER_SEPARATOR;
    let prefix = format!("quota{sep}{}{sep}{id}{sep}{year}", subject.as_str());
    // The character after the separator ends the range.
    let after = char::from_u32(sep as u32 + 1).unwrap_or(sep);
    (format!("{prefix}{sep}"), format!("{prefix}{after}"))
}

/// Adds a counter of [`quota_contribution`]'s to a subject's tally; names of any other form
/// are passed over.
pub fn add_quota_counter(tally: &mut Tally, name: &str, value: i64) {
    let mut parts = name.rsplitn(3, COUNTER_SEPARATOR);
    let (Some(what), Some(quarter), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let (Ok(quarter), Ok(n)) = (quarter.parse::<usize>(), u32::try_from(value)) else {
        return;
    };
    if let Some(slot) = quarter
        .checked_sub(1)
        .and_then(|q| tally.quarters.get_mut(q))
    {
        let held = slot.entry(what.to_string()).or_default();
        *held = held.saturating_add(n);
    }
}

/// What a node's rollup is computed with: when descendants count as stale, and the quotas
/// its congress's first rule set is seeded with if it has none (the rules themselves are
/// records, which every rollup reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RollupRules {
    pub stale_after: chrono::Duration,
    pub quotas: QuotaRules,
    /// A node whose last backup is older than this is listed in the fleet view.
    pub backup_max_age: chrono::Duration,
}

impl Default for RollupRules {
    fn default() -> Self {
        RollupRules {
            stale_after: chrono::Duration::hours(72),
            quotas: QuotaRules::default(),
            backup_max_age: chrono::Duration::hours(48),
        }
    }
}

impl Metrics {
    /// Adds another subtree's numbers to these.
    pub fn add(&mut self, other: &Metrics) {
        fn merge(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
            for (k, v) in from {
                *into.entry(k.clone()).or_default() += v;
            }
        }
        merge(&mut self.delegates, &other.delegates);
        for (month, kinds) in &other.activities {
            merge(self.activities.entry(month.clone()).or_default(), kinds);
        }
        self.sign_ins += other.sign_ins;
        self.constituents_received += other.constituents_received;
        merge(&mut self.sign_ins_by_month, &other.sign_ins_by_month);
        merge(
            &mut self.constituents_by_month,
            &other.constituents_by_month,
        );
        merge(&mut self.opinions, &other.opinions);
        merge(&mut self.suggestions, &other.suggestions);
        merge(&mut self.opinions_by_month, &other.opinions_by_month);
        self.opinions_passed_on += other.opinions_passed_on;
        merge(&mut self.suggestions_by_month, &other.suggestions_by_month);
        merge(&mut self.motions, &other.motions);
        merge(&mut self.answer_classes, &other.answer_classes);
        self.answered += other.answered;
        self.answered_on_time += other.answered_on_time;
        self.overdue += other.overdue;
        self.evaluated += other.evaluated;
        self.satisfied += other.satisfied;
        self.group_quota.add(other.group_quota);
        self.delegate_quota.add(other.delegate_quota);
        for (name, value) in &other.later {
            match self.later.get_mut(name) {
                Some(held) => add_counter(held, value),
                None => {
                    self.later.insert(name.clone(), value.clone());
                }
            }
        }
    }

    /// Counts one record from its projection, as of `today` (which decides what is overdue).
    pub fn count(&mut self, row: &CountedRow<'_>, today: NaiveDate) {
        let text = |key: &str| row.summary.get(key).and_then(|v| v.as_str());
        let number = |key: &str| row.summary.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
        let month = row
            .occurred_on
            .map_or_else(|| "unknown".to_string(), |d| d.format("%Y-%m").to_string());
        match row.kind {
            RecordKind::Delegate | RecordKind::Mandate => {
                if let Some(seat) = seat_counted(row) {
                    *self.delegates.entry(seat).or_default() += 1;
                }
            }
            RecordKind::Activity => {
                let kind = text("kind").unwrap_or("unknown").to_string();
                *self
                    .activities
                    .entry(month.clone())
                    .or_default()
                    .entry(kind)
                    .or_default() += 1;
                self.sign_ins += number("sign_ins");
                self.constituents_received += number("constituents_received");
                for (series, n) in [
                    (&mut self.sign_ins_by_month, number("sign_ins")),
                    (
                        &mut self.constituents_by_month,
                        number("constituents_received"),
                    ),
                ] {
                    if n > 0 {
                        *series.entry(month.clone()).or_default() += n;
                    }
                }
            }
            RecordKind::Opinion => {
                let state = row.status.unwrap_or("unknown").to_string();
                *self.opinions.entry(state).or_default() += 1;
                *self.opinions_by_month.entry(month).or_default() += 1;
                if row.summary.get("passed_on").and_then(|v| v.as_bool()) == Some(true) {
                    self.opinions_passed_on += 1;
                }
            }
            RecordKind::Suggestion => {
                let state = row.status.unwrap_or("unknown").to_string();
                *self.suggestions.entry(state).or_default() += 1;
                *self.suggestions_by_month.entry(month).or_default() += 1;
                if let Some(class) = text("class") {
                    *self.answer_classes.entry(class.to_string()).or_default() += 1;
                }
                if let Some(on_time) = row
                    .summary
                    .get("answered_on_time")
                    .and_then(|v| v.as_bool())
                {
                    self.answered += 1;
                    self.answered_on_time += u64::from(on_time);
                }
                if row.due_on.is_some_and(|due| due < today) {
                    self.overdue += 1;
                }
                if let Some(evaluation) = text("evaluation") {
                    self.evaluated += 1;
                    if evaluation == Satisfaction::Satisfied.as_str()
                        || evaluation == Satisfaction::BasicallySatisfied.as_str()
                    {
                        self.satisfied += 1;
                    }
                }
            }
            RecordKind::Motion => {
                let state = row.status.unwrap_or("unknown").to_string();
                *self.motions.entry(state).or_default() += 1;
            }
            RecordKind::Group
            | RecordKind::Venue
            | RecordKind::Notice
            | RecordKind::Personal
            | RecordKind::Rollup
            | RecordKind::QuotaRule
            | RecordKind::Revocation => {}
        }
    }

    /// Rebuilds the numbers from a node's own counters (the sum of its records'
    /// [`contribution`]s), judged as of `today`: a suggestion awaiting an answer due before
    /// today is overdue. Equal to counting the records one by one with [`Metrics::count`].
    pub fn from_counters<'a>(
        counters: impl IntoIterator<Item = (&'a str, i64)>,
        today: NaiveDate,
    ) -> Metrics {
        let mut m = Metrics::default();
        let today = today.to_string();
        for (name, value) in counters {
            let Ok(n) = u64::try_from(value) else {
                continue;
            };
            let mut parts = name.split(COUNTER_SEPARATOR);
            let (Some(head), first, second) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let add = |map: &mut BTreeMap<String, u64>, key: Option<&str>| {
                if let Some(key) = key {
                    *map.entry(key.to_string()).or_default() += n;
                }
            };
            match head {
                "delegates" => add(&mut m.delegates, first),
                "activities" => {
                    if let (Some(month), Some(kind)) = (first, second) {
                        *m.activities
                            .entry(month.to_string())
                            .or_default()
                            .entry(kind.to_string())
                            .or_default() += n;
                    }
                }
                "sign_ins" => m.sign_ins += n,
                "constituents_received" => m.constituents_received += n,
                "sign_ins_by_month" => add(&mut m.sign_ins_by_month, first),
                "constituents_by_month" => add(&mut m.constituents_by_month, first),
                "opinions" => add(&mut m.opinions, first),
                "opinions_by_month" => add(&mut m.opinions_by_month, first),
                "opinions_passed_on" => m.opinions_passed_on += n,
                "suggestions" => add(&mut m.suggestions, first),
                "suggestions_by_month" => add(&mut m.suggestions_by_month, first),
                "motions" => add(&mut m.motions, first),
                "answer_classes" => add(&mut m.answer_classes, first),
                "answered" => m.answered += n,
                "answered_on_time" => m.answered_on_time += n,
                "evaluated" => m.evaluated += n,
                "satisfied" => m.satisfied += n,
                // Dates in ISO form compare as text.
                "due" if first.is_some_and(|due| due < today.as_str()) => m.overdue += n,
                _ => {}
            }
        }
        // A counter at zero is no key at all, as when counting records one by one.
        m.delegates.retain(|_, v| *v > 0);
        m.sign_ins_by_month.retain(|_, v| *v > 0);
        m.constituents_by_month.retain(|_, v| *v > 0);
        m
    }

    /// These numbers with the monthly series cut to the months of `period` (`"2026"` or
    /// `"2026-05"`), and the sign-ins and constituents received summed over those months.
    /// Counts by state are the subtree's state now and are kept whole: a suggestion's state
    /// has no month.
    pub fn in_period(&self, period: &Period) -> Metrics {
        let keep = |series: &BTreeMap<String, u64>| -> BTreeMap<String, u64> {
            series
                .iter()
                .filter(|(month, _)| period.contains(month))
                .map(|(k, v)| (k.clone(), *v))
                .collect()
        };
        Metrics {
            activities: self
                .activities
                .iter()
                .filter(|(month, _)| period.contains(month))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            opinions_by_month: keep(&self.opinions_by_month),
            suggestions_by_month: keep(&self.suggestions_by_month),
            sign_ins: keep(&self.sign_ins_by_month).values().sum(),
            constituents_received: keep(&self.constituents_by_month).values().sum(),
            sign_ins_by_month: keep(&self.sign_ins_by_month),
            constituents_by_month: keep(&self.constituents_by_month),
            ..self.clone()
        }
    }

    /// Opinions collected in the months these numbers hold (all of them, or a period's).
    pub fn opinions_collected(&self) -> u64 {
        self.opinions_by_month.values().sum()
    }

    /// Suggestions assigned to handling units (交办) at some point: every state from 办理中 on.
    pub fn assigned_total(&self) -> u64 {
        use super::suggestion::SuggestionState as S;
        [
            S::Assigned,
            S::SentBack,
            S::Answered,
            S::Rehandling,
            S::Tracking,
            S::Satisfied,
            S::Closed,
        ]
        .iter()
        .filter_map(|s| self.suggestions.get(s.as_str()))
        .sum()
    }

    /// 办复率: assigned suggestions with a complete answer; `None` before any assignment.
    pub fn answered_rate(&self) -> Option<f64> {
        let assigned = self.assigned_total();
        (assigned > 0).then(|| self.answered as f64 / assigned as f64)
    }

    /// 办结率: assigned suggestions closed (销号); `None` before any assignment.
    pub fn closed_rate(&self) -> Option<f64> {
        let assigned = self.assigned_total();
        let closed = self
            .suggestions
            .get(super::suggestion::SuggestionState::Closed.as_str())
            .copied()
            .unwrap_or(0);
        (assigned > 0).then(|| closed as f64 / assigned as f64)
    }

    /// Share of first answers that came by their deadline; `None` before any answer.
    pub fn on_time_rate(&self) -> Option<f64> {
        (self.answered > 0).then(|| self.answered_on_time as f64 / self.answered as f64)
    }

    /// (满意 + 基本满意) over evaluated; `None` before any evaluation.
    pub fn satisfaction_rate(&self) -> Option<f64> {
        (self.evaluated > 0).then(|| self.satisfied as f64 / self.evaluated as f64)
    }

    /// Delegate records, whatever their level and status.
    pub fn delegates_total(&self) -> u64 {
        self.delegates.values().sum()
    }

    /// Activities of every month and kind.
    pub fn activities_total(&self) -> u64 {
        self.activities.values().flat_map(|k| k.values()).sum()
    }

    /// All opinions, whatever their state.
    pub fn opinions_total(&self) -> u64 {
        self.opinions.values().sum()
    }

    /// All suggestions, whatever their state.
    pub fn suggestions_total(&self) -> u64 {
        self.suggestions.values().sum()
    }

    /// All motions, whatever their state.
    pub fn motions_total(&self) -> u64 {
        self.motions.values().sum()
    }
}

/// A year or a month, as the monthly series of a rollup are cut to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Period(String);

impl Period {
    /// Parses `"2026"` or `"2026-05"`; the error names the rule broken.
    pub fn parse(text: &str) -> Result<Period, String> {
        let year_ok = |y: &str| y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit());
        let ok = match text.split_once('-') {
            None => year_ok(text),
            Some((y, m)) => {
                year_ok(y) && m.len() == 2 && m.parse::<u32>().is_ok_and(|m| (1..=12).contains(&m))
            }
        };
        if ok {
            Ok(Period(text.to_string()))
        } else {
            Err(format!(
                "a year (2026) or a month (2026-05) is expected, not {text:?}"
            ))
        }
    }

    /// Whether a month key (`"2026-05"`) falls in this period.
    pub fn contains(&self, month: &str) -> bool {
        month == self.0
            || month
                .strip_prefix(self.0.as_str())
                .is_some_and(|rest| rest.starts_with('-'))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first day of the period and the first day after it, as `YYYY-MM-DD` text, so a
    /// date column can be compared against them with an index.
    pub fn date_range(&self) -> (String, String) {
        let (year, month) = match self.0.split_once('-') {
            None => (self.0.parse::<i32>().unwrap_or(0), None),
            Some((y, m)) => (y.parse().unwrap_or(0), m.parse::<u32>().ok()),
        };
        match month {
            None => (format!("{year:04}-01-01"), format!("{:04}-01-01", year + 1)),
            Some(12) => (format!("{year:04}-12-01"), format!("{:04}-01-01", year + 1)),
            Some(m) => (
                format!("{year:04}-{m:02}-01"),
                format!("{year:04}-{:02}-01", m + 1),
            ),
        }
    }
}

/// The projection columns of one record, as counting reads them.
#[derive(Clone, Copy, Debug)]
pub struct CountedRow<'a> {
    pub kind: RecordKind,
    pub status: Option<&'a str>,
    pub occurred_on: Option<NaiveDate>,
    pub due_on: Option<NaiveDate>,
    pub summary: &'a serde_json::Value,
}

/// Separates the parts of a counter's name (`activities:2026-05:reception`); no part (a month,
/// a date, a state or kind identifier, a level) contains it.
pub const COUNTER_SEPARATOR: char = ':';

/// What one record adds to its home node's own counters: named counts, a pure function of its
/// projected row, with nothing that depends on the day it is read. A store keeps each record's
/// contribution beside it and moves the counters by the difference when the record changes, so
/// a write costs the counters it touches, whatever the node holds. [`Metrics::from_counters`]
/// judges the date-dependent ones (overdue) when the numbers are read.
pub fn contribution(row: &CountedRow<'_>) -> BTreeMap<String, i64> {
    let mut out: BTreeMap<String, i64> = BTreeMap::new();
    let mut add = |parts: &[&str], n: i64| {
        if n != 0 {
            let sep = COUNTER_SEPARATOR.to_string();
            *out.entry(parts.join(&sep)).or_default() += n;
        }
    };
    let text = |key: &str| row.summary.get(key).and_then(|v| v.as_str());
    let number = |key: &str| {
        row.summary
            .get(key)
            .and_then(|v| v.as_u64())
            .map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX))
    };
    let month = row
        .occurred_on
        .map_or_else(|| "unknown".to_string(), |d| d.format("%Y-%m").to_string());
    match row.kind {
        RecordKind::Delegate | RecordKind::Mandate => {
            if let Some(seat) = seat_counted(row) {
                add(&["delegates", &seat], 1);
            }
        }
        RecordKind::Activity => {
            add(
                &["activities", &month, text("kind").unwrap_or("unknown")],
                1,
            );
            add(&["sign_ins"], number("sign_ins"));
            add(&["constituents_received"], number("constituents_received"));
            add(&["sign_ins_by_month", &month], number("sign_ins"));
            add(
                &["constituents_by_month", &month],
                number("constituents_received"),
            );
        }
        RecordKind::Opinion => {
            add(&["opinions", row.status.unwrap_or("unknown")], 1);
            add(&["opinions_by_month", &month], 1);
            if row.summary.get("passed_on").and_then(|v| v.as_bool()) == Some(true) {
                add(&["opinions_passed_on"], 1);
            }
        }
        RecordKind::Suggestion => {
            add(&["suggestions", row.status.unwrap_or("unknown")], 1);
            add(&["suggestions_by_month", &month], 1);
            if let Some(class) = text("class") {
                add(&["answer_classes", class], 1);
            }
            if let Some(on_time) = row
                .summary
                .get("answered_on_time")
                .and_then(|v| v.as_bool())
            {
                add(&["answered"], 1);
                add(&["answered_on_time"], i64::from(on_time));
            }
            if let Some(due) = row.due_on {
                add(&["due", &due.to_string()], 1);
            }
            if let Some(evaluation) = text("evaluation") {
                add(&["evaluated"], 1);
                if evaluation == Satisfaction::Satisfied.as_str()
                    || evaluation == Satisfaction::BasicallySatisfied.as_str()
                {
                    add(&["satisfied"], 1);
                }
            }
        }
        RecordKind::Motion => {
            add(&["motions", row.status.unwrap_or("unknown")], 1);
        }
        RecordKind::Group
        | RecordKind::Venue
        | RecordKind::Notice
        | RecordKind::Personal
        | RecordKind::Rollup
        | RecordKind::QuotaRule
        | RecordKind::Revocation => {}
    }
    out
}

/// Where a delegate record or a mandate counts among `delegates` (`"{level}/{status}"`), if
/// anywhere. A mandate counts at the congress that granted it, by its level: a person with
/// seats at a township and a county counts once at each, and nowhere twice. A person record
/// counts only if it carries seats inside itself (registered before mandates were records),
/// by the highest of them, as it always did; a person registered since counts through their
/// mandates alone.
fn seat_counted(row: &CountedRow<'_>) -> Option<String> {
    let text = |key: &str| row.summary.get(key).and_then(|v| v.as_str());
    // A person merged into another, and a seat merged into the other person's same seat,
    // are registrations of someone counted already.
    if row.status == Some(super::delegate::MandateStatus::Merged.as_str())
        || text("merged_into").is_some()
    {
        return None;
    }
    let level = match row.kind {
        RecordKind::Mandate => text("level"),
        _ => {
            let legacy = row
                .summary
                .get("mandates")
                .and_then(|m| m.as_array())
                .is_some_and(|m| !m.is_empty());
            if !legacy {
                return None;
            }
            text("highest_level")
        }
    };
    Some(format!(
        "{}/{}",
        level.unwrap_or("unknown"),
        row.status.unwrap_or("unknown")
    ))
}

/// A direct child's numbers as its last rollup gave them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildRollup {
    /// The child node's name (王店镇人大主席团), so a parent can show its children by name.
    #[serde(default)]
    pub name: String,
    /// When the child computed them: the numbers are as of then.
    pub as_of: DateTime<Utc>,
    /// When this node last completed a sync round with the child, to the minute (finer would
    /// rewrite the rollup on every round for nothing).
    #[serde(default)]
    pub last_sync: Option<DateTime<Utc>>,
    pub total: Metrics,
}

/// A descendant whose numbers are older than the counting node's staleness limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleRegion {
    pub region: RegionCode,
    /// When its numbers were computed; `None` if none ever arrived.
    pub as_of: Option<DateTime<Utc>>,
}

/// A node's rollup record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollup {
    /// The name of the node that counted these numbers.
    #[serde(default)]
    pub name: String,
    /// When these numbers were last computed with a difference from the ones before.
    pub computed_at: DateTime<Utc>,
    /// Which publication of its home node's rollup this is: one more than the one the home
    /// held when it published. A holder keeps the publication that [`Rollup::supersedes`] the
    /// others, whatever order they arrive in. 0 in rollups from before publications.
    #[serde(default)]
    pub generation: u64,
    /// The node's own records.
    pub own: Metrics,
    /// Each direct child's last rollup, keyed by its region code.
    #[serde(default)]
    pub children: BTreeMap<String, ChildRollup>,
    /// `own` plus every child's total: the whole subtree.
    pub total: Metrics,
    /// Descendants, at any depth, whose numbers are stale, as this node and its children see it.
    #[serde(default)]
    pub stale: Vec<StaleRegion>,
    /// The quotas this node counted its own groups and delegates against, as the four numbers
    /// releases before rule records read ([`QuotaRules::as_said_by`]).
    #[serde(default)]
    pub quotas: QuotaRules,
    /// The duty rules in force at this node's congress that its own groups and delegates were
    /// judged against.
    #[serde(default)]
    pub rules: Vec<QuotaRule>,
    /// What the node states about itself: its release, protocol range, certificate, last
    /// check and last backup. `None` in rollups of releases before the fleet view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<super::fleet::NodeFacts>,
    /// The fleet of its whole subtree, itself included.
    #[serde(default)]
    pub fleet: super::fleet::Fleet,
}

impl Rollup {
    /// Composes a rollup from the node's own numbers and its children's rollups.
    /// `expected_children` are the children this node has ever linked with: one that never sent a
    /// rollup is stale too.
    pub fn compose(
        now: DateTime<Utc>,
        own: Metrics,
        children: BTreeMap<RegionCode, Rollup>,
        links: &BTreeMap<RegionCode, Option<DateTime<Utc>>>,
        rules: &RollupRules,
    ) -> Rollup {
        let stale_after = rules.stale_after;
        let mut total = own.clone();
        let mut stale = Vec::new();
        let mut entries = BTreeMap::new();
        for (region, child) in &children {
            total.add(&child.total);
            if now - child.computed_at > stale_after {
                stale.push(StaleRegion {
                    region: *region,
                    as_of: Some(child.computed_at),
                });
            }
            stale.extend(child.stale.iter().cloned());
            entries.insert(
                region.to_string(),
                ChildRollup {
                    name: child.name.clone(),
                    as_of: child.computed_at,
                    last_sync: links
                        .get(region)
                        .copied()
                        .flatten()
                        .map(|t| t.duration_trunc(chrono::Duration::minutes(1)).unwrap_or(t)),
                    total: child.total.clone(),
                },
            );
        }
        for region in links.keys() {
            if !children.contains_key(region) {
                stale.push(StaleRegion {
                    region: *region,
                    as_of: None,
                });
            }
        }
        stale.sort_by_key(|s| s.region);
        stale.dedup_by_key(|s| s.region);
        // The children's fleets; the node adds its own line, from facts only it knows.
        let mut fleet = super::fleet::Fleet::default();
        for (region, child) in &children {
            fleet.add(&super::fleet::Fleet::of_child(region, &child.fleet));
        }
        Rollup {
            name: String::new(),
            computed_at: now,
            generation: 0,
            own,
            children: entries,
            total,
            stale,
            quotas: QuotaRules::default(),
            rules: Vec::new(),
            facts: None,
            fleet,
        }
    }

    /// This rollup with every monthly series cut to `period` (see [`Metrics::in_period`]).
    pub fn in_period(&self, period: &Period) -> Rollup {
        Rollup {
            own: self.own.in_period(period),
            total: self.total.in_period(period),
            children: self
                .children
                .iter()
                .map(|(region, child)| {
                    (
                        region.clone(),
                        ChildRollup {
                            total: child.total.in_period(period),
                            ..child.clone()
                        },
                    )
                })
                .collect(),
            ..self.clone()
        }
    }

    /// Whether this publication of a rollup is newer than `other`: a later generation, or at
    /// the same generation (two publications a restored home made from the same point) the
    /// later computation. Publications equal in both are told apart by their change hash.
    pub fn supersedes(&self, other: &Rollup) -> Option<bool> {
        match (self.generation, self.computed_at).cmp(&(other.generation, other.computed_at)) {
            std::cmp::Ordering::Greater => Some(true),
            std::cmp::Ordering::Less => Some(false),
            std::cmp::Ordering::Equal => None,
        }
    }

    /// Whether `other` says the same as this rollup, apart from when it was computed.
    pub fn same_numbers(&self, other: &Rollup) -> bool {
        self.name == other.name
            && self.own == other.own
            && self.children == other.children
            && self.total == other.total
            && self.stale == other.stale
            && self.quotas == other.quotas
            && self.rules == other.rules
            && self.facts == other.facts
            && self.fleet == other.fleet
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    mod counters {
        use proptest::prelude::*;
        use serde_json::json;

        use super::super::*;

        fn day(offset: i64) -> NaiveDate {
            NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Duration::days(offset)
        }

        /// A projected row as the store keeps it, of any kind and state.
        fn row() -> impl Strategy<
            Value = (
                RecordKind,
                Option<String>,
                Option<i64>,
                Option<i64>,
                serde_json::Value,
            ),
        > {
            let kind = prop_oneof![
                Just(RecordKind::Delegate),
                Just(RecordKind::Activity),
                Just(RecordKind::Opinion),
                Just(RecordKind::Suggestion),
                Just(RecordKind::Group),
                Just(RecordKind::Notice),
            ];
            let status = proptest::option::of(prop_oneof![
                Just("received".to_string()),
                Just("awaiting_answer".to_string()),
                Just("closed".to_string()),
                Just("serving".to_string()),
            ]);
            let summary = (
                proptest::option::of(prop_oneof![Just("reception"), Just("inspection")]),
                proptest::option::of(prop_oneof![Just("a"), Just("b"), Just("d")]),
                proptest::option::of(any::<bool>()),
                proptest::option::of(prop_oneof![
                    Just("satisfied"),
                    Just("basically_satisfied"),
                    Just("unsatisfied")
                ]),
                0u64..40,
                proptest::option::of(prop_oneof![Just("county"), Just("national")]),
            )
                .prop_map(|(kind, class, on_time, evaluation, sign_ins, level)| {
                    json!({
                        "kind": kind, "class": class, "answered_on_time": on_time,
                        "evaluation": evaluation, "sign_ins": sign_ins,
                        "constituents_received": sign_ins * 3, "highest_level": level,
                    })
                });
            (
                kind,
                status,
                proptest::option::of(0i64..800),
                proptest::option::of(0i64..800),
                summary,
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// The counters rebuilt into numbers, as of any day, are what counting the rows one
            /// by one gives; a row changed is its old contribution taken off and its new one
            /// added.
            #[test]
            fn numbers_from_counters_equal_counting_the_rows(
                rows in proptest::collection::vec(row(), 0..40),
                changed in proptest::collection::vec((0usize..40, row()), 0..10),
                today in 0i64..800,
            ) {
                let counted = |r: &(RecordKind, Option<String>, Option<i64>, Option<i64>, serde_json::Value)| {
                    contribution(&CountedRow {
                        kind: r.0,
                        status: r.1.as_deref(),
                        occurred_on: r.2.map(day),
                        due_on: r.3.map(day),
                        summary: &r.4,
                    })
                };
                let mut rows = rows;
                let mut counters: BTreeMap<String, i64> = BTreeMap::new();
                for r in &rows {
                    for (name, n) in counted(r) {
                        *counters.entry(name).or_default() += n;
                    }
                }
                for (i, new) in changed {
                    if rows.is_empty() {
                        break;
                    }
                    let i = i % rows.len();
                    for (name, n) in counted(&rows[i]) {
                        *counters.entry(name).or_default() -= n;
                    }
                    for (name, n) in counted(&new) {
                        *counters.entry(name).or_default() += n;
                    }
                    rows[i] = new;
                }
                counters.retain(|_, n| *n != 0);
                let mut expected = Metrics::default();
                for r in &rows {
                    expected.count(
                        &CountedRow {
                            kind: r.0,
                            status: r.1.as_deref(),
                            occurred_on: r.2.map(day),
                            due_on: r.3.map(day),
                            summary: &r.4,
                        },
                        day(today),
                    );
                }
                let rebuilt = Metrics::from_counters(
                    counters.iter().map(|(k, v)| (k.as_str(), *v)),
                    day(today),
                );
                prop_assert_eq!(rebuilt, expected);
            }
        }
    }

    #[test]
    fn a_period_is_a_year_or_a_month_and_cuts_the_monthly_series() {
        for bad in ["", "26", "2026-13", "2026-5", "2026-05-01", "abcd"] {
            assert!(Period::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let year = Period::parse("2026").unwrap();
        let may = Period::parse("2026-05").unwrap();
        assert!(year.contains("2026-05") && year.contains("2026-12"));
        assert!(!year.contains("2025-05") && !year.contains("20261-01"));
        assert!(may.contains("2026-05") && !may.contains("2026-06"));
        assert_eq!(may.date_range(), ("2026-05-01".into(), "2026-06-01".into()));
        assert_eq!(
            Period::parse("2026-12").unwrap().date_range(),
            ("2026-12-01".into(), "2027-01-01".into())
        );
        assert_eq!(
            year.date_range(),
            ("2026-01-01".into(), "2027-01-01".into())
        );
        let mut m = Metrics::default();
        m.opinions.insert("handled".into(), 3);
        m.opinions_by_month.insert("2026-05".into(), 2);
        m.opinions_by_month.insert("2025-12".into(), 1);
        let cut = m.in_period(&year);
        assert_eq!(cut.opinions_by_month.len(), 1);
        assert_eq!(cut.opinions_by_month["2026-05"], 2);
        assert_eq!(cut.opinions["handled"], 3, "states are kept whole");
        assert_eq!(cut.opinions_collected(), 2);
    }

    /// An activity of March and one of May, with their sign-ins and constituents, and an
    /// opinion passed on and since handled: a page for May counts May's people only, and the
    /// opinion counts as passed on after it was handled.
    #[test]
    fn a_period_counts_its_months_people_and_passed_on_opinions_stay_counted() {
        let activity = |sign_ins: u64, received: u64| json!({ "kind": "reception", "sign_ins": sign_ins, "constituents_received": received });
        let handled = json!({ "passed_on": true, "passed_on_to": "镇城建办" });
        let rows = [
            (
                RecordKind::Activity,
                None,
                Some("2026-03-10"),
                activity(4, 20),
            ),
            (
                RecordKind::Activity,
                None,
                Some("2026-05-10"),
                activity(6, 31),
            ),
            (
                RecordKind::Opinion,
                Some("handled"),
                Some("2026-05-12"),
                handled,
            ),
        ];
        let mut counted = Metrics::default();
        let mut counters: BTreeMap<String, i64> = BTreeMap::new();
        for (kind, status, on, summary) in &rows {
            let row = CountedRow {
                kind: *kind,
                status: *status,
                occurred_on: on.map(day),
                due_on: None,
                summary,
            };
            counted.count(&row, day("2026-06-01"));
            for (name, n) in contribution(&row) {
                *counters.entry(name).or_default() += n;
            }
        }
        let rebuilt = Metrics::from_counters(
            counters.iter().map(|(k, v)| (k.as_str(), *v)),
            day("2026-06-01"),
        );
        assert_eq!(rebuilt, counted);
        assert_eq!(counted.opinions_passed_on, 1);
        assert_eq!((counted.sign_ins, counted.constituents_received), (10, 51));
        let may = counted.in_period(&Period::parse("2026-05").unwrap());
        assert_eq!((may.sign_ins, may.constituents_received), (6, 31));
        assert_eq!(may.opinions_collected(), 1);
        let april = counted.in_period(&Period::parse("2026-04").unwrap());
        assert_eq!((april.sign_ins, april.constituents_received), (0, 0));
        assert_eq!(
            april.opinions_passed_on, 1,
            "a cumulative count is kept whole"
        );
    }

    /// 办复率 and 办结率 over the suggestions assigned, whatever state each reached since.
    #[test]
    fn answered_and_closed_rates_are_over_the_assigned() {
        let mut m = Metrics::default();
        assert_eq!((m.answered_rate(), m.closed_rate()), (None, None));
        for (state, n) in [
            ("submitted", 5),
            ("accepted", 1),
            ("assigned", 2),
            ("tracking", 1),
            ("closed", 1),
        ] {
            m.suggestions.insert(state.into(), n);
        }
        m.answered = 2;
        assert_eq!(m.assigned_total(), 4);
        assert_eq!(m.answered_rate(), Some(0.5));
        assert_eq!(m.closed_rate(), Some(0.25));
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn code(s: &str) -> RegionCode {
        RegionCode::parse("region", s).unwrap()
    }

    #[test]
    fn suggestions_count_answers_deadlines_and_satisfaction() {
        let mut m = Metrics::default();
        let today = day("2026-06-01");
        let rows = [
            (Some("assigned"), Some(day("2026-05-01")), json!({})),
            (Some("assigned"), Some(day("2026-07-01")), json!({})),
            (
                Some("answered"),
                None,
                json!({"class": "A", "answered_on_time": true}),
            ),
            (
                Some("closed"),
                None,
                json!({"class": "B", "answered_on_time": false, "evaluation": "basically_satisfied"}),
            ),
            (
                Some("rehandling"),
                None,
                json!({"class": "C", "answered_on_time": true, "evaluation": "dissatisfied"}),
            ),
        ];
        for (status, due_on, summary) in &rows {
            m.count(
                &CountedRow {
                    kind: RecordKind::Suggestion,
                    status: *status,
                    occurred_on: None,
                    due_on: *due_on,
                    summary,
                },
                today,
            );
        }
        assert_eq!(m.suggestions_total(), 5);
        assert_eq!(m.suggestions["assigned"], 2);
        assert_eq!((m.answered, m.answered_on_time), (3, 2));
        assert_eq!(m.overdue, 1, "only the answer due before today is overdue");
        assert_eq!((m.evaluated, m.satisfied), (2, 1));
        assert_eq!(m.satisfaction_rate(), Some(0.5));
        assert_eq!(m.answer_classes.len(), 3);
    }

    /// Counters a later release added (here hearings by state and a plain count) reach a node
    /// that does not know them inside its children's rollups: it sums them by name with its
    /// own and passes them on in its rollup, instead of dropping them.
    #[test]
    fn counters_this_release_does_not_know_are_summed_and_passed_on() {
        let now = chrono::Utc::now();
        let child = |received: u64| -> Rollup {
            serde_json::from_value(json!({
                "computed_at": now,
                "generation": 3,
                "own": {},
                "total": {
                    "opinions": { "received": received },
                    "hearings": { "submitted": received, "by_kind": { "law": 1 } },
                    "petitions": 2
                }
            }))
            .unwrap()
        };
        let children = BTreeMap::from([
            (code("330411101000"), child(1)),
            (code("330411102000"), child(4)),
        ]);
        let rollup = Rollup::compose(
            now,
            Metrics::default(),
            children,
            &BTreeMap::new(),
            &RollupRules::default(),
        );
        assert_eq!(rollup.total.opinions["received"], 5);
        let sent = serde_json::to_value(&rollup).unwrap();
        assert_eq!(
            sent["total"]["hearings"],
            json!({ "submitted": 5, "by_kind": { "law": 2 } })
        );
        assert_eq!(sent["total"]["petitions"], 4);
        // And the parent's parent reads them back as it got them.
        let again: Rollup = serde_json::from_value(sent).unwrap();
        assert_eq!(again.total, rollup.total);
    }

    #[test]
    fn quota_counters_keep_raw_counts_that_rules_judge_when_read() {
        let on = NaiveDate::from_ymd_opt(2026, 5, 6).unwrap();
        let people = vec![
            ("D1".to_string(), "participant".to_string()),
            ("D2".to_string(), "participant".to_string()),
        ];
        let activity = quota_contribution(
            RecordKind::Activity,
            &people,
            Some("reception"),
            Some("G1"),
            Some(on),
        );
        assert_eq!(
            activity.keys().cloned().collect::<Vec<_>>(),
            [
                "quota:delegate:D1:2026:2:reception",
                "quota:delegate:D2:2026:2:reception",
                "quota:group:G1:2026:2:reception",
            ]
        );
        let suggestion = quota_contribution(
            RecordKind::Suggestion,
            &[
                ("D1".to_string(), "lead".to_string()),
                ("D2".to_string(), "cosigner".to_string()),
            ],
            Some("a"),
            None,
            Some(on),
        );
        assert_eq!(
            suggestion.get("quota:delegate:D2:2026:2:suggestion"),
            Some(&1)
        );
        // The counters of one subject's year are one range, and build its tally.
        let (from, until) = quota_counter_range(QuotaSubject::Delegate, "D1", 2026);
        let mut tally = Tally::default();
        for (name, n) in activity.iter().chain(&suggestion) {
            if name.as_str() >= from.as_str() && name.as_str() < until.as_str() {
                add_quota_counter(&mut tally, name, *n);
            }
        }
        assert_eq!(tally.quarters[1].get("reception"), Some(&1));
        assert_eq!(tally.quarters[1].get(SUGGESTION), Some(&1));
        assert!(tally.quarters[0].is_empty());
        // Judged by the default rules: one reception of three is behind in December.
        let rules = QuotaRules::default().first_rules(code("330411000000"), on);
        let december = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let judged = super::super::quota::SubjectStanding::judge(
            QuotaSubject::Delegate,
            "D1".into(),
            "沈建华".into(),
            None,
            &super::super::quota::RuleBook::new(&rules),
            &tally,
            2026,
            december,
        )
        .unwrap();
        assert_eq!(judged.standing, Standing::Behind);
        assert_eq!(QuotaRules::as_said_by(&rules), QuotaRules::default());
    }

    #[test]
    fn a_subtree_total_is_its_own_records_plus_its_childrens_totals() {
        let now = Utc::now();
        let mut own = Metrics::default();
        own.opinions.insert("received".into(), 2);
        let mut child_total = Metrics::default();
        child_total.opinions.insert("received".into(), 3);
        child_total.opinions.insert("handled".into(), 1);
        let child = Rollup {
            name: "秀洲区人大常委会".into(),
            computed_at: now - chrono::Duration::days(3),
            generation: 1,
            own: child_total.clone(),
            children: BTreeMap::new(),
            total: child_total,
            stale: vec![StaleRegion {
                region: code("330411101000"),
                as_of: None,
            }],
            quotas: QuotaRules::default(),
            rules: Vec::new(),
            facts: None,
            fleet: Default::default(),
        };
        let rollup = Rollup::compose(
            now,
            own,
            BTreeMap::from([(code("330411102000"), child)]),
            &BTreeMap::from([
                (code("330411102000"), Some(now)),
                (code("330411103000"), None),
            ]),
            &RollupRules {
                stale_after: chrono::Duration::days(1),
                ..RollupRules::default()
            },
        );
        assert_eq!(rollup.total.opinions["received"], 5);
        assert_eq!(rollup.total.opinions["handled"], 1);
        let stale: Vec<_> = rollup.stale.iter().map(|s| s.region.to_string()).collect();
        assert_eq!(
            stale,
            ["330411101000", "330411102000", "330411103000"],
            "the grandchild the child reported, the child itself (3 days old), the silent child"
        );
    }
}
