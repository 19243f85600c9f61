//! Activities: what delegates do between sessions, with the sign-ins of every delegate present.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::RecordId;
use crate::region::{Level, RegionCode};
use crate::validate::{ValidationError, bounded_text, required_text};

labelled_enum!(ActivityKind {
    GroupMeeting => ("group", "小组活动"),
    Inspection => ("inspection", "视察"),
    Research => ("research", "专题调研"),
    LawEnforcementCheck => ("law_check", "执法检查"),
    Reception => ("reception", "接待选民"),
    ActivityDay => ("activity_day", "代表活动日"),
    AttendMeeting => ("attend_meeting", "列席会议"),
    Inquiry => ("inquiry", "专题询问"),
    Appraisal => ("appraisal", "履职评议"),
    ReportToVoters => ("report", "向选民述职"),
    Training => ("training", "学习培训"),
    FollowUp => ("follow_up", "回头看"),
    Other => ("other", "其他"),
});

labelled_enum!(
    /// How a sign-in was taken.
    SignInSource {
        Clerk => ("clerk", "工作人员录入"),
        QrCode => ("qr", "扫码签到"),
    }
);

/// A delegate's sign-in. The delegate's name and serving congresses are copied in at sign-in so
/// the activity can be routed to every participant's congress and shown without the delegate
/// record, which the receiving node may not hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignIn {
    pub name: String,
    /// The highest level at which the delegate served when signing in.
    #[serde(default)]
    pub level: Option<Level>,
    pub congresses: Vec<RegionCode>,
    pub signed_at: DateTime<Utc>,
    /// How it was taken; sign-ins from before this was kept were a clerk's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SignInSource>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    pub kind: ActivityKind,
    pub date: NaiveDate,
    pub topic: String,
    /// Who organised it, as staff write it (e.g. 王店镇人大主席团).
    pub organiser: String,
    #[serde(default)]
    pub group: Option<RecordId>,
    #[serde(default)]
    pub venue: Option<RecordId>,
    /// Keyed by delegate id: a map, so sign-ins taken on two nodes at once all survive a merge.
    pub participants: BTreeMap<RecordId, SignIn>,
    /// Constituents received (接待群众人次) during the activity.
    pub constituents_received: u32,
    #[serde(default)]
    pub outcome: String,
}

impl Activity {
    pub fn validate(&self) -> Result<(), ValidationError> {
        required_text("topic", &self.topic)?;
        required_text("organiser", &self.organiser)?;
        bounded_text("outcome", &self.outcome)?;
        if self.constituents_received > 100_000 {
            return Err(ValidationError::new(
                "received",
                "接待群众人次不能超过 100000",
            ));
        }
        Ok(())
    }

    /// The highest level among the participants, which decides how far up the activity travels.
    pub fn highest_participant_level(&self) -> Option<Level> {
        self.participants.values().filter_map(|s| s.level).min()
    }
}
