//! The fleet view: what each node runs and how it is kept, rolled up like its numbers.
//!
//! Each node states its own facts in its rollup ([`NodeFacts`]: its release, the protocol
//! versions it speaks, when its certificate ends, its last database check and its last
//! backup), judges them ([`Fleet::of_node`]: a certificate ending within
//! [`CERTIFICATE_WARN_DAYS`], no sound check, no backup within the configured age), and adds
//! its children's summaries, so every node's rollup carries a [`Fleet`] of its whole subtree:
//! how many nodes run which release, and the nodes that need an operator, counted in full and
//! listed up to [`MAX_LISTED`] of each, the most pressing first. A child whose rollup carries no
//! summary runs a release from before this view and is counted as one node of
//! [`UNKNOWN_VERSION`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::region::RegionCode;

/// A certificate ending within this many days is listed as expiring.
pub const CERTIFICATE_WARN_DAYS: i64 = 30;

/// How many nodes of each kind a summary lists; the count covers them all.
pub const MAX_LISTED: usize = 100;

/// The release of a node whose rollup states none: one from before the fleet view.
pub const UNKNOWN_VERSION: &str = "unknown";

/// How many releases a summary names; a child naming more (none would: a federation runs two
/// or three at a time) has the rest counted as [`OTHER_VERSIONS`].
pub const MAX_VERSIONS: usize = 16;

/// Where releases beyond [`MAX_VERSIONS`], or named past reason, are counted.
pub const OTHER_VERSIONS: &str = "other";

/// What a node states about itself in its rollup.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeFacts {
    /// The release it runs (`0.7.0`).
    pub version: String,
    /// The sync protocol versions it speaks, both included.
    pub min_protocol: u32,
    pub max_protocol: u32,
    /// When the certificate it links with ends; `None` when it links without TLS.
    pub certificate_not_after: Option<DateTime<Utc>>,
    /// When its database was last found sound by a check; `None` if never.
    pub last_sound_check: Option<DateTime<Utc>>,
    /// When it last took a backup; `None` if never.
    pub last_backup: Option<DateTime<Utc>>,
}

/// A node a summary singles out, with the time that matters: when its certificate ends, when
/// its database was last found sound, when it last backed up (`None`: never).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FleetNode {
    pub at: Option<DateTime<Utc>>,
    pub region: RegionCode,
    #[serde(default)]
    pub name: String,
}

/// The nodes of a subtree that need an operator for one reason: how many, and the most pressing
/// of them (the earliest time first, never-done first of all).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Flagged {
    pub count: u64,
    pub nodes: Vec<FleetNode>,
}

impl Flagged {
    fn one(node: FleetNode) -> Flagged {
        Flagged {
            count: 1,
            nodes: vec![node],
        }
    }

    fn add(&mut self, other: &Flagged) {
        self.count = self.count.saturating_add(other.count);
        self.nodes.extend(other.nodes.iter().cloned());
        self.nodes.sort();
        self.nodes.dedup();
        self.nodes.truncate(MAX_LISTED);
    }
}

/// A subtree's fleet: its nodes by release, and those whose certificate ends soon, whose
/// database was not found sound, or whose last backup is too old.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Fleet {
    pub nodes: u64,
    pub by_version: BTreeMap<String, u64>,
    pub expiring_certificates: Flagged,
    pub unchecked: Flagged,
    pub stale_backups: Flagged,
}

impl Fleet {
    /// One node's own line, its facts judged at `now`: a backup older than `backup_max_age` is
    /// stale.
    pub fn of_node(
        region: RegionCode,
        name: &str,
        facts: &NodeFacts,
        now: DateTime<Utc>,
        backup_max_age: chrono::Duration,
    ) -> Fleet {
        let node = |at| FleetNode {
            at,
            region,
            name: name.to_string(),
        };
        let mut fleet = Fleet {
            nodes: 1,
            ..Fleet::default()
        };
        let version = if facts.version.is_empty() {
            UNKNOWN_VERSION.to_string()
        } else {
            facts.version.clone()
        };
        fleet.by_version.insert(version, 1);
        if let Some(end) = facts.certificate_not_after
            && end - now <= chrono::Duration::days(CERTIFICATE_WARN_DAYS)
        {
            fleet.expiring_certificates = Flagged::one(node(Some(end)));
        }
        if facts.last_sound_check.is_none() {
            fleet.unchecked = Flagged::one(node(None));
        }
        // A backup dated ahead of now (a clock that ran fast) proves nothing: stale too.
        if facts
            .last_backup
            .is_none_or(|at| now - at > backup_max_age || at > now + chrono::Duration::hours(1))
        {
            fleet.stale_backups = Flagged::one(node(facts.last_backup));
        }
        fleet
    }

    /// A child's line from its rollup's summary, held to what the child can say: the nodes it
    /// lists are of its own subtree, at most [`MAX_LISTED`] of each, their names and its
    /// release names short, at most [`MAX_VERSIONS`] releases. A rollup of a release before
    /// the fleet view carries no summary and counts as one node of [`UNKNOWN_VERSION`].
    pub fn of_child(child: &RegionCode, summary: &Fleet) -> Fleet {
        if summary.nodes == 0 {
            return Fleet {
                nodes: 1,
                by_version: [(UNKNOWN_VERSION.to_string(), 1)].into(),
                ..Fleet::default()
            };
        }
        let held = |g: &Flagged| Flagged {
            count: g.count.min(summary.nodes),
            nodes: g
                .nodes
                .iter()
                .filter(|n| n.region.is_within(child))
                .take(MAX_LISTED)
                .map(|n| FleetNode {
                    name: n.name.chars().take(64).collect(),
                    ..n.clone()
                })
                .collect(),
        };
        let mut by_version = BTreeMap::new();
        for (version, n) in &summary.by_version {
            let plausible = version.len() <= 32
                && version
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-+_".contains(c));
            let key = if plausible && by_version.len() < MAX_VERSIONS {
                version.clone()
            } else {
                OTHER_VERSIONS.to_string()
            };
            let slot: &mut u64 = by_version.entry(key).or_default();
            *slot = slot.saturating_add(*n);
        }
        Fleet {
            nodes: summary.nodes,
            by_version,
            expiring_certificates: held(&summary.expiring_certificates),
            unchecked: held(&summary.unchecked),
            stale_backups: held(&summary.stale_backups),
        }
    }

    /// Adds another subtree's fleet to this one.
    pub fn add(&mut self, other: &Fleet) {
        self.nodes = self.nodes.saturating_add(other.nodes);
        for (version, n) in &other.by_version {
            let slot = self.by_version.entry(version.clone()).or_default();
            *slot = slot.saturating_add(*n);
        }
        self.expiring_certificates.add(&other.expiring_certificates);
        self.unchecked.add(&other.unchecked);
        self.stale_backups.add(&other.stale_backups);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> RegionCode {
        RegionCode::parse("region", s).unwrap()
    }

    #[test]
    fn a_node_is_judged_by_its_own_facts() {
        let now = Utc::now();
        let day = chrono::Duration::days(1);
        let kept = NodeFacts {
            version: "0.7.0".into(),
            min_protocol: 6,
            max_protocol: 7,
            certificate_not_after: Some(now + day * 200),
            last_sound_check: Some(now - day),
            last_backup: Some(now - chrono::Duration::hours(3)),
        };
        let fine = Fleet::of_node(code("330411101000"), "王店镇", &kept, now, day * 2);
        assert_eq!(fine.nodes, 1);
        assert_eq!(fine.by_version, [("0.7.0".to_string(), 1)].into());
        assert_eq!(
            (
                fine.expiring_certificates.count,
                fine.unchecked.count,
                fine.stale_backups.count
            ),
            (0, 0, 0)
        );
        let neglected = NodeFacts {
            certificate_not_after: Some(now + day * 10),
            last_sound_check: None,
            last_backup: Some(now - day * 5),
            ..kept
        };
        let bad = Fleet::of_node(code("330411102000"), "新塍镇", &neglected, now, day * 2);
        assert_eq!(bad.expiring_certificates.nodes[0].at, Some(now + day * 10));
        assert_eq!(bad.unchecked.count, 1);
        assert_eq!(bad.stale_backups.nodes[0].at, Some(now - day * 5));
        let never = NodeFacts::default();
        let unknown = Fleet::of_node(code("330411103000"), "x", &never, now, day * 2);
        assert_eq!(
            unknown.by_version,
            [(UNKNOWN_VERSION.to_string(), 1)].into()
        );
        assert_eq!(unknown.stale_backups.nodes[0].at, None, "never backed up");
    }

    /// A child says what it can of its own subtree only: another county's node it lists is
    /// dropped, and a flood of made-up releases is folded into one.
    #[test]
    fn a_childs_summary_is_held_to_its_subtree() {
        let now = Utc::now();
        let xiuzhou = code("330411000000");
        let mut said = Fleet {
            nodes: 3,
            ..Fleet::default()
        };
        for n in 0..40 {
            said.by_version.insert(format!("9.{n}.0"), 1);
        }
        said.by_version.insert("<script>".into(), 1);
        said.expiring_certificates = Flagged {
            count: 500,
            nodes: vec![
                FleetNode {
                    at: Some(now),
                    region: code("330411101000"),
                    name: "王店镇".repeat(40),
                },
                FleetNode {
                    at: Some(now),
                    region: code("320117101000"),
                    name: "别省".into(),
                },
            ],
        };
        let held = Fleet::of_child(&xiuzhou, &said);
        assert_eq!(held.by_version.len(), MAX_VERSIONS + 1);
        assert_eq!(held.by_version[OTHER_VERSIONS], 41 - MAX_VERSIONS as u64);
        assert_eq!(
            held.expiring_certificates.count, 3,
            "no more than its nodes"
        );
        assert_eq!(held.expiring_certificates.nodes.len(), 1);
        assert_eq!(held.expiring_certificates.nodes[0].name.chars().count(), 64);
    }

    #[test]
    fn subtrees_add_up_and_list_the_most_pressing_first() {
        let now = Utc::now();
        let mut total = Fleet::default();
        for n in 0..(MAX_LISTED as i64 + 20) {
            let facts = NodeFacts {
                version: if n % 2 == 0 { "0.7.0" } else { "0.8.0" }.into(),
                certificate_not_after: Some(now + chrono::Duration::hours(n)),
                last_sound_check: Some(now),
                last_backup: Some(now),
                ..NodeFacts::default()
            };
            let region = code(&format!("3304111{:02}000", n % 100));
            total.add(&Fleet::of_node(
                region,
                "镇",
                &facts,
                now,
                chrono::Duration::days(2),
            ));
        }
        // A child of a release before the view.
        total.add(&Fleet::of_child(&code("330402000000"), &Fleet::default()));
        assert_eq!(total.nodes, MAX_LISTED as u64 + 21);
        assert_eq!(total.by_version["0.7.0"], 60);
        assert_eq!(total.by_version["0.8.0"], 60);
        assert_eq!(total.by_version[UNKNOWN_VERSION], 1);
        assert_eq!(total.expiring_certificates.count, MAX_LISTED as u64 + 20);
        assert_eq!(total.expiring_certificates.nodes.len(), MAX_LISTED);
        assert_eq!(total.expiring_certificates.nodes[0].at, Some(now));
        assert!(
            total
                .expiring_certificates
                .nodes
                .windows(2)
                .all(|w| w[0].at <= w[1].at)
        );
    }
}
