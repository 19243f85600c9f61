//! Importing a delegate roster (persons with this congress's seats) or a venue list from a
//! table a clerk already keeps, read from .xlsx or .csv by the caller into a [`Table`].
//!
//! An import is planned before it is written: [`plan`] reads the store (through [`Reads`], so the
//! same code runs on a reader for the preview and inside the write) and returns every problem
//! by row, column and rule, and for every good row whether it creates a record, updates one
//! (and what changes) or changes nothing. [`apply`] plans again inside its transaction and
//! writes only when no row has a problem, through the same office operations as single
//! records; importing the same file twice changes nothing the second time.
//!
//! Rows are matched to what is registered here by a stated key: a person by the hash of their
//! ID number when the roster has one, otherwise by name and birth year (the person record keeps
//! the year); a venue by its name.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use crate::office::{self, Contact, SeatDraft, StationRef};
use crate::record::delegate::{Delegate, Gender, seat_rules};
use crate::record::group::{Venue, VenueKind};
use crate::record::personal::PersonalData;
use crate::record::{Body, RecordId, RecordKind};
use crate::region::RegionCode;
use crate::store::{ListQuery, Reads, StoreError, WriteTx};
use crate::validate::ValidationError;

/// A table as read from a file: the header row and the rows under it, as text. The header is
/// the sheet's row `header_row` (1 for a sheet that starts at the top), so row `i` of `rows` is
/// the sheet's row `header_row + 1 + i`, which is what problems name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    pub header_row: usize,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Most rows one import takes: a county's roster is a few hundred, a city's a few thousand.
pub const MAX_ROWS: usize = 20_000;

/// What a table holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportKind {
    Roster,
    Venues,
}

impl ImportKind {
    pub const ALL: [ImportKind; 2] = [ImportKind::Roster, ImportKind::Venues];

    pub fn as_str(self) -> &'static str {
        match self {
            ImportKind::Roster => "roster",
            ImportKind::Venues => "venues",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ImportKind::Roster => "代表名册",
            ImportKind::Venues => "阵地名单",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<ImportKind, ValidationError> {
        ImportKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s.trim() || k.label() == s.trim())
            .ok_or_else(|| {
                ValidationError::new(
                    field,
                    format!(
                        "须为 roster（代表名册）或 venues（阵地名单），实际为“{}”",
                        crate::validate::quote(s)
                    ),
                )
            })
    }
}

/// One thing wrong with one cell (or, at row 1, with the header).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub row: usize,
    pub column: String,
    pub rule: String,
}

/// What a good row will do.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Outcome {
    Create,
    /// Update the record matched, with what changes in Chinese.
    Update {
        id: RecordId,
        changes: Vec<String>,
    },
    /// The record matched already says what the row says.
    Same {
        id: RecordId,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PlannedRow {
    pub row: usize,
    /// The person's or venue's name.
    pub label: String,
    pub outcome: Outcome,
}

/// The whole import, before anything is written.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Plan {
    pub kind: ImportKind,
    /// How rows are matched to what is registered, in Chinese.
    pub key: String,
    pub rows: Vec<PlannedRow>,
    pub problems: Vec<Problem>,
    #[serde(skip)]
    writes: Vec<Write>,
}

impl Plan {
    pub fn count(&self, which: fn(&Outcome) -> bool) -> usize {
        self.rows.iter().filter(|r| which(&r.outcome)).count()
    }
}

/// What [`apply`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Imported {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// A row's writes, decided by the plan.
#[derive(Clone, Debug)]
enum Write {
    NewPerson(Delegate, Contact, Option<SeatDraft>),
    UpdatePerson {
        id: RecordId,
        person: Option<Delegate>,
        contact: Option<(Option<RecordId>, PersonalData)>,
        seat: Option<SeatDraft>,
        stations: Vec<(u32, StationRef)>,
    },
    NewVenue(Venue),
    UpdateVenue(RecordId, Venue),
    Nothing,
}

/// The columns of a roster, each with the names a clerk's sheet may give it.
const NAME: &[&str] = &["姓名"];
const GENDER: &[&str] = &["性别"];
const BIRTH: &[&str] = &["出生年月", "出生年份", "出生日期", "出生年"];
const ETHNICITY: &[&str] = &["民族"];
const PARTY: &[&str] = &["党派", "政治面貌"];
const OCCUPATION: &[&str] = &["职业", "职务", "职业或职务", "工作单位及职务"];
const PHONE: &[&str] = &["手机", "手机号码", "联系电话"];
const ID_NUMBER: &[&str] = &["身份证号", "身份证号码"];
const TERM: &[&str] = &["届次", "届别"];
const CONSTITUENCY: &[&str] = &["选区", "选举单位", "选区或选举单位"];
const STATION: &[&str] = &["联络站", "进站阵地", "代表联络站"];

const VENUE_NAME: &[&str] = &["名称", "阵地名称"];
const VENUE_KIND: &[&str] = &["类型", "阵地类型"];
const VENUE_REGION: &[&str] = &["地区代码", "所在地区代码"];
const VENUE_ADDRESS: &[&str] = &["地址"];

/// Where each known column is in the table.
impl Table {
    /// The rows that hold anything, each with its number as the sheet shows it (what problems
    /// name); a blank row is skipped, not a problem.
    fn filled_rows(&self) -> impl Iterator<Item = (usize, &Vec<String>)> {
        self.rows
            .iter()
            .enumerate()
            .map(|(i, cells)| (self.header_row + 1 + i, cells))
            .filter(|(_, cells)| cells.iter().any(|c| !c.trim().is_empty()))
    }
}

/// Notes `rule` against a row's cell unless the cell has a problem already: each cell shows the
/// first rule it breaks.
fn note(problems: &mut Vec<Problem>, row: usize, column: String, rule: String) {
    if !problems.iter().any(|p| p.column == column) {
        problems.push(Problem { row, column, rule });
    }
}

struct Columns<'t> {
    table: &'t Table,
    at: HashMap<&'static str, usize>,
}

impl<'t> Columns<'t> {
    fn find(table: &'t Table, all: &[&'static [&'static str]]) -> Columns<'t> {
        let mut at = HashMap::new();
        for names in all {
            if let Some(i) = table.headers.iter().position(|h| names.contains(&h.trim())) {
                at.insert(names[0], i);
            }
        }
        Columns { table, at }
    }

    fn has(&self, names: &[&'static str]) -> bool {
        self.at.contains_key(names[0])
    }

    /// The header as the sheet wrote it, for problems.
    fn header(&self, names: &[&'static str]) -> String {
        self.at.get(names[0]).map_or(names[0].to_string(), |i| {
            self.table.headers[*i].trim().to_string()
        })
    }

    fn cell<'r>(&self, row: &'r [String], names: &[&'static str]) -> &'r str {
        self.at
            .get(names[0])
            .and_then(|i| row.get(*i))
            .map_or("", |v| v.trim())
    }
}

/// The hash an ID number is matched by: the roster's and the store's are compared as hashes,
/// so a preview never shows one.
fn id_hash(id: &str) -> Vec<u8> {
    Sha256::digest(id.trim().to_ascii_uppercase().as_bytes()).to_vec()
}

/// A birth year from what rosters write: 1975, 1975-03, 1975.03, 1975年3月, 1975/3/1.
fn birth_year(text: &str) -> Result<Option<i32>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    match digits.len() {
        4 | 6 | 8 => digits[..4]
            .parse()
            .map(Some)
            .map_err(|_| format!("无法读出年份：“{}”", crate::validate::quote(text))),
        _ => Err(format!(
            "须以四位年份开头（如 1975、1975-03、1975年3月），实际为“{}”",
            crate::validate::quote(text)
        )),
    }
}

/// A number Excel may have written as `17` or `17.0`.
fn whole_number(text: &str) -> Option<u32> {
    let text = text.strip_suffix(".0").unwrap_or(text);
    text.parse().ok()
}

/// Plans importing `table` as `kind` at this node: nothing is written.
pub fn plan<R: Reads>(r: &R, kind: ImportKind, table: &Table) -> Result<Plan, StoreError> {
    match kind {
        ImportKind::Roster => plan_roster(r, table),
        ImportKind::Venues => plan_venues(r, table),
    }
}

fn too_many(table: &Table, kind: ImportKind) -> Option<Plan> {
    (table.rows.len() > MAX_ROWS).then(|| Plan {
        kind,
        key: String::new(),
        rows: Vec::new(),
        problems: vec![Problem {
            row: table.header_row + 1 + MAX_ROWS,
            column: String::new(),
            rule: format!("一次最多导入 {MAX_ROWS} 行，请分批导入"),
        }],
        writes: Vec::new(),
    })
}

fn missing_columns(columns: &Columns<'_>, required: &[&[&'static str]]) -> Vec<Problem> {
    required
        .iter()
        .filter(|names| !columns.has(names))
        .map(|names| Problem {
            row: columns.table.header_row,
            column: names[0].to_string(),
            rule: format!(
                "表头缺少“{}”列（可用的列名：{}）",
                names[0],
                names.join("、")
            ),
        })
        .collect()
}

/// Venues held here by name, with their homes: those homed in this node's subtree (where a
/// roster's stations may be; a venue import updates only those homed here).
fn venues_by_name<R: Reads>(
    r: &R,
) -> Result<BTreeMap<String, Vec<(RecordId, RegionCode)>>, StoreError> {
    let me = r.identity().region;
    let mut out: BTreeMap<String, Vec<(RecordId, RegionCode)>> = BTreeMap::new();
    for row in r.list(&ListQuery {
        kind: Some(RecordKind::Venue),
        within: Some(me),
        ..ListQuery::default()
    })? {
        out.entry(row.label.trim().to_string())
            .or_default()
            .push((row.id, row.home));
    }
    Ok(out)
}

fn plan_roster<R: Reads>(r: &R, table: &Table) -> Result<Plan, StoreError> {
    if let Some(plan) = too_many(table, ImportKind::Roster) {
        return Ok(plan);
    }
    let me = r.identity().region;
    let columns = Columns::find(
        table,
        &[
            NAME,
            GENDER,
            BIRTH,
            ETHNICITY,
            PARTY,
            OCCUPATION,
            PHONE,
            ID_NUMBER,
            TERM,
            CONSTITUENCY,
            STATION,
        ],
    );
    let by_id = columns.has(ID_NUMBER);
    let key = if by_id {
        "身份证号（比对其摘要）；未填身份证号的行按姓名和出生年份".to_string()
    } else {
        "姓名和出生年份".to_string()
    };
    let mut plan = Plan {
        kind: ImportKind::Roster,
        key,
        rows: Vec::new(),
        problems: missing_columns(&columns, &[NAME, GENDER, OCCUPATION]),
        writes: Vec::new(),
    };
    if !plan.problems.is_empty() {
        return Ok(plan);
    }
    // The persons registered in this node's subtree, by key, with what the import compares.
    // Those registered here may be updated; one registered below (a township delegate the
    // county elects too) is matched as well, and only granted this congress's seat, since
    // their details are their own node's to keep.
    let mut by_name_year: HashMap<(String, Option<i32>), Vec<RecordId>> = HashMap::new();
    let mut by_id_hash: HashMap<Vec<u8>, RecordId> = HashMap::new();
    let mut held: HashMap<RecordId, (Delegate, Option<(RecordId, PersonalData)>)> = HashMap::new();
    let mut homes: HashMap<RecordId, RegionCode> = HashMap::new();
    for row in r.list(&ListQuery {
        kind: Some(RecordKind::Delegate),
        within: Some(me),
        ..ListQuery::default()
    })? {
        homes.insert(row.id, row.home);
        let Body::Delegate(d) = r.get(&row.id)?.body else {
            continue;
        };
        if d.merged_into.is_some() {
            continue;
        }
        let personal = match r.personal_for(&row.id)? {
            Some(p) => match p.body {
                Body::Personal(data) => Some((p.header.id, data)),
                _ => None,
            },
            None => None,
        };
        if let Some(id) = personal.as_ref().and_then(|(_, p)| p.id_number.as_deref()) {
            by_id_hash.insert(id_hash(id), row.id);
        }
        by_name_year
            .entry((d.name.trim().to_string(), d.birth_year))
            .or_default()
            .push(row.id);
        held.insert(row.id, (d, personal));
    }
    let venues = venues_by_name(r)?;
    let mut seen_keys: HashMap<String, usize> = HashMap::new();

    for (row, cells) in table.filled_rows() {
        let mut problems = Vec::new();
        let mut problem = |names: &[&'static str], rule: String| {
            note(&mut problems, row, columns.header(names), rule)
        };
        let name = columns.cell(cells, NAME).to_string();
        if name.is_empty() {
            problem(NAME, "姓名不能为空".into());
        }
        let gender = match Gender::parse("gender", columns.cell(cells, GENDER)) {
            Ok(g) => Some(g),
            Err(e) => {
                problem(GENDER, e.rule);
                None
            }
        };
        let year = match birth_year(columns.cell(cells, BIRTH)) {
            Ok(y) => y,
            Err(rule) => {
                problem(BIRTH, rule);
                None
            }
        };
        let occupation = columns.cell(cells, OCCUPATION).to_string();
        if occupation.is_empty() {
            problem(OCCUPATION, "职业或职务不能为空".into());
        }
        let optional = |names: &[&'static str]| {
            Some(columns.cell(cells, names).to_string()).filter(|v| !v.is_empty())
        };
        let person = Delegate {
            name: name.clone(),
            gender: gender.unwrap_or(Gender::Male),
            birth_year: year,
            ethnicity: optional(ETHNICITY),
            party: optional(PARTY),
            occupation: occupation.clone(),
            station: None,
            merged_into: None,
            merge_route: None,
            mandates: Default::default(),
        };
        if let Err(e) = person.validate() {
            let names = match e.field.as_str() {
                "name" => NAME,
                "occupation" => OCCUPATION,
                "ethnicity" => ETHNICITY,
                "party" => PARTY,
                "birth-year" => BIRTH,
                _ => NAME,
            };
            problem(names, e.rule);
        }
        let id_number = optional(ID_NUMBER);
        let contact = PersonalData {
            subject: RecordId::nil(),
            subject_kind: RecordKind::Delegate,
            name: None,
            phone: optional(PHONE),
            id_number: id_number.clone(),
        };
        if let Err(e) = contact.validate("") {
            problem(if e.field == "phone" { PHONE } else { ID_NUMBER }, e.rule);
        }
        let term = match columns.cell(cells, TERM) {
            "" => None,
            t => match whole_number(t) {
                Some(t) => match seat_rules(&me, t) {
                    Ok(()) => Some(t),
                    Err(e) => {
                        problem(TERM, e.rule);
                        None
                    }
                },
                None => {
                    problem(
                        TERM,
                        format!("届次须为整数，实际为“{}”", crate::validate::quote(t)),
                    );
                    None
                }
            },
        };
        let constituency = columns.cell(cells, CONSTITUENCY).to_string();
        if term.is_some() && constituency.is_empty() {
            problem(CONSTITUENCY, "填写了届次时，选区或选举单位不能为空".into());
        }
        let station = match columns.cell(cells, STATION) {
            "" => None,
            s => match venues.get(s).map(Vec::as_slice) {
                Some([(one, _)]) => Some(*one),
                Some(_) => {
                    problem(STATION, format!("本节点有多个名为“{s}”的阵地，无法确定"));
                    None
                }
                None => {
                    problem(
                        STATION,
                        format!("本节点没有名为“{s}”的阵地，请先导入或登记阵地"),
                    );
                    None
                }
            },
        };
        if station.is_some() && term.is_none() {
            problem(
                TERM,
                "填写了联络站时须填写届次：进站的是本级代表资格".into(),
            );
        }
        // The key: the ID number's hash, or name and birth year; each once in a file.
        let key = match &id_number {
            Some(id) => format!("id:{}", hex(&id_hash(id))),
            None => format!("name:{name}:{year:?}"),
        };
        if let Some(first) = seen_keys.get(&key) {
            problem(
                if id_number.is_some() { ID_NUMBER } else { NAME },
                format!("与第 {first} 行是同一人（匹配键相同）"),
            );
        } else {
            seen_keys.insert(key, row);
        }
        // By the ID number's hash; failing that (or with no ID number), by name and birth year
        // among the persons registered without an ID number, so a person registered before the
        // roster had ID numbers is matched, not registered again.
        let by_name = || {
            let candidates: Vec<RecordId> = by_name_year
                .get(&(name.clone(), year))
                .map(|ids| {
                    ids.iter()
                        .copied()
                        .filter(|id| {
                            held[id]
                                .1
                                .as_ref()
                                .is_none_or(|(_, p)| p.id_number.is_none())
                        })
                        .collect()
                })
                .unwrap_or_default();
            match candidates.as_slice() {
                [] => Ok(None),
                [one] => Ok(Some(*one)),
                _ => Err(()),
            }
        };
        let matched = match id_number
            .as_deref()
            .and_then(|id| by_id_hash.get(&id_hash(id)))
        {
            Some(m) => Ok(Some(*m)),
            None => by_name(),
        };
        let matched = match matched {
            Ok(m) => m,
            Err(()) => {
                problem(
                    NAME,
                    format!(
                        "本级及下级登记了多位同名且出生年份相同的“{name}”，请在名册中填写身份证号以区分"
                    ),
                );
                None
            }
        };
        if !problems.is_empty() {
            plan.problems.extend(problems);
            continue;
        }
        let seat = term.map(|term| SeatDraft {
            term,
            constituency: constituency.clone(),
            stations: station
                .map(|venue| StationRef {
                    venue,
                    region: None,
                })
                .into_iter()
                .collect(),
        });
        let contact_given = Contact {
            name: None,
            phone: contact.phone.clone(),
            id_number: contact.id_number.clone(),
        };
        let (outcome, write) = match matched {
            None => (
                Outcome::Create,
                Write::NewPerson(person, contact_given, seat),
            ),
            Some(id) => {
                let (was, personal) = &held[&id];
                let ours = homes.get(&id) == Some(&me);
                let mut changes = Vec::new();
                let mut updated = was.clone();
                let mut set = |what: &str, old: String, new: String| {
                    if ours && old != new {
                        changes.push(format!("{what}：{old} → {new}"));
                    }
                };
                set("姓名", was.name.clone(), person.name.clone());
                set(
                    "性别",
                    was.gender.label().into(),
                    person.gender.label().into(),
                );
                set(
                    "出生年份",
                    was.birth_year.map(|y| y.to_string()).unwrap_or_default(),
                    person.birth_year.map(|y| y.to_string()).unwrap_or_default(),
                );
                set(
                    "民族",
                    was.ethnicity.clone().unwrap_or_default(),
                    person.ethnicity.clone().unwrap_or_default(),
                );
                set(
                    "党派",
                    was.party.clone().unwrap_or_default(),
                    person.party.clone().unwrap_or_default(),
                );
                set(
                    "职业或职务",
                    was.occupation.clone(),
                    person.occupation.clone(),
                );
                let person_changed = !changes.is_empty();
                updated.name = person.name.clone();
                updated.gender = person.gender;
                updated.birth_year = person.birth_year;
                updated.ethnicity = person.ethnicity.clone();
                updated.party = person.party.clone();
                updated.occupation = person.occupation.clone();
                // Contact details: a value in the roster replaces the one held; an empty cell
                // leaves it, since a roster often leaves out what it does not track.
                let held_data = personal.as_ref().map(|(_, p)| p.clone());
                let mut data = held_data.clone().unwrap_or(PersonalData {
                    subject: id,
                    subject_kind: RecordKind::Delegate,
                    name: None,
                    phone: None,
                    id_number: None,
                });
                if ours
                    && let Some(phone) = &contact.phone
                    && data.phone.as_ref() != Some(phone)
                {
                    changes.push("手机号码".to_string());
                    data.phone = Some(phone.clone());
                }
                if ours
                    && let Some(idn) = &contact.id_number
                    && data.id_number.as_ref() != Some(idn)
                {
                    changes.push("身份证号".to_string());
                    data.id_number = Some(idn.clone());
                }
                // A person registered below: their details are not this node's to change, only
                // this congress's seat is.
                let contact_write = (ours && held_data.as_ref() != Some(&data))
                    .then(|| (personal.as_ref().map(|(pid, _)| *pid), data));
                let seats = r.mandates_of(&id)?;
                let own = |term: u32| {
                    seats
                        .iter()
                        .find(|(h, m)| h.home == me && m.congress == me && m.term == term)
                };
                let mut seat_write = None;
                let mut stations = Vec::new();
                if let Some(seat) = &seat {
                    match own(seat.term) {
                        None => {
                            changes.push(format!("授予第{}届代表资格", seat.term));
                            seat_write = Some(seat.clone());
                        }
                        Some((_, m)) => {
                            for s in &seat.stations {
                                if m.stations.get(&s.venue).is_none_or(|st| st.until.is_some()) {
                                    changes.push(format!("第{}届代表资格进站", seat.term));
                                    stations.push((seat.term, *s));
                                }
                            }
                        }
                    }
                }
                if changes.is_empty() {
                    (Outcome::Same { id }, Write::Nothing)
                } else {
                    (
                        Outcome::Update { id, changes },
                        Write::UpdatePerson {
                            id,
                            person: person_changed.then_some(updated),
                            contact: contact_write,
                            seat: seat_write,
                            stations,
                        },
                    )
                }
            }
        };
        plan.rows.push(PlannedRow {
            row,
            label: name,
            outcome,
        });
        plan.writes.push(write);
    }
    Ok(plan)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn plan_venues<R: Reads>(r: &R, table: &Table) -> Result<Plan, StoreError> {
    if let Some(plan) = too_many(table, ImportKind::Venues) {
        return Ok(plan);
    }
    let me = r.identity().region;
    let columns = Columns::find(
        table,
        &[VENUE_NAME, VENUE_KIND, VENUE_REGION, VENUE_ADDRESS],
    );
    let mut plan = Plan {
        kind: ImportKind::Venues,
        key: "名称".to_string(),
        rows: Vec::new(),
        problems: missing_columns(&columns, &[VENUE_NAME, VENUE_KIND]),
        writes: Vec::new(),
    };
    if !plan.problems.is_empty() {
        return Ok(plan);
    }
    // A venue is updated only by the node that registered it; one of the same name registered
    // below is a problem on its row, not a match.
    let held = venues_by_name(r)?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (row, cells) in table.filled_rows() {
        let mut problems = Vec::new();
        let mut problem = |names: &[&'static str], rule: String| {
            note(&mut problems, row, columns.header(names), rule)
        };
        let name = columns.cell(cells, VENUE_NAME).to_string();
        let kind = VenueKind::parse("kind", columns.cell(cells, VENUE_KIND))
            .map_err(|e| problem(VENUE_KIND, e.rule))
            .ok();
        let region = match columns.cell(cells, VENUE_REGION) {
            "" => Some(me),
            code => match RegionCode::parse("region", code) {
                Ok(r) if r.is_within(&me) => Some(r),
                Ok(r) => {
                    problem(VENUE_REGION, format!("{r} 不在本节点（{me}）的辖区内"));
                    None
                }
                Err(e) => {
                    problem(VENUE_REGION, e.rule);
                    None
                }
            },
        };
        let venue = Venue {
            name: name.clone(),
            kind: kind.unwrap_or(VenueKind::Station),
            region: region.unwrap_or(me),
            address: columns.cell(cells, VENUE_ADDRESS).to_string(),
        };
        if let Err(e) = venue.validate() {
            problem(
                if e.field == "name" {
                    VENUE_NAME
                } else {
                    VENUE_ADDRESS
                },
                e.rule,
            );
        }
        if let Some(first) = seen.get(&name) {
            problem(VENUE_NAME, format!("与第 {first} 行名称相同"));
        } else {
            seen.insert(name.clone(), row);
        }
        // A venue is updated only by the node that registered it; one of the same name
        // registered below is a problem on its row, not a match.
        let matched = match held.get(&name).map(Vec::as_slice) {
            None | Some([]) => None,
            Some([(one, home)]) if *home == me => Some(*one),
            Some([(_, home)]) => {
                problem(
                    VENUE_NAME,
                    format!("“{name}”已由 {home} 登记，只有登记它的节点可以修改"),
                );
                None
            }
            Some(_) => {
                problem(
                    VENUE_NAME,
                    format!("本节点已有多个名为“{name}”的阵地，无法确定更新哪一个"),
                );
                None
            }
        };
        if !problems.is_empty() {
            plan.problems.extend(problems);
            continue;
        }
        let (outcome, write) = match matched {
            None => (Outcome::Create, Write::NewVenue(venue)),
            Some(id) => {
                let Body::Venue(was) = r.get(&id)?.body else {
                    continue;
                };
                let mut changes = Vec::new();
                if was.kind != venue.kind {
                    changes.push(format!(
                        "类型：{} → {}",
                        was.kind.label(),
                        venue.kind.label()
                    ));
                }
                if was.region != venue.region {
                    changes.push(format!("地区：{} → {}", was.region, venue.region));
                }
                if was.address != venue.address {
                    changes.push(format!("地址：{} → {}", was.address, venue.address));
                }
                if changes.is_empty() {
                    (Outcome::Same { id }, Write::Nothing)
                } else {
                    (
                        Outcome::Update { id, changes },
                        Write::UpdateVenue(id, venue),
                    )
                }
            }
        };
        plan.rows.push(PlannedRow {
            row,
            label: name,
            outcome,
        });
        plan.writes.push(write);
    }
    Ok(plan)
}

/// Imports `table` in the transaction in hand: plans it again (what the store holds now) and
/// writes every row, or nothing when any row has a problem (the first is the error; the
/// preview lists them all).
pub fn apply(
    tx: &mut WriteTx<'_>,
    user: &str,
    kind: ImportKind,
    table: &Table,
) -> Result<Imported, StoreError> {
    let plan = plan(tx, kind, table)?;
    if let Some(p) = plan.problems.first() {
        return Err(ValidationError::new(
            format!("第{}行“{}”列", p.row, p.column),
            format!(
                "{}（共 {} 处问题，未导入任何一行）",
                p.rule,
                plan.problems.len()
            ),
        )
        .into());
    }
    let mut done = Imported::default();
    for (row, write) in plan.rows.iter().zip(plan.writes) {
        match &row.outcome {
            Outcome::Create => done.created += 1,
            Outcome::Update { .. } => done.updated += 1,
            Outcome::Same { .. } => done.unchanged += 1,
        }
        match write {
            Write::Nothing => {}
            Write::NewPerson(person, contact, seat) => {
                office::add_delegate(tx, user, person, contact, seat)?;
            }
            Write::UpdatePerson {
                id,
                person,
                contact,
                seat,
                stations,
            } => {
                if let Some(person) = person {
                    office::write_fields(tx, &id, &person, "roster import")?;
                }
                match contact {
                    Some((Some(personal), data)) => {
                        office::write_fields(tx, &personal, &data, "roster import")?;
                    }
                    Some((None, data)) => {
                        tx.create(RecordKind::Personal, user, &data)?;
                    }
                    None => {}
                }
                if let Some(seat) = seat {
                    office::grant_mandate(tx, user, &id, seat)?;
                }
                for (term, station) in stations {
                    office::station_delegate(tx, &id, term, station, None)?;
                }
            }
            Write::NewVenue(venue) => {
                office::add_venue(tx, user, venue)?;
            }
            Write::UpdateVenue(id, venue) => {
                venue.validate()?;
                office::write_fields(tx, &id, &venue, "venue import")?;
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn birth_years_are_read_as_rosters_write_them() {
        for (text, year) in [
            ("1975", Some(1975)),
            ("1975-03", Some(1975)),
            ("1975.03", Some(1975)),
            ("1975年3月", Some(1975)),
            ("197503", Some(1975)),
            ("19750301", Some(1975)),
            ("", None),
        ] {
            assert_eq!(birth_year(text), Ok(year), "{text}");
        }
        assert!(birth_year("75年").is_err());
        assert!(birth_year("三月").is_err());
        assert_eq!(whole_number("17.0"), Some(17));
        assert_eq!(whole_number("十七"), None);
    }
}
