//! What two ends of a link agree on before anything else: the protocol version both speak and
//! the settings every node of a federation must share. Pure: the adapters (`client.rs`, the
//! hub's sync service) hand it both `Hello`s and act on the verdict.

use std::collections::BTreeMap;
use std::fmt;

use renda_proto::v1::Hello;
use renda_proto::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};

use super::LinkConfig;
use crate::route::RoutePolicy;

/// The first protocol version whose record headers carry their routes, so that a receiver keeps
/// and forwards a record of a kind it does not know. A peer of an older version fails a batch
/// that holds one: such records are not sent to it ([`newer_kinds_reach`]).
pub const ROUTES_ON_WIRE: u32 = 7;

/// Whether records of kinds this release does not know may be sent on a link of `version`.
pub fn newer_kinds_reach(version: u32) -> bool {
    version >= ROUTES_ON_WIRE
}

/// Whether records of `kind` may be sent on a link of `version`: a kind added with protocol 7
/// (certificate revocations) is one a peer of 6 does not know and would fail the batch over, so
/// it waits, as records of kinds this release does not know do ([`newer_kinds_reach`]).
pub fn kind_reaches(kind: crate::record::RecordKind, version: u32) -> bool {
    match kind {
        crate::record::RecordKind::Revocation => version >= ROUTES_ON_WIRE,
        _ => true,
    }
}

/// A range of protocol versions, lowest and highest, both included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Versions {
    pub min: u32,
    pub max: u32,
}

impl Versions {
    /// What this build speaks.
    pub const fn this_build() -> Versions {
        Versions {
            min: MIN_PROTOCOL_VERSION,
            max: PROTOCOL_VERSION,
        }
    }

    /// The range a peer's `Hello`, stamped with version `stamped`, says it speaks. A node of
    /// version 6 or older sends no range and speaks exactly the version its message carries.
    pub fn of_hello(stamped: u32, hello: &Hello) -> Versions {
        if hello.max_protocol_version == 0 {
            Versions {
                min: stamped,
                max: stamped,
            }
        } else {
            Versions {
                min: hello.min_protocol_version,
                max: hello.max_protocol_version,
            }
        }
    }

    /// The highest version both ranges hold.
    pub fn agree(self, theirs: Versions) -> Option<u32> {
        let version = self.max.min(theirs.max);
        (version >= self.min.max(theirs.min) && theirs.min <= theirs.max).then_some(version)
    }
}

impl fmt::Display for Versions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}–{}", self.min, self.max)
        }
    }
}

/// The settings every node of a federation must share, as a `Hello` carries them.
pub fn federation_settings(policy: &RoutePolicy) -> BTreeMap<String, String> {
    let depth = serde_json::to_value(policy.full_record_depth)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    BTreeMap::from([("full_record_depth".to_string(), depth)])
}

/// Why two nodes may not link whatever else holds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("no protocol version in common: this node speaks {ours}, the peer speaks {theirs}")]
    Versions { ours: Versions, theirs: Versions },
    #[error(
        "the federation setting {name} differs: this node has {ours}, the peer has {theirs}; every node of a federation must share it"
    )]
    Setting {
        name: String,
        ours: String,
        theirs: String,
    },
}

/// The version a link speaks as `config` offers it, given the peer's `Hello` and the range it
/// stamps: what both ends of a link decide the same way.
pub fn agree(config: &LinkConfig, theirs: Versions, hello: &Hello) -> Result<u32, Mismatch> {
    negotiate(
        config.versions,
        &federation_settings(&config.policy),
        theirs,
        &hello.settings,
    )
}

/// The version a link speaks, or why it may not open: no version in common, or a shared
/// setting the two ends hold differently. A setting the peer does not send (a node from before
/// settings were exchanged) is not checked.
pub fn negotiate(
    ours: Versions,
    our_settings: &BTreeMap<String, String>,
    theirs: Versions,
    their_settings: &std::collections::HashMap<String, String>,
) -> Result<u32, Mismatch> {
    let version = ours
        .agree(theirs)
        .ok_or(Mismatch::Versions { ours, theirs })?;
    for (name, value) in our_settings {
        if let Some(other) = their_settings.get(name)
            && other != value
        {
            return Err(Mismatch::Setting {
                name: name.clone(),
                ours: value.clone(),
                theirs: other.clone(),
            });
        }
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn v(min: u32, max: u32) -> Versions {
        Versions { min, max }
    }

    #[test]
    fn both_ends_speak_the_highest_version_they_share() {
        assert_eq!(v(6, 7).agree(v(6, 6)), Some(6));
        assert_eq!(v(6, 7).agree(v(5, 9)), Some(7));
        assert_eq!(v(6, 7).agree(v(7, 8)), Some(7));
        assert_eq!(v(6, 7).agree(v(8, 9)), None);
        assert_eq!(v(6, 7).agree(v(4, 5)), None);
        // A range upside down holds nothing.
        assert_eq!(v(6, 7).agree(v(7, 6)), None);
    }

    #[test]
    fn a_hello_from_before_ranges_speaks_its_message_version() {
        let hello = Hello::default();
        assert_eq!(Versions::of_hello(6, &hello), v(6, 6));
        let hello = Hello {
            min_protocol_version: 6,
            max_protocol_version: 9,
            ..Hello::default()
        };
        assert_eq!(Versions::of_hello(6, &hello), v(6, 9));
    }

    #[test]
    fn a_mismatch_names_both_ranges_or_the_setting_and_both_values() {
        let ours = federation_settings(&RoutePolicy::default());
        assert_eq!(ours["full_record_depth"], "city");
        let none = HashMap::new();
        let refused = negotiate(v(6, 7), &ours, v(8, 9), &none).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "no protocol version in common: this node speaks 6–7, the peer speaks 8–9"
        );
        let county = HashMap::from([("full_record_depth".to_string(), "county".to_string())]);
        let refused = negotiate(v(6, 7), &ours, v(6, 7), &county).unwrap_err();
        let text = refused.to_string();
        assert!(
            text.contains("full_record_depth") && text.contains("city") && text.contains("county"),
            "{text}"
        );
        // Not sent: not checked. Sent and equal: agreed.
        assert_eq!(negotiate(v(6, 7), &ours, v(6, 6), &none), Ok(6));
        let same = HashMap::from([("full_record_depth".to_string(), "city".to_string())]);
        assert_eq!(negotiate(v(6, 7), &ours, v(6, 7), &same), Ok(7));
    }
}
