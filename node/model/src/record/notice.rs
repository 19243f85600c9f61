//! Notices (通知, 倡议书): what a congress publishes to its subtree.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::region::RegionCode;
use crate::validate::{ValidationError, required_text};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub title: String,
    pub body: String,
    /// What sort of notice, as staff name it: 通知, 主题月倡议书, 工作提示 …
    pub category: String,
    pub issued_on: NaiveDate,
    /// The root of the subtree the notice is addressed to; the issuing congress by default.
    pub audience: RegionCode,
}

impl Notice {
    pub fn validate(&self, issuer: &RegionCode) -> Result<(), ValidationError> {
        required_text("title", &self.title)?;
        required_text("body", &self.body)?;
        required_text("category", &self.category)?;
        if !self.audience.is_within(issuer) {
            return Err(ValidationError::new(
                "audience",
                format!(
                    "通知只能发往本级及下级（{issuer} 的辖区），{} 不在其中",
                    self.audience
                ),
            ));
        }
        Ok(())
    }
}
