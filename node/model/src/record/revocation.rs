//! Certificate revocations (证书吊销): a node's certificate that must no longer link, named by its
//! region and serial number, with the reason.
//!
//! A revocation is written by a node above the revoked one (its parent, or any ancestor whose
//! operator holds the CA that issued the certificate) and homed there; only that node writes
//! it. It travels down to the subtree of the revoked node's parent, so the parent, which the
//! revoked node dials, and the revoked node's own children, which it would serve, hold it
//! within one sync. Every node that holds it refuses a link presenting that certificate and
//! notes the refusal in its audit log. A certificate issued anew, with another serial, links
//! again.

use serde::{Deserialize, Serialize};

use crate::region::RegionCode;
use crate::validate::{ValidationError, bounded_text};

labelled_enum!(
    /// Why a certificate was revoked.
    RevocationReason {
        KeyCompromise => ("key_compromise", "密钥泄露或设备丢失"),
        Superseded => ("superseded", "已换发新证书"),
        Cessation => ("cessation", "节点停用"),
        Other => ("other", "其他原因"),
    }
);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The region the certificate names.
    pub region: RegionCode,
    /// The certificate's serial number in lowercase hex, without separators.
    pub serial: String,
    pub reason: RevocationReason,
    /// What happened, as the operator wrote it (被盗的办公电脑 …).
    #[serde(default)]
    pub note: String,
}

/// The longest serial a certificate carries (20 octets, RFC 5280).
const MAX_SERIAL_HEX: usize = 40;

impl Revocation {
    /// A serial number as the certificate tools print it (`0A:1B:…`, `0a1b…`), in the one form
    /// a revocation keeps: lowercase hex without separators or leading zeros.
    pub fn normalise_serial(serial: &str) -> Result<String, ValidationError> {
        let hex: String = serial
            .trim()
            .chars()
            .filter(|c| *c != ':' && *c != ' ')
            .collect::<String>()
            .to_ascii_lowercase();
        let hex = hex.trim_start_matches('0');
        let hex = if hex.is_empty() { "0" } else { hex };
        if hex.len() > MAX_SERIAL_HEX || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ValidationError::new(
                "serial",
                format!("证书序列号须为至多 {MAX_SERIAL_HEX} 位十六进制数字"),
            ));
        }
        Ok(hex.to_string())
    }

    /// Checks the revocation as the record homed at `home` says it: a node revokes only
    /// certificates of its own subtree, itself included (a certificate it replaced).
    pub fn validate(&self, home: &RegionCode) -> Result<(), ValidationError> {
        if !self.region.is_within(home) {
            return Err(ValidationError::new(
                "region",
                format!(
                    "只能吊销本节点 {home} 辖区内节点的证书，{} 不在其中",
                    self.region
                ),
            ));
        }
        if Revocation::normalise_serial(&self.serial)? != self.serial {
            return Err(ValidationError::new(
                "serial",
                "证书序列号须为小写十六进制、无分隔符、无前导零",
            ));
        }
        bounded_text("note", &self.note)
    }

    /// Where it must reach: the revoked node's parent's subtree (its parent and its children
    /// among them); the node's own subtree at the top of the tree.
    pub fn audience(&self) -> RegionCode {
        self.region.parent().unwrap_or(self.region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_kept_in_one_form() {
        assert_eq!(Revocation::normalise_serial("0A:1B:ff").unwrap(), "a1bff");
        assert_eq!(Revocation::normalise_serial(" 00ab ").unwrap(), "ab");
        assert_eq!(Revocation::normalise_serial("0").unwrap(), "0");
        assert!(Revocation::normalise_serial("xyz").is_err());
        assert!(Revocation::normalise_serial(&"f".repeat(41)).is_err());
    }

    #[test]
    fn a_node_revokes_only_in_its_subtree() {
        let county = RegionCode::parse("home", "330411000000").unwrap();
        let town = RegionCode::parse("region", "330411101000").unwrap();
        let elsewhere = RegionCode::parse("region", "330402101000").unwrap();
        let revocation = |region| Revocation {
            region,
            serial: "a1b2".into(),
            reason: RevocationReason::KeyCompromise,
            note: String::new(),
        };
        assert!(revocation(town).validate(&county).is_ok());
        assert_eq!(revocation(town).audience(), county);
        assert_eq!(
            revocation(elsewhere).validate(&county).unwrap_err().field,
            "region"
        );
        let mut loose = revocation(town);
        loose.serial = "0A1B".into();
        assert_eq!(loose.validate(&county).unwrap_err().field, "serial");
    }
}
