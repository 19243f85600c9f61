//! The congress office's operations: what a clerk or staff member does, each as one write
//! transaction that checks its input and the records it refers to, and writes nothing on failure.
//!
//! The CLI (and later the local API) parse user input into the drafts below and call these
//! functions through the store; none of them knows where the input came from.

use chrono::{NaiveDate, Utc};

use crate::calendar::{self, DateUse};
use crate::record::activity::{Activity, SignIn};
use crate::record::delegate::{Delegate, Mandate, MandateStatus};
use crate::record::event::{Workflow, next_lamport};
use crate::record::group::{Group, Venue};
use crate::record::notice::Notice;
use crate::record::opinion::{OpinionAction, OpinionFields};
use crate::record::personal::PersonalData;
use crate::record::suggestion::{CoSigner, SuggestionAction, SuggestionFields};
use crate::record::{Body, Event, Header, Record, RecordId, RecordKind};
use crate::region::RegionCode;
use crate::store::{StoreError, WriteTx};
use crate::validate::ValidationError;

/// Contact details typed with a delegate or an opinion; stored apart as personal data.
#[derive(Clone, Debug, Default)]
pub struct Contact {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub id_number: Option<String>,
}

/// Checks a date a user gave against the plausibility rules (`calendar::check_date`): never
/// before the first National People's Congress, and what records something that happened never
/// after tomorrow in China.
fn plausible(field: &str, date: NaiveDate, use_: DateUse) -> Result<(), StoreError> {
    calendar::check_date(field, date, use_, calendar::today(), calendar::EARLIEST)
        .map_err(StoreError::from)
}

/// Sign-ins record what happened: never for an activity dated after tomorrow.
fn signing_in_allowed(activity: &Activity) -> Result<(), StoreError> {
    plausible("date", activity.date, DateUse::Happened).map_err(|_| {
        ValidationError::new(
            "participant",
            format!(
                "活动日期 {} 在明天之后：签到记录已发生的事，须在活动当天或之后录入",
                activity.date
            ),
        )
        .into()
    })
}

fn corrupt(id: &RecordId, e: crate::record::DocError) -> StoreError {
    StoreError::Corrupt {
        id: id.to_string(),
        source: e,
    }
}

/// Loads `id` and checks it is of `kind`, naming `field` when it is not.
fn require_kind(
    tx: &WriteTx<'_>,
    field: &str,
    id: &RecordId,
    kind: RecordKind,
) -> Result<Record, StoreError> {
    let record = tx.get(id).map_err(|e| match e {
        StoreError::NotFound { .. } => StoreError::NotFound {
            kind: kind.label(),
            id: id.to_string(),
        },
        other => other,
    })?;
    if record.header.kind != kind {
        return Err(ValidationError::new(
            field,
            format!(
                "{id} 是{}记录，不是{}记录",
                record.header.kind.label(),
                kind.label()
            ),
        )
        .into());
    }
    Ok(record)
}

fn delegate_of(tx: &WriteTx<'_>, field: &str, id: &RecordId) -> Result<Delegate, StoreError> {
    match require_kind(tx, field, id, RecordKind::Delegate)?.body {
        Body::Delegate(d) => Ok(d),
        _ => unreachable!("require_kind checked the kind"),
    }
}

fn store_contact(
    tx: &mut WriteTx<'_>,
    user: &str,
    subject: &Header,
    contact: Contact,
    prefix: &str,
) -> Result<(), StoreError> {
    let personal = PersonalData {
        subject: subject.id,
        subject_kind: subject.kind,
        name: contact.name,
        phone: contact.phone,
        id_number: contact.id_number,
    };
    personal.validate(prefix)?;
    if !personal.is_empty() {
        tx.create(RecordKind::Personal, user, &personal)?;
    }
    Ok(())
}

pub fn add_delegate(
    tx: &mut WriteTx<'_>,
    user: &str,
    delegate: Delegate,
    contact: Contact,
) -> Result<Header, StoreError> {
    delegate.validate()?;
    if let Some(station) = &delegate.station {
        require_kind(tx, "station", station, RecordKind::Venue)?;
    }
    let header = tx.create(RecordKind::Delegate, user, &delegate)?;
    store_contact(tx, user, &header, contact, "")?;
    Ok(header)
}

/// Adds a mandate to a delegate (re-election, or election at another level).
pub fn add_mandate(
    tx: &mut WriteTx<'_>,
    id: &RecordId,
    mandate: Mandate,
) -> Result<Record, StoreError> {
    mandate.validate()?;
    if let Some(since) = mandate.status_since {
        plausible("date", since, DateUse::Happened)?;
    }
    let mut delegate = delegate_of(tx, "id", id)?;
    let key = Mandate::key(&mandate.congress, mandate.term);
    if delegate.mandates.contains_key(&key) {
        return Err(ValidationError::new(
            "term",
            format!(
                "代表已经有 {} 第{}届的代表资格",
                mandate.congress, mandate.term
            ),
        )
        .into());
    }
    delegate.mandates.insert(key, mandate);
    delegate.validate()?;
    write_fields(tx, id, &delegate, "add mandate")
}

/// Changes a mandate's status. Only the congress that holds the mandate may.
pub fn set_mandate_status(
    tx: &mut WriteTx<'_>,
    id: &RecordId,
    congress: RegionCode,
    term: u32,
    status: MandateStatus,
    since: NaiveDate,
) -> Result<Record, StoreError> {
    plausible("date", since, DateUse::Happened)?;
    if tx.node().region != congress {
        return Err(ValidationError::new(
            "congress",
            format!(
                "只有 {congress} 人大可以变更其代表资格，本节点是 {}",
                tx.node().region
            ),
        )
        .into());
    }
    let mut delegate = delegate_of(tx, "id", id)?;
    let mandate = delegate
        .mandates
        .get_mut(&Mandate::key(&congress, term))
        .ok_or_else(|| {
            ValidationError::new("term", format!("代表没有 {congress} 第{term}届的代表资格"))
        })?;
    if mandate.status == status {
        return Err(
            ValidationError::new("status", format!("代表资格已经是“{}”", status.label())).into(),
        );
    }
    mandate.status = status;
    mandate.status_since = Some(since);
    write_fields(tx, id, &delegate, "mandate status")
}

fn write_fields<T: serde::Serialize>(
    tx: &mut WriteTx<'_>,
    id: &RecordId,
    fields: &T,
    message: &str,
) -> Result<Record, StoreError> {
    tx.modify(id, |doc, _| {
        let change = doc
            .set_fields(fields, Utc::now().timestamp_millis(), message)
            .map_err(|e| corrupt(id, e))?;
        Ok(change.into_iter().collect())
    })
}

pub fn add_venue(tx: &mut WriteTx<'_>, user: &str, venue: Venue) -> Result<Header, StoreError> {
    venue.validate()?;
    tx.create(RecordKind::Venue, user, &venue)
}

pub fn add_group(tx: &mut WriteTx<'_>, user: &str, group: Group) -> Result<Header, StoreError> {
    group.validate()?;
    for member in &group.members.0 {
        delegate_of(tx, "member", member)?;
    }
    if let Some(venue) = &group.venue {
        require_kind(tx, "venue", venue, RecordKind::Venue)?;
    }
    tx.create(RecordKind::Group, user, &group)
}

/// Adds delegates to a group.
pub fn join_group(
    tx: &mut WriteTx<'_>,
    id: &RecordId,
    members: &[RecordId],
) -> Result<Record, StoreError> {
    let Body::Group(mut group) = require_kind(tx, "id", id, RecordKind::Group)?.body else {
        unreachable!("require_kind checked the kind")
    };
    for member in members {
        delegate_of(tx, "member", member)?;
        group.members.0.insert(*member);
    }
    write_fields(tx, id, &group, "join group")
}

/// What a clerk types for an activity; participants become sign-ins.
#[derive(Clone, Debug)]
pub struct ActivityDraft {
    pub activity: Activity,
    pub participants: Vec<RecordId>,
}

fn sign_in_of(tx: &WriteTx<'_>, delegate_id: &RecordId) -> Result<SignIn, StoreError> {
    let delegate = delegate_of(tx, "participant", delegate_id)?;
    let congresses: Vec<RegionCode> = delegate.serving().map(|m| m.congress).collect();
    if congresses.is_empty() {
        return Err(ValidationError::new(
            "participant",
            format!(
                "{}（{delegate_id}）目前没有在任的代表资格，不能签到",
                delegate.name
            ),
        )
        .into());
    }
    Ok(SignIn {
        name: delegate.name.clone(),
        level: delegate.highest_level(),
        congresses,
        signed_at: Utc::now(),
    })
}

pub fn add_activity(
    tx: &mut WriteTx<'_>,
    user: &str,
    draft: ActivityDraft,
) -> Result<Header, StoreError> {
    let mut activity = draft.activity;
    activity.validate()?;
    plausible("date", activity.date, DateUse::Planned)?;
    if !draft.participants.is_empty() {
        signing_in_allowed(&activity)?;
    }
    if let Some(venue) = &activity.venue {
        require_kind(tx, "venue", venue, RecordKind::Venue)?;
    }
    if let Some(group) = &activity.group {
        require_kind(tx, "group", group, RecordKind::Group)?;
    }
    crate::validate::distinct("participant", &draft.participants)?;
    for id in &draft.participants {
        activity.participants.insert(*id, sign_in_of(tx, id)?);
    }
    tx.create(RecordKind::Activity, user, &activity)
}

/// Records delegates signing in to an activity after it was entered.
pub fn sign_in(
    tx: &mut WriteTx<'_>,
    id: &RecordId,
    delegates: &[RecordId],
) -> Result<Record, StoreError> {
    let Body::Activity(mut activity) = require_kind(tx, "id", id, RecordKind::Activity)?.body
    else {
        unreachable!("require_kind checked the kind")
    };
    signing_in_allowed(&activity)?;
    for delegate in delegates {
        if activity.participants.contains_key(delegate) {
            return Err(ValidationError::new("delegate", format!("{delegate} 已经签到")).into());
        }
        activity
            .participants
            .insert(*delegate, sign_in_of(tx, delegate)?);
    }
    write_fields(tx, id, &activity, "sign in")
}

pub fn add_opinion(
    tx: &mut WriteTx<'_>,
    user: &str,
    fields: OpinionFields,
    contact: Contact,
    received_on: NaiveDate,
) -> Result<Header, StoreError> {
    fields.validate(&tx.node().region)?;
    plausible("date", received_on, DateUse::Happened)?;
    if let Some(delegate) = &fields.delegate {
        delegate_of(tx, "delegate", delegate)?;
    }
    if let Some(activity) = &fields.activity {
        require_kind(tx, "activity", activity, RecordKind::Activity)?;
    }
    let header = tx.create_with_event(
        RecordKind::Opinion,
        user,
        &fields,
        OpinionAction::Receive,
        received_on,
    )?;
    require_first_step_applied(tx, &header)?;
    store_contact(tx, user, &header, contact, "constituent-")?;
    Ok(header)
}

/// What a delegate typed for a suggestion; the delegates are looked up for their names.
#[derive(Clone, Debug)]
pub struct SuggestionDraft {
    pub title: String,
    pub body: String,
    pub category: String,
    pub lead: RecordId,
    pub cosigners: Vec<RecordId>,
    pub addressed_to: RegionCode,
    pub session: Option<String>,
}

pub fn submit_suggestion(
    tx: &mut WriteTx<'_>,
    user: &str,
    draft: SuggestionDraft,
    date: NaiveDate,
) -> Result<Header, StoreError> {
    plausible("date", date, DateUse::Happened)?;
    let lead = delegate_of(tx, "lead", &draft.lead)?;
    if !lead.serving().any(|m| m.congress == draft.addressed_to) {
        return Err(ValidationError::new(
            "lead",
            format!(
                "{} 不是 {} 人大的在任代表，不能向其领衔提出建议",
                lead.name, draft.addressed_to
            ),
        )
        .into());
    }
    let mut cosigners = Vec::new();
    for id in &draft.cosigners {
        let d = delegate_of(tx, "cosigner", id)?;
        if !d.serving().any(|m| m.congress == draft.addressed_to) {
            return Err(ValidationError::new(
                "cosigner",
                format!(
                    "{} 不是 {} 人大的在任代表，不能联名",
                    d.name, draft.addressed_to
                ),
            )
            .into());
        }
        cosigners.push(CoSigner {
            id: *id,
            name: d.name,
        });
    }
    let fields = SuggestionFields {
        title: draft.title,
        body: draft.body,
        category: draft.category,
        lead: draft.lead,
        lead_name: lead.name,
        cosigners,
        addressed_to: draft.addressed_to,
        session: draft.session,
    };
    fields.validate()?;
    let header = tx.create_with_event(
        RecordKind::Suggestion,
        user,
        &fields,
        SuggestionAction::Submit,
        date,
    )?;
    require_first_step_applied(tx, &header)?;
    Ok(header)
}

/// Appends one step to a suggestion after the fold has checked it. An accepted screening
/// without a number gets the next number of this congress.
pub fn suggestion_step(
    tx: &mut WriteTx<'_>,
    user: &str,
    id: &RecordId,
    mut action: SuggestionAction,
    date: NaiveDate,
) -> Result<Record, StoreError> {
    if let SuggestionAction::Screen {
        accepted: true,
        number: number @ None,
        ..
    } = &mut action
    {
        *number = Some(tx.max_suggestion_number()?.saturating_add(1));
    }
    append_step(
        tx,
        user,
        id,
        RecordKind::Suggestion,
        action,
        date,
        |body| match body {
            Body::Suggestion(s) => Some(s),
            _ => None,
        },
    )
}

pub fn opinion_step(
    tx: &mut WriteTx<'_>,
    user: &str,
    id: &RecordId,
    action: OpinionAction,
    date: NaiveDate,
) -> Result<Record, StoreError> {
    append_step(
        tx,
        user,
        id,
        RecordKind::Opinion,
        action,
        date,
        |body| match body {
            Body::Opinion(o) => Some(o),
            _ => None,
        },
    )
}

fn append_step<W: Workflow>(
    tx: &mut WriteTx<'_>,
    user: &str,
    id: &RecordId,
    kind: RecordKind,
    action: W::Action,
    date: NaiveDate,
    workflow_of: impl Fn(&Body) -> Option<&W>,
) -> Result<Record, StoreError> {
    plausible("date", date, DateUse::Happened)?;
    let author = tx.author(user);
    require_kind(tx, "id", id, kind)?;
    tx.modify(id, |doc, record| {
        let workflow =
            workflow_of(&record.body).ok_or_else(|| ValidationError::new("id", "记录类型不对"))?;
        let event = Event {
            id: RecordId::new(),
            lamport: next_lamport(workflow.entries()),
            recorded_at: Utc::now(),
            date,
            author,
            action,
        };
        let status = workflow.status(&record.header);
        workflow
            .check(&status, &record.header, &event)
            .map_err(|rejection| StoreError::Rejected {
                record: *id,
                rejection,
            })?;
        Ok(vec![doc.append_event(&event).map_err(|e| corrupt(id, e))?])
    })
}

/// A record's first event is checked by the fold like any other: refuse the record if it was not.
fn require_first_step_applied(tx: &WriteTx<'_>, header: &Header) -> Result<(), StoreError> {
    let rejection = match tx.get(&header.id)?.body {
        Body::Opinion(o) => o.fold(header).1.into_iter().find_map(|l| l.rejected),
        Body::Suggestion(s) => s.fold(header).1.into_iter().find_map(|l| l.rejected),
        _ => None,
    };
    match rejection {
        Some(rejection) => Err(StoreError::Rejected {
            record: header.id,
            rejection,
        }),
        None => Ok(()),
    }
}

pub fn add_notice(tx: &mut WriteTx<'_>, user: &str, notice: Notice) -> Result<Header, StoreError> {
    notice.validate(&tx.node().region)?;
    plausible("date", notice.issued_on, DateUse::Happened)?;
    tx.create(RecordKind::Notice, user, &notice)
}
