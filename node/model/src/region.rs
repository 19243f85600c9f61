//! Region codes: the 12-digit statistical division code (统计用区划代码) that names every node.
//!
//! The code is `PP CC DD TTT VVV`: province, city, county, township and village segments. The
//! division a code names follows from which segments are zero, so the whole tree of congresses can
//! be derived from codes alone, with no lookup table. Streets (township segment 001-099) and
//! villages have no congress: a street office acts for its district, a village for its township.
//!
//! The national congress has no code of its own in the statistical scheme; Renda gives it
//! `000000000000`, the code whose every segment is zero.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::validate::ValidationError;

/// Province segments that exist in the national standard (GB/T 2260).
const PROVINCES: &[u8] = &[
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
];

/// The municipalities directly under the central government (直辖市). Their city segment
/// (01 市辖区, 02 县) is a statistical grouping, not a congress: districts answer to the
/// municipality itself.
const MUNICIPALITIES: &[u8] = &[11, 12, 31, 50];

/// City segment of county-level divisions administered directly by a province (省直辖县级行政单位).
/// Like a municipality's 市辖区, it groups counties but holds no congress.
const PROVINCE_ADMINISTERED: u8 = 90;

/// A validated 12-digit region code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionCode([u8; 12]);

/// The congress levels, from the top. Their order is the order of rank: `National < Province`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    National,
    Province,
    City,
    County,
    Township,
}

/// What kind of division a code names. Streets and villages are divisions without a congress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Division {
    Congress(Level),
    /// 街道: acts through its district's congress.
    Street,
    /// 村/社区: belongs to its township (or street).
    Village,
}

impl Level {
    pub const ALL: [Level; 5] = [
        Level::National,
        Level::Province,
        Level::City,
        Level::County,
        Level::Township,
    ];

    /// The Chinese name shown to staff.
    pub fn label(self) -> &'static str {
        match self {
            Level::National => "全国",
            Level::Province => "省级",
            Level::City => "市级",
            Level::County => "县级",
            Level::Township => "乡镇级",
        }
    }

    /// Parses either the English identifier or the Chinese label.
    pub fn parse(field: &str, s: &str) -> Result<Level, ValidationError> {
        Level::ALL
            .into_iter()
            .find(|l| {
                s == l.label()
                    || s == l.label().trim_end_matches('级')
                    || serde_json::to_value(l)
                        .ok()
                        .and_then(|v| v.as_str().map(|v| v == s))
                        == Some(true)
            })
            .ok_or_else(|| {
                ValidationError::new(
                    field,
                    format!(
                        "级别必须是 national/province/city/county/township 之一，实际为“{}”",
                        crate::validate::quote(s)
                    ),
                )
            })
    }
}

impl RegionCode {
    /// The national congress (全国人大).
    pub const NATIONAL: RegionCode = RegionCode([b'0'; 12]);

    /// Parses and validates a code, naming `field` in the error.
    pub fn parse(field: &str, s: &str) -> Result<RegionCode, ValidationError> {
        let bytes = s.as_bytes();
        if bytes.len() != 12 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(ValidationError::new(
                field,
                format!(
                    "区划代码必须是12位数字，实际为“{}”",
                    crate::validate::quote(s)
                ),
            ));
        }
        let mut raw = [0u8; 12];
        raw.copy_from_slice(bytes);
        let code = RegionCode(raw);
        if code == RegionCode::NATIONAL {
            return Ok(code);
        }
        let province = code.segment(0, 2) as u8;
        if !PROVINCES.contains(&province) {
            return Err(ValidationError::new(
                field,
                format!("区划代码“{s}”的省级段 {province:02} 不是有效的省级代码"),
            ));
        }
        // A zero segment may only be followed by zero segments: 330000100000 names nothing.
        let segments = [
            code.segment(2, 4),
            code.segment(4, 6),
            code.segment(6, 9),
            code.segment(9, 12),
        ];
        let mut seen_zero = false;
        for value in segments {
            if value == 0 {
                seen_zero = true;
            } else if seen_zero {
                return Err(ValidationError::new(
                    field,
                    format!("区划代码“{s}”中，为零的段之后不能再有非零段"),
                ));
            }
        }
        Ok(code)
    }

    fn segment(&self, from: usize, to: usize) -> u32 {
        self.0[from..to]
            .iter()
            .fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
    }

    pub fn as_str(&self) -> &str {
        // The bytes are ASCII digits by construction.
        std::str::from_utf8(&self.0).unwrap_or("000000000000")
    }

    /// Which division this code names.
    pub fn division(&self) -> Division {
        if *self == RegionCode::NATIONAL {
            Division::Congress(Level::National)
        } else if self.segment(9, 12) != 0 {
            Division::Village
        } else if self.segment(6, 9) != 0 {
            if self.segment(6, 9) < 100 {
                Division::Street
            } else {
                Division::Congress(Level::Township)
            }
        } else if self.segment(4, 6) != 0 {
            Division::Congress(Level::County)
        } else if self.segment(2, 4) != 0 {
            Division::Congress(Level::City)
        } else {
            Division::Congress(Level::Province)
        }
    }

    /// The congress level of this code, or `None` for a street or village.
    pub fn level(&self) -> Option<Level> {
        match self.division() {
            Division::Congress(level) => Some(level),
            Division::Street | Division::Village => None,
        }
    }

    /// True when the statistical scheme lists this code but no congress sits there: a
    /// municipality's 市辖区/县 grouping or a province's group of directly administered counties.
    fn is_grouping_without_congress(&self) -> bool {
        self.division() == Division::Congress(Level::City)
            && (MUNICIPALITIES.contains(&(self.segment(0, 2) as u8))
                || self.segment(2, 4) as u8 == PROVINCE_ADMINISTERED)
    }

    /// True when a congress sits at this code, so a node may be identified by it.
    pub fn has_congress(&self) -> bool {
        self.level().is_some() && !self.is_grouping_without_congress()
    }

    /// The division one step up in the code, without skipping groupings.
    fn code_parent(&self) -> Option<RegionCode> {
        let zero_from = match self.division() {
            Division::Congress(Level::National) => return None,
            Division::Congress(Level::Province) => 0,
            Division::Congress(Level::City) => 2,
            Division::Congress(Level::County) => 4,
            Division::Congress(Level::Township) | Division::Street => 6,
            Division::Village => 9,
        };
        let mut raw = self.0;
        raw[zero_from..].fill(b'0');
        Some(RegionCode(raw))
    }

    /// The congress this division answers to: for a congress, the next congress up; for a street,
    /// its district; for a village, its township (or, in a street, the district).
    pub fn parent(&self) -> Option<RegionCode> {
        let mut up = self.code_parent()?;
        while !up.has_congress() {
            up = up.code_parent()?;
        }
        Some(up)
    }

    /// The congress that acts for this division: itself if it has one, else the nearest above.
    pub fn congress(&self) -> RegionCode {
        if self.has_congress() {
            *self
        } else {
            self.parent().unwrap_or(RegionCode::NATIONAL)
        }
    }

    /// True when `self` is `other` or lies inside `other`'s subtree.
    pub fn is_within(&self, other: &RegionCode) -> bool {
        let mut at = Some(*self);
        while let Some(code) = at {
            if code == *other {
                return true;
            }
            at = code.code_parent();
        }
        false
    }

    /// The code prefix every code in this subtree shares (the significant segments), for
    /// prefix queries over stored codes.
    pub fn subtree_prefix(&self) -> &str {
        let len = match self.division() {
            Division::Congress(Level::National) => 0,
            Division::Congress(Level::Province) => 2,
            Division::Congress(Level::City) => 4,
            Division::Congress(Level::County) => 6,
            Division::Congress(Level::Township) | Division::Street => 9,
            Division::Village => 12,
        };
        &self.as_str()[..len]
    }

    /// The chain of congresses above this one, nearest first, ending at the national congress.
    pub fn ancestors(&self) -> Vec<RegionCode> {
        let mut chain = Vec::new();
        let mut at = self.parent();
        while let Some(code) = at {
            chain.push(code);
            at = code.parent();
        }
        chain
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegionCode({})", self.as_str())
    }
}

impl FromStr for RegionCode {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RegionCode::parse("region", s)
    }
}

impl Serialize for RegionCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RegionCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RegionCode::parse("region", &s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> RegionCode {
        RegionCode::parse("region", s).expect(s)
    }

    #[test]
    fn levels_follow_from_the_code() {
        assert_eq!(code("000000000000").level(), Some(Level::National));
        assert_eq!(code("330000000000").level(), Some(Level::Province));
        assert_eq!(code("330400000000").level(), Some(Level::City));
        assert_eq!(code("330411000000").level(), Some(Level::County));
        assert_eq!(code("330411101000").level(), Some(Level::Township));
        assert_eq!(code("330411001000").division(), Division::Street);
        assert_eq!(code("330411101201").division(), Division::Village);
    }

    #[test]
    fn parents_skip_divisions_without_a_congress() {
        // 王店镇 → 秀洲区 → 嘉兴市 → 浙江省 → 全国
        let wangdian = code("330411101000");
        assert_eq!(
            wangdian.ancestors(),
            vec![
                code("330411000000"),
                code("330400000000"),
                code("330000000000"),
                RegionCode::NATIONAL
            ]
        );
        // A street acts for its district; a village in a street too.
        assert_eq!(code("330411001000").congress(), code("330411000000"));
        assert_eq!(code("330411001005").congress(), code("330411000000"));
        assert_eq!(code("330411101201").congress(), wangdian);
        // Beijing's 东城区 answers to the municipality, not to the 市辖区 grouping.
        assert_eq!(code("110101000000").parent(), Some(code("110000000000")));
        assert!(!code("110100000000").has_congress());
        // 仙桃市 (province-administered) answers to 湖北省.
        assert_eq!(code("429004000000").parent(), Some(code("420000000000")));
        assert_eq!(RegionCode::NATIONAL.parent(), None);
    }

    #[test]
    fn subtree_prefixes_agree_with_membership() {
        assert_eq!(RegionCode::NATIONAL.subtree_prefix(), "");
        assert_eq!(code("330400000000").subtree_prefix(), "3304");
        assert_eq!(code("330411101000").subtree_prefix(), "330411101");
        assert_eq!(code("330411101203").subtree_prefix(), "330411101203");
        for (inner, outer) in [
            ("330411101203", "330411101000"),
            ("330411101000", "330400000000"),
        ] {
            assert!(code(inner).is_within(&code(outer)));
            assert!(
                code(inner)
                    .as_str()
                    .starts_with(code(outer).subtree_prefix())
            );
        }
    }

    #[test]
    fn subtree_membership() {
        assert!(code("330411101000").is_within(&code("330400000000")));
        assert!(code("330411101000").is_within(&RegionCode::NATIONAL));
        assert!(!code("330411101000").is_within(&code("330411102000")));
        assert!(!code("330400000000").is_within(&code("330411000000")));
    }

    #[test]
    fn malformed_codes_name_the_rule() {
        for (bad, rule) in [
            ("33041110100", "12位数字"),
            ("3304111010000", "12位数字"),
            ("33041110100x", "12位数字"),
            ("990000000000", "省级代码"),
            ("330011101000", "为零的段之后"),
            ("330400000100", "为零的段之后"),
        ] {
            let err = RegionCode::parse("region", bad).unwrap_err();
            assert_eq!(err.field, "region");
            assert!(err.rule.contains(rule), "{bad}: {err}");
        }
    }

    #[test]
    fn levels_parse_in_both_languages() {
        assert_eq!(Level::parse("level", "county").unwrap(), Level::County);
        assert_eq!(Level::parse("level", "县级").unwrap(), Level::County);
        assert_eq!(Level::parse("level", "乡镇").unwrap(), Level::Township);
        assert!(Level::parse("level", "village").is_err());
    }
}
