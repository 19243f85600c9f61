//! The command line: clap definitions only. Values are parsed into domain types here, so a bad
//! value is reported by clap with the flag's name and our rule, before anything is opened.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use renda_node::record::activity::ActivityKind;
use renda_node::record::delegate::{Gender, MandateStatus};
use renda_node::record::group::{GroupKind, VenueKind};
use renda_node::record::motion::ProposingBody;
use renda_node::record::opinion::OpinionSource;
use renda_node::record::quota::{QuotaCounts, QuotaPeriod, QuotaSubject};
use renda_node::record::rollup::Period;
use renda_node::record::suggestion::{AnswerClass, Satisfaction};
use renda_node::region::RegionCode;

#[derive(Parser, Debug)]
#[command(
    name = "renda",
    version,
    about = "人大代表履职数据联邦同步节点 (Renda: federated sync for the people's congresses)"
)]
pub struct Cli {
    /// The node's data directory.
    #[arg(
        long,
        global = true,
        env = "RENDA_DATA_DIR",
        default_value = "renda-data"
    )]
    pub data_dir: PathBuf,
    /// Who is working at this node; recorded as the author of every change.
    #[arg(long, global = true, env = "RENDA_USER", default_value = "clerk")]
    pub user: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
// One command is parsed once per process: its size does not matter, and boxing `run`'s
// settings would only make every use of them longer.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Initialise a node in the data directory.
    Init(InitArgs),
    /// Show the node's identity, what it holds, and the health of its sync links.
    Status,
    /// Run the node: serve children's sync links and keep a live link to the parent.
    Run(RunArgs),
    /// Sync with the parent.
    Sync(SyncArgs),
    /// Recompute this node's rollup (the numbers of its whole subtree) and show it, or show a
    /// descendant's rollup held here.
    Rollup(RollupArgs),
    /// Revoke a node certificate of this node's subtree (证书吊销): the revocation travels down
    /// to the revoked node's parent's subtree, where every node refuses a link presenting that
    /// certificate and notes it in its audit log. Issue the node a new certificate to let it
    /// link again.
    Revoke {
        /// The certificate to revoke (its node.pem): its region and serial are read from it.
        #[arg(long, conflicts_with_all = ["region", "serial"], required_unless_present = "serial")]
        cert: Option<PathBuf>,
        /// The region the certificate names, with --serial when the file is not at hand.
        #[arg(long, value_parser = region, requires = "serial")]
        region: Option<RegionCode>,
        /// The certificate's serial number, as `renda ca issue` or `renda status` printed it.
        #[arg(long, requires = "region")]
        serial: Option<String>,
        /// key_compromise (密钥泄露或设备丢失), superseded (已换发新证书), cessation (节点停用)
        /// or other (其他原因).
        #[arg(long, value_parser = revocation_reason)]
        reason: renda_node::record::revocation::RevocationReason,
        /// What happened, for the audit log (被盗的办公电脑 …).
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Write a consistent copy of the node's database (safe while the node runs).
    Backup {
        #[arg(long)]
        to: PathBuf,
    },
    /// Replace the node's database with a backup; stop the node first. Its next sync asks the
    /// parent and children to send back what the backup lacks.
    Restore {
        #[arg(long)]
        from: PathBuf,
    },
    /// Set or change the parent's sync address (host:port).
    Attach {
        #[arg(long, value_parser = host_port)]
        parent: String,
    },
    /// Check the node's database for damage (SQLite's full integrity check); exit 1 and say how
    /// to recover if it is damaged. Safe while the node runs.
    Check,
    /// Replace a damaged database with a new one for the same node and fill it from its peers:
    /// the parent holds every record of this node's subtree and its personal data. The damaged
    /// file is kept beside it. Stop the node first; then run `renda sync --once` or `renda run`.
    Rebuild {
        /// The parent's sync address (host:port); every node but the national one has one.
        #[arg(long, value_parser = host_port)]
        parent: Option<String>,
        /// The node's region code, if the damaged file no longer says it.
        #[arg(long, value_parser = region)]
        region: Option<RegionCode>,
        /// The node's name, if the damaged file no longer says it.
        #[arg(long)]
        name: Option<String>,
    },
    /// Delegates (代表).
    #[command(subcommand)]
    Delegate(DelegateCmd),
    /// Delegate groups (代表小组).
    #[command(subcommand)]
    Group(GroupCmd),
    /// Liaison stations, delegate homes, studios and practice points.
    #[command(subcommand)]
    Venue(VenueCmd),
    /// Activities and sign-ins (活动).
    #[command(subcommand)]
    Activity(ActivityCmd),
    /// Constituents' opinions (民情).
    #[command(subcommand)]
    Opinion(OpinionCmd),
    /// Delegates' suggestions and their handling (建议).
    #[command(subcommand)]
    Suggestion(SuggestionCmd),
    /// Notices to the subtree (通知).
    #[command(subcommand)]
    Notice(NoticeCmd),
    /// This congress's duty rules (履职要求) and where its groups and delegates stand.
    #[command(subcommand)]
    Quota(QuotaCmd),
    /// Motions to this congress in session (议案) and the 主席团's decisions.
    #[command(subcommand)]
    Motion(MotionCmd),
    /// Run a five-level federation of real nodes on this machine, with the counties' published
    /// figures, offline townships and the dashboards.
    Demo(DemoArgs),
    /// Measure this machine: results go in docs/benchmarks.md.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// The federation's certificate authority and the nodes' certificates.
    #[command(subcommand)]
    Ca(CaCmd),
    /// Credentials of the dashboard and the query API (roles admin, clerk, viewer).
    #[command(subcommand)]
    Credential(CredentialCmd),
    /// Changes from peers this node refused, newest first: who sent them, which record, which
    /// rule.
    Audit {
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        limit: u32,
    },
    /// Tools for tests and operators.
    #[command(subcommand, hide = true)]
    Debug(DebugCmd),
}

#[derive(Subcommand, Debug)]
pub enum CredentialCmd {
    /// Create a credential and print its token (shown only this once; stored hashed).
    Add {
        /// Who uses it, e.g. 代表工委 张三.
        #[arg(long)]
        name: String,
        /// viewer (查看): read pages and queries; clerk (办理): also work on the dashboard's
        /// workbench (every office operation, imports); admin (管理): also accounts and the
        /// audit log.
        #[arg(long, value_parser = role)]
        role: renda_node::access::Role,
        /// Make a personal account for the dashboard instead: read its password from the first
        /// line of stdin (at least 8 characters); no token is printed.
        #[arg(long, conflicts_with_all = ["within", "api"])]
        password_stdin: bool,
        /// A program's token for the Query API (docs/api.md): read-only whatever its role, it
        /// opens neither the dashboard nor the first Query service. Give it the viewer role,
        /// or admin to read the audit log.
        #[arg(long)]
        api: bool,
        /// Limit a program's token to this region's subtree (a region within this node's): it
        /// reads the Query API about that subtree only. Implies --api.
        #[arg(long)]
        within: Option<String>,
    },
    /// Set a credential's dashboard password from the first line of stdin, ending its sessions
    /// (an admin does the same on the dashboard's 账号管理 page).
    Password {
        /// The credential's name.
        name: String,
    },
    /// Every credential, revoked ones included.
    List,
    /// Revoke a credential: its token stops working at once.
    Revoke {
        /// The credential's name.
        name: String,
    },
}

pub fn role(s: &str) -> Result<renda_node::access::Role, String> {
    renda_node::access::Role::parse("role", s).map_err(|e| e.rule)
}

pub fn revocation_reason(
    s: &str,
) -> Result<renda_node::record::revocation::RevocationReason, String> {
    renda_node::record::revocation::RevocationReason::parse("reason", s).map_err(|e| e.rule)
}

pub fn region(s: &str) -> Result<RegionCode, String> {
    RegionCode::parse("region", s).map_err(|e| e.rule)
}

/// A peer's address: host:port, nothing else.
pub fn host_port(s: &str) -> Result<String, String> {
    renda_node::validate::host_port("parent", s)
        .map(|()| s.trim().to_string())
        .map_err(|e| e.rule)
}

pub fn period(s: &str) -> Result<Period, String> {
    Period::parse(s)
}

pub fn date(s: &str) -> Result<NaiveDate, String> {
    renda_node::validate::parse_date("date", s).map_err(|e| e.rule)
}

macro_rules! enum_parser {
    ($fn_name:ident, $ty:ty) => {
        pub fn $fn_name(s: &str) -> Result<$ty, String> {
            <$ty>::parse("value", s).map_err(|e| e.rule)
        }
    };
}
enum_parser!(gender, Gender);
enum_parser!(mandate_status, MandateStatus);
enum_parser!(group_kind, GroupKind);
enum_parser!(venue_kind, VenueKind);
enum_parser!(activity_kind, ActivityKind);
enum_parser!(opinion_source, OpinionSource);
enum_parser!(answer_class, AnswerClass);
enum_parser!(satisfaction, Satisfaction);
enum_parser!(quota_subject, QuotaSubject);
enum_parser!(proposing_body, ProposingBody);
enum_parser!(quota_counts, QuotaCounts);
enum_parser!(quota_period, QuotaPeriod);

#[derive(Args, Debug)]
pub struct InitArgs {
    /// The node's 12-digit region code (统计用区划代码); 000000000000 is the national congress.
    #[arg(long, value_parser = region)]
    pub region: RegionCode,
    /// The office's name, e.g. 王店镇人大主席团.
    #[arg(long)]
    pub name: String,
    /// The parent's sync address (host:port); `renda attach` sets or changes it later.
    #[arg(long, value_parser = host_port)]
    pub parent: Option<String>,
}

/// A record id or a unique prefix of at least four characters.
#[derive(Args, Debug)]
pub struct IdArg {
    pub id: String,
}

/// The date a step took effect; today when omitted.
#[derive(Args, Debug, Clone, Copy)]
pub struct DateArg {
    #[arg(long, value_parser = date)]
    pub date: Option<NaiveDate>,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only records with this status (its English identifier, as --json prints it).
    #[arg(long)]
    pub status: Option<String>,
    /// Only records homed in this region's subtree.
    #[arg(long, value_parser = region)]
    pub within: Option<RegionCode>,
    /// Only records involving this delegate.
    #[arg(long)]
    pub delegate: Option<String>,
    /// Only records that happened in this year (2026) or month (2026-05).
    #[arg(long, value_parser = period)]
    pub period: Option<Period>,
    /// At most this many rows.
    #[arg(long)]
    pub limit: Option<u32>,
    #[arg(long, default_value_t = 0)]
    pub offset: u32,
}

#[derive(Subcommand, Debug)]
pub enum DelegateCmd {
    /// Register a person with the seat this node's congress grants them.
    Add(DelegateAdd),
    /// Grant a person held here a seat in this node's congress (re-election, or a delegate of
    /// a lower congress elected here too). Only the congress itself grants its seats.
    Mandate(MandateAdd),
    /// Station a delegate of this congress at a liaison station (进站), or record that they
    /// left it (--leave).
    Station(StationArgs),
    /// Change a mandate's status (辞职, 罢免 …); only the congress holding it may.
    SetStatus(MandateSetStatus),
    /// Merge a person registered twice into the record kept (only the node that registered
    /// the one merged away may): it stays as a redirect that every count follows.
    Merge(MergeArgs),
    /// The persons registered here or held from below.
    List(ListArgs),
    /// Every seat this node holds: its own congress's, and those of delegates of other
    /// congresses stationed here (the station roster).
    Roster(ListArgs),
    Show(IdArg),
}

#[derive(Args, Debug)]
pub struct MandateArgs {
    /// The congress granting the seat: always this node's; another congress's seat is granted
    /// at that congress's node.
    #[arg(long, value_parser = region)]
    pub congress: Option<RegionCode>,
    /// 届次, e.g. 17.
    #[arg(long)]
    pub term: u32,
    /// 选区 or 选举单位.
    #[arg(long)]
    pub constituency: String,
    /// A liaison station (venue id) the delegate works at; repeat for several.
    #[arg(long = "station")]
    pub stations: Vec<String>,
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The person merged away.
    pub id: String,
    /// The person kept.
    #[arg(long)]
    pub into: String,
    #[command(flatten)]
    pub date: DateArg,
}

#[derive(Args, Debug)]
pub struct StationArgs {
    /// The person.
    pub id: String,
    /// The term of this congress's seat.
    #[arg(long)]
    pub term: u32,
    /// The venue id of the station.
    #[arg(long)]
    pub station: String,
    /// The day the delegate stopped working at the station (YYYY-MM-DD).
    #[arg(long, value_parser = date)]
    pub leave: Option<NaiveDate>,
}

#[derive(Args, Debug)]
pub struct DelegateAdd {
    #[arg(long)]
    pub name: String,
    /// 男/女 (male/female).
    #[arg(long, value_parser = gender)]
    pub gender: Gender,
    #[arg(long)]
    pub occupation: String,
    #[arg(long)]
    pub birth_year: Option<i32>,
    #[arg(long)]
    pub ethnicity: Option<String>,
    #[arg(long)]
    pub party: Option<String>,
    #[command(flatten)]
    pub mandate: MandateArgs,
    /// Kept as personal data, never sent beyond the parent.
    #[arg(long)]
    pub phone: Option<String>,
    #[arg(long)]
    pub id_number: Option<String>,
}

#[derive(Args, Debug)]
pub struct MandateAdd {
    /// The person: an id (or prefix) held here, or `ID@HOME` for a person registered at a
    /// node whose records do not reach this one (a township person, seen from a province).
    pub id: String,
    /// The person's name, with `ID@HOME`.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub mandate: MandateArgs,
}

#[derive(Args, Debug)]
pub struct MandateSetStatus {
    pub id: String,
    #[arg(long, value_parser = region)]
    pub congress: Option<RegionCode>,
    #[arg(long)]
    pub term: u32,
    /// 在任/暂停执行职务/辞职/罢免/终止.
    #[arg(long, value_parser = mandate_status)]
    pub status: MandateStatus,
    #[command(flatten)]
    pub date: DateArg,
}

#[derive(Subcommand, Debug)]
pub enum GroupCmd {
    Add(GroupAdd),
    /// Add members to a group.
    Join {
        id: String,
        #[arg(long = "member", required = true)]
        members: Vec<String>,
    },
    List(ListArgs),
    Show(IdArg),
}

#[derive(Args, Debug)]
pub struct GroupAdd {
    #[arg(long)]
    pub name: String,
    /// 区域/专业 (regional/professional).
    #[arg(long, value_parser = group_kind)]
    pub kind: GroupKind,
    /// The field of a professional group.
    #[arg(long)]
    pub field: Option<String>,
    /// The congress the group belongs to; this node's when omitted.
    #[arg(long, value_parser = region)]
    pub congress: Option<RegionCode>,
    #[arg(long)]
    pub leader: Option<String>,
    #[arg(long = "member")]
    pub members: Vec<String>,
    #[arg(long)]
    pub venue: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum VenueCmd {
    Add(VenueAdd),
    List(ListArgs),
    Show(IdArg),
}

#[derive(Args, Debug)]
pub struct VenueAdd {
    #[arg(long)]
    pub name: String,
    /// station/home/studio/practice (代表联络站/代表之家/代表工作室/全过程人民民主实践点).
    #[arg(long, value_parser = venue_kind)]
    pub kind: VenueKind,
    /// Where it is; this node's region when omitted.
    #[arg(long, value_parser = region)]
    pub region: Option<RegionCode>,
    #[arg(long, default_value = "")]
    pub address: String,
}

#[derive(Subcommand, Debug)]
pub enum ActivityCmd {
    Add(ActivityAdd),
    /// Sign delegates in to an activity.
    SignIn {
        id: String,
        #[arg(long = "delegate", required = true)]
        delegates: Vec<String>,
    },
    List(ListArgs),
    Show(IdArg),
}

#[derive(Args, Debug)]
pub struct ActivityAdd {
    /// The activity type, e.g. 接待选民 or reception.
    #[arg(long, value_parser = activity_kind)]
    pub kind: ActivityKind,
    #[arg(long, value_parser = date)]
    pub date: NaiveDate,
    #[arg(long)]
    pub topic: String,
    /// Who organised it; this node's name when omitted.
    #[arg(long)]
    pub organiser: Option<String>,
    #[arg(long)]
    pub group: Option<String>,
    #[arg(long)]
    pub venue: Option<String>,
    #[arg(long = "participant")]
    pub participants: Vec<String>,
    /// Constituents received (接待群众人次).
    #[arg(long, default_value_t = 0)]
    pub received: u32,
    #[arg(long, default_value = "")]
    pub outcome: String,
}

#[derive(Subcommand, Debug)]
pub enum OpinionCmd {
    /// Record an opinion as received (收集).
    Add(OpinionAdd),
    /// Answered on the spot (当场答复): handled at once.
    Answer {
        id: String,
        #[arg(long)]
        reply: String,
        #[command(flatten)]
        date: DateArg,
    },
    /// Pass on to a named body (转交).
    PassOn {
        id: String,
        #[arg(long)]
        to: String,
        #[command(flatten)]
        date: DateArg,
    },
    /// The body has started on it (办理中).
    Start {
        id: String,
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        date: DateArg,
    },
    /// Handled (办结), with the result.
    Handle {
        id: String,
        #[arg(long)]
        result: String,
        #[command(flatten)]
        date: DateArg,
    },
    /// The citizen's rating (满意/基本满意/不满意).
    Rate {
        id: String,
        #[arg(long, value_parser = satisfaction)]
        rating: Satisfaction,
        #[command(flatten)]
        date: DateArg,
    },
    List(ListArgs),
    Show(IdArg),
}

#[derive(Args, Debug)]
pub struct OpinionAdd {
    /// qr/reception/visit/hotline/other (扫码反映/接待选民/走访/热线电话/其他).
    #[arg(long, value_parser = opinion_source)]
    pub source: OpinionSource,
    #[arg(long)]
    pub content: String,
    #[arg(long, default_value = "")]
    pub place: String,
    /// The village, street or township it comes from; this node's region when omitted.
    #[arg(long, value_parser = region)]
    pub region: Option<RegionCode>,
    /// The delegate who received it.
    #[arg(long)]
    pub delegate: Option<String>,
    #[arg(long)]
    pub activity: Option<String>,
    #[arg(long)]
    pub category: Option<String>,
    /// The constituent's name: personal data.
    #[arg(long)]
    pub constituent_name: Option<String>,
    /// The constituent's phone: personal data.
    #[arg(long)]
    pub constituent_phone: Option<String>,
    #[command(flatten)]
    pub date: DateArg,
}

#[derive(Subcommand, Debug)]
pub enum SuggestionCmd {
    /// Submit a suggestion (提出建议).
    Submit(SuggestionSubmit),
    /// Screen: accept (立案) or not accept with a reason.
    Screen {
        id: String,
        #[arg(long, conflicts_with = "reject", required_unless_present = "reject")]
        accept: bool,
        #[arg(long, requires = "reason")]
        reject: bool,
        /// The number given on acceptance; the next free number when omitted.
        #[arg(long, conflicts_with = "reject")]
        number: Option<u32>,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        date: DateArg,
    },
    /// Assign to handling units (交办): one lead unit with assisting units, or separate units.
    Assign {
        id: String,
        #[arg(
            long,
            required_unless_present = "separate_units",
            conflicts_with = "separate_units"
        )]
        lead_unit: Option<String>,
        #[arg(long = "assist-unit", requires = "lead_unit")]
        assist_units: Vec<String>,
        #[arg(long = "separate-unit")]
        separate_units: Vec<String>,
        #[command(flatten)]
        date: DateArg,
    },
    /// A unit sends the suggestion back (退回).
    SendBack {
        id: String,
        #[arg(long)]
        unit: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        date: DateArg,
    },
    /// Extend the answer deadline (never past 6 months from 交办).
    Extend {
        id: String,
        #[arg(long, value_parser = date)]
        until: NaiveDate,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        date: DateArg,
    },
    /// A unit's answer (答复) with its class A/B/C/D.
    Answer {
        id: String,
        #[arg(long)]
        unit: String,
        #[arg(long, value_parser = answer_class)]
        class: AnswerClass,
        #[arg(long)]
        text: String,
        #[command(flatten)]
        date: DateArg,
    },
    /// The lead delegate's evaluation (满意/基本满意/不满意).
    Evaluate {
        id: String,
        #[arg(long, value_parser = satisfaction)]
        result: Satisfaction,
        #[arg(long, default_value = "")]
        comment: String,
        #[command(flatten)]
        date: DateArg,
    },
    /// Follow up a B or C answer (回头看); --solved when it found the matter solved, so the
    /// suggestion can be closed (销号).
    Track {
        id: String,
        #[arg(long)]
        note: String,
        #[arg(long)]
        solved: bool,
        #[command(flatten)]
        date: DateArg,
    },
    /// Close (销号).
    Close {
        id: String,
        #[command(flatten)]
        date: DateArg,
    },
    /// Mark as 重点督办, or clear it with --off.
    Supervise {
        id: String,
        #[arg(long)]
        off: bool,
        #[command(flatten)]
        date: DateArg,
    },
    List {
        #[command(flatten)]
        list: ListArgs,
        /// Only suggestions whose answer is overdue today (or on --on).
        #[arg(long)]
        overdue: bool,
        #[arg(long, value_parser = date, requires = "overdue")]
        on: Option<NaiveDate>,
    },
    Show(IdArg),
}

#[derive(Args, Debug)]
pub struct SuggestionSubmit {
    #[arg(long)]
    pub title: String,
    #[arg(long)]
    pub body: String,
    #[arg(long)]
    pub category: String,
    /// The lead delegate (领衔代表).
    #[arg(long)]
    pub lead: String,
    /// Co-signing delegates (联名代表).
    #[arg(long = "cosigner")]
    pub cosigners: Vec<String>,
    /// The delegate group it is made in the name of (以代表小组名义); the lead must be a
    /// member.
    #[arg(long)]
    pub group: Option<String>,
    /// The congress it is addressed to; this node's when omitted.
    #[arg(long, value_parser = region)]
    pub to: Option<RegionCode>,
    /// The session it was made at; omit for 闭会期间.
    #[arg(long)]
    pub session: Option<String>,
    #[command(flatten)]
    pub date: DateArg,
}

#[derive(Subcommand, Debug)]
pub enum NoticeCmd {
    Add {
        #[arg(long)]
        title: String,
        #[arg(long)]
        body: String,
        #[arg(long, default_value = "通知")]
        category: String,
        /// The subtree addressed; this node's when omitted.
        #[arg(long, value_parser = region)]
        audience: Option<RegionCode>,
        #[command(flatten)]
        date: DateArg,
    },
    List(ListArgs),
    Show(IdArg),
}

#[derive(Subcommand, Debug)]
pub enum MotionCmd {
    /// Register a motion to this node's congress (提出议案): from delegates jointly (--lead
    /// and --cosigner), a delegation (--delegation, national only) or a body (--proposer).
    Submit(MotionSubmit),
    /// The 主席团's decision: list it on the agenda, refer it to a special committee, or
    /// convert it into a suggestion (转作建议), which creates the linked suggestion.
    Decide {
        id: String,
        /// 列入会议议程.
        #[arg(long, conflicts_with_all = ["refer", "to_suggestion"], required_unless_present_any = ["refer", "to_suggestion"])]
        agenda: bool,
        /// 交有关专门委员会审议: the committee's name.
        #[arg(long, conflicts_with = "to_suggestion")]
        refer: Option<String>,
        /// 转作建议.
        #[arg(long, requires = "category")]
        to_suggestion: bool,
        /// The suggestion's category (城乡建设 …) when converted.
        #[arg(long)]
        category: Option<String>,
        #[command(flatten)]
        date: DateArg,
    },
    List(ListArgs),
    Show(IdArg),
    /// The special committees (专门委员会) this congress has, which motions may be referred to
    /// and which may propose them; `--add` registers one.
    Committees {
        #[arg(long = "add")]
        add: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct MotionSubmit {
    /// 案由.
    #[arg(long)]
    pub title: String,
    /// 案据和方案.
    #[arg(long)]
    pub body: String,
    /// The session, e.g. 十七届三次会议.
    #[arg(long)]
    pub session: String,
    /// The last day the 主席团 set for motions at this session.
    #[arg(long, value_parser = date)]
    pub deadline: NaiveDate,
    /// The lead delegate (领衔代表), for a motion of delegates jointly.
    #[arg(long, conflicts_with_all = ["delegation", "proposer"], required_unless_present_any = ["delegation", "proposer"])]
    pub lead: Option<String>,
    /// The other delegates who signed (联名代表).
    #[arg(long = "cosigner", requires = "lead")]
    pub cosigners: Vec<String>,
    /// A delegation (代表团) of the National People's Congress.
    #[arg(long, conflicts_with = "proposer")]
    pub delegation: Option<String>,
    /// A body entitled to propose: 主席团, 常务委员会, 专门委员会, 人民政府 …
    #[arg(long, value_parser = proposing_body)]
    pub proposer: Option<ProposingBody>,
    /// The special committee's name, when one proposes.
    #[arg(long, requires = "proposer")]
    pub committee: Option<String>,
    #[command(flatten)]
    pub date: DateArg,
}

#[derive(Subcommand, Debug)]
pub enum QuotaCmd {
    /// Set a duty rule of this congress from a date on. A rule of the same requirement in
    /// force that day ends the day before; the same rule set again changes nothing.
    Set {
        /// 代表小组 (group) or 代表 (delegate).
        #[arg(long, value_parser = quota_subject)]
        subject: QuotaSubject,
        /// Only groups of this kind: 专业 (professional) or 区域 (regional); every group when
        /// omitted.
        #[arg(long, value_parser = group_kind)]
        group_kind: Option<GroupKind>,
        /// 活动 (activities) or 建议 (suggestions).
        #[arg(long, value_parser = quota_counts)]
        counts: QuotaCounts,
        /// The activity kinds that count (视察, 执法检查 …), repeated or comma-separated; any
        /// kind when omitted.
        #[arg(long = "activity-kind", value_parser = activity_kind, value_delimiter = ',')]
        activity_kinds: Vec<ActivityKind>,
        /// 每季度 (quarter) or 每年 (year).
        #[arg(long, value_parser = quota_period)]
        per: QuotaPeriod,
        /// At least this many in each period.
        #[arg(long)]
        minimum: u32,
        /// The first day the rule holds (today when omitted).
        #[arg(long, value_parser = date)]
        from: Option<NaiveDate>,
        /// Where the congress wrote it, e.g. 《代表履职管理办法》第八条.
        #[arg(long)]
        basis: Option<String>,
    },
    /// End a rule of this congress: from that day on it no longer holds.
    End {
        id: String,
        /// The first day it no longer holds (today when omitted).
        #[arg(long, value_parser = date)]
        on: Option<NaiveDate>,
    },
    /// The rules held here, this congress's and its ancestors', in force on a day (today when
    /// omitted); `--all` lists ended and future ones too.
    List {
        #[arg(long, value_parser = date)]
        on: Option<NaiveDate>,
        #[arg(long)]
        all: bool,
    },
    /// Where this congress's groups and delegates stand against its rules for a year (this
    /// year when omitted): met, on track, behind or short, with what each rule counted.
    Status {
        #[arg(long, value_parser = clap::value_parser!(i32).range(1949..=9999))]
        year: Option<i32>,
        /// Only those below a minimum (behind or short).
        #[arg(long)]
        short: bool,
        /// Only groups or only delegates.
        #[arg(long, value_parser = quota_subject)]
        subject: Option<QuotaSubject>,
    },
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Run from a configuration file (deploy/config/*.toml): it sets the data directory, the
    /// node's region and name (initialising the node on its first run), the parent, and every
    /// setting below.
    #[arg(long, conflicts_with_all = [
        "listen", "http", "metrics", "query_listen", "https_cert", "https_key", "batch_bytes", "full_record_depth", "link_timeout_secs", "stale_after_hours",
        "group_activities_per_quarter", "group_activities_per_year",
        "delegate_receptions_per_year", "delegate_suggestions_per_year",
    ])]
    pub config: Option<PathBuf>,
    /// The settings, when not read from a file.
    #[command(flatten)]
    pub settings: crate::config::RunSettings,
}

#[derive(Args, Debug)]
pub struct RollupArgs {
    /// Show the rollup of this region (a descendant's, as last synced here) instead of this
    /// node's own, freshly computed one.
    #[arg(long, value_parser = region)]
    pub region: Option<RegionCode>,
    /// Recount this node's own numbers from its records one by one and compare them with the
    /// counters every write keeps; exit 1 and name every number that differs.
    #[arg(long, conflicts_with = "region")]
    pub verify: bool,
    #[command(flatten)]
    pub rules: crate::config::RollupSettings,
}

#[derive(Args, Debug)]
pub struct SyncArgs {
    /// One full round both ways, then exit: 0 when caught up, non-zero when the parent cannot
    /// be reached. This is the only mode for now, for a scheduled or manual sync.
    #[arg(long, required = true)]
    pub once: bool,
    /// Compare subtree digests first and resend whatever differs, whatever the checkpoints say
    /// (after a damaged or hand-copied database).
    #[arg(long)]
    pub repair: bool,
    #[command(flatten)]
    pub link: crate::config::LinkSettings,
    /// The rules this node's rollup, sent up with the round, is computed with.
    #[command(flatten)]
    pub rollup: crate::config::RollupSettings,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where to keep the federation's nodes; a fresh temporary directory when omitted. A
    /// directory a previous demo left is cleared first.
    #[arg(long)]
    pub demo_dir: Option<PathBuf>,
    /// Where the first dashboard (the national node's) is served; the city's, the county's
    /// and 沈丘县's follow on the next ports. Port 0 picks free ports.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: std::net::SocketAddr,
    /// Stop after printing the numbers instead of serving the dashboards.
    #[arg(long)]
    pub no_serve: bool,
}

#[derive(Subcommand, Debug)]
pub enum CaCmd {
    /// Create the federation's CA (ca.pem, ca-key.pem) in a new directory. Keep the key offline.
    Init {
        /// Where the CA's files are written; existing files are never replaced.
        #[arg(long)]
        dir: PathBuf,
        /// The CA's name.
        #[arg(long, default_value = "人大代表履职数据平台 CA")]
        name: String,
        /// Days the CA is valid.
        #[arg(long, default_value_t = 3650, value_parser = clap::value_parser!(u32).range(1..=36500))]
        days: u32,
    },
    /// Create an intermediate CA for a province's (or a city's) subtree, signed by the root or
    /// by the province's CA: it issues node certificates, and a province's also city CAs, for
    /// regions in that subtree only, so every new township needs no one above its province.
    Intermediate {
        /// The signing CA's directory: the root's, or a province's for a city CA.
        #[arg(long)]
        ca: PathBuf,
        /// The region whose subtree the new CA issues for (a province or a city).
        #[arg(long, value_parser = region)]
        region: RegionCode,
        /// The CA's name, e.g. 浙江省人大常委会 证书签发.
        #[arg(long)]
        name: String,
        /// Days it is valid (at most as long as the signing CA's).
        #[arg(long, default_value_t = 1825, value_parser = clap::value_parser!(u32).range(1..=36500))]
        days: u32,
        /// Where its files are written (ca.pem, ca-key.pem, chain.pem, root.pem); existing
        /// files are never replaced.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Give an intermediate CA a new key and certificate for the same subtree, signed by the CA
    /// above it; the old files move to a `retired-<time>` directory beside them. Certificates
    /// the old key issued stay valid until they expire (they carry the old CA in their chain).
    Rotate {
        /// The signing CA's directory: the root's, or the province's for a city CA.
        #[arg(long)]
        ca: PathBuf,
        /// The intermediate CA's directory.
        #[arg(long)]
        dir: PathBuf,
        /// Days the new certificate is valid.
        #[arg(long, default_value_t = 1825, value_parser = clap::value_parser!(u32).range(1..=36500))]
        days: u32,
    },
    /// Issue a node's certificate: its single URI SAN names the region.
    Issue {
        /// The CA's directory (from `renda ca init` or `renda ca intermediate`): an
        /// intermediate CA issues only for regions in its subtree.
        #[arg(long)]
        ca: PathBuf,
        /// The node's region code.
        #[arg(long, value_parser = region, required_unless_present = "server")]
        region: Option<RegionCode>,
        /// Issue a certificate for a node's HTTPS dashboard and metrics instead: serverAuth only,
        /// no region, so it can never link as a node. Name the addresses browsers use with
        /// --dns and --ip; writes https.pem and https-key.pem.
        #[arg(long, conflicts_with = "region")]
        server: bool,
        /// A DNS name of the HTTPS server (repeatable).
        #[arg(long, requires = "server")]
        dns: Vec<String>,
        /// An IP address of the HTTPS server (repeatable).
        #[arg(long, requires = "server")]
        ip: Vec<std::net::IpAddr>,
        /// The node's name, for the certificate's subject.
        #[arg(long, default_value = "")]
        name: String,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
        days: u32,
        /// Where node.pem (the certificate and the CAs above it but the root), node-key.pem and
        /// ca.pem (the federation's root) are written.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Sync throughput, incremental and no-op cost, four-hop latency, county memory.
    Sync(BenchArgs),
    /// Query latency at a city holding its subtree's records: rollups and filtered lists.
    Query(QueryBenchArgs),
    /// A live federation under a sustained write load: write latency at the townships, how soon
    /// writes show at the city, and the city's pages and queries meanwhile.
    Load(LoadBenchArgs),
}

#[derive(Args, Debug)]
pub struct LoadBenchArgs {
    /// A directory `renda bench query --keep` left: its city, counties and townships are run
    /// as they are (and grow by the writes made).
    #[arg(long)]
    pub dir: PathBuf,
    /// The renda binary to run the nodes and make the writes with (an older release, to
    /// compare); this one when omitted.
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Townships the writes are spread over, alternating between the counties.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub townships: u32,
    /// Writes per second, over all the townships.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rate: u32,
    /// How long the load lasts, in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub seconds: u64,
    /// Seconds the running federation settles before the load starts.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub warmup: u64,
}

#[derive(Args, Debug)]
pub struct QueryBenchArgs {
    /// Records the city ends up holding, made at its townships and synced up through two
    /// counties.
    #[arg(long, default_value_t = 500_000)]
    pub records: usize,
    /// Townships the records are spread over (half under each county).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(2..=100))]
    pub townships: u32,
    /// Timed calls of each query.
    #[arg(long, default_value_t = 500)]
    pub samples: usize,
    /// Keep the nodes' data in this (empty) directory instead of a temporary one.
    #[arg(long)]
    pub keep: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Records at the township.
    #[arg(long, default_value_t = 10_000)]
    pub records: usize,
    /// Writes timed from the township to the national node.
    #[arg(long, default_value_t = 100)]
    pub latency_samples: usize,
    /// Also measure a county's peak RSS with this many townships of --records each.
    #[arg(long)]
    pub townships: Option<usize>,
}

#[derive(Subcommand, Debug)]
pub enum DebugCmd {
    /// Write opinions one transaction at a time, printing each id once it is committed.
    WriteLoop {
        #[arg(long, default_value_t = 1000)]
        count: u32,
    },
}
