//! Personal data kept apart from the record it belongs to, so that routing can keep it at the
//! home node and its parent while the record itself travels further.

use serde::{Deserialize, Serialize};

use super::{RecordId, RecordKind};
use crate::validate::{ValidationError, required_text};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonalData {
    /// The record this data belongs to (a delegate or an opinion).
    pub subject: RecordId,
    pub subject_kind: RecordKind,
    /// A constituent's name; delegates' names are public and live on the delegate record.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    /// 居民身份证号码.
    #[serde(default)]
    pub id_number: Option<String>,
}

impl PersonalData {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.phone.is_none() && self.id_number.is_none()
    }

    pub fn validate(&self, field_prefix: &str) -> Result<(), ValidationError> {
        if let Some(name) = &self.name {
            required_text(&format!("{field_prefix}name"), name)?;
        }
        if let Some(phone) = &self.phone {
            let ok = (5..=20).contains(&phone.len())
                && phone
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '-' || c == '+' || c == ' ');
            if !ok {
                return Err(ValidationError::new(
                    format!("{field_prefix}phone"),
                    "电话号码只能包含数字、空格、+ 和 -，长度 5 到 20 位",
                ));
            }
        }
        if let Some(id) = &self.id_number {
            let b = id.as_bytes();
            let ok = b.len() == 18
                && b[..17].iter().all(u8::is_ascii_digit)
                && (b[17].is_ascii_digit() || b[17] == b'X' || b[17] == b'x');
            if !ok {
                return Err(ValidationError::new(
                    "id-number",
                    "身份证号码必须是18位（最后一位可以是 X）",
                ));
            }
        }
        Ok(())
    }
}
