//! Mandates (代表资格): a person's seat in one congress for one term, a record of its own.
//!
//! A mandate is homed at the congress that grants it, and only that congress's node writes it
//! ([`super::authority`] refuses a change to a mandate from anyone else), so a township cannot
//! give its delegate a county seat, and what a county's numbers say about its own delegates is
//! what the county itself recorded. The person ([`super::delegate::Delegate`]) is a separate
//! record, homed where the person was first registered; a person with seats at three
//! congresses has one person record and three mandates.
//!
//! A mandate also says which liaison stations the delegate works at (五级代表进站). It travels
//! to each of those stations' townships and to the person's home ([`Mandate::reaches`]), so a
//! township station's roster holds every delegate stationed there, of any level, without the
//! person record or any personal data: the mandate carries the name the roster shows.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::RecordId;
use super::delegate::MandateStatus;
use crate::region::{Level, RegionCode};
use crate::validate::{ValidationError, required_text};

/// A liaison station (or delegate home, studio) a delegate is stationed at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Station {
    /// The node that holds the station's venue record and signs delegates in there: the
    /// venue's home township (or county, for a county's own venue).
    pub region: RegionCode,
    /// When the delegate stopped working at the station; the mandate keeps travelling to a
    /// former station's township so its copy learns of the change.
    #[serde(default)]
    pub until: Option<NaiveDate>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mandate {
    /// The person record (kind `delegate`) the seat belongs to.
    pub person: RecordId,
    /// Where the person record is homed; the mandate travels there, so the person's own node
    /// knows every seat they hold.
    pub person_home: RegionCode,
    /// The person's name as the congress granted the seat, shown in rosters that do not hold
    /// the person record.
    pub name: String,
    /// The granting congress: always the mandate's home.
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
    /// Keyed by the venue's record id: a map, so stations added on two occasions both survive.
    #[serde(default)]
    pub stations: BTreeMap<RecordId, Station>,
}

impl Mandate {
    /// Checks the mandate as the record homed at `home` says it.
    pub fn validate(&self, home: &RegionCode) -> Result<(), ValidationError> {
        super::delegate::seat_rules(&self.congress, self.term)?;
        if self.congress != *home {
            return Err(ValidationError::new(
                "congress",
                format!(
                    "代表资格只能由授予它的人大登记：本节点是 {home}，代表资格属于 {}",
                    self.congress
                ),
            ));
        }
        if Some(self.level) != self.congress.level() {
            return Err(ValidationError::new(
                "level",
                "代表资格的级别与所属人大的区划代码不符",
            ));
        }
        required_text("name", &self.name)?;
        required_text("constituency", &self.constituency)?;
        if !self.person_home.is_within(&self.congress) {
            return Err(ValidationError::new(
                "person",
                format!(
                    "该人员登记在 {}，不在 {} 人大的辖区内；请先在本级登记该人员",
                    self.person_home, self.congress
                ),
            ));
        }
        for (venue, station) in &self.stations {
            if !station.region.is_within(&self.congress) {
                return Err(ValidationError::new(
                    "station",
                    format!(
                        "阵地 {venue} 在 {}，不在 {} 人大的辖区内",
                        station.region, self.congress
                    ),
                ));
            }
        }
        Ok(())
    }

    pub fn is_serving(&self) -> bool {
        self.status == MandateStatus::Serving
    }

    /// Stations the delegate currently works at.
    pub fn current_stations(&self) -> impl Iterator<Item = (&RecordId, &Station)> {
        self.stations.iter().filter(|(_, s)| s.until.is_none())
    }

    /// The nodes below the congress that must hold the mandate: every station's township,
    /// former ones included, and the person's home.
    pub fn reaches(&self) -> Vec<RegionCode> {
        let mut out: Vec<RegionCode> = self
            .stations
            .values()
            .map(|s| s.region)
            .chain(std::iter::once(self.person_home))
            .filter(|r| *r != self.congress)
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> RegionCode {
        RegionCode::parse("region", s).unwrap()
    }

    fn county_mandate() -> Mandate {
        Mandate {
            person: RecordId::new(),
            person_home: code("330411101000"),
            name: "沈建华".into(),
            congress: code("330411000000"),
            level: Level::County,
            term: 9,
            constituency: "王店镇选区".into(),
            status: MandateStatus::Serving,
            status_since: None,
            stations: BTreeMap::from([(
                RecordId::new(),
                Station {
                    region: code("330411102000"),
                    until: None,
                },
            )]),
        }
    }

    #[test]
    fn a_mandate_belongs_to_the_congress_that_grants_it() {
        let m = county_mandate();
        m.validate(&code("330411000000")).unwrap();
        let err = m.validate(&code("330411101000")).unwrap_err();
        assert_eq!(err.field, "congress");
        assert!(err.rule.contains("只能由授予它的人大登记"), "{}", err.rule);
    }

    #[test]
    fn stations_and_the_person_lie_within_the_congress() {
        let home = code("330411000000");
        let mut elsewhere = county_mandate();
        elsewhere.person_home = code("330402101000");
        assert_eq!(elsewhere.validate(&home).unwrap_err().field, "person");
        let mut far_station = county_mandate();
        far_station.stations.insert(
            RecordId::new(),
            Station {
                region: code("330402103000"),
                until: None,
            },
        );
        assert_eq!(far_station.validate(&home).unwrap_err().field, "station");
    }

    #[test]
    fn it_reaches_every_station_and_the_person_once() {
        let mut m = county_mandate();
        let station_town = code("330411102000");
        m.stations.insert(
            RecordId::new(),
            Station {
                region: station_town,
                until: Some(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()),
            },
        );
        assert_eq!(m.reaches(), vec![code("330411101000"), station_town]);
        assert_eq!(m.current_stations().count(), 1);
        m.person_home = m.congress;
        assert_eq!(m.reaches(), vec![station_town]);
    }
}
