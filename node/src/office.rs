//! The congress office's operations: what a clerk or staff member does, each as one write
//! transaction that checks its input and the records it refers to, and writes nothing on failure.
//!
//! The CLI (and later the local API) parse user input into the drafts below and call these
//! functions through the store; none of them knows where the input came from.

use chrono::{NaiveDate, Utc};

use crate::calendar::{self, DateUse};
use crate::record::activity::{Activity, SignIn};
use crate::record::delegate::{Delegate, MandateStatus};
use crate::record::event::{Workflow, next_lamport, refuse_if_unreadable};
use crate::record::group::{Group, Venue};
use crate::record::mandate::{Mandate, Station};
use crate::record::motion::{MotionAction, MotionDecision, MotionFields, Proposer, ProposingBody};
use crate::record::notice::Notice;
use crate::record::opinion::{OpinionAction, OpinionFields};
use crate::record::personal::PersonalData;
use crate::record::quota::{QuotaCounts, QuotaPeriod, QuotaRule, QuotaSubject};
use crate::record::suggestion::{CoSigner, SuggestionAction, SuggestionFields};
use crate::record::{Body, Event, Header, Record, RecordId, RecordKind};
use crate::region::{Level, RegionCode};
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
        return Err(wrong_kind(field, id, record.header.kind, kind));
    }
    Ok(record)
}

fn wrong_kind(field: &str, id: &RecordId, found: RecordKind, wanted: RecordKind) -> StoreError {
    ValidationError::new(
        field,
        format!("{id} 是{}记录，不是{}记录", found.label(), wanted.label()),
    )
    .into()
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

/// The seat a congress grants with a registration or on its own: this node's congress, a
/// term and a constituency, and the stations the delegate works at.
#[derive(Clone, Debug)]
pub struct SeatDraft {
    pub term: u32,
    pub constituency: String,
    pub stations: Vec<StationRef>,
}

/// A station named in a draft: a venue, and the node holding it when this node does not hold
/// the venue itself (a province stationing its delegate at a township's station, whose venue
/// climbs only as far as the city).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StationRef {
    pub venue: RecordId,
    pub region: Option<RegionCode>,
}

impl From<RecordId> for StationRef {
    fn from(venue: RecordId) -> StationRef {
        StationRef {
            venue,
            region: None,
        }
    }
}

/// A delegate as this node knows them: the person's name and the seats it holds for them
/// (its own congress's mandates, roster copies of seats granted above, and seats kept inside
/// a person registered before mandates were records).
struct Seats {
    name: String,
    /// Serving seats, one per congress, highest level first.
    serving: Vec<(RegionCode, Level)>,
}

impl Seats {
    fn serves_in(&self, congress: &RegionCode) -> bool {
        self.serving.iter().any(|(c, _)| c == congress)
    }
}

fn seats_of(tx: &WriteTx<'_>, field: &str, id: &RecordId) -> Result<Seats, StoreError> {
    let person = match tx.get(id) {
        Ok(record) => Some(record),
        Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    let person = match person {
        Some(Record {
            body: Body::Delegate(d),
            ..
        }) => Some(d),
        Some(other) => {
            return Err(wrong_kind(
                field,
                id,
                other.header.kind,
                RecordKind::Delegate,
            ));
        }
        None => None,
    };
    // A seat counts here if this congress granted it, if the person is registered here, or if
    // the delegate works at a station here now. The copies a node merely relays down, and
    // those a station the delegate left still holds, sign no one in.
    let me = tx.node().region;
    // Seats granted to a record since merged into this one are this person's too.
    let mut held = tx.mandates_of(id)?;
    for merged in tx.merged_into(id)? {
        held.extend(tx.mandates_of(&merged)?);
    }
    let held: Vec<(Header, Mandate)> = held
        .into_iter()
        .filter(|(h, m)| {
            h.home == me || m.person_home == me || m.current_stations().any(|(_, s)| s.region == me)
        })
        .collect();
    let name = match (&person, held.first()) {
        (Some(p), _) => p.name.clone(),
        (None, Some((_, m))) => m.name.clone(),
        (None, None) => {
            return Err(StoreError::NotFound {
                kind: RecordKind::Delegate.label(),
                id: id.to_string(),
            });
        }
    };
    let mut serving: Vec<(RegionCode, Level)> = held
        .iter()
        .filter(|(_, m)| m.is_serving())
        .map(|(_, m)| (m.congress, m.level))
        .chain(
            person
                .iter()
                .flat_map(|p| p.serving().map(|m| (m.congress, m.level))),
        )
        .collect();
    serving.sort_by_key(|(c, level)| (*level, *c));
    serving.dedup();
    Ok(Seats { name, serving })
}

/// Registers a person and, with `seat`, the seat this node's congress grants them. A seat in
/// another congress is that congress's to grant ([`grant_mandate`] at its node).
pub fn add_delegate(
    tx: &mut WriteTx<'_>,
    user: &str,
    delegate: Delegate,
    contact: Contact,
    seat: Option<SeatDraft>,
) -> Result<Header, StoreError> {
    delegate.validate()?;
    if !delegate.mandates.is_empty() {
        return Err(ValidationError::new(
            "congress",
            "代表资格由授予它的人大单独登记，不能写在人员记录里",
        )
        .into());
    }
    if let Some(station) = &delegate.station {
        require_kind(tx, "station", station, RecordKind::Venue)?;
    }
    let header = tx.create(RecordKind::Delegate, user, &delegate)?;
    store_contact(tx, user, &header, contact, "")?;
    if let Some(seat) = seat {
        grant_mandate(tx, user, &header.id, seat)?;
    }
    Ok(header)
}

/// The stations named in a draft, each with the node that holds its venue.
fn stations_of(
    tx: &WriteTx<'_>,
    refs: &[StationRef],
) -> Result<std::collections::BTreeMap<RecordId, Station>, StoreError> {
    let venues: Vec<RecordId> = refs.iter().map(|r| r.venue).collect();
    crate::validate::distinct("station", &venues)?;
    let mut out = std::collections::BTreeMap::new();
    for r in refs {
        let region = match (tx.get(&r.venue), r.region) {
            (Ok(record), given) => {
                if record.header.kind != RecordKind::Venue {
                    return Err(wrong_kind(
                        "station",
                        &r.venue,
                        record.header.kind,
                        RecordKind::Venue,
                    ));
                }
                if given.is_some_and(|g| g != record.header.home) {
                    return Err(ValidationError::new(
                        "station",
                        format!(
                            "阵地 {} 属于 {}，不是所填的区划",
                            r.venue, record.header.home
                        ),
                    )
                    .into());
                }
                record.header.home
            }
            // A venue held elsewhere: at a node strictly below this one (a township's, or a
            // county's in a street), which is where its roster copy must go.
            (Err(StoreError::NotFound { .. }), Some(region))
                if region.has_congress() && region != tx.node().region =>
            {
                region
            }
            (Err(StoreError::NotFound { .. }), _) => {
                return Err(ValidationError::new(
                    "station",
                    format!(
                        "本节点没有阵地 {}；请写成“阵地编号@所在乡镇区划代码”",
                        r.venue
                    ),
                )
                .into());
            }
            (Err(e), _) => return Err(e),
        };
        out.insert(
            r.venue,
            Station {
                region,
                until: None,
            },
        );
    }
    Ok(out)
}

/// A person registered at another node, named by id, home and name: how a congress above the
/// full-record depth (a province, by default), which does not hold township persons, grants
/// one of them a seat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonRef {
    pub id: RecordId,
    pub home: RegionCode,
    pub name: String,
}

/// Grants a person a seat in this node's congress (election, re-election, by-election): a
/// mandate record homed here, which only this node will ever write.
pub fn grant_mandate(
    tx: &mut WriteTx<'_>,
    user: &str,
    person: &RecordId,
    seat: SeatDraft,
) -> Result<Header, StoreError> {
    let person = &current_person(tx, person)?;
    let record = require_kind(tx, "id", person, RecordKind::Delegate)?;
    let Body::Delegate(d) = &record.body else {
        unreachable!("require_kind checked the kind")
    };
    let congress = tx.node().region;
    if d.mandates
        .values()
        .any(|m| m.congress == congress && m.term == seat.term)
    {
        return Err(seat_taken(&d.name, &congress, seat.term));
    }
    let person = PersonRef {
        id: *person,
        home: record.header.home,
        name: d.name.clone(),
    };
    grant(tx, user, person, seat)
}

/// Grants a seat to a person this node does not hold, named by reference. A person it does
/// hold is granted as [`grant_mandate`] does, and the reference must agree with the record.
pub fn grant_mandate_to(
    tx: &mut WriteTx<'_>,
    user: &str,
    person: PersonRef,
    seat: SeatDraft,
) -> Result<Header, StoreError> {
    match tx.get(&person.id) {
        Ok(record) => {
            let held_name = match &record.body {
                Body::Delegate(d) => d.name.trim().to_string(),
                _ => String::new(),
            };
            if record.header.home != person.home
                || (!person.name.trim().is_empty() && person.name.trim() != held_name)
            {
                return Err(ValidationError::new(
                    "person",
                    format!(
                        "人员 {} 是登记在 {} 的“{held_name}”，与所填的 {}“{}”不符",
                        person.id,
                        record.header.home,
                        person.home,
                        person.name.trim()
                    ),
                )
                .into());
            }
            grant_mandate(tx, user, &person.id, seat)
        }
        Err(StoreError::NotFound { .. }) => {
            crate::validate::required_text("name", &person.name)?;
            if !person.home.has_congress() {
                return Err(ValidationError::new(
                    "person",
                    format!("{} 没有人民代表大会，不是人员登记的节点", person.home),
                )
                .into());
            }
            grant(tx, user, person, seat)
        }
        Err(e) => Err(e),
    }
}

fn seat_taken(name: &str, congress: &RegionCode, term: u32) -> StoreError {
    ValidationError::new(
        "term",
        format!("{name} 已经有 {congress} 第{term}届的代表资格"),
    )
    .into()
}

fn grant(
    tx: &mut WriteTx<'_>,
    user: &str,
    person: PersonRef,
    seat: SeatDraft,
) -> Result<Header, StoreError> {
    let congress = tx.node().region;
    if tx
        .mandates_of(&person.id)?
        .iter()
        .any(|(_, m)| m.congress == congress && m.term == seat.term)
    {
        return Err(seat_taken(&person.name, &congress, seat.term));
    }
    let mandate = Mandate {
        person: person.id,
        person_home: person.home,
        name: person.name.trim().to_string(),
        congress,
        level: congress.level().ok_or_else(|| {
            ValidationError::new("congress", format!("{congress} 没有人民代表大会"))
        })?,
        term: seat.term,
        constituency: seat.constituency,
        status: MandateStatus::Serving,
        status_since: None,
        stations: stations_of(tx, &seat.stations)?,
    };
    mandate.validate(&congress)?;
    tx.create(RecordKind::Mandate, user, &mandate)
}

/// This congress's mandate of `person` for `term`, held here.
fn own_mandate(
    tx: &WriteTx<'_>,
    person: &RecordId,
    term: u32,
) -> Result<Option<(Header, Mandate)>, StoreError> {
    let congress = tx.node().region;
    Ok(tx
        .mandates_of(person)?
        .into_iter()
        .find(|(h, m)| h.home == congress && m.congress == congress && m.term == term))
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
    let unchanged =
        || ValidationError::new("status", format!("代表资格已经是“{}”", status.label()));
    if status == MandateStatus::Merged {
        return Err(ValidationError::new(
            "status",
            "“重复登记已合并”由合并人员（renda delegate merge）设定，不能直接设定",
        )
        .into());
    }
    if let Some((header, mut mandate)) = own_mandate(tx, id, term)? {
        if mandate.status == status {
            return Err(unchanged().into());
        }
        if mandate.status == MandateStatus::Merged {
            return Err(ValidationError::new(
                "status",
                "该代表资格因重复登记已合并，不能再变更；请变更保留人员的代表资格",
            )
            .into());
        }
        mandate.status = status;
        mandate.status_since = Some(since);
        return write_fields(tx, &header.id, &mandate, "mandate status");
    }
    // A seat kept inside a person registered before mandates were records.
    let mut delegate = delegate_of(tx, "id", id)?;
    let mandate = delegate
        .mandates
        .get_mut(&crate::record::delegate::LegacyMandate::key(
            &congress, term,
        ))
        .ok_or_else(|| {
            ValidationError::new("term", format!("代表没有 {congress} 第{term}届的代表资格"))
        })?;
    if mandate.status == status {
        return Err(unchanged().into());
    }
    mandate.status = status;
    mandate.status_since = Some(since);
    write_fields(tx, id, &delegate, "mandate status")
}

/// Stations a delegate of this congress at a liaison station (进站), or, with `leave`, records
/// that they no longer work there. The mandate travels to every station's township it ever
/// named, so a former station's roster learns of the change too.
pub fn station_delegate(
    tx: &mut WriteTx<'_>,
    person: &RecordId,
    term: u32,
    station: StationRef,
    leave: Option<NaiveDate>,
) -> Result<Record, StoreError> {
    let venue = &station.venue;
    let congress = tx.node().region;
    let (header, mut mandate) = own_mandate(tx, person, term)?.ok_or_else(|| {
        ValidationError::new(
            "term",
            format!("本节点（{congress}）没有登记该代表第{term}届的代表资格；进站由授予代表资格的人大登记"),
        )
    })?;
    match leave {
        None => {
            if mandate
                .stations
                .get(venue)
                .is_some_and(|s| s.until.is_none())
            {
                return Err(ValidationError::new(
                    "station",
                    format!("代表已经在阵地 {venue} 进站"),
                )
                .into());
            }
            mandate.stations.extend(stations_of(tx, &[station])?);
        }
        Some(on) => {
            plausible("date", on, DateUse::Happened)?;
            let station = mandate
                .stations
                .get_mut(venue)
                .filter(|s| s.until.is_none())
                .ok_or_else(|| {
                    ValidationError::new("station", format!("代表没有在阵地 {venue} 进站"))
                })?;
            station.until = Some(on);
        }
    }
    mandate.validate(&congress)?;
    write_fields(tx, &header.id, &mandate, "station")
}

pub(crate) fn write_fields<T: serde::Serialize + serde::de::DeserializeOwned>(
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
        seats_of(tx, "member", member)?;
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
        seats_of(tx, "member", member)?;
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

/// The person a delegate id stands for now: itself, or, for a person merged into another,
/// the one it was merged into (followed a few steps, so a merge of a merged person holds too).
fn current_person(tx: &WriteTx<'_>, id: &RecordId) -> Result<RecordId, StoreError> {
    let mut seen = vec![*id];
    loop {
        let at = seen[seen.len() - 1];
        match tx.get(&at) {
            Ok(Record {
                body:
                    Body::Delegate(Delegate {
                        merged_into: Some(into),
                        ..
                    }),
                ..
            }) => {
                // A loop only a forged record could make: its smallest id stands for it, as
                // in the store's counts (`store::rollup::current`).
                if let Some(on) = seen.iter().position(|s| *s == into) {
                    return Ok(seen[on..].iter().min().copied().unwrap_or(into));
                }
                seen.push(into);
            }
            Ok(_) | Err(StoreError::NotFound { .. }) => return Ok(at),
            Err(e) => return Err(e),
        }
    }
}

/// Merges person `from` into person `into` (one person registered twice).
///
/// At the node that registered `from`, the merge is decided: `from` stays as a redirect that
/// every count, sign-in and duty record follows. At any node (the registering one included, or
/// a congress that granted `from` a seat and has since received the redirect), this
/// congress's own seats of `from` pass to `into`, or, where `into` holds the same seat already,
/// are marked as merged and count nowhere; a seat `from` carries inside its record (as persons
/// registered before mandate records do) becomes a mandate of `into` unless `into` has it.
pub fn merge_persons(
    tx: &mut WriteTx<'_>,
    from: &RecordId,
    into: &RecordId,
    on: NaiveDate,
) -> Result<Record, StoreError> {
    plausible("date", on, DateUse::Happened)?;
    let me = tx.node().region;
    let from_record = require_kind(tx, "id", from, RecordKind::Delegate)?;
    let Body::Delegate(mut merged) = from_record.body else {
        unreachable!("require_kind checked the kind")
    };
    if from == into {
        return Err(ValidationError::new("into", "不能把人员合并到其自身").into());
    }
    let deciding = from_record.header.home == me;
    // The person kept: held here, or, at a congress above the full-record depth that holds
    // only the redirect, known by the id, home and name the redirect carries.
    let (kept_home, kept_name, kept_legacy) = match tx.get(into) {
        Err(StoreError::NotFound { .. })
            if !deciding && merged.merged_into == Some(*into) && merged.merge_route.is_some() =>
        {
            let route = merged.merge_route.map(|r| r.into_home);
            (
                route.unwrap_or(from_record.header.home),
                merged.name.clone(),
                Vec::new(),
            )
        }
        _ => {
            let into_record = require_kind(tx, "into", into, RecordKind::Delegate)?;
            let Body::Delegate(kept) = into_record.body else {
                unreachable!("require_kind checked the kind")
            };
            if kept.merged_into.is_some() {
                return Err(ValidationError::new(
                    "into",
                    format!("{} 已合并到其他人员，请合并到最终保留的人员", kept.name),
                )
                .into());
            }
            let legacy: Vec<(RegionCode, u32)> = kept
                .mandates
                .values()
                .map(|m| (m.congress, m.term))
                .collect();
            (into_record.header.home, kept.name, legacy)
        }
    };
    match merged.merged_into {
        None if deciding => {}
        None => {
            return Err(ValidationError::new(
                "id",
                format!(
                    "{} 登记在 {}，只有该节点可以合并它；合并传到本节点后，可在此处理本级的代表资格",
                    merged.name, from_record.header.home
                ),
            )
            .into());
        }
        Some(to) if to == *into && !deciding => {}
        Some(_) => {
            return Err(ValidationError::new("id", format!("{} 已经合并过", merged.name)).into());
        }
    }
    let kept_seats = tx.mandates_of(into)?;
    let kept_has = |term: u32| {
        kept_seats
            .iter()
            .any(|(h, m)| h.home == me && m.congress == me && m.term == term)
            || kept_legacy.iter().any(|(c, t)| *c == me && *t == term)
    };
    // How high the merged person's seats reach, for the redirect to climb there.
    let mut up_to = me.level();
    for (_, seat) in tx.mandates_of(from)? {
        up_to = up_to.min(Some(seat.level)).or(Some(seat.level));
    }
    for legacy in merged.mandates.values() {
        up_to = up_to.min(Some(legacy.level)).or(Some(legacy.level));
    }
    let mut passed = 0;
    for (header, mut seat) in tx.mandates_of(from)? {
        if header.home != me || seat.status == MandateStatus::Merged {
            continue;
        }
        if kept_has(seat.term) {
            seat.status = MandateStatus::Merged;
            seat.status_since = Some(on);
        } else {
            seat.person = *into;
            seat.person_home = kept_home;
            seat.name = kept_name.clone();
        }
        seat.validate(&me)?;
        write_fields(tx, &header.id, &seat, "merge persons")?;
        passed += 1;
    }
    // Seats inside the merged record stop counting with it; this congress's pass to the
    // person kept as mandates.
    for legacy in merged.mandates.values().filter(|m| m.congress == me) {
        if kept_has(legacy.term) {
            continue;
        }
        let person = PersonRef {
            id: *into,
            home: kept_home,
            name: kept_name.clone(),
        };
        let seat = SeatDraft {
            term: legacy.term,
            constituency: legacy.constituency.clone(),
            stations: Vec::new(),
        };
        let header = grant(tx, "renda", person, seat)?;
        if legacy.status != MandateStatus::Serving {
            let Body::Mandate(mut granted) = tx.get(&header.id)?.body else {
                unreachable!("a mandate was just granted")
            };
            granted.status = legacy.status;
            granted.status_since = legacy.status_since;
            write_fields(tx, &header.id, &granted, "merge persons")?;
        }
        passed += 1;
    }
    if !deciding {
        if passed == 0 {
            return Err(ValidationError::new(
                "id",
                format!("本级（{me}）没有 {} 的代表资格需要处理", merged.name),
            )
            .into());
        }
        // The person kept, or the redirect where only that reached this congress.
        return match tx.get(into) {
            Err(StoreError::NotFound { .. }) => tx.get(from),
            found => found,
        };
    }
    merged.merged_into = Some(*into);
    merged.merge_route = up_to.map(|up_to| crate::record::delegate::MergeRoute {
        into_home: kept_home,
        up_to,
    });
    write_fields(tx, from, &merged, "merge persons")
}

fn sign_in_of(tx: &WriteTx<'_>, delegate_id: &RecordId) -> Result<SignIn, StoreError> {
    let seats = seats_of(tx, "participant", delegate_id)?;
    if seats.serving.is_empty() {
        return Err(ValidationError::new(
            "participant",
            format!(
                "{}（{delegate_id}）目前没有在任的代表资格，不能签到",
                seats.name
            ),
        )
        .into());
    }
    Ok(SignIn {
        level: seats.serving.first().map(|(_, level)| *level),
        congresses: seats.serving.iter().map(|(c, _)| *c).collect(),
        name: seats.name,
        signed_at: Utc::now(),
        source: None,
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
    let mut participants = Vec::with_capacity(draft.participants.len());
    for id in &draft.participants {
        participants.push(current_person(tx, id)?);
    }
    crate::validate::distinct("participant", &participants)?;
    for id in &participants {
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
    sign_in_by(tx, id, delegates, None)
}

/// [`sign_in`], noting how the sign-in was taken (a delegate scanning the activity's code).
pub fn sign_in_by(
    tx: &mut WriteTx<'_>,
    id: &RecordId,
    delegates: &[RecordId],
    source: Option<crate::record::activity::SignInSource>,
) -> Result<Record, StoreError> {
    let Body::Activity(mut activity) = require_kind(tx, "id", id, RecordKind::Activity)?.body
    else {
        unreachable!("require_kind checked the kind")
    };
    signing_in_allowed(&activity)?;
    let mut present = Vec::with_capacity(activity.participants.len());
    for signed in activity.participants.keys() {
        present.push(current_person(tx, signed)?);
    }
    for delegate in delegates {
        let delegate = &current_person(tx, delegate)?;
        if activity.participants.contains_key(delegate) || present.contains(delegate) {
            return Err(ValidationError::new("delegate", format!("{delegate} 已经签到")).into());
        }
        let mut signed = sign_in_of(tx, delegate)?;
        signed.source = source;
        activity.participants.insert(*delegate, signed);
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
        seats_of(tx, "delegate", delegate)?;
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
    /// The delegate group it is made in the name of; the lead must be a member.
    pub group: Option<RecordId>,
}

pub fn submit_suggestion(
    tx: &mut WriteTx<'_>,
    user: &str,
    draft: SuggestionDraft,
    date: NaiveDate,
) -> Result<Header, StoreError> {
    submit_suggestion_from(tx, user, draft, date, None)
}

/// [`submit_suggestion`], for a suggestion a motion was converted into (`motion`).
fn submit_suggestion_from(
    tx: &mut WriteTx<'_>,
    user: &str,
    draft: SuggestionDraft,
    date: NaiveDate,
    motion: Option<RecordId>,
) -> Result<Header, StoreError> {
    plausible("date", date, DateUse::Happened)?;
    let mut draft = draft;
    draft.lead = current_person(tx, &draft.lead)?;
    for cosigner in &mut draft.cosigners {
        *cosigner = current_person(tx, cosigner)?;
    }
    let lead = seats_of(tx, "lead", &draft.lead)?;
    if !lead.serves_in(&draft.addressed_to) {
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
        let d = seats_of(tx, "cosigner", id)?;
        if !d.serves_in(&draft.addressed_to) {
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
    if let Some(group) = &draft.group {
        let record = require_kind(tx, "group", group, RecordKind::Group)?;
        let Body::Group(g) = record.body else {
            return Err(wrong_kind(
                "group",
                group,
                record.header.kind,
                RecordKind::Group,
            ));
        };
        if g.congress != draft.addressed_to {
            return Err(ValidationError::new(
                "group",
                format!(
                    "{} 属于 {} 人大，不能以它的名义向 {} 提出建议",
                    g.name, g.congress, draft.addressed_to
                ),
            )
            .into());
        }
        let mut member = false;
        for id in &g.members.0 {
            member |= current_person(tx, id)? == draft.lead;
        }
        if !member {
            return Err(ValidationError::new(
                "group",
                format!("领衔代表 {} 不是 {} 的成员", lead.name, g.name),
            )
            .into());
        }
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
        group: draft.group,
        motion,
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
        refuse_if_unreadable(workflow.entries()).map_err(|rejection| StoreError::Rejected {
            record: *id,
            rejection,
        })?;
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
        Body::Motion(m) => m.fold(header).1.into_iter().find_map(|l| l.rejected),
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

/// Revokes the certificate of `region` with `serial` (written as any tool prints it): a
/// record homed here that travels down to the revoked node's parent's subtree, where every
/// node refuses a link presenting that certificate. Revoking a certificate already revoked
/// here writes nothing and returns the revocation there is.
pub fn revoke_certificate(
    tx: &mut WriteTx<'_>,
    user: &str,
    region: RegionCode,
    serial: &str,
    reason: crate::record::revocation::RevocationReason,
    note: &str,
) -> Result<Header, StoreError> {
    use crate::record::revocation::Revocation;
    let revocation = Revocation {
        region,
        serial: Revocation::normalise_serial(serial)?,
        reason,
        note: note.trim().to_string(),
    };
    revocation.validate(&tx.node().region)?;
    if let Some((header, _)) = tx.revocation_of(&region, &revocation.serial)? {
        return Ok(header);
    }
    tx.create(RecordKind::Revocation, user, &revocation)
}

/// A duty rule as a congress's staff state it ([`QuotaRule`] without the congress, which is
/// the node's own).
#[derive(Clone, Debug)]
pub struct QuotaRuleDraft {
    pub subject: QuotaSubject,
    pub group_kind: Option<crate::record::group::GroupKind>,
    pub counts: QuotaCounts,
    pub activity_kinds: std::collections::BTreeSet<crate::record::activity::ActivityKind>,
    pub period: QuotaPeriod,
    pub minimum: u32,
    pub from: NaiveDate,
    pub basis: Option<String>,
}

/// What setting a rule did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuotaRuleSet {
    /// A new rule, and the rules of the same requirement it ended on its first day.
    Created { id: RecordId, ended: Vec<RecordId> },
    /// The same rule was already in force from that day: nothing was written.
    Unchanged(RecordId),
}

/// Sets a duty rule of this node's congress from `draft.from` on. A rule of the same
/// requirement in force then ends the day before (its `until` is the new rule's first day),
/// so a past year is still judged by what held then; setting the same rule again writes
/// nothing. A rule of the same requirement that begins on or after that day is left alone
/// and the new one refused: the congress ends it first.
pub fn set_quota_rule(
    tx: &mut WriteTx<'_>,
    user: &str,
    draft: QuotaRuleDraft,
) -> Result<QuotaRuleSet, StoreError> {
    plausible("from", draft.from, DateUse::Planned)?;
    let congress = tx.node().region;
    let rule = QuotaRule {
        congress,
        subject: draft.subject,
        group_kind: draft.group_kind,
        counts: draft.counts,
        activity_kinds: draft.activity_kinds,
        period: draft.period,
        minimum: draft.minimum,
        from: draft.from,
        until: None,
        basis: draft
            .basis
            .map(|b| b.trim().to_string())
            .filter(|b| !b.is_empty()),
    };
    rule.validate(&congress)?;
    let slot = rule.slot();
    let same: Vec<(RecordId, QuotaRule)> = tx
        .quota_rules(&congress)?
        .into_iter()
        .filter(|(_, r)| r.slot() == slot && r.until.is_none_or(|until| until > rule.from))
        .collect();
    if let Some((id, _)) = same.iter().find(|(_, r)| {
        r.in_force_on(rule.from) && r.minimum == rule.minimum && r.basis == rule.basis
    }) {
        return Ok(QuotaRuleSet::Unchanged(*id));
    }
    if let Some((id, later)) = same.iter().find(|(_, r)| r.from >= rule.from) {
        return Err(ValidationError::new(
            "from",
            format!(
                "同一要求已有自 {} 起生效的规定（{id}：{}），请先停止它再设定",
                later.from,
                later.describe()
            ),
        )
        .into());
    }
    let mut ended = Vec::new();
    for (id, mut earlier) in same {
        earlier.until = Some(rule.from);
        write_fields(tx, &id, &earlier, "quota rule replaced")?;
        ended.push(id);
    }
    let header = tx.create(RecordKind::QuotaRule, user, &rule)?;
    Ok(QuotaRuleSet::Created {
        id: header.id,
        ended,
    })
}

/// Ends a duty rule of this node's congress: from `on` it no longer holds. Ending it again on
/// the same day changes nothing.
pub fn end_quota_rule(
    tx: &mut WriteTx<'_>,
    id: &RecordId,
    on: NaiveDate,
) -> Result<Record, StoreError> {
    plausible("on", on, DateUse::Planned)?;
    let record = require_kind(tx, "id", id, RecordKind::QuotaRule)?;
    let Body::QuotaRule(mut rule) = record.body else {
        return Err(wrong_kind(
            "id",
            id,
            record.header.kind,
            RecordKind::QuotaRule,
        ));
    };
    let congress = tx.node().region;
    if rule.congress != congress {
        return Err(ValidationError::new(
            "id",
            format!(
                "履职要求 {id} 由 {} 制定，只能由它停止；本节点是 {congress}",
                rule.congress
            ),
        )
        .into());
    }
    if rule.until == Some(on) {
        return tx.get(id);
    }
    if let Some(until) = rule.until
        && until < on
    {
        return Err(ValidationError::new("on", format!("该要求已于 {until} 停止")).into());
    }
    if on <= rule.from {
        return Err(ValidationError::new(
            "on",
            format!("停止日期 {on} 必须晚于该要求的生效日期 {}", rule.from),
        )
        .into());
    }
    rule.until = Some(on);
    rule.validate(&congress)?;
    write_fields(tx, id, &rule, "quota rule ended")
}

/// Who proposes a motion, as the clerk enters it.
#[derive(Clone, Debug)]
pub enum ProposerDraft {
    /// Delegates jointly: the lead and the others who signed.
    Delegates {
        lead: RecordId,
        cosigners: Vec<RecordId>,
    },
    /// A delegation of the National People's Congress.
    Delegation(String),
    /// A body entitled to propose; a special committee is named.
    Body {
        body: ProposingBody,
        name: Option<String>,
    },
}

/// A motion as the congress's secretariat registers it.
#[derive(Clone, Debug)]
pub struct MotionDraft {
    pub title: String,
    pub body: String,
    pub session: String,
    /// The last day the 主席团 set for motions at this session.
    pub deadline: NaiveDate,
    pub proposer: ProposerDraft,
}

/// Registers a motion to this node's congress, submitted on `date`. Delegates who sign must
/// serve in this congress, each counted once (a duplicate registration counts as the person
/// kept); how many must sign, and which bodies may propose, is the model's rule
/// ([`MotionFields::validate`]).
pub fn submit_motion(
    tx: &mut WriteTx<'_>,
    user: &str,
    draft: MotionDraft,
    date: NaiveDate,
) -> Result<Header, StoreError> {
    plausible("date", date, DateUse::Happened)?;
    let congress = tx.node().region;
    let proposer = match draft.proposer {
        ProposerDraft::Delegates { lead, cosigners } => {
            let lead = current_person(tx, &lead)?;
            let lead_seats = seats_of(tx, "lead", &lead)?;
            if !lead_seats.serves_in(&congress) {
                return Err(ValidationError::new(
                    "lead",
                    format!(
                        "{} 不是 {congress} 人大的在任代表，不能领衔提出议案",
                        lead_seats.name
                    ),
                )
                .into());
            }
            let mut signed = Vec::new();
            let mut seen = vec![lead];
            for id in &cosigners {
                let person = current_person(tx, id)?;
                if seen.contains(&person) {
                    let name = seats_of(tx, "cosigner", &person)?.name;
                    return Err(ValidationError::new(
                        "cosigner",
                        format!("{name} 重复联名：每位代表只算一次"),
                    )
                    .into());
                }
                seen.push(person);
                let seats = seats_of(tx, "cosigner", &person)?;
                if !seats.serves_in(&congress) {
                    return Err(ValidationError::new(
                        "cosigner",
                        format!("{} 不是 {congress} 人大的在任代表，不能联名", seats.name),
                    )
                    .into());
                }
                signed.push(CoSigner {
                    id: person,
                    name: seats.name,
                });
            }
            Proposer::Delegates {
                lead,
                lead_name: lead_seats.name,
                cosigners: signed,
            }
        }
        ProposerDraft::Delegation(name) => Proposer::Delegation {
            name: name.trim().to_string(),
        },
        ProposerDraft::Body { body, name } => {
            let name = name.map(|n| n.trim().to_string());
            if body == ProposingBody::SpecialCommittee
                && congress.level() != Some(Level::Township)
                && let Some(name) = &name
            {
                committee_exists(tx, name)?;
            }
            Proposer::Body { body, name }
        }
    };
    let fields = MotionFields {
        title: draft.title.trim().to_string(),
        body: draft.body,
        congress,
        session: draft.session.trim().to_string(),
        deadline: draft.deadline,
        proposer,
    };
    fields.validate(&congress)?;
    // The 主席团 sets one deadline for a session: every motion of it carries the same.
    if let Some(set) = tx.motion_deadline(&fields.session)?
        && set != fields.deadline
    {
        return Err(ValidationError::new(
            "deadline",
            format!(
                "{} 主席团规定的议案截止日期是 {set}，不是 {}",
                fields.session, fields.deadline
            ),
        )
        .into());
    }
    let header = tx.create_with_event(
        RecordKind::Motion,
        user,
        &fields,
        MotionAction::Submit,
        date,
    )?;
    require_first_step_applied(tx, &header)?;
    Ok(header)
}

/// Refuses a special committee this congress has not registered (`renda motion committee add`):
/// a motion goes to a committee only where one exists.
fn committee_exists(tx: &WriteTx<'_>, name: &str) -> Result<(), StoreError> {
    let known = tx.special_committees()?;
    if known.iter().any(|k| k == name) {
        return Ok(());
    }
    Err(ValidationError::new(
        "committee",
        if known.is_empty() {
            format!("本级人大没有登记专门委员会，不能交“{name}”审议；设有专门委员会的，请先登记（renda motion committee add）")
        } else {
            format!("本级人大没有名为“{name}”的专门委员会，已登记的有：{}", known.join("、"))
        },
    )
    .into())
}

/// The 主席团's decision on a motion, as the secretariat enters it.
#[derive(Clone, Debug)]
pub enum DecisionDraft {
    ListOnAgenda,
    ReferToCommittee(String),
    /// 转作建议, filed under this category.
    ConvertToSuggestion {
        category: String,
    },
}

/// Records the 主席团's decision on a motion of this congress. Converting it to a suggestion
/// creates the suggestion in the same transaction (the lead and the co-signers as they
/// signed, the same session, linked both ways), so either both are written or neither.
pub fn decide_motion(
    tx: &mut WriteTx<'_>,
    user: &str,
    id: &RecordId,
    decision: DecisionDraft,
    date: NaiveDate,
) -> Result<Record, StoreError> {
    let record = require_kind(tx, "id", id, RecordKind::Motion)?;
    let Body::Motion(motion) = record.body else {
        return Err(wrong_kind("id", id, record.header.kind, RecordKind::Motion));
    };
    let decision = match decision {
        DecisionDraft::ListOnAgenda => MotionDecision::ListOnAgenda,
        DecisionDraft::ReferToCommittee(committee) => {
            let committee = committee.trim().to_string();
            // A township congress has no committees at all, which the workflow says itself.
            if tx.node().region.level() != Some(Level::Township) {
                committee_exists(tx, &committee)?;
            }
            MotionDecision::ReferToCommittee { committee }
        }
        DecisionDraft::ConvertToSuggestion { category } => {
            let Proposer::Delegates {
                lead, cosigners, ..
            } = &motion.fields.proposer
            else {
                return Err(ValidationError::new(
                    "decision",
                    "只有代表联名提出的议案可以转作代表建议",
                )
                .into());
            };
            // The step is checked before the suggestion is made, so a refused decision
            // leaves nothing behind even before the transaction rolls back.
            let status = motion.fold(&record.header).0;
            let probe = Event {
                id: RecordId::new(),
                lamport: next_lamport(&motion.events),
                recorded_at: Utc::now(),
                date,
                author: tx.author(user),
                action: MotionAction::Decide {
                    decision: MotionDecision::ConvertToSuggestion {
                        suggestion: RecordId::new(),
                    },
                },
            };
            crate::record::motion::check(&status, &record.header, &motion.fields, &probe).map_err(
                |rejection| StoreError::Rejected {
                    record: *id,
                    rejection,
                },
            )?;
            let draft = SuggestionDraft {
                title: motion.fields.title.clone(),
                body: motion.fields.body.clone(),
                category,
                lead: *lead,
                cosigners: cosigners.iter().map(|c| c.id).collect(),
                addressed_to: motion.fields.congress,
                session: Some(motion.fields.session.clone()),
                group: None,
            };
            let suggestion = submit_suggestion_from(tx, user, draft, date, Some(*id))?;
            MotionDecision::ConvertToSuggestion {
                suggestion: suggestion.id,
            }
        }
    };
    append_step(
        tx,
        user,
        id,
        RecordKind::Motion,
        MotionAction::Decide { decision },
        date,
        |body| match body {
            Body::Motion(m) => Some(m),
            _ => None,
        },
    )
}
