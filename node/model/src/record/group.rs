//! Delegate groups (代表小组) and the venues where delegates work between sessions.

use serde::{Deserialize, Serialize};

use super::{IdSet, RecordId};
use crate::region::RegionCode;
use crate::validate::{ValidationError, bounded_text, required_text};

labelled_enum!(GroupKind {
    Regional => ("regional", "区域"),
    Professional => ("professional", "专业"),
});

labelled_enum!(VenueKind {
    Station => ("station", "代表联络站"),
    Home => ("home", "代表之家"),
    Studio => ("studio", "代表工作室"),
    PracticePoint => ("practice", "全过程人民民主实践点"),
});

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub kind: GroupKind,
    /// The field of a professional group (e.g. 经济, 农业农村); empty for regional groups.
    #[serde(default)]
    pub field: Option<String>,
    /// The congress the group belongs to.
    pub congress: RegionCode,
    #[serde(default)]
    pub leader: Option<RecordId>,
    pub members: IdSet,
    #[serde(default)]
    pub venue: Option<RecordId>,
}

impl Group {
    pub fn validate(&self) -> Result<(), ValidationError> {
        required_text("name", &self.name)?;
        match (&self.kind, &self.field) {
            (GroupKind::Professional, None) => {
                return Err(ValidationError::new(
                    "field",
                    "专业代表小组必须写明专业领域",
                ));
            }
            (_, Some(field)) => required_text("field", field)?,
            _ => {}
        }
        if !self.congress.has_congress() {
            return Err(ValidationError::new(
                "congress",
                format!("{} 没有人民代表大会", self.congress),
            ));
        }
        if let Some(leader) = &self.leader
            && !self.members.0.contains(leader)
        {
            return Err(ValidationError::new("leader", "组长必须是本组成员"));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Venue {
    pub name: String,
    pub kind: VenueKind,
    /// Where the venue is: a township, street or village code.
    pub region: RegionCode,
    pub address: String,
}

impl Venue {
    pub fn validate(&self) -> Result<(), ValidationError> {
        required_text("name", &self.name)?;
        bounded_text("address", &self.address)
    }
}
