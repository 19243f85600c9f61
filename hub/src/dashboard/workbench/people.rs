//! People and places on the workbench: a person registered with this congress's seat
//! (`/new/delegate`), a venue (`/new/venue`), a group (`/new/group`); on a person's page, a seat
//! of this congress granted (当选, 补选) and a duplicate registration merged; on a seat's page,
//! its status changed and the delegate stationed at a venue or leaving it (进站, 离站); on a
//! group's page, members added. Each calls the office operation `renda delegate …`, `renda
//! venue add` and `renda group …` call.

use chrono::NaiveDate;
use maud::{Markup, html};
use renda_node::office::{Contact, SeatDraft, StationRef};
use renda_node::record::delegate::{Delegate, Gender, MandateStatus};
use renda_node::record::group::{Group, GroupKind, Venue, VenueKind};
use renda_node::record::{Body, IdSet, Record, RecordId, RecordKind};
use renda_node::region::RegionCode;
use renda_node::store::{ListQuery, Store, StoreError, WriteTx};

use super::records::{NewRecord, ids, optional_id, optional_number};
use super::suggestions::delegate_options;
use super::{Refused, StepContext, StepWrite, guarded_step};
use crate::dashboard::forms::{Posted, Refusal, Shown, options, with_none};

/// Venues held here in this node's subtree, by name.
pub(crate) fn venue_options(
    s: &Store,
    me: RegionCode,
) -> Result<Vec<(String, String)>, StoreError> {
    let rows = s.list(&ListQuery {
        kind: Some(RecordKind::Venue),
        within: Some(me),
        ..ListQuery::default()
    })?;
    let mut out: Vec<(String, String)> = rows
        .into_iter()
        .map(|r| (r.id.to_string(), format!("{}（{}）", r.label, r.home)))
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// A seat as a form describes it: term, constituency, stations.
fn seat(posted: &Posted) -> Result<SeatDraft, Refusal> {
    let term = optional_number(posted, "term", "届次")?
        .ok_or_else(|| Refusal::field("term", "届次不能为空"))?;
    Ok(SeatDraft {
        term,
        constituency: posted.text("constituency", "选区或选举单位")?,
        stations: ids(posted, "station")?
            .into_iter()
            .map(|venue| StationRef {
                venue,
                region: None,
            })
            .collect(),
    })
}

fn seat_fields(shown: &Shown<'_>, prefix: &str, venues: &[(String, String)]) -> Markup {
    html! {
        (shown.input(&format!("{prefix}term"), "term", "届次（如 17）", "number", "", false))
        (shown.text(&format!("{prefix}constituency"), "constituency", "选区或选举单位", false))
        (shown.multi_select(&format!("{prefix}station"), "station", "进站的阵地（可多选）", venues))
    }
}

/// 登记代表: a person, with this congress's seat unless the seat is left empty.
pub(crate) struct NewDelegate(Delegate, Contact, Option<SeatDraft>);

impl NewRecord for NewDelegate {
    const PATH: &'static str = "/new/delegate";
    const TITLE: &'static str = "登记代表";
    const NOTE: &'static str = "登记人员，并登记本级人大授予的代表资格（届次留空则只登记人员）。手机号码和身份证号作为个人信息单独保存，只同步到上一级。";
    const SUBMIT: &'static str = "登记";
    type Choices = Vec<(String, String)>;

    fn choices(s: &Store, me: RegionCode) -> Result<Self::Choices, StoreError> {
        venue_options(s, me)
    }

    fn fields(
        shown: &Shown<'_>,
        venues: &Self::Choices,
        _me: RegionCode,
        _today: NaiveDate,
    ) -> Markup {
        html! {
            (shown.text("name", "name", "姓名", true))
            (shown.select("gender", "gender", "性别", &options(Gender::ALL, Gender::as_str, Gender::label), "male"))
            (shown.input("birth_year", "birth_year", "出生年份", "number", "", false))
            (shown.text("ethnicity", "ethnicity", "民族", false))
            (shown.text("party", "party", "党派", false))
            (shown.text("occupation", "occupation", "职业或职务", true))
            (shown.input("phone", "phone", "手机号码", "tel", "", false))
            (shown.text("id_number", "id_number", "身份证号", false))
            fieldset {
                legend { "本级代表资格" }
                (seat_fields(shown, "", venues))
            }
        }
    }

    fn parse(posted: &Posted, _me: RegionCode, _today: NaiveDate) -> Result<Self, Refusal> {
        let seat = match posted.get("term") {
            "" => None,
            _ => Some(seat(posted)?),
        };
        let birth_year = optional_number(posted, "birth_year", "出生年份")?
            .map(|y| i32::try_from(y).map_err(|_| Refusal::field("birth_year", "出生年份不合理")))
            .transpose()?;
        Ok(NewDelegate(
            Delegate {
                name: posted.text("name", "姓名")?,
                gender: Gender::parse("gender", posted.get("gender"))?,
                birth_year,
                ethnicity: posted.optional("ethnicity"),
                party: posted.optional("party"),
                occupation: posted.text("occupation", "职业或职务")?,
                station: None,
                merged_into: None,
                merge_route: None,
                mandates: Default::default(),
            },
            Contact {
                name: None,
                phone: posted.optional("phone"),
                id_number: posted.optional("id_number"),
            },
            seat,
        ))
    }

    fn apply(self, tx: &mut WriteTx<'_>, user: &str) -> Result<RecordId, StoreError> {
        renda_node::office::add_delegate(tx, user, self.0, self.1, self.2).map(|h| h.id)
    }
}

/// 登记阵地: a liaison station, a delegates' home or studio, a practice point.
pub(crate) struct NewVenue(Venue);

impl NewRecord for NewVenue {
    const PATH: &'static str = "/new/venue";
    const TITLE: &'static str = "登记阵地";
    const NOTE: &'static str = "代表联络站、代表之家、代表工作室和全过程人民民主实践点。";
    const SUBMIT: &'static str = "登记";
    type Choices = ();

    fn fields(shown: &Shown<'_>, _: &(), me: RegionCode, _: NaiveDate) -> Markup {
        html! {
            (shown.text("name", "name", "名称", true))
            (shown.select("kind", "kind", "类型", &options(VenueKind::ALL, VenueKind::as_str, VenueKind::label), "station"))
            (shown.input("region", "region", "所在地区代码", "text", &me.to_string(), true))
            (shown.text("address", "address", "地址", false))
        }
    }

    fn parse(posted: &Posted, _: RegionCode, _: NaiveDate) -> Result<Self, Refusal> {
        Ok(NewVenue(Venue {
            name: posted.text("name", "名称")?,
            kind: VenueKind::parse("kind", posted.get("kind"))?,
            region: RegionCode::parse("region", posted.get("region"))?,
            address: posted.get("address").to_string(),
        }))
    }

    fn apply(self, tx: &mut WriteTx<'_>, user: &str) -> Result<RecordId, StoreError> {
        renda_node::office::add_venue(tx, user, self.0).map(|h| h.id)
    }
}

/// 成立代表小组 of this congress.
pub(crate) struct NewGroup(Group);

#[derive(Default)]
pub(crate) struct GroupChoices {
    delegates: Vec<(String, String)>,
    venues: Vec<(String, String)>,
}

impl NewRecord for NewGroup {
    const PATH: &'static str = "/new/group";
    const TITLE: &'static str = "成立代表小组";
    const NOTE: &'static str =
        "本级人大的代表小组：区域小组，或写明专业领域的专业小组。组长须是成员。";
    const SUBMIT: &'static str = "成立";
    type Choices = GroupChoices;

    fn choices(s: &Store, me: RegionCode) -> Result<GroupChoices, StoreError> {
        Ok(GroupChoices {
            delegates: delegate_options(s, me)?,
            venues: venue_options(s, me)?,
        })
    }

    fn fields(shown: &Shown<'_>, c: &GroupChoices, _: RegionCode, _: NaiveDate) -> Markup {
        html! {
            (shown.text("name", "name", "名称", true))
            (shown.select("kind", "kind", "类型", &options(GroupKind::ALL, GroupKind::as_str, GroupKind::label), "regional"))
            (shown.text("field", "field", "专业领域（专业小组必填）", false))
            (shown.multi_select("member", "member", "成员（可多选）", &c.delegates))
            (shown.select("leader", "leader", "组长", &with_none("（暂不指定）", &c.delegates), ""))
            (shown.select("venue", "venue", "活动阵地", &with_none("（无）", &c.venues), ""))
        }
    }

    fn parse(posted: &Posted, me: RegionCode, _: NaiveDate) -> Result<Self, Refusal> {
        Ok(NewGroup(Group {
            name: posted.text("name", "名称")?,
            kind: GroupKind::parse("kind", posted.get("kind"))?,
            field: posted.optional("field"),
            congress: me,
            leader: optional_id(posted, "leader")?,
            members: IdSet(ids(posted, "member")?.into_iter().collect()),
            venue: optional_id(posted, "venue")?,
        }))
    }

    fn apply(self, tx: &mut WriteTx<'_>, user: &str) -> Result<RecordId, StoreError> {
        renda_node::office::add_group(tx, user, self.0).map(|h| h.id)
    }
}

/// The steps this node may take on a person, a seat or a group: a person may be granted this
/// congress's seat anywhere it holds them, and merged only at the node that registered them; a
/// seat's status and stations are its congress's; a group's members its congress's.
pub(super) fn steps(
    me: RegionCode,
    record: &Record,
    version: i64,
    context: &StepContext,
    today: NaiveDate,
    refused: Option<&Refused>,
) -> Vec<(String, Markup)> {
    let id = record.header.id;
    let step = |name: &str, label: &str, fields: &dyn Fn(&Shown<'_>) -> Markup| {
        guarded_step(&id, name, label, version, refused, today, |shown| {
            fields(shown)
        })
    };
    let mut forms = Vec::new();
    match &record.body {
        Body::Delegate(d) if d.merged_into.is_none() => {
            if me.has_congress() {
                forms.push(step("grant", "授予本级代表资格", &|shown| {
                    seat_fields(shown, "grant-", &context.venues)
                }));
            }
            if record.header.home == me {
                let others: Vec<(String, String)> = context
                    .delegates
                    .iter()
                    .filter(|(v, _)| *v != id.to_string())
                    .cloned()
                    .collect();
                forms.push(step("merge", "合并重复登记", &|shown| html! {
                    p.meta { "本人员是重复登记时，合并到保留的人员：各项统计随之合并，本记录保留为指向它的转址。" }
                    (shown.select("merge-into", "into", "合并到", &with_none("（请选择保留的人员）", &others), ""))
                }));
            }
        }
        Body::Mandate(m) if record.header.home == me && m.status != MandateStatus::Merged => {
            let statuses: Vec<(String, String)> = MandateStatus::ALL
                .iter()
                .filter(|s| **s != MandateStatus::Merged && **s != m.status)
                .map(|s| (s.as_str().to_string(), s.label().to_string()))
                .collect();
            forms.push(step("status", "变更代表资格状态", &|shown| {
                shown.select("status-status", "status", "新的状态", &statuses, "")
            }));
            forms.push(step("station", "进站", &|shown| {
                shown.select(
                    "station-venue",
                    "venue",
                    "阵地",
                    &with_none("（请选择）", &context.venues),
                    "",
                )
            }));
            let current: Vec<(String, String)> = m
                .stations
                .iter()
                .filter(|(_, s)| s.until.is_none())
                .map(|(venue, _)| {
                    let label = context
                        .venues
                        .iter()
                        .find(|(v, _)| *v == venue.to_string())
                        .map_or(venue.to_string(), |(_, l)| l.clone());
                    (venue.to_string(), label)
                })
                .collect();
            if !current.is_empty() {
                forms.push(step("leave", "离站", &|shown| {
                    shown.select("leave-venue", "venue", "阵地", &current, "")
                }));
            }
        }
        Body::Group(g) if g.congress == me => {
            let outside: Vec<(String, String)> = context
                .delegates
                .iter()
                .filter(|(v, _)| !g.members.0.iter().any(|m| m.to_string() == *v))
                .cloned()
                .collect();
            forms.push(step("join", "增加成员", &|shown| {
                shown.multi_select("join-member", "member", "新成员（可多选）", &outside)
            }));
        }
        _ => {}
    }
    forms
}

/// A person's, seat's or group's step as its form describes it.
pub(super) fn action(
    kind: RecordKind,
    step: &str,
    posted: &Posted,
    me: RegionCode,
    today: NaiveDate,
) -> Result<StepWrite, Refusal> {
    let date = posted.date("date", today)?;
    let write: StepWrite = match (kind, step) {
        (RecordKind::Delegate, "grant") => {
            let seat = seat(posted)?;
            Box::new(move |tx, user, id| {
                renda_node::office::grant_mandate(tx, user, id, seat).map(drop)
            })
        }
        (RecordKind::Delegate, "merge") => {
            let into = optional_id(posted, "into")?
                .ok_or_else(|| Refusal::field("into", "请选择保留的人员"))?;
            Box::new(move |tx, _, id| {
                renda_node::office::merge_persons(tx, id, &into, date).map(drop)
            })
        }
        (RecordKind::Mandate, "status" | "station" | "leave") => {
            let status = match step {
                "status" => Some(MandateStatus::parse("status", posted.get("status"))?),
                _ => None,
            };
            let venue = match step {
                "status" => None,
                _ => Some(
                    optional_id(posted, "venue")?
                        .ok_or_else(|| Refusal::field("venue", "请选择阵地"))?,
                ),
            };
            let leave = step == "leave";
            Box::new(move |tx, _, id| {
                let Body::Mandate(m) = tx.get(id)?.body else {
                    return Err(renda_node::validate::ValidationError::new(
                        "id",
                        "记录不是代表资格",
                    )
                    .into());
                };
                match (status, venue) {
                    (Some(status), _) => renda_node::office::set_mandate_status(
                        tx, &m.person, me, m.term, status, date,
                    )
                    .map(drop),
                    (None, Some(venue)) => renda_node::office::station_delegate(
                        tx,
                        &m.person,
                        m.term,
                        StationRef {
                            venue,
                            region: None,
                        },
                        leave.then_some(date),
                    )
                    .map(drop),
                    (None, None) => Ok(()),
                }
            })
        }
        (RecordKind::Group, "join") => {
            let members = ids(posted, "member")?;
            if members.is_empty() {
                return Err(Refusal::field("member", "请选择至少一位新成员"));
            }
            Box::new(move |tx, _, id| renda_node::office::join_group(tx, id, &members).map(drop))
        }
        (kind, step) => {
            return Err(Refusal::field(
                "step",
                format!(
                    "{}没有“{}”这一步",
                    kind.label(),
                    renda_node::validate::quote(step)
                ),
            ));
        }
    };
    Ok(write)
}
