//! Delegates (人大代表): the person. Their seats are mandate records of their own
//! ([`super::mandate::Mandate`]), homed at the congresses that grant them.
//!
//! Persons registered before mandates were records carry their seats inside the person record
//! ([`Delegate::mandates`], [`LegacyMandate`]). Those are still read, counted and signed in by,
//! and a congress may change their status, but nothing writes a new one: a seat is granted as a
//! mandate record by the congress itself.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::RecordId;
use crate::region::{Level, RegionCode};
use crate::validate::{ValidationError, bounded_text, required_text};

/// Persons created from this moment on carry no seats inside: every release since writes
/// seats as mandate records. A person record created earlier may come to a node for the first
/// time with the seats its own node wrote inside it (see `authority::check_incoming`).
pub const SEATS_INSIDE_UNTIL: chrono::DateTime<chrono::Utc> =
    // 2026-12-03T00:00:00Z, the day mandate records came.
    chrono::DateTime::from_timestamp_nanos(1_796_256_000_000_000_000);

labelled_enum!(Gender {
    Male => ("male", "男"),
    Female => ("female", "女"),
});

labelled_enum!(
    /// A mandate's standing. Only 在任 counts towards quotas and routing.
    MandateStatus {
        Serving => ("serving", "在任"),
        Suspended => ("suspended", "暂停执行职务"),
        Resigned => ("resigned", "辞职"),
        Recalled => ("recalled", "罢免"),
        Terminated => ("terminated", "终止"),
        // The seat of a person merged into another who holds the same seat: one seat,
        // registered twice. It counts nowhere.
        Merged => ("merged", "重复登记已合并"),
    }
);

/// A seat kept inside a person record, as persons registered before mandate records carry
/// them: one congress, one term (届).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyMandate {
    pub congress: RegionCode,
    /// Kept beside the congress code so routing and rollups read it without deriving it.
    pub level: Level,
    /// 届, e.g. 17 for 第十七届.
    pub term: u32,
    /// 选区 (direct elections, township and county) or 选举单位 (indirect, city and above).
    pub constituency: String,
    pub status: MandateStatus,
    /// When the current status began; empty for a mandate still at its first status.
    #[serde(default)]
    pub status_since: Option<NaiveDate>,
}

impl LegacyMandate {
    /// The key a mandate is stored under: one map entry per congress and term, so changing two
    /// mandates on two nodes at once never conflicts.
    pub fn key(congress: &RegionCode, term: u32) -> String {
        format!("{congress}-{term}")
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        seat_rules(&self.congress, self.term)?;
        required_text("constituency", &self.constituency)
    }
}

/// What every seat, kept inside a person or a record of its own, must be: in a congress that
/// exists, for a term that does.
pub fn seat_rules(congress: &RegionCode, term: u32) -> Result<(), ValidationError> {
    if !congress.has_congress() {
        return Err(ValidationError::new(
            "congress",
            format!("{congress} 没有人民代表大会（街道、村或统计分组），不能作为代表所属的人大"),
        ));
    }
    if !(1..=99).contains(&term) {
        return Err(ValidationError::new("term", "届次必须在 1 到 99 之间"));
    }
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegate {
    pub name: String,
    pub gender: Gender,
    #[serde(default)]
    pub birth_year: Option<i32>,
    #[serde(default)]
    pub ethnicity: Option<String>,
    #[serde(default)]
    pub party: Option<String>,
    pub occupation: String,
    /// The liaison station (代表联络站) the delegate is registered at, if any.
    #[serde(default)]
    pub station: Option<RecordId>,
    /// Seats recorded inside the person before mandates were records of their own, keyed by
    /// [`LegacyMandate::key`]; empty for every person registered since.
    #[serde(default)]
    pub mandates: BTreeMap<String, LegacyMandate>,
    /// Set when the congress that registered the person merged them into another person
    /// record (a duplicate registration): this record stays as a redirect, and every count,
    /// sign-in and duty record follows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<RecordId>,
    /// Written with `merged_into`: where the redirect must reach ([`MergeRoute`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_route: Option<MergeRoute>,
}

/// Where a merged person's redirect must reach, so that every congress that granted the
/// person a seat holds it, above the full-record depth too (a province).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeRoute {
    /// The home of the person kept: a congress that does not hold that record passes its seats
    /// on by reference.
    pub into_home: RegionCode,
    /// The highest level at which the merged person held a seat when merged; the redirect
    /// climbs that far.
    pub up_to: Level,
}

impl Delegate {
    pub fn validate(&self) -> Result<(), ValidationError> {
        required_text("name", &self.name)?;
        required_text("occupation", &self.occupation)?;
        for (field, value) in [("ethnicity", &self.ethnicity), ("party", &self.party)] {
            if let Some(v) = value {
                bounded_text(field, v)?;
            }
        }
        if let Some(year) = self.birth_year
            && !(1900..=2015).contains(&year)
        {
            return Err(ValidationError::new(
                "birth-year",
                "出生年份必须在 1900 到 2015 之间",
            ));
        }
        for (key, mandate) in &self.mandates {
            mandate.validate()?;
            if *key != LegacyMandate::key(&mandate.congress, mandate.term) {
                return Err(ValidationError::new(
                    "mandates",
                    format!("代表资格的键“{key}”与所属人大和届次不符"),
                ));
            }
            if mandate.level != mandate.congress.level().unwrap_or(Level::Township) {
                return Err(ValidationError::new(
                    "level",
                    "代表资格的级别与所属人大的区划代码不符",
                ));
            }
        }
        Ok(())
    }

    /// Serving seats kept inside the record, highest level first.
    pub fn serving(&self) -> impl Iterator<Item = &LegacyMandate> {
        let mut serving: Vec<&LegacyMandate> = self
            .mandates
            .values()
            .filter(|m| m.status == MandateStatus::Serving)
            .collect();
        serving.sort_by_key(|m| m.level);
        serving.into_iter()
    }

    /// The highest level at which the delegate currently serves.
    pub fn highest_level(&self) -> Option<Level> {
        self.serving().next().map(|m| m.level)
    }

    /// The delegate's standing as staff see it: serving if any mandate is, else the status of
    /// the most recent term.
    pub fn status(&self) -> MandateStatus {
        if self.serving().next().is_some() {
            return MandateStatus::Serving;
        }
        self.mandates
            .values()
            .max_by_key(|m| (m.term, m.level))
            .map_or(MandateStatus::Terminated, |m| m.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mandate(congress: &str, term: u32, status: MandateStatus) -> LegacyMandate {
        let congress = RegionCode::parse("congress", congress).unwrap();
        LegacyMandate {
            congress,
            // A street has no level of its own; the validation must refuse it, not this helper.
            level: congress.level().unwrap_or(Level::Township),
            term,
            constituency: "第七选区".into(),
            status,
            status_since: None,
        }
    }

    fn delegate(mandates: Vec<LegacyMandate>) -> Delegate {
        Delegate {
            name: "沈建华".into(),
            gender: Gender::Male,
            birth_year: Some(1972),
            ethnicity: None,
            party: None,
            occupation: "村党总支书记".into(),
            station: None,
            merged_into: None,
            merge_route: None,
            mandates: mandates
                .into_iter()
                .map(|m| (LegacyMandate::key(&m.congress, m.term), m))
                .collect(),
        }
    }

    #[test]
    fn highest_serving_level_and_status() {
        let d = delegate(vec![
            mandate("330411101000", 17, MandateStatus::Serving),
            mandate("330411000000", 9, MandateStatus::Serving),
            mandate("330400000000", 9, MandateStatus::Resigned),
        ]);
        d.validate().unwrap();
        assert_eq!(d.highest_level(), Some(Level::County));
        assert_eq!(d.status(), MandateStatus::Serving);
        let gone = delegate(vec![mandate("330411101000", 17, MandateStatus::Recalled)]);
        assert_eq!(gone.highest_level(), None);
        assert_eq!(gone.status(), MandateStatus::Recalled);
    }

    #[test]
    fn invalid_delegates_name_the_field() {
        // A person registered since mandates are records of their own carries none.
        delegate(vec![]).validate().unwrap();
        let street = delegate(vec![mandate("330411001000", 17, MandateStatus::Serving)]);
        assert_eq!(street.validate().unwrap_err().field, "congress");
        let mut nameless = delegate(vec![mandate("330411101000", 17, MandateStatus::Serving)]);
        nameless.name = " ".into();
        assert_eq!(nameless.validate().unwrap_err().field, "name");
        assert!(MandateStatus::parse("status", "辞职").is_ok());
        assert!(
            MandateStatus::parse("status", "退休")
                .unwrap_err()
                .rule
                .contains("在任")
        );
    }
}
