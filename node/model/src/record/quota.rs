//! Duty quotas (履职要求) as a congress writes them: each rule a record of its own.
//!
//! A congress's standing committee sets what its delegates and delegate groups must do in a
//! quarter or a year: "each professional group at least three 视察, 执法检查 or 专题调研 and two
//! suggestions a year". A [`QuotaRule`] says one such sentence. It is homed at the congress
//! that sets it, only that congress writes it (the authority rules), and it travels down the
//! congress's subtree, so every node below can show a stationed delegate's rules. Rules are
//! effective-dated: changing one ends the rule in force and starts a new one, so a past year
//! is judged by the rules that held then.
//!
//! Counting and judging are apart. A node keeps raw counts per subject, year, quarter and what
//! was done (a [`Tally`]), whatever the rules; [`QuotaRule::judge`] holds a tally against a rule
//! when a number is read, so a new rule needs no new counters and a rule change needs no
//! recount. During a period the judgement is pro rata: a yearly minimum of four is on track
//! in July with two.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use super::activity::ActivityKind;
use super::group::GroupKind;
use crate::region::RegionCode;
use crate::validate::{ValidationError, bounded_text, required_text};

labelled_enum!(QuotaSubject {
    Group => ("group", "代表小组"),
    Delegate => ("delegate", "代表"),
});

labelled_enum!(QuotaPeriod {
    Quarter => ("quarter", "每季度"),
    Year => ("year", "每年"),
});

labelled_enum!(QuotaCounts {
    Activities => ("activities", "活动"),
    Suggestions => ("suggestions", "建议"),
});

labelled_enum!(
    /// Where a subject stands against a rule. Met: the whole period's minimum is reached (for
    /// a quarterly rule, every quarter's so far). On track: not yet, but at or above the share
    /// of the minimum the days gone call for. Behind: below that share, with time left.
    /// Short: a period is over and its minimum was not reached.
    Standing {
        Met => ("met", "已达标"),
        OnTrack => ("on_track", "进度正常"),
        Behind => ("behind", "进度落后"),
        Short => ("short", "未达标"),
    }
);

/// What a tally counts suggestions under, beside the activity kinds' identifiers (which never
/// take this name).
pub const SUGGESTION: &str = "suggestion";

/// Most a minimum may be: no congress asks for more, and a typo of 30000 is refused.
const MAX_MINIMUM: u32 = 1000;

/// One duty rule of a congress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaRule {
    /// The congress that sets the rule and whose delegates or groups it binds: always the
    /// rule's home.
    pub congress: RegionCode,
    pub subject: QuotaSubject,
    /// For a group rule, which groups it binds (专业 or 区域); every group when empty.
    #[serde(default)]
    pub group_kind: Option<GroupKind>,
    pub counts: QuotaCounts,
    /// For an activity rule, the kinds that count; any kind when empty.
    #[serde(default)]
    pub activity_kinds: BTreeSet<ActivityKind>,
    pub period: QuotaPeriod,
    /// At least this many in each period.
    pub minimum: u32,
    /// The first day the rule holds.
    pub from: NaiveDate,
    /// The first day it no longer holds; open while empty.
    #[serde(default)]
    pub until: Option<NaiveDate>,
    /// Where the congress wrote it (《代表履职管理办法》第八条 …), as staff cite it.
    #[serde(default)]
    pub basis: Option<String>,
}

/// What makes two rules the same requirement, one replacing the other when it changes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct QuotaSlot {
    subject: QuotaSubject,
    group_kind: Option<GroupKind>,
    counts: QuotaCounts,
    activity_kinds: BTreeSet<ActivityKind>,
    period: QuotaPeriod,
}

impl QuotaRule {
    /// Checks the rule as the record homed at `home` says it.
    pub fn validate(&self, home: &RegionCode) -> Result<(), ValidationError> {
        if self.congress != *home {
            return Err(ValidationError::new(
                "congress",
                format!(
                    "履职要求只能由制定它的人大登记：本节点是 {home}，要求属于 {}",
                    self.congress
                ),
            ));
        }
        if !self.congress.has_congress() {
            return Err(ValidationError::new(
                "congress",
                format!("{} 没有人民代表大会", self.congress),
            ));
        }
        if self.group_kind.is_some() && self.subject != QuotaSubject::Group {
            return Err(ValidationError::new(
                "group_kind",
                "只有代表小组的要求才能限定小组类别",
            ));
        }
        if !self.activity_kinds.is_empty() && self.counts != QuotaCounts::Activities {
            return Err(ValidationError::new(
                "activity_kinds",
                "只有活动要求才能限定活动类型",
            ));
        }
        if self.minimum == 0 || self.minimum > MAX_MINIMUM {
            return Err(ValidationError::new(
                "minimum",
                format!(
                    "最低次数必须在 1 到 {MAX_MINIMUM} 之间，实际为 {}",
                    self.minimum
                ),
            ));
        }
        if let Some(until) = self.until
            && until <= self.from
        {
            return Err(ValidationError::new(
                "until",
                format!("停止日期 {until} 必须晚于生效日期 {}", self.from),
            ));
        }
        if let Some(basis) = &self.basis {
            required_text("basis", basis)?;
            bounded_text("basis", basis)?;
        }
        Ok(())
    }

    /// The rule its projection's summary holds (the whole rule, so that a node reads its rules
    /// without loading documents); `None` for a summary no release wrote.
    pub fn from_projection(summary: &serde_json::Value) -> Option<QuotaRule> {
        serde_json::from_value(summary.clone()).ok()
    }

    /// Whether the rule holds on `day`.
    pub fn in_force_on(&self, day: NaiveDate) -> bool {
        self.from <= day && self.until.is_none_or(|until| day < until)
    }

    /// The requirement this rule states, whatever its minimum and dates.
    pub fn slot(&self) -> QuotaSlot {
        QuotaSlot {
            subject: self.subject,
            group_kind: self.group_kind,
            counts: self.counts,
            activity_kinds: self.activity_kinds.clone(),
            period: self.period,
        }
    }

    /// Whether the rule binds a group of this kind.
    pub fn binds_group(&self, kind: GroupKind) -> bool {
        self.subject == QuotaSubject::Group && self.group_kind.is_none_or(|k| k == kind)
    }

    /// The rule as a sentence: 专业代表小组每年视察、执法检查、专题调研不少于 3 次.
    pub fn describe(&self) -> String {
        let subject = match (self.subject, self.group_kind) {
            (QuotaSubject::Group, Some(kind)) => format!("{}代表小组", kind.label()),
            (subject, _) => subject.label().to_string(),
        };
        let what = match self.counts {
            QuotaCounts::Suggestions => match self.subject {
                QuotaSubject::Group => "以小组名义提出建议".to_string(),
                QuotaSubject::Delegate => "领衔或联名提出建议".to_string(),
            },
            QuotaCounts::Activities if self.activity_kinds.is_empty() => "开展活动".to_string(),
            QuotaCounts::Activities => self
                .activity_kinds
                .iter()
                .map(|k| k.label())
                .collect::<Vec<_>>()
                .join("、"),
        };
        let unit = match self.counts {
            QuotaCounts::Suggestions => "件",
            QuotaCounts::Activities => "次",
        };
        format!(
            "{subject}{}{what}不少于 {} {unit}",
            self.period.label(),
            self.minimum
        )
    }

    /// How many of what this rule counts a tally holds in each quarter.
    pub fn by_quarter(&self, tally: &Tally) -> [u32; 4] {
        let mut out = [0u32; 4];
        for (slot, quarter) in out.iter_mut().zip(&tally.quarters) {
            *slot = quarter
                .iter()
                .filter(|(what, _)| self.counts_what(what))
                .map(|(_, n)| *n)
                .fold(0u32, u32::saturating_add);
        }
        out
    }

    fn counts_what(&self, what: &str) -> bool {
        match self.counts {
            QuotaCounts::Suggestions => what == SUGGESTION,
            QuotaCounts::Activities => {
                what != SUGGESTION
                    && (self.activity_kinds.is_empty()
                        || self.activity_kinds.iter().any(|k| k.as_str() == what))
            }
        }
    }

    /// Holds a subject's tally for `year` against this rule alone as of `today` (see
    /// [`judge_slot`], which also takes the rules this one replaced or was replaced by).
    pub fn judge(&self, tally: &Tally, year: i32, today: NaiveDate) -> Judgement {
        judge_slot(&[self], tally, year, today)
            .map(|(_, j)| j)
            .unwrap_or(Judgement {
                have: 0,
                need: self.minimum,
                quarter: None,
                standing: Standing::OnTrack,
            })
    }
}

/// Holds a subject's tally for `year` as of `today` against the rules of one requirement
/// (`rules`, all of one [`QuotaSlot`]), each applying while it was in force, so a rule changed
/// or ended during the year judges only its own part of it. A quarter is judged by the rule in
/// force on its last day (today, for the quarter running): a finished quarter below its
/// minimum leaves the requirement short for the year; the running quarter is judged pro rata.
/// A year is judged by the rule in force on the day judged ([`judged_on`]), pro rata over the
/// days from its start (or the rule's first day, if later) while the year runs. `None` when no
/// rule applied to any part of the year judged so far.
pub fn judge_slot<'a>(
    rules: &[&'a QuotaRule],
    tally: &Tally,
    year: i32,
    today: NaiveDate,
) -> Option<(&'a QuotaRule, Judgement)> {
    let first = NaiveDate::from_ymd_opt(year, 1, 1)?;
    let last = NaiveDate::from_ymd_opt(year, 12, 31)?;
    if today < first {
        return None;
    }
    let in_force = |day: NaiveDate| rules.iter().copied().find(|r| r.in_force_on(day));
    let year_over = today > last;
    let period = rules.first()?.period;
    match period {
        QuotaPeriod::Year => {
            let on = judged_on(year, today);
            let rule = in_force(on)?;
            let have = rule
                .by_quarter(tally)
                .iter()
                .copied()
                .fold(0u32, u32::saturating_add);
            let standing = if year_over && have < rule.minimum {
                Standing::Short
            } else {
                progress(have, rule, first, today, last)
            };
            Some((
                rule,
                Judgement {
                    have,
                    need: rule.minimum,
                    quarter: None,
                    standing,
                },
            ))
        }
        QuotaPeriod::Quarter => {
            let running = if year_over {
                None
            } else {
                Some((today.month0() / 3) as usize)
            };
            let mut latest = None;
            for q in 0..4 {
                let start = quarter_start(year, q);
                let end = quarter_start_after(year, q).pred_opt()?;
                let done = running.is_none_or(|r| q < r);
                if !done && Some(q) != running {
                    break;
                }
                let Some(rule) = in_force(if done { end } else { today }) else {
                    continue;
                };
                let have = rule.by_quarter(tally)[q];
                let judged = |standing| {
                    (
                        rule,
                        Judgement {
                            have,
                            need: rule.minimum,
                            quarter: Some(q as u8 + 1),
                            standing,
                        },
                    )
                };
                if done {
                    if have < rule.minimum {
                        return Some(judged(Standing::Short));
                    }
                    latest = Some(judged(Standing::Met));
                } else {
                    return Some(judged(progress(have, rule, start, today, end)));
                }
            }
            latest
        }
    }
}

/// Where `have` stands against `rule` in a period from `start` to `end` still running on
/// `today`: met once the minimum is reached, else on track while at or above the minimum times
/// the share of the period's days gone (counted from the rule's first day if it began during
/// the period), rounded down.
fn progress(
    have: u32,
    rule: &QuotaRule,
    start: NaiveDate,
    today: NaiveDate,
    end: NaiveDate,
) -> Standing {
    if have >= rule.minimum {
        return Standing::Met;
    }
    let start = rule.from.max(start);
    let (gone, days) = (days_between(start, today), days_between(start, end));
    let expected = u64::from(rule.minimum) * u64::from(gone) / u64::from(days.max(1));
    if u64::from(have) >= expected {
        Standing::OnTrack
    } else {
        Standing::Behind
    }
}

fn quarter_start(year: i32, quarter0: usize) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, quarter0 as u32 * 3 + 1, 1).unwrap_or_default()
}

fn quarter_start_after(year: i32, quarter0: usize) -> NaiveDate {
    if quarter0 >= 3 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1).unwrap_or_default()
    } else {
        quarter_start(year, quarter0 + 1)
    }
}

/// Days from `from` to `to`, both included; at least one.
fn days_between(from: NaiveDate, to: NaiveDate) -> u32 {
    u32::try_from((to - from).num_days() + 1)
        .unwrap_or(0)
        .max(1)
}

/// A rule held against one subject's tally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Judgement {
    /// What counts so far: in the year, or in the quarter named.
    pub have: u32,
    pub need: u32,
    /// For a quarterly rule, the quarter judged (1–4): the first one short, or the current.
    pub quarter: Option<u8>,
    pub standing: Standing,
}

/// What one subject did in one year, by quarter and by what was done: an activity kind's
/// identifier, or [`SUGGESTION`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub quarters: [BTreeMap<String, u32>; 4],
}

impl Tally {
    /// Adds `n` of `what` in the quarter of `on`.
    pub fn add(&mut self, on: NaiveDate, what: &str, n: u32) {
        let slot = self.quarters[(on.month0() / 3) as usize]
            .entry(what.to_string())
            .or_default();
        *slot = slot.saturating_add(n);
    }

    /// Adds another tally (of the same subject under another id, say a merged person).
    pub fn absorb(&mut self, other: &Tally) {
        for (into, from) in self.quarters.iter_mut().zip(&other.quarters) {
            for (what, n) in from {
                let slot = into.entry(what.clone()).or_default();
                *slot = slot.saturating_add(*n);
            }
        }
    }
}

/// A group or delegate held to every rule that binds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectStanding {
    pub subject: QuotaSubject,
    /// The group's or the person's record id.
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub group_kind: Option<GroupKind>,
    /// The worst standing of the rules below.
    pub standing: Standing,
    pub judgements: Vec<RuleJudgement>,
}

/// One rule held against a subject.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleJudgement {
    pub rule: QuotaRule,
    #[serde(flatten)]
    pub judgement: Judgement,
}

/// A congress's rules grouped by requirement ([`QuotaSlot`]) once, so that judging its many
/// groups and delegates neither groups nor copies rules per subject.
pub struct RuleBook<'a> {
    slots: Vec<Vec<&'a QuotaRule>>,
}

impl<'a> RuleBook<'a> {
    pub fn new(rules: &'a [QuotaRule]) -> RuleBook<'a> {
        let mut slots: BTreeMap<QuotaSlot, Vec<&'a QuotaRule>> = BTreeMap::new();
        for rule in rules {
            slots.entry(rule.slot()).or_default().push(rule);
        }
        RuleBook {
            slots: slots.into_values().collect(),
        }
    }

    /// The requirements that bind a subject of this kind (and, for a group, group kind).
    fn binding(
        &self,
        subject: QuotaSubject,
        group_kind: Option<GroupKind>,
    ) -> impl Iterator<Item = &Vec<&'a QuotaRule>> {
        self.slots.iter().filter(move |of_slot| {
            of_slot.first().is_some_and(|r| {
                binding(std::slice::from_ref(*r), subject, group_kind)
                    .next()
                    .is_some()
            })
        })
    }

    /// Whether any rule binds such a subject, whatever its dates.
    pub fn binds(&self, subject: QuotaSubject, group_kind: Option<GroupKind>) -> bool {
        self.binding(subject, group_kind).next().is_some()
    }

    /// Each requirement binding the subject held against its tally of `year` as of `today`
    /// ([`judge_slot`]).
    pub fn judge(
        &self,
        subject: QuotaSubject,
        group_kind: Option<GroupKind>,
        tally: &Tally,
        year: i32,
        today: NaiveDate,
    ) -> Vec<(&'a QuotaRule, Judgement)> {
        self.binding(subject, group_kind)
            .filter_map(|of_slot| judge_slot(of_slot, tally, year, today))
            .collect()
    }

    /// The worst standing of [`RuleBook::judge`]; `None` when nothing was judged.
    pub fn standing(
        &self,
        subject: QuotaSubject,
        group_kind: Option<GroupKind>,
        tally: &Tally,
        year: i32,
        today: NaiveDate,
    ) -> Option<Standing> {
        self.judge(subject, group_kind, tally, year, today)
            .into_iter()
            .map(|(_, j)| j.standing)
            .max_by_key(|s| severity(*s))
    }
}

impl SubjectStanding {
    /// Judges a subject's tally of `year` as of `today` by every rule of `book` that binds
    /// it, each requirement by the rules of it in force over the year ([`judge_slot`]). `None`
    /// when no rule binds the subject in the part of the year judged.
    #[allow(clippy::too_many_arguments)]
    pub fn judge(
        subject: QuotaSubject,
        id: String,
        name: String,
        group_kind: Option<GroupKind>,
        book: &RuleBook<'_>,
        tally: &Tally,
        year: i32,
        today: NaiveDate,
    ) -> Option<SubjectStanding> {
        let judgements: Vec<RuleJudgement> = book
            .judge(subject, group_kind, tally, year, today)
            .into_iter()
            .map(|(rule, judgement)| RuleJudgement {
                rule: rule.clone(),
                judgement,
            })
            .collect();
        let standing = judgements
            .iter()
            .map(|j| j.judgement.standing)
            .max_by_key(|s| severity(*s))?;
        Some(SubjectStanding {
            subject,
            id,
            name,
            group_kind,
            standing,
            judgements,
        })
    }

    /// Whether the subject is below a minimum: behind during a period, or short after one.
    pub fn falling_short(&self) -> bool {
        matches!(self.standing, Standing::Behind | Standing::Short)
    }
}

/// The rules of `rules` that bind a subject of this kind (and, for a group, of this group
/// kind), whatever their dates.
pub fn binding(
    rules: &[QuotaRule],
    subject: QuotaSubject,
    group_kind: Option<GroupKind>,
) -> impl Iterator<Item = &QuotaRule> {
    rules.iter().filter(move |r| {
        r.subject == subject
            && match (subject, group_kind) {
                (QuotaSubject::Group, Some(kind)) => r.binds_group(kind),
                (QuotaSubject::Group, None) => r.group_kind.is_none(),
                (QuotaSubject::Delegate, _) => true,
            }
    })
}

/// The day a year is judged as of: `today` during the year, its last day once it is over.
pub fn judged_on(year: i32, today: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, 12, 31).map_or(today, |last| today.min(last))
}

/// Orders standings from best to worst.
pub fn severity(s: Standing) -> u8 {
    match s {
        Standing::Met => 0,
        Standing::OnTrack => 1,
        Standing::Behind => 2,
        Standing::Short => 3,
    }
}

/// The rules every new congress starts from, as the process flags seeded them before rules
/// were records: a group holds an activity every quarter and four a year; a delegate joins
/// three receptions of constituents and makes or co-signs one suggestion a year.
pub fn first_rules(
    congress: RegionCode,
    from: NaiveDate,
    group_per_quarter: u32,
    group_per_year: u32,
    delegate_receptions: u32,
    delegate_suggestions: u32,
) -> Vec<QuotaRule> {
    let rule = |subject, counts, kinds: &[ActivityKind], period, minimum| QuotaRule {
        congress,
        subject,
        group_kind: None,
        counts,
        activity_kinds: kinds.iter().copied().collect(),
        period,
        minimum,
        from,
        until: None,
        basis: None,
    };
    [
        rule(
            QuotaSubject::Group,
            QuotaCounts::Activities,
            &[],
            QuotaPeriod::Quarter,
            group_per_quarter,
        ),
        rule(
            QuotaSubject::Group,
            QuotaCounts::Activities,
            &[],
            QuotaPeriod::Year,
            group_per_year,
        ),
        rule(
            QuotaSubject::Delegate,
            QuotaCounts::Activities,
            &[ActivityKind::Reception],
            QuotaPeriod::Year,
            delegate_receptions,
        ),
        rule(
            QuotaSubject::Delegate,
            QuotaCounts::Suggestions,
            &[],
            QuotaPeriod::Year,
            delegate_suggestions,
        ),
    ]
    .into_iter()
    // A minimum of zero asks for nothing: no rule.
    .filter(|r| r.minimum > 0)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn wujin_inspections() -> QuotaRule {
        QuotaRule {
            congress: RegionCode::parse("congress", "320412000000").unwrap(),
            subject: QuotaSubject::Group,
            group_kind: Some(GroupKind::Professional),
            counts: QuotaCounts::Activities,
            activity_kinds: [
                ActivityKind::Inspection,
                ActivityKind::LawEnforcementCheck,
                ActivityKind::Research,
            ]
            .into_iter()
            .collect(),
            period: QuotaPeriod::Year,
            minimum: 3,
            from: day(2026, 1, 1),
            until: None,
            basis: None,
        }
    }

    #[test]
    fn a_yearly_minimum_is_met_only_when_reached_and_judged_pro_rata_before() {
        let rule = wujin_inspections();
        let mut tally = Tally::default();
        tally.add(day(2026, 2, 3), "inspection", 1);
        // A meeting does not count toward inspections.
        tally.add(day(2026, 2, 4), "group", 5);
        tally.add(day(2026, 2, 5), SUGGESTION, 2);
        // In January nothing is expected yet (3 × 31/365 rounds down to 0).
        assert_eq!(
            rule.judge(&Tally::default(), 2026, day(2026, 1, 31))
                .standing,
            Standing::OnTrack
        );
        // By July, one of three is behind (3 × 182/365 = 1.5, so 1 is on track, 0 behind).
        let j = rule.judge(&tally, 2026, day(2026, 7, 1));
        assert_eq!((j.have, j.need, j.standing), (1, 3, Standing::OnTrack));
        assert_eq!(
            rule.judge(&Tally::default(), 2026, day(2026, 7, 1))
                .standing,
            Standing::Behind
        );
        // After the year, one of three is short; three are met, even before the year ends.
        assert_eq!(
            rule.judge(&tally, 2026, day(2027, 1, 2)).standing,
            Standing::Short
        );
        tally.add(day(2026, 9, 1), "law_check", 1);
        tally.add(day(2026, 10, 1), "research", 1);
        assert_eq!(
            rule.judge(&tally, 2026, day(2026, 10, 2)).standing,
            Standing::Met
        );
    }

    #[test]
    fn a_quarterly_minimum_fails_for_good_in_a_quarter_without() {
        let rule = QuotaRule {
            subject: QuotaSubject::Group,
            group_kind: None,
            activity_kinds: BTreeSet::new(),
            period: QuotaPeriod::Quarter,
            minimum: 1,
            ..wujin_inspections()
        };
        let mut tally = Tally::default();
        tally.add(day(2026, 1, 10), "group", 1);
        let j = rule.judge(&tally, 2026, day(2026, 2, 1));
        assert_eq!((j.quarter, j.standing), (Some(1), Standing::Met));
        // Early in the second quarter nothing is due yet; late in it, one is.
        assert_eq!(
            rule.judge(&tally, 2026, day(2026, 4, 2)).standing,
            Standing::OnTrack
        );
        assert_eq!(
            rule.judge(&tally, 2026, day(2026, 6, 30)).standing,
            Standing::Behind
        );
        let j = rule.judge(&tally, 2026, day(2026, 7, 1));
        assert_eq!((j.quarter, j.standing), (Some(2), Standing::Short));
    }

    #[test]
    fn rules_bind_by_subject_and_group_kind() {
        let rules = [wujin_inspections()];
        let binds = |kind| binding(&rules, QuotaSubject::Group, Some(kind)).count();
        assert_eq!(binds(GroupKind::Professional), 1);
        assert_eq!(binds(GroupKind::Regional), 0);
        assert_eq!(binding(&rules, QuotaSubject::Delegate, None).count(), 0);
    }

    #[test]
    fn a_rule_changed_during_the_year_judges_only_its_own_part() {
        // One activity a quarter until July, two from July.
        let old = QuotaRule {
            group_kind: None,
            activity_kinds: BTreeSet::new(),
            period: QuotaPeriod::Quarter,
            minimum: 1,
            from: day(2020, 1, 1),
            until: Some(day(2026, 7, 1)),
            ..wujin_inspections()
        };
        let new = QuotaRule {
            minimum: 2,
            from: day(2026, 7, 1),
            until: None,
            ..old.clone()
        };
        let mut tally = Tally::default();
        for on in [
            day(2026, 2, 1),
            day(2026, 5, 1),
            day(2026, 8, 1),
            day(2026, 9, 1),
        ] {
            tally.add(on, "group", 1);
        }
        let both = [&old, &new];
        // The first half met the old minimum of one; the third quarter the new one of two.
        let (rule, j) = judge_slot(&both, &tally, 2026, day(2026, 10, 2)).unwrap();
        assert_eq!(rule, &new);
        assert_eq!(j.quarter, Some(4));
        assert_eq!(j.standing, Standing::OnTrack);
        // Judged by the new rule alone, the first quarter would have failed it.
        assert_eq!(
            new.judge(&tally, 2026, day(2026, 10, 2)).standing,
            Standing::OnTrack,
            "a rule says nothing of the quarters before it"
        );
        let mut short = tally.clone();
        short.quarters[2].clear();
        short.add(day(2026, 8, 1), "group", 1);
        let (_, j) = judge_slot(&both, &short, 2026, day(2026, 10, 2)).unwrap();
        assert_eq!(
            (j.quarter, j.have, j.need, j.standing),
            (Some(3), 1, 2, Standing::Short)
        );
        // A rule ended in June judges nothing after it, and a year without any rule nothing.
        let (_, ended) = judge_slot(&[&old], &Tally::default(), 2026, day(2026, 10, 2)).unwrap();
        assert_eq!((ended.quarter, ended.standing), (Some(1), Standing::Short));
        assert!(judge_slot(&[&new], &Tally::default(), 2025, day(2026, 10, 2)).is_none());
        // A yearly rule from July is judged pro rata over its own days: three by December
        // asks for one by mid-September (76 of 184 days), none on its first day.
        let yearly = QuotaRule {
            period: QuotaPeriod::Year,
            minimum: 3,
            from: day(2026, 7, 1),
            until: None,
            ..old
        };
        let none = Tally::default();
        assert_eq!(
            yearly.judge(&none, 2026, day(2026, 7, 1)).standing,
            Standing::OnTrack
        );
        assert_eq!(
            yearly.judge(&none, 2026, day(2026, 9, 14)).standing,
            Standing::Behind
        );
    }

    #[test]
    fn rules_say_what_they_require_and_refuse_what_makes_no_sense() {
        let home = RegionCode::parse("home", "320412000000").unwrap();
        let rule = wujin_inspections();
        assert_eq!(
            rule.describe(),
            "专业代表小组每年视察、专题调研、执法检查不少于 3 次"
        );
        assert!(rule.validate(&home).is_ok());
        let other = RegionCode::parse("home", "320411000000").unwrap();
        assert_eq!(rule.validate(&other).unwrap_err().field, "congress");
        let zero = QuotaRule {
            minimum: 0,
            ..rule.clone()
        };
        assert_eq!(zero.validate(&home).unwrap_err().field, "minimum");
        let kinds_on_suggestions = QuotaRule {
            counts: QuotaCounts::Suggestions,
            ..rule.clone()
        };
        assert_eq!(
            kinds_on_suggestions.validate(&home).unwrap_err().field,
            "activity_kinds"
        );
        let backwards = QuotaRule {
            until: Some(day(2025, 1, 1)),
            ..rule
        };
        assert_eq!(backwards.validate(&home).unwrap_err().field, "until");
    }
}
