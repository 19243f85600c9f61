//! Routing: which nodes hold a record, as a pure function of the record and the region tree.
//!
//! - Upward, a record travels from its home to every ancestor up to the level that owns it (the
//!   congress a suggestion is addressed to, the highest-level participant of an activity, the
//!   delegate's highest congress) and at least up to the full-record depth (city by default).
//!   Above that, ancestors see the record only through rollups.
//! - Downward, a record addressed to a subtree (a notice) goes to every node in that subtree,
//!   and a record addressed to particular nodes below its home (a mandate, to the townships of
//!   the stations it names and to the person's home) goes to those nodes and every node on the
//!   way down to them, which relay it.
//! - Personal data goes to the home node's parent and no further, whatever else the hints say.
//!
//! Updates follow the same routes, so what a county decides on a township's suggestion flows back
//! down to the township that holds it. Because the tree follows from region codes, every node
//! computes the same routes without asking anyone. A node of an older release, which cannot read
//! the body of a kind added after it, routes such a record by the hints that came with it on the
//! wire, once [`RouteHints::check_claim`] has held them to the home's subtree.
//!
//! Architecture invariant: routing reads only a record's home and its [`RouteHints`], both kept
//! in SQLite columns, never the document.

use serde::{Deserialize, Serialize};

use crate::record::{Body, Record};
use crate::region::{Level, RegionCode};

/// What routing needs beyond the header, derived from the record when it is stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteHints {
    /// The highest level that must hold the record in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_level: Option<Level>,
    /// Roots of subtrees every node of which must hold the record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub down: Vec<RegionCode>,
    /// Nodes below the home that must hold the record, each with the nodes between the home
    /// and it, but not the rest of its subtree.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<RegionCode>,
    /// Personal data: the record stays at its home and the home's parent, whatever else the
    /// hints say. Set for every personal-data record, and obeyed wherever it is set, so a
    /// later release can mark a kind personal that this one does not know.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub personal: bool,
}

impl RouteHints {
    pub fn of(record: &Record) -> RouteHints {
        match &record.body {
            Body::Suggestion(s) => RouteHints {
                owner_level: s.fields.addressed_to.level(),
                ..RouteHints::default()
            },
            Body::Activity(a) => RouteHints {
                owner_level: a.highest_participant_level(),
                ..RouteHints::default()
            },
            // A merged person's redirect also climbs as high as the seats it held.
            Body::Delegate(d) => RouteHints {
                owner_level: d
                    .mandates
                    .values()
                    .map(|m| m.level)
                    .chain(d.merge_route.map(|r| r.up_to))
                    .min(),
                ..RouteHints::default()
            },
            Body::Group(g) => RouteHints {
                owner_level: g.congress.level(),
                ..RouteHints::default()
            },
            Body::Notice(n) => RouteHints {
                owner_level: None,
                down: vec![n.audience],
                ..RouteHints::default()
            },
            // The parent composes its rollup from its children's.
            Body::Rollup(_) => RouteHints {
                owner_level: record.header.home.parent().and_then(|p| p.level()),
                ..RouteHints::default()
            },
            // A mandate climbs like any record of its congress and goes down to the stations'
            // rosters and the person's own node.
            Body::Mandate(m) => RouteHints {
                to: m.reaches(),
                ..RouteHints::default()
            },
            // A congress's duty rules go to every node of its subtree, which judges the
            // congress's delegates stationed there and shows them their rules.
            Body::QuotaRule(q) => RouteHints {
                owner_level: None,
                down: vec![q.congress],
                ..RouteHints::default()
            },
            Body::Personal(_) => RouteHints {
                personal: true,
                ..RouteHints::default()
            },
            // A revocation goes down to the revoked node's parent's subtree: the parent it
            // dials and the children it would serve.
            Body::Revocation(r) => RouteHints {
                owner_level: None,
                down: vec![r.audience()],
                ..RouteHints::default()
            },
            Body::Venue(_) | Body::Opinion(_) | Body::Motion(_) => RouteHints::default(),
        }
    }

    /// Checks hints a peer claims for a record homed at `home` that this node cannot derive
    /// itself, a record of a kind a newer release added: they may name only regions within the
    /// home's subtree (a subtree to reach, a node to reach), since a record's writer may send it
    /// down its own subtree but not across to another's. Upward, the owner level only ever
    /// names the home's own ancestors, and the personal flag only narrows where a record goes.
    /// Returns the first region that breaks the rule.
    pub fn check_claim(&self, home: &RegionCode) -> Result<(), RegionCode> {
        match self
            .down
            .iter()
            .chain(&self.to)
            .find(|region| !region.is_within(home))
        {
            Some(region) => Err(*region),
            None => Ok(()),
        }
    }
}

/// A node's routing settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutePolicy {
    /// Every record travels at least up to this level in full (city by default), so a city
    /// dashboard can drill down to the records behind its numbers.
    pub full_record_depth: Level,
}

impl Default for RoutePolicy {
    fn default() -> Self {
        RoutePolicy {
            full_record_depth: Level::City,
        }
    }
}

/// Whether the node at `node` holds the record homed at `home` with these hints. Routing reads
/// no more than that, so a node routes records of kinds it does not know by the hints that came
/// with them.
pub fn holds(
    node: &RegionCode,
    home: &RegionCode,
    hints: &RouteHints,
    policy: &RoutePolicy,
) -> bool {
    if node == home {
        return true;
    }
    if hints.personal {
        return home.parent() == Some(*node);
    }
    if let Some(node_level) = node.level()
        && node.has_congress()
        && home.ancestors().contains(node)
    {
        // The highest level the record climbs to: the owner's level or the full-record depth,
        // whichever is higher in rank (smaller in `Level` order).
        let top = hints.owner_level.map_or(policy.full_record_depth, |owner| {
            owner.min(policy.full_record_depth)
        });
        if node_level >= top {
            return true;
        }
    }
    if hints.down.iter().any(|root| node.is_within(root)) {
        return true;
    }
    // A node on the way from the home down to a target, the target included.
    node.is_within(home) && hints.to.iter().any(|target| target.is_within(node))
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::record::{Author, Header, RecordId, RecordKind};

    fn code(s: &str) -> RegionCode {
        RegionCode::parse("region", s).unwrap()
    }

    fn header(kind: RecordKind, home: &str) -> Header {
        Header {
            id: RecordId::new(),
            kind,
            home: code(home),
            created_at: Utc::now(),
            created_by: Author {
                node: code(home),
                user: "clerk".into(),
            },
        }
    }

    const TOWNSHIP: &str = "330411101000";
    const SIBLING: &str = "330411102000";
    const COUNTY: &str = "330411000000";
    const CITY: &str = "330400000000";
    const PROVINCE: &str = "330000000000";
    const NATIONAL: &str = "000000000000";

    fn holders(h: &Header, hints: &RouteHints) -> Vec<&'static str> {
        [TOWNSHIP, SIBLING, COUNTY, CITY, PROVINCE, NATIONAL]
            .into_iter()
            .filter(|n| holds(&code(n), &h.home, hints, &RoutePolicy::default()))
            .collect()
    }

    #[test]
    fn an_opinion_climbs_to_the_city_and_never_reaches_a_sibling() {
        let h = header(RecordKind::Opinion, TOWNSHIP);
        assert_eq!(
            holders(&h, &RouteHints::default()),
            vec![TOWNSHIP, COUNTY, CITY]
        );
    }

    #[test]
    fn an_activity_with_a_provincial_delegate_climbs_to_the_province() {
        let h = header(RecordKind::Activity, TOWNSHIP);
        let hints = RouteHints {
            owner_level: Some(Level::Province),
            ..RouteHints::default()
        };
        assert_eq!(holders(&h, &hints), vec![TOWNSHIP, COUNTY, CITY, PROVINCE]);
        let national = RouteHints {
            owner_level: Some(Level::National),
            ..RouteHints::default()
        };
        assert_eq!(
            holders(&h, &national),
            vec![TOWNSHIP, COUNTY, CITY, PROVINCE, NATIONAL]
        );
    }

    #[test]
    fn a_suggestion_to_the_county_stays_within_the_full_record_depth() {
        let h = header(RecordKind::Suggestion, TOWNSHIP);
        let hints = RouteHints {
            owner_level: Some(Level::County),
            ..RouteHints::default()
        };
        assert_eq!(holders(&h, &hints), vec![TOWNSHIP, COUNTY, CITY]);
        let shallow = RoutePolicy {
            full_record_depth: Level::County,
        };
        assert!(!holds(&code(CITY), &h.home, &hints, &shallow));
    }

    #[test]
    fn personal_data_stops_at_the_parent() {
        let h = header(RecordKind::Personal, TOWNSHIP);
        let hints = RouteHints {
            personal: true,
            ..RouteHints::default()
        };
        assert_eq!(holders(&h, &hints), vec![TOWNSHIP, COUNTY]);
        // The flag wins over anything else the hints say, so a record a newer release marks
        // personal stays home and with the parent at nodes that cannot read it.
        let claimed = RouteHints {
            owner_level: Some(Level::National),
            down: vec![code(TOWNSHIP)],
            to: vec![code(SIBLING)],
            personal: true,
        };
        let h = header(RecordKind::Notice, COUNTY);
        assert_eq!(holders(&h, &claimed), vec![COUNTY, CITY]);
    }

    #[test]
    fn claimed_hints_name_only_the_homes_subtree() {
        let within = RouteHints {
            owner_level: Some(Level::National),
            down: vec![code(TOWNSHIP)],
            to: vec![code(COUNTY)],
            personal: false,
        };
        assert_eq!(within.check_claim(&code(COUNTY)), Ok(()));
        // A county may not send its record across to another county's township, nor down a
        // subtree above it (which would reach its siblings).
        let across = RouteHints {
            down: vec![code("330412101000")],
            ..RouteHints::default()
        };
        assert_eq!(across.check_claim(&code(COUNTY)), Err(code("330412101000")));
        let above = RouteHints {
            to: vec![code(CITY)],
            ..RouteHints::default()
        };
        assert_eq!(above.check_claim(&code(COUNTY)), Err(code(CITY)));
    }

    #[test]
    fn a_county_notice_reaches_every_township_below_and_the_city_above() {
        let h = header(RecordKind::Notice, COUNTY);
        let hints = RouteHints {
            owner_level: None,
            down: vec![code(COUNTY)],
            ..RouteHints::default()
        };
        assert_eq!(holders(&h, &hints), vec![TOWNSHIP, SIBLING, COUNTY, CITY]);
    }

    #[test]
    fn a_city_mandate_reaches_its_station_through_the_county_and_no_sibling() {
        let h = header(RecordKind::Mandate, CITY);
        let hints = RouteHints {
            to: vec![code(TOWNSHIP)],
            ..RouteHints::default()
        };
        assert_eq!(holders(&h, &hints), vec![TOWNSHIP, COUNTY, CITY]);
        // A target outside the home's subtree draws no path: a mandate never leaves its
        // congress's area downward.
        let h = header(RecordKind::Mandate, SIBLING);
        assert_eq!(holders(&h, &hints), vec![SIBLING, COUNTY, CITY]);
    }
}
