//! Activities and notices on the workbench: an activity with the delegates present
//! (`/new/activity`), later sign-ins on its page, and a notice to this congress's subtree
//! (`/new/notice`). Each calls the office operation `renda activity …` and `renda notice add`
//! call.

use chrono::NaiveDate;
use maud::{Markup, html};
use renda_node::office::ActivityDraft;
use renda_node::record::activity::{Activity, ActivityKind};
use renda_node::record::notice::Notice;
use renda_node::record::{Body, Record, RecordId, RecordKind};
use renda_node::region::RegionCode;
use renda_node::store::{ListQuery, Store, StoreError, WriteTx};

use super::people::venue_options;
use super::records::{NewRecord, ids, optional_id, optional_number};
use super::suggestions::delegate_options;
use super::{Refused, StepContext, StepWrite, guarded_step};
use crate::dashboard::forms::{Posted, Refusal, Shown, options, with_none};

#[derive(Default)]
pub(crate) struct ActivityChoices {
    delegates: Vec<(String, String)>,
    venues: Vec<(String, String)>,
    groups: Vec<(String, String)>,
    /// The node's own name, the organiser unless changed.
    organiser: String,
}

/// 登记活动: an activity held or planned, with the delegates present.
pub(crate) struct NewActivity(ActivityDraft);

impl NewRecord for NewActivity {
    const PATH: &'static str = "/new/activity";
    const TITLE: &'static str = "登记活动";
    const NOTE: &'static str =
        "活动可提前一年登记；代表在活动当天或之后签到。签到的代表所在的人大都会收到这条活动。";
    const SUBMIT: &'static str = "登记";
    type Choices = ActivityChoices;

    fn choices(s: &Store, me: RegionCode) -> Result<ActivityChoices, StoreError> {
        let groups = s
            .list(&ListQuery {
                kind: Some(RecordKind::Group),
                home: Some(me),
                ..ListQuery::default()
            })?
            .into_iter()
            .map(|r| (r.id.to_string(), r.label))
            .collect();
        Ok(ActivityChoices {
            delegates: delegate_options(s, me)?,
            venues: venue_options(s, me)?,
            groups,
            organiser: s.identity().name.clone(),
        })
    }

    fn fields(shown: &Shown<'_>, c: &ActivityChoices, _: RegionCode, today: NaiveDate) -> Markup {
        html! {
            (shown.select("kind", "kind", "活动类型", &options(ActivityKind::ALL, ActivityKind::as_str, ActivityKind::label), "reception"))
            (shown.text("topic", "topic", "主题", true))
            (shown.input("activity_date", "activity_date", "日期", "date", &today.to_string(), true))
            (shown.input("organiser", "organiser", "组织单位", "text", &c.organiser, true))
            (shown.select("venue", "venue", "阵地", &with_none("（无）", &c.venues), ""))
            (shown.select("group", "group", "代表小组", &with_none("（无）", &c.groups), ""))
            (shown.multi_select("participant", "participant", "到场代表（签到，可多选）", &c.delegates))
            (shown.input("received", "received", "接待群众人次", "number", "0", false))
            (shown.textarea("outcome", "outcome", "活动成效", false))
        }
    }

    fn parse(posted: &Posted, _: RegionCode, today: NaiveDate) -> Result<Self, Refusal> {
        Ok(NewActivity(ActivityDraft {
            activity: Activity {
                kind: ActivityKind::parse("kind", posted.get("kind"))?,
                date: posted.date("activity_date", today)?,
                topic: posted.text("topic", "主题")?,
                organiser: posted.text("organiser", "组织单位")?,
                group: optional_id(posted, "group")?,
                venue: optional_id(posted, "venue")?,
                participants: Default::default(),
                constituents_received: optional_number(posted, "received", "接待群众人次")?
                    .unwrap_or(0),
                outcome: posted.get("outcome").to_string(),
            },
            participants: ids(posted, "participant")?,
        }))
    }

    fn apply(self, tx: &mut WriteTx<'_>, user: &str) -> Result<RecordId, StoreError> {
        renda_node::office::add_activity(tx, user, self.0).map(|h| h.id)
    }
}

/// 发布通知 to this congress's subtree or part of it.
pub(crate) struct NewNotice(Notice);

impl NewRecord for NewNotice {
    const PATH: &'static str = "/new/notice";
    const TITLE: &'static str = "发布通知";
    const NOTE: &'static str = "通知发往本级及下级：接收范围填本级或某个下级地区的代码。";
    const SUBMIT: &'static str = "发布";
    type Choices = ();

    fn fields(shown: &Shown<'_>, _: &(), me: RegionCode, today: NaiveDate) -> Markup {
        html! {
            (shown.text("title", "title", "标题", true))
            (shown.text("category", "category", "类别（如 通知、主题月倡议书、工作提示）", true))
            (shown.textarea("body", "body", "正文", true))
            (shown.input("audience", "audience", "接收范围（地区代码）", "text", &me.to_string(), true))
            (shown.date("date", "发布日期", today))
        }
    }

    fn parse(posted: &Posted, _: RegionCode, today: NaiveDate) -> Result<Self, Refusal> {
        Ok(NewNotice(Notice {
            title: posted.text("title", "标题")?,
            body: posted.text("body", "正文")?,
            category: posted.text("category", "类别")?,
            issued_on: posted.date("date", today)?,
            audience: RegionCode::parse("audience", posted.get("audience"))?,
        }))
    }

    fn apply(self, tx: &mut WriteTx<'_>, user: &str) -> Result<RecordId, StoreError> {
        renda_node::office::add_notice(tx, user, self.0).map(|h| h.id)
    }
}

/// Sign-ins, at the node that entered the activity.
pub(super) fn steps(
    me: RegionCode,
    record: &Record,
    version: i64,
    context: &StepContext,
    today: NaiveDate,
    refused: Option<&Refused>,
) -> Vec<(String, Markup)> {
    let Body::Activity(a) = &record.body else {
        return Vec::new();
    };
    if record.header.home != me {
        return Vec::new();
    }
    let absent: Vec<(String, String)> = context
        .delegates
        .iter()
        .filter(|(v, _)| !a.participants.keys().any(|p| p.to_string() == *v))
        .cloned()
        .collect();
    vec![guarded_step(
        &record.header.id,
        "sign_in",
        "签到",
        version,
        refused,
        today,
        |shown| {
            shown.multi_select(
                "sign_in-delegate",
                "delegate",
                "签到的代表（可多选）",
                &absent,
            )
        },
    )]
}

pub(super) fn action(step: &str, posted: &Posted, _today: NaiveDate) -> Result<StepWrite, Refusal> {
    if step != "sign_in" {
        return Err(Refusal::field("step", "活动只有“签到”这一步"));
    }
    let delegates = ids(posted, "delegate")?;
    if delegates.is_empty() {
        return Err(Refusal::field("delegate", "请选择签到的代表"));
    }
    Ok(Box::new(move |tx, _, id| {
        renda_node::office::sign_in(tx, id, &delegates).map(drop)
    }))
}
