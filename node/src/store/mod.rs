//! The SQLite store: the only code that touches SQLite.
//!
//! A node's data directory holds one database, `renda.sqlite`, in WAL mode with
//! `synchronous = FULL`: a write that returned success is on disk and survives kill -9 and power
//! loss. Every write goes through [`Store::write`], one `BEGIN IMMEDIATE` transaction in which the
//! saved document, its new changes in the change sequence, and its projection rows are written
//! together, or nothing is. A link's bookkeeping alone, positions that only move forward, goes
//! through [`Store::write_unflushed`]: it survives kill -9, and a power loss may take it.
//!
//! Architecture invariant: the store knows how to keep documents, not what they mean. It asks the
//! record model for headers and projections and never interprets fields itself.

mod access;
pub mod check;
mod checkpoint;
mod handle;
mod newer;
mod rollup;
mod schema;
mod sync;

/// The statements that read or remove one record's change rows, in one place so that
/// `schema::tests` checks the plans of the statements the store runs. Each finds the rows by the
/// unique index on `(record_id, hash)`, whose entries carry the rows' positions (schema 25).
mod record_changes {
    /// The changes after a position (a save's), in order.
    pub(super) const AFTER: &str =
        "SELECT seq, bytes FROM changes WHERE record_id = ?1 AND seq > ?2 ORDER BY seq";
    /// Every change, in order.
    pub(super) const ALL: &str = "SELECT bytes FROM changes WHERE record_id = ?1 ORDER BY seq";
    /// Every change with the peer it came from, in order.
    pub(super) const ALL_WITH_ORIGIN: &str =
        "SELECT bytes, origin FROM changes WHERE record_id = ?1 ORDER BY seq";
    /// Every change's position and hash, kept as retired before the rows go.
    pub(super) const RETIRE: &str = "INSERT OR IGNORE INTO retired_changes (seq, hash)
         SELECT seq, hash FROM changes WHERE record_id = ?1";
    pub(super) const DELETE: &str = "DELETE FROM changes WHERE record_id = ?1";
    #[cfg(test)]
    pub(super) const EVERY: [&str; 5] = [AFTER, ALL, ALL_WITH_ORIGIN, RETIRE, DELETE];
}

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use automerge::{ActorId, Change};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use crate::record::mandate::Mandate;
use crate::record::projection::project;
use crate::record::rollup::QuotaRules;
use crate::record::{
    Author, Body, DocError, Header, RawChange, Record, RecordDoc, RecordId, RecordKind, Rejection,
};
use crate::region::RegionCode;
use crate::validate::ValidationError;

pub use access::check_form_key;
pub use handle::StoreHandle;
pub use rollup::DutyRecord;
pub use sync::{
    ApplyOutcome, AuditEntry, Checkpoint, IncomingRecord, MergeContext, OutgoingBatch,
    OutgoingRecord, PeerStatus, PreparedRecord, Refused, StoredState, Waiting,
};

pub const DB_FILE: &str = "renda.sqlite";

/// How many changes may follow a record's last full save before the next write compacts it.
/// Small enough that loading stays quick, large enough that most writes skip the save.
const MAX_DOC_TAIL: i64 = 32;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("记录 {record}: {rejection}")]
    Rejected {
        record: RecordId,
        rejection: Rejection,
    },
    #[error("找不到{kind}记录“{id}”")]
    NotFound { kind: &'static str, id: String },
    #[error("编号前缀“{prefix}”对应多条{kind}记录，请输入更长的编号")]
    Ambiguous { kind: &'static str, prefix: String },
    #[error("数据目录 {0} 还没有初始化节点，请先运行 renda init")]
    NotInitialised(PathBuf),
    #[error("数据目录 {0} 已经初始化过节点")]
    AlreadyInitialised(PathBuf),
    #[error("记录 {id} 的文档无法读取: {source}")]
    Corrupt { id: String, source: DocError },
    /// A record of a kind a newer release added, which this node keeps and passes on but
    /// cannot read (`store::newer`).
    #[error(
        "记录 {id} 的类型“{kind}”由更新版本的 renda 写入，本节点原样保存并转发，升级后才能查看"
    )]
    NewerKind { id: String, kind: String },
    #[error("数据库结构版本 {found} 比本程序（renda {}）支持的版本 {supported} 新，文件未作任何改动；请升级 renda", env!("CARGO_PKG_VERSION"))]
    SchemaTooNew { found: usize, supported: usize },
    #[error("数据库错误: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("存储任务已经停止")]
    Closed,
    #[error(transparent)]
    Damaged(#[from] check::Damage),
    #[error("文件错误: {0}")]
    Io(String),
}

/// Who this node is. Written once by `renda init`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeIdentity {
    pub region: RegionCode,
    pub name: String,
    /// The parent's sync address; `None` at the top of the tree or until the node is attached.
    pub parent_addr: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A row of a record list, read from the projection columns without loading documents.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ListRow {
    pub id: RecordId,
    pub kind: RecordKind,
    pub home: RegionCode,
    pub label: String,
    pub status: Option<String>,
    pub occurred_on: Option<NaiveDate>,
    pub due_on: Option<NaiveDate>,
    pub created_at: DateTime<Utc>,
    pub summary: serde_json::Value,
}

/// Filters for [`Store::list`]. Empty fields do not filter.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub kind: Option<RecordKind>,
    pub status: Option<String>,
    /// Records homed in this region's subtree.
    pub within: Option<RegionCode>,
    /// Records that involve this delegate in any role.
    pub delegate: Option<RecordId>,
    /// Only records whose awaited answer is overdue on this date.
    pub overdue_on: Option<NaiveDate>,
    /// Only records that happened (were held, collected, made) in this year or month.
    pub period: Option<crate::record::rollup::Period>,
    /// Only activities of this kind (`reception`, `inspection` …).
    pub activity_kind: Option<String>,
    /// Only suggestions whose current answer is of this class (`A`–`D`).
    pub answer_class: Option<String>,
    /// Only records in one of these states (besides `status`): a to-do list's "to pass on or
    /// finish".
    pub status_any: Vec<String>,
    /// Only suggestions addressed to this congress, and opinions passed on to it.
    pub addressed_to: Option<RegionCode>,
    /// Only records homed at exactly this node (a suggestion's lead delegate's home, which
    /// evaluates the answer), where `within` takes the whole subtree.
    pub home: Option<RegionCode>,
    /// Only records whose awaited answer is due on these days or between them, not yet overdue.
    pub due_between: Option<(NaiveDate, NaiveDate)>,
    /// Only activities held on this day or before with nobody signed in.
    pub unattended_by: Option<NaiveDate>,
    /// The order of the list: by id (creation order), or by a day with the id breaking ties.
    pub order: ListOrder,
    /// With a day's order, the day of the record [`ListQuery::after`] names: where the previous
    /// page ended in that order.
    pub after_day: Option<NaiveDate>,
    /// Only records after this id: where the previous page ended. Unlike an offset, it costs the
    /// same on the hundredth page as on the first.
    pub after: Option<RecordId>,
    pub limit: Option<u32>,
    pub offset: u32,
}

/// What changed after a position of the change sequence ([`Store::changed_after`]): each
/// record with the position of its latest change, where to go on from, and whether more wait.
pub type Changed = (Vec<(i64, ListRow)>, i64, bool);

/// The orders a list offers, each backed by an index whose entries end with the id, so that a
/// page stops after its rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ListOrder {
    /// By id: creation order (ids are ULIDs).
    #[default]
    Id,
    /// By the day the record happened (`occurred_on`), for one kind (`records_kind_occurred`);
    /// records without such a day are not listed.
    Occurred,
    /// By the day an answer is due (`records_due`); records awaiting none are not listed.
    Due,
}

/// A person who may be the same as another ([`Store::likely_duplicates`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LikelyDuplicate {
    pub id: RecordId,
    pub home: RegionCode,
    pub name: String,
    /// Why, in Chinese, for the clerk.
    pub reason: String,
}

/// Counts for `renda status`.
#[derive(Clone, Debug, Serialize)]
pub struct StoreStats {
    pub records_by_kind: Vec<(RecordKind, u64)>,
    /// Workflow records holding a step of a newer release, whose state this version cannot
    /// tell (`record::event::UNKNOWN_STATE`): they wait for this node's upgrade.
    pub unknown_state: u64,
    /// Records of kinds a newer release added, kept as they came and passed on by their
    /// routes, by kind name ([`Store::newer_kinds`]).
    pub newer_kinds: Vec<(String, u64)>,
    pub changes: u64,
    pub last_seq: i64,
    pub file_bytes: u64,
    /// The last backup the node took ([`Store::record_backup`]), if any.
    pub last_backup: Option<Upkeep>,
    /// The last check of the database file and what it found ([`Store::record_check`]).
    pub last_check: Option<Upkeep>,
}

/// When an upkeep task last ran and what it left: a backup's file, a check's result (`ok`, or
/// what was wrong).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Upkeep {
    pub at: DateTime<Utc>,
    pub detail: String,
}

impl StoreStats {
    /// Records of every kind.
    pub fn records_total(&self) -> u64 {
        self.records_by_kind.iter().map(|(_, n)| n).sum()
    }
}

/// The `WHERE` clause of a [`ListQuery`] over `records r`, with its arguments.
///
/// Lists come a page at a time in id order, so the clause leads SQLite to walk an index that is
/// already in id order and stop after the page: the kind (or kind and status) index, whose
/// entries end with the id. The other filters are written with a unary `+`, which keeps the
/// planner from sorting the whole of a broad range (a county's subtree, a month) for one page.
/// Sparse filters (a delegate, overdue answers) keep their own indexes: few rows to sort.
/// A count (`paged` false) has no order to keep, and lets the planner range over any index.
fn list_rows(conn: &Connection, q: &ListQuery) -> Result<Vec<ListRow>, StoreError> {
    let (filter, args) = list_filter(q, true);
    // A kind's records within a subtree, with no filter that has an index of its own, are
    // found by walking the kind's ids in order with their home beside each (schema 15),
    // reading no record until the page's ids are known; SQLite left to choose sorts every
    // record of the subtree for the first page, and walking the ids alone reads each
    // skipped record's row.
    let subtree_only = q.order == ListOrder::Id
        && q.kind.is_some()
        && q.within.is_some_and(|w| !w.subtree_prefix().is_empty())
        && q.status.is_none()
        && q.delegate.is_none()
        && q.overdue_on.is_none()
        && q.period.is_none()
        && q.activity_kind.is_none()
        && q.answer_class.is_none()
        && q.status_any.is_empty()
        && q.addressed_to.is_none()
        && q.home.is_none()
        && q.due_between.is_none()
        && q.unattended_by.is_none();
    let order = match q.order {
        ListOrder::Id => "r.id",
        ListOrder::Occurred => "r.occurred_on, r.id",
        ListOrder::Due => "r.due_on, r.id",
    };
    let page = match q.limit {
        Some(limit) => format!(" ORDER BY {order} LIMIT {limit} OFFSET {}", q.offset),
        None => format!(" ORDER BY {order}"),
    };
    let sql = if subtree_only {
        format!(
            "SELECT {COLUMNS} FROM records r WHERE r.id IN
               (SELECT r.id FROM records r INDEXED BY records_kind_list{filter}{page})
             ORDER BY r.id"
        )
    } else {
        format!("SELECT {COLUMNS} FROM records r{filter}{page}")
    };
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(
        rusqlite::params_from_iter(args.iter().map(|a| a.as_ref())),
        ListColumns::read,
    )?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row?.into_row()?);
    }
    Ok(out)
}

/// The columns of a list row (`r.id, r.kind, r.home, r.label, r.status, r.occurred_on,
/// r.due_on, r.created_at, r.summary`, in that order) as SQLite gave them.
struct ListColumns {
    id: String,
    kind: String,
    home: String,
    label: String,
    status: Option<String>,
    occurred_on: Option<String>,
    due_on: Option<String>,
    created_at: String,
    summary: String,
}

impl ListColumns {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<ListColumns> {
        Ok(ListColumns {
            id: r.get(0)?,
            kind: r.get(1)?,
            home: r.get(2)?,
            label: r.get(3)?,
            status: r.get(4)?,
            occurred_on: r.get(5)?,
            due_on: r.get(6)?,
            created_at: r.get(7)?,
            summary: r.get(8)?,
        })
    }

    fn into_row(self) -> Result<ListRow, StoreError> {
        let id = self.id;
        let bad = |what: &str| StoreError::Corrupt {
            id: id.clone(),
            source: DocError::Header(format!("projection column {what} is malformed")),
        };
        Ok(ListRow {
            id: RecordId::parse("id", &id).map_err(|_| bad("id"))?,
            kind: RecordKind::parse(&self.kind).ok_or_else(|| bad("kind"))?,
            home: RegionCode::parse("home", &self.home).map_err(|_| bad("home"))?,
            label: self.label,
            status: self.status,
            occurred_on: self
                .occurred_on
                .map(|d| d.parse())
                .transpose()
                .map_err(|_| bad("occurred_on"))?,
            due_on: self
                .due_on
                .map(|d| d.parse())
                .transpose()
                .map_err(|_| bad("due_on"))?,
            created_at: DateTime::parse_from_rfc3339(&self.created_at)
                .map_err(|_| bad("created_at"))?
                .with_timezone(&Utc),
            summary: serde_json::from_str(&self.summary).map_err(|_| bad("summary"))?,
        })
    }
}

/// The id of the personal-data record kept for `subject`, if any.
fn personal_id(conn: &Connection, subject: &RecordId) -> Result<Option<RecordId>, StoreError> {
    let id: Option<String> = conn
        .query_row(
            "SELECT id FROM records WHERE subject = ?1 AND kind = 'personal' ORDER BY id LIMIT 1",
            [subject.to_string()],
            |r| r.get(0),
        )
        .optional()?;
    id.map(|id| {
        RecordId::parse("id", &id).map_err(|e| StoreError::Corrupt {
            id: id.clone(),
            source: DocError::Header(e.to_string()),
        })
    })
    .transpose()
}

fn version_of(conn: &Connection, id: &RecordId) -> Result<i64, StoreError> {
    conn.prepare_cached("SELECT last_seq FROM records WHERE id = ?1")?
        .query_row([id.to_string()], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound {
            kind: "record",
            id: id.to_string(),
        })
}

/// The columns [`ListColumns`] reads, in its order.
const COLUMNS: &str =
    "r.id, r.kind, r.home, r.label, r.status, r.occurred_on, r.due_on, r.created_at, r.summary";

fn list_filter(q: &ListQuery, paged: bool) -> (String, Vec<Box<dyn rusqlite::ToSql>>) {
    let plus = if paged { "+" } else { "" };
    let mut sql = String::from(" WHERE 1=1");
    let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
    if let Some(kind) = q.kind {
        sql.push_str(" AND r.kind = ?");
        args.push(Box::new(kind.as_str()));
    } else {
        // Personal data is never listed with the rest, nor the nodes' rollups (numbers, not
        // records anyone works on), nor the records of kinds this release cannot read
        // (`store::newer`).
        sql.push_str(" AND r.kind NOT IN ('personal', 'rollup') AND r.newer_kind = 0");
    }
    if let Some(status) = &q.status {
        sql.push_str(" AND r.status = ?");
        args.push(Box::new(status.clone()));
    }
    if let Some(within) = &q.within {
        // A subtree is a code prefix once trailing zero segments are dropped; codes are digits,
        // so every code with the prefix sorts between it and the prefix followed by a letter.
        let prefix = within.subtree_prefix();
        if !prefix.is_empty() {
            sql.push_str(&format!(" AND {plus}r.home >= ? AND {plus}r.home < ?"));
            args.push(Box::new(prefix.to_string()));
            args.push(Box::new(format!("{prefix}a")));
        }
    }
    if let Some(delegate) = &q.delegate {
        sql.push_str(" AND r.id IN (SELECT record_id FROM record_people WHERE delegate_id = ?)");
        args.push(Box::new(delegate.to_string()));
    }
    if let Some(day) = &q.overdue_on {
        sql.push_str(
            " AND r.due_on IS NOT NULL AND r.due_on < ? AND r.status IN ('assigned', 'rehandling')",
        );
        args.push(Box::new(day.to_string()));
    }
    if let Some(period) = &q.period {
        let (from, until) = period.date_range();
        sql.push_str(&format!(
            " AND {plus}r.occurred_on >= ? AND {plus}r.occurred_on < ?"
        ));
        args.push(Box::new(from));
        args.push(Box::new(until));
    }
    if let Some(kind) = &q.activity_kind {
        sql.push_str(" AND +r.kind = 'activity' AND r.tag = ?");
        args.push(Box::new(kind.clone()));
    }
    if let Some(class) = &q.answer_class {
        sql.push_str(" AND +r.kind = 'suggestion' AND r.tag = ?");
        args.push(Box::new(class.clone()));
    }
    if !q.status_any.is_empty() {
        let marks = vec!["?"; q.status_any.len()].join(", ");
        sql.push_str(&format!(" AND r.status IN ({marks})"));
        for status in &q.status_any {
            args.push(Box::new(status.clone()));
        }
    }
    if let Some(congress) = &q.addressed_to {
        sql.push_str(" AND r.addressed_to = ?");
        args.push(Box::new(congress.to_string()));
    }
    if let Some(home) = &q.home {
        sql.push_str(" AND r.home = ?");
        args.push(Box::new(home.to_string()));
    }
    if let Some((from, until)) = &q.due_between {
        sql.push_str(
            " AND r.due_on IS NOT NULL AND r.due_on >= ? AND r.due_on <= ? AND r.status IN ('assigned', 'rehandling')",
        );
        args.push(Box::new(from.to_string()));
        args.push(Box::new(until.to_string()));
    }
    if let Some(day) = &q.unattended_by {
        // An activity's people are the delegates who signed in (`Projection::people`).
        sql.push_str(
            " AND +r.kind = 'activity' AND r.occurred_on <= ?
              AND NOT EXISTS (SELECT 1 FROM record_people p WHERE p.record_id = r.id)",
        );
        args.push(Box::new(day.to_string()));
    }
    let day = match q.order {
        ListOrder::Id => None,
        ListOrder::Occurred => Some("r.occurred_on"),
        ListOrder::Due => Some("r.due_on"),
    };
    if let Some(column) = day {
        sql.push_str(&format!(" AND {column} IS NOT NULL"));
    }
    match (&q.after, day, q.after_day) {
        (None, _, _) => {}
        (Some(after), Some(column), Some(on)) => {
            sql.push_str(&format!(
                " AND ({column} > ? OR ({column} = ? AND r.id > ?))"
            ));
            args.push(Box::new(on.to_string()));
            args.push(Box::new(on.to_string()));
            args.push(Box::new(after.to_string()));
        }
        (Some(after), _, _) => {
            sql.push_str(" AND r.id > ?");
            args.push(Box::new(after.to_string()));
        }
    }
    (sql, args)
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    node: NodeIdentity,
    /// The automerge actor of every change written here: stable per node, so a document
    /// edited many times does not accumulate one actor per edit.
    actor: ActorId,
    /// Set once SQLite reported the file damaged: from then on every call is refused, so a
    /// node never serves or syncs from a database it knows to be damaged.
    damaged: Option<check::Damage>,
    /// The connection was left at `synchronous = NORMAL` by [`Store::write_unflushed`]; the next
    /// [`Store::write`] sets `FULL` again before it begins, or does not begin.
    unflushed: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("node", &self.node)
            .finish()
    }
}

/// Keeps each prepared statement's plan across its uses (SQLite's query planner stability
/// guarantee). Without it, SQLite 3.54 marks a statement with `column = ?` to be planned again
/// should a small integer be bound there, and rusqlite's statement cache clears a statement's
/// bindings whenever it is put back, which SQLite takes for a new binding: every cached
/// statement was parsed and planned again at every use, a quarter of the store thread's time
/// storing a peer's batch. The plans lost are those that depend on a bound value: the LIKE
/// optimisation (`resolve`'s `id LIKE ?` cannot use it anyway: the column is not NOCASE) and
/// statistics from ANALYZE, which no node runs.
fn keep_plans(conn: &Connection) -> Result<(), StoreError> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    keep_plans(&conn)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Copy the write-ahead log into the database every 10,000 pages (40 MiB) rather than
    // SQLite's default 1,000. A batch from a peer touches the same index pages again and again;
    // checkpointing less often writes each of them to the database file once instead of many
    // times, which halved the cost of committing a first sync's batches. This is the mark for a
    // connection on its own (the command line's); a store run by a handle copies on its own
    // thread instead (`store/checkpoint.rs`, whose hook replaces this one), and its log may grow
    // to 20,000 pages before a copy is forced.
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
    // The log file keeps the size it grew to; when it starts over, it is cut back to that
    // mark (`store/checkpoint.rs` copies and starts it over).
    conn.pragma_update(None, "journal_size_limit", 10_000 * 4096)?;
    // An 8 MiB page cache instead of 2 MiB: more of a batch's index pages stay in memory until
    // commit, and a county's memory stays small.
    conn.pragma_update(None, "cache_size", -8_192)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // The store caches about twenty statements (`prepare_cached`), more than rusqlite's default
    // of sixteen; a sync round cycling through them would prepare some again every time.
    conn.set_prepared_statement_cache_capacity(64);
    schema::migrate(&mut conn)?;
    Ok(conn)
}

impl Store {
    /// Creates the data directory's database and records the node's identity.
    pub fn init(
        dir: &Path,
        region: RegionCode,
        name: &str,
        parent_addr: Option<String>,
    ) -> Result<Store, StoreError> {
        Store::init_with_quotas(dir, region, name, parent_addr, QuotaRules::default())
    }

    /// [`Store::init`], the congress's first duty rules seeded from `quotas`
    /// ([`WriteTx::seed_quota_rules`]).
    pub fn init_with_quotas(
        dir: &Path,
        region: RegionCode,
        name: &str,
        parent_addr: Option<String>,
        quotas: QuotaRules,
    ) -> Result<Store, StoreError> {
        if !region.has_congress() {
            return Err(ValidationError::new(
                "region",
                format!("{region} 没有人民代表大会（街道由所在区、村由所在乡镇代行），不能作为节点的区划"),
            )
            .into());
        }
        crate::validate::required_text("name", name)?;
        if let Some(parent) = &parent_addr {
            crate::validate::host_port("parent", parent)?;
        }
        let path = dir.join(DB_FILE);
        // Any file there, even an empty or damaged one, may be all that is left of a node's
        // data: never write over it.
        if path.exists() {
            check::check_file(&path)?;
            return Err(StoreError::AlreadyInitialised(dir.to_path_buf()));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Io(format!("{}: {e}", dir.display())))?;
        let mut conn = connect(&path)?;
        // The actor names the region, so every peer can tell who wrote each change.
        let actor = crate::record::authority::node_actor(&region);
        let created_at = Utc::now();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO node (singleton, region, name, parent_addr, actor, created_at) VALUES (1, ?1, ?2, ?3, ?4, ?5)",
            params![region.as_str(), name.trim(), parent_addr, actor.to_bytes(), created_at.to_rfc3339()],
        )?;
        tx.commit()?;
        // Into the database file itself, not only the write-ahead log: a file that lost its log
        // still says which node it is, so it is never taken for an empty directory.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        drop(conn);
        let mut store = Store::open(dir)?;
        // Seeded once, whatever `quotas` say: a rebuilt node seeds nothing, and never will.
        store.write(|tx| tx.seed_quota_rules(quotas))?;
        Ok(store)
    }

    /// Opens an initialised data directory. A file that is there but empty, damaged,
    /// truncated or without the node's identity is reported as damaged, with how to recover,
    /// never as a directory with no node in it.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join(DB_FILE);
        if !path.exists() {
            return Err(StoreError::NotInitialised(dir.to_path_buf()));
        }
        check::check_file(&path)?;
        let damaged = |e: rusqlite::Error| -> StoreError {
            if check::is_corruption(&e) {
                check::mark_damaged(&path, &e.to_string());
                StoreError::Damaged(check::Damage {
                    path: path.clone(),
                    detail: e.to_string(),
                })
            } else {
                e.into()
            }
        };
        // A file with no node table is not a Renda database that lost its identity through
        // migration: refuse it before migrating writes anything into it.
        {
            let read = |flags| -> Result<(bool, Connection), rusqlite::Error> {
                let probe = rusqlite::Connection::open_with_flags(&path, flags)?;
                probe.busy_timeout(std::time::Duration::from_secs(10))?;
                let has_node = probe.query_row(
                    "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'node'",
                    [],
                    |r| r.get(0),
                )?;
                Ok((has_node, probe))
            };
            // A process killed while it wrote in rollback-journal mode (a file from before WAL,
            // being switched to it) leaves a journal that only a writer may roll back: the
            // probe then opens for writing, which rolls it back and writes nothing else. Only
            // then: a writer's connection on a file in WAL mode may checkpoint it on closing,
            // which would rewrite a newer release's file before it is refused.
            let (has_node, probe) = match read(rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.extended_code == rusqlite::ffi::SQLITE_READONLY_ROLLBACK =>
                {
                    read(rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
                }
                other => other,
            }
            .map_err(damaged)?;
            if !has_node {
                return Err(StoreError::Damaged(check::Damage {
                    path: path.clone(),
                    detail: "文件中没有节点信息（可能丢失了预写日志 renda.sqlite-wal）".into(),
                }));
            }
            // A file a newer release migrated is refused here, read-only, before opening it
            // for writing sets a single pragma: an older binary never modifies it.
            schema::version_of(&probe)?;
        }
        let conn = match connect(&path) {
            Ok(conn) => conn,
            Err(StoreError::Sqlite(e)) => return Err(damaged(e)),
            Err(e) => return Err(e),
        };
        let row = conn
            .query_row(
                "SELECT region, name, parent_addr, actor, created_at FROM node WHERE singleton = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                },
            )
            .optional()?;
        let Some((region, name, parent_addr, actor, created_at)) = row else {
            return Err(StoreError::Damaged(check::Damage {
                path,
                detail: "文件中没有节点信息（可能丢失了预写日志 renda.sqlite-wal）".into(),
            }));
        };
        let corrupt = |what: &str| StoreError::Corrupt {
            id: "node".into(),
            source: DocError::Header(what.to_string()),
        };
        let node = NodeIdentity {
            region: RegionCode::parse("node.region", &region)
                .map_err(|e| corrupt(&e.to_string()))?,
            name,
            parent_addr,
            created_at: DateTime::parse_from_rfc3339(&created_at)
                .map_err(|e| corrupt(&e.to_string()))?
                .with_timezone(&Utc),
        };
        rollup::ensure_counters(&conn, &node.region)?;
        let mut store = Store {
            conn,
            path,
            node,
            actor: ActorId::from(actor),
            damaged: None,
            unflushed: false,
        };
        store.adopt_newer_kinds()?;
        Ok(store)
    }

    /// A read-only connection to the same file, for reading beside the writer: in WAL mode a
    /// reader sees the last committed state and neither waits for a write in progress nor holds
    /// one up. The writer's [`Store::open`] must have run first (it migrates the schema).
    pub fn open_reader(&self) -> Result<Store, StoreError> {
        let conn = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        keep_plans(&conn)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "cache_size", -8_192)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Store {
            conn,
            path: self.path.clone(),
            node: self.node.clone(),
            actor: self.actor.clone(),
            damaged: None,
            unflushed: false,
        })
    }

    /// Runs `f` in one read transaction, so that everything it reads is one snapshot (a page's
    /// numbers and its list agree even while writes commit meanwhile).
    pub fn snapshot<T>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let out = f(self);
        // A read transaction has nothing to keep; ending it lets checkpoints move past it.
        tx.rollback()?;
        out
    }

    pub fn identity(&self) -> &NodeIdentity {
        &self.node
    }

    /// Runs `f` unless the file is known to be damaged, and notes damage SQLite reports while
    /// it runs: the marker is left beside the file and every later call is refused.
    pub(crate) fn guarded<T>(
        &mut self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(damage) = &self.damaged {
            return Err(StoreError::Damaged(damage.clone()));
        }
        match f(self) {
            Err(StoreError::Sqlite(e)) if check::is_corruption(&e) => {
                check::mark_damaged(&self.path, &e.to_string());
                let damage = check::Damage {
                    path: self.path.clone(),
                    detail: e.to_string(),
                };
                tracing::error!(path = %self.path.display(), error = %e, "the database is damaged; refusing every further read and write");
                self.damaged = Some(damage.clone());
                Err(StoreError::Damaged(damage))
            }
            other => other,
        }
    }

    /// Attaches the node to a parent, or moves it to another address.
    pub fn set_parent_addr(&mut self, addr: &str) -> Result<(), StoreError> {
        self.flushing()?;
        crate::validate::host_port("parent", addr)?;
        if self.node.region.parent().is_none() {
            return Err(ValidationError::new("parent", "全国人大节点没有上级节点").into());
        }
        self.conn.execute(
            "UPDATE node SET parent_addr = ?1 WHERE singleton = 1",
            [addr.trim()],
        )?;
        self.node.parent_addr = Some(addr.trim().to_string());
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one write transaction. If `f` fails, nothing it wrote is kept. The commit is
    /// flushed to disk before this returns.
    pub fn write<T>(
        &mut self,
        f: impl FnOnce(&mut WriteTx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.flushing()?;
        self.write_as_set(f)
    }

    /// Sets the connection back to flushing every commit, should a bookkeeping write have
    /// failed to; every write but bookkeeping runs after it.
    fn flushing(&mut self) -> Result<(), StoreError> {
        if self.unflushed {
            self.conn.pragma_update(None, "synchronous", "FULL")?;
            self.unflushed = false;
        }
        Ok(())
    }

    /// Like [`Store::write`], for bookkeeping whose loss costs only a resend: a position a
    /// peer acknowledged or caught up to, a round's success, held-back records forgotten once
    /// sent. The commit goes to the write-ahead log without a flush (`synchronous = NORMAL`):
    /// it survives the process being killed, and a power loss can take only the commits
    /// after the last flushed one, since the log is flushed in order. Each of these writes
    /// moves a position forward, so losing one leaves an older position, and the peer then
    /// sends again what this node already holds, which changes nothing. Nothing a peer is
    /// told was stored may be written here. A round's end waited for these flushes: in
    /// `renda bench sync` they were about a quarter of a round with nothing to send.
    pub fn write_unflushed<T>(
        &mut self,
        f: impl FnOnce(&mut WriteTx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if !self.unflushed {
            self.conn.pragma_update(None, "synchronous", "NORMAL")?;
            self.unflushed = true;
        }
        let out = self.write_as_set(f);
        // Set back now, so no other write waits for it; should it fail, `write` tries again.
        if self.conn.pragma_update(None, "synchronous", "FULL").is_ok() {
            self.unflushed = false;
        }
        out
    }

    fn write_as_set<T>(
        &mut self,
        f: impl FnOnce(&mut WriteTx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut wtx = WriteTx {
            tx,
            actor: &self.actor,
            node: &self.node,
            counter_moves: None,
        };
        let out = f(&mut wtx)?;
        wtx.tx.commit()?;
        Ok(out)
    }

    pub fn load_doc(&self, id: &RecordId) -> Result<RecordDoc, StoreError> {
        load_doc(&self.conn, &self.actor, id)
    }

    pub fn get(&self, id: &RecordId) -> Result<Record, StoreError> {
        let doc = self.load_doc(id)?;
        Record::from_doc(&doc).map_err(|source| unreadable(&self.conn, id, source))
    }

    /// Finds a record of `kind` by its full id or a unique prefix of it.
    pub fn resolve(
        &self,
        kind: RecordKind,
        field: &str,
        text: &str,
    ) -> Result<RecordId, StoreError> {
        resolve(&self.conn, kind, field, text)
    }

    /// Where in this node's change sequence the record last changed, by a write here or a
    /// peer's change merged: the version a workbench form was rendered from, so a step on a
    /// record that moved since is shown the record as it is instead of applying.
    pub fn version_of(&self, id: &RecordId) -> Result<i64, StoreError> {
        version_of(&self.conn, id)
    }

    /// How many records a list would hold without its limit: what the dashboard shows beside a
    /// page of them.
    pub fn count(&self, q: &ListQuery) -> Result<u64, StoreError> {
        let (filter, args) = list_filter(q, false);
        let sql = format!("SELECT count(*) FROM records r{filter}");
        let n: i64 = self.conn.prepare(&sql)?.query_row(
            rusqlite::params_from_iter(args.iter().map(|a| a.as_ref())),
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    /// How many records a list would hold without its limit, counting no further than `cap`:
    /// `(cap, true)` says "more than `cap`". A page shows it beside its rows, and counting every
    /// match of a large subtree would cost more than the page.
    pub fn count_capped(&self, q: &ListQuery, cap: u64) -> Result<(u64, bool), StoreError> {
        let (filter, mut args) = list_filter(q, false);
        let sql = format!("SELECT count(*) FROM (SELECT 1 FROM records r{filter} LIMIT ?)");
        args.push(Box::new(
            i64::try_from(cap.saturating_add(1)).unwrap_or(i64::MAX),
        ));
        let n: i64 = self.conn.prepare(&sql)?.query_row(
            rusqlite::params_from_iter(args.iter().map(|a| a.as_ref())),
            |r| r.get(0),
        )?;
        let n = n.max(0) as u64;
        Ok(if n > cap { (cap, true) } else { (n, false) })
    }

    pub fn list(&self, q: &ListQuery) -> Result<Vec<ListRow>, StoreError> {
        list_rows(&self.conn, q)
    }

    /// How many records a list would hold, by kind and status (`None` for a kind without
    /// states), ignoring its page.
    pub fn count_by_status(
        &self,
        q: &ListQuery,
    ) -> Result<Vec<(RecordKind, Option<String>, u64)>, StoreError> {
        let (filter, args) = list_filter(q, false);
        let sql = format!(
            "SELECT r.kind, r.status, count(*) FROM records r{filter} GROUP BY r.kind, r.status ORDER BY r.kind, r.status"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(
            rusqlite::params_from_iter(args.iter().map(|a| a.as_ref())),
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            },
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (kind, status, n) = row?;
            let kind = RecordKind::parse(&kind).ok_or_else(|| StoreError::Corrupt {
                id: format!("a {kind} record"),
                source: DocError::Header("projection column kind is malformed".into()),
            })?;
            out.push((kind, status, n.max(0) as u64));
        }
        Ok(out)
    }

    /// The records that changed after position `after` of this node's change sequence, each
    /// once with the position of its latest change, in that order: a feed for programs that
    /// keep a copy. At most `limit` records are read; the position returned is where the
    /// next call goes on from (past records no list shows, which are read but not returned),
    /// and whether more may wait there.
    pub fn changed_after(&self, after: i64, limit: u32) -> Result<Changed, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS}, r.last_seq, r.kind IN ('personal', 'rollup') OR r.newer_kind = 1
             FROM records r WHERE r.last_seq > ?1 ORDER BY r.last_seq LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![after, limit], |r| {
            Ok((
                ListColumns::read(r)?,
                r.get::<_, i64>(9)?,
                r.get::<_, bool>(10)?,
            ))
        })?;
        let (mut out, mut next, mut read) = (Vec::new(), after, 0u32);
        for row in rows {
            let (columns, seq, unlisted) = row?;
            read += 1;
            next = next.max(seq);
            if !unlisted {
                out.push((seq, columns.into_row()?));
            }
        }
        Ok((out, next, read == limit))
    }

    /// The mandates this node holds for `person`: seats its own congress granted and roster
    /// copies of seats granted above that name a station here or the person's home.
    pub fn mandates_of(&self, person: &RecordId) -> Result<Vec<(Header, Mandate)>, StoreError> {
        mandates_of(&self.conn, &self.actor, person)
    }

    /// Persons held here, in this node's subtree, who may be the same person as `person`
    /// (registered twice, at two levels, or twice at one): the same name, and the same birth
    /// year or one of them without a birth year. They are flagged, never merged or refused:
    /// namesakes exist, and only the clerk can tell.
    pub fn likely_duplicates(&self, person: &RecordId) -> Result<Vec<LikelyDuplicate>, StoreError> {
        let record = self.get(person)?;
        let Body::Delegate(d) = &record.body else {
            return Ok(Vec::new());
        };
        let me = self.node.region;
        let ids: Vec<(String, String)> = self
            .conn
            .prepare_cached(
                "SELECT id, home FROM records WHERE kind = 'delegate' AND label = ?1 AND id != ?2 ORDER BY id",
            )?
            .query_map(params![d.name, person.to_string()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::new();
        for (id, home) in ids {
            let Ok(home) = RegionCode::parse("home", &home) else {
                continue;
            };
            if !home.is_within(&me) {
                continue;
            }
            let id = RecordId::parse("id", &id)?;
            let Body::Delegate(other) = self.get(&id)?.body else {
                continue;
            };
            if other.merged_into.is_some() {
                continue;
            }
            let reason = match (d.birth_year, other.birth_year) {
                (Some(a), Some(b)) if a == b => format!("同名且出生年份相同（{a}）"),
                (Some(_), Some(_)) => continue,
                _ => "同名，出生年份未登记，无法区分".to_string(),
            };
            out.push(LikelyDuplicate {
                id,
                home,
                name: other.name,
                reason,
            });
        }
        // The same mobile number on another person's contact details. Only the personal data
        // of persons is read: a node holds that of its own and its children's delegates, a
        // few hundred records, and never an opinion's.
        let digits = |p: &str| p.chars().filter(char::is_ascii_digit).collect::<String>();
        let phone = match self.personal_for(person)?.map(|r| r.body) {
            Some(Body::Personal(p)) => p.phone.as_deref().map(digits).filter(|p| p.len() >= 7),
            _ => None,
        };
        if let Some(phone) = phone {
            let candidates: Vec<String> = self
                .conn
                .prepare_cached(
                    "SELECT p.id FROM records p JOIN records d ON d.id = p.subject
                     WHERE p.kind = 'personal' AND d.kind = 'delegate' AND p.subject != ?1
                     ORDER BY p.id",
                )?
                .query_map([person.to_string()], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for id in candidates {
                let Ok(id) = RecordId::parse("id", &id) else {
                    continue;
                };
                let Body::Personal(data) = self.get(&id)?.body else {
                    continue;
                };
                if data.phone.as_deref().map(digits) != Some(phone.clone())
                    || out.iter().any(|o| o.id == data.subject)
                {
                    continue;
                }
                let other = match self.get(&data.subject) {
                    Ok(record) => record,
                    Err(StoreError::NotFound { .. }) => continue,
                    Err(e) => return Err(e),
                };
                let Body::Delegate(d) = other.body else {
                    continue;
                };
                if d.merged_into.is_some() || !other.header.home.is_within(&me) {
                    continue;
                }
                out.push(LikelyDuplicate {
                    id: data.subject,
                    home: other.header.home,
                    name: d.name,
                    reason: "手机号码相同".to_string(),
                });
            }
        }
        Ok(out)
    }

    /// The personal-data record kept for `subject`, if any.
    pub fn personal_for(&self, subject: &RecordId) -> Result<Option<Record>, StoreError> {
        match personal_id(&self.conn, subject)? {
            Some(id) => self.get(&id).map(Some),
            None => Ok(None),
        }
    }

    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let mut records_by_kind = Vec::new();
        for kind in RecordKind::ALL {
            let n: i64 = self.conn.query_row(
                "SELECT count(*) FROM records WHERE kind = ?1",
                [kind.as_str()],
                |r| r.get(0),
            )?;
            records_by_kind.push((kind, n.max(0) as u64));
        }
        let mut unknown_state = 0u64;
        for kind in RecordKind::ALL.into_iter().filter(|k| k.has_workflow()) {
            let n: i64 = self.conn.query_row(
                "SELECT count(*) FROM records WHERE kind = ?1 AND status = ?2",
                params![kind.as_str(), crate::record::event::UNKNOWN_STATE],
                |r| r.get(0),
            )?;
            unknown_state += n.max(0) as u64;
        }
        let (changes, last_seq): (i64, Option<i64>) =
            self.conn
                .query_row("SELECT count(*), max(seq) FROM changes", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
        let file_bytes = ["", "-wal"]
            .iter()
            .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", self.path.display())).ok())
            .map(|m| m.len())
            .sum();
        Ok(StoreStats {
            records_by_kind,
            unknown_state,
            newer_kinds: self.newer_kinds()?,
            changes: changes.max(0) as u64,
            last_seq: last_seq.unwrap_or(0),
            file_bytes,
            last_backup: self.upkeep("last_backup_at", "last_backup_file")?,
            last_check: self.upkeep("last_check_at", "last_check_result")?,
        })
    }

    /// An upkeep record of the node row: its time column and its detail column.
    fn upkeep(&self, at: &str, detail: &str) -> Result<Option<Upkeep>, StoreError> {
        let (at, detail): (Option<String>, Option<String>) =
            self.conn
                .query_row(&format!("SELECT {at}, {detail} FROM node"), [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
        Ok(at
            .and_then(|at| DateTime::parse_from_rfc3339(&at).ok())
            .map(|at| Upkeep {
                at: at.with_timezone(&Utc),
                detail: detail.unwrap_or_default(),
            }))
    }

    /// Notes a backup the node took: when, and the file it wrote.
    pub fn record_backup(&mut self, at: DateTime<Utc>, file: &Path) -> Result<(), StoreError> {
        self.flushing()?;
        self.conn.execute(
            "UPDATE node SET last_backup_at = ?1, last_backup_file = ?2",
            rusqlite::params![at.to_rfc3339(), file.display().to_string()],
        )?;
        Ok(())
    }

    /// Notes a check of the database file: when, and what it found (`ok`, or the damage).
    pub fn record_check(&mut self, at: DateTime<Utc>, result: &str) -> Result<(), StoreError> {
        self.flushing()?;
        self.conn.execute(
            "UPDATE node SET last_check_at = ?1, last_check_result = ?2",
            rusqlite::params![at.to_rfc3339(), result],
        )?;
        Ok(())
    }

    /// Writes a consistent copy of the database file `db` to `to` on a read-only connection
    /// of its own, so the node's writes go on meanwhile (the write-ahead log keeps the copy's
    /// snapshot); `to` must not exist.
    pub fn backup_file(db: &Path, to: &Path) -> Result<(), StoreError> {
        if to.exists() {
            return Err(
                ValidationError::new("to", format!("{} 已经存在，不会覆盖", to.display())).into(),
            );
        }
        let target = to
            .to_str()
            .ok_or_else(|| ValidationError::new("to", "备份路径必须是 UTF-8"))?;
        let conn = Connection::open_with_flags(
            db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.execute("VACUUM INTO ?1", [target])?;
        Ok(())
    }

    /// Writes a consistent copy of the database to `to` while the node keeps running.
    /// It copies on a connection of its own ([`Store::backup_file`]), so the store's writes are
    /// not held up meanwhile.
    pub fn backup_to(&self, to: &Path) -> Result<(), StoreError> {
        Store::backup_file(&self.path, to)
    }

    /// Replaces the data directory's database with a backup. The node must not be running.
    /// After a restore the node's first sync notices it is behind its own history and asks its
    /// peers to send everything back (see `sync`).
    pub fn restore(dir: &Path, from: &Path) -> Result<(), StoreError> {
        let check = Connection::open_with_flags(from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| {
            ValidationError::new("from", format!("{} 不是可读的数据库: {e}", from.display()))
        })?;
        let verdict: String = check
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| {
                ValidationError::new("from", format!("{} 不是 Renda 备份: {e}", from.display()))
            })?;
        let has_node: bool = check
            .query_row("SELECT count(*) = 1 FROM node", [], |r| r.get(0))
            .map_err(|_| {
                ValidationError::new(
                    "from",
                    format!("{} 不是 Renda 备份（没有节点信息）", from.display()),
                )
            })?;
        if verdict != "ok" || !has_node {
            return Err(ValidationError::new(
                "from",
                format!("{} 已损坏或不是 Renda 备份", from.display()),
            )
            .into());
        }
        drop(check);
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Io(format!("{}: {e}", dir.display())))?;
        let db = dir.join(DB_FILE);
        let staged = dir.join(format!("{DB_FILE}.restoring"));
        std::fs::copy(from, &staged)
            .map_err(|e| StoreError::Io(format!("{}: {e}", from.display())))?;
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        std::fs::rename(&staged, &db)
            .map_err(|e| StoreError::Io(format!("{}: {e}", db.display())))?;
        check::clear_damaged(dir);
        // Mark the restore, so every peer's next link resends everything both ways.
        let conn = connect(&db)?;
        conn.execute(
            "UPDATE node SET restore_id = ?1 WHERE singleton = 1",
            [ulid::Ulid::generate().to_string()],
        )?;
        Ok(())
    }

    /// Replaces a damaged database with a new one for the same node, to be filled from its
    /// peers: the parent holds every record of the node's subtree and its personal data (routes
    /// send every record at least to the city and personal data to the parent), and each child
    /// holds its own subtree's. The damaged file is set aside, the node is marked restored, and
    /// its next link with each peer resends everything both ways. The node's identity is read
    /// from the damaged file where it still can be; `region` and `name` are needed otherwise and
    /// checked against it when both exist. Credentials and link counters start afresh.
    pub fn rebuild(
        dir: &Path,
        region: Option<RegionCode>,
        name: Option<&str>,
        parent_addr: Option<&str>,
    ) -> Result<(PathBuf, NodeIdentity), StoreError> {
        let db = dir.join(DB_FILE);
        let found = check::read_identity(&db);
        let region = match (region, &found) {
            (Some(given), Some((stored, _))) if given != *stored => {
                return Err(ValidationError::new(
                    "region",
                    format!("损坏的数据库属于 {stored}，与指定的 {given} 不符"),
                )
                .into());
            }
            (Some(given), _) => given,
            (None, Some((stored, _))) => *stored,
            (None, None) => {
                return Err(ValidationError::new(
                    "region",
                    "损坏的数据库中读不出节点的区划代码，请用 --region 和 --name 指定",
                )
                .into());
            }
        };
        let name = match (name, &found) {
            (Some(given), _) => given.to_string(),
            (None, Some((_, stored))) => stored.clone(),
            (None, None) => {
                return Err(ValidationError::new("name", "请用 --name 指定节点名称").into());
            }
        };
        // Everything is checked before the damaged file is moved, so a refused rebuild leaves
        // the directory as it was.
        if !region.has_congress() {
            return Err(
                ValidationError::new("region", format!("{region} 没有人民代表大会")).into(),
            );
        }
        crate::validate::required_text("name", &name)?;
        match (region.parent(), parent_addr) {
            (Some(_), Some(addr)) => crate::validate::host_port("parent", addr)?,
            (Some(_), None) => {
                return Err(ValidationError::new(
                    "parent",
                    "请用 --parent 指定上级节点地址：重建的数据从上级取回",
                )
                .into());
            }
            (None, Some(_)) => {
                return Err(ValidationError::new("parent", "全国人大节点没有上级节点").into());
            }
            // The national node is refilled by its children's resends alone.
            (None, None) => {}
        }
        let aside = check::set_aside(dir)?.unwrap_or_else(|| db.clone());
        check::clear_damaged(dir);
        // No duty rules are seeded: the congress's own come back from the parent, and a
        // second, default set would judge beside them.
        let store = Store::init_with_quotas(
            dir,
            region,
            &name,
            parent_addr.map(str::to_string),
            QuotaRules::none(),
        )?;
        store.conn.execute(
            "UPDATE node SET restore_id = ?1 WHERE singleton = 1",
            [ulid::Ulid::generate().to_string()],
        )?;
        Ok((aside, store.node.clone()))
    }

    /// The special committees this node's congress has, by name.
    pub fn special_committees(&self) -> Result<Vec<String>, StoreError> {
        special_committees(&self.conn)
    }

    /// Records whose stored columns (heads, route, list columns, people) differ from what their
    /// documents, loaded by automerge, derive; each as "id: column". Empty on a sound node. A
    /// receiver may derive a record's columns from a replay of its changes rather than from
    /// automerge (`record::replay`), and this is how a test holds the two to each other.
    pub fn derived_mismatches(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut stmt = self.conn.prepare(
            "SELECT id, label, status, occurred_on, due_on, subject, summary, route, heads_hash, tag, addressed_to, number, group_id, merged_into
             FROM records WHERE newer_kind = 0 ORDER BY id",
        )?;
        let mut people = self.conn.prepare(
            "SELECT delegate_id, role FROM record_people WHERE record_id = ?1 ORDER BY delegate_id, role",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let stored = DerivedColumns {
                label: r.get(1)?,
                status: r.get(2)?,
                occurred_on: r.get(3)?,
                due_on: r.get(4)?,
                subject: r.get(5)?,
                summary: serde_json::from_str(&r.get::<_, String>(6)?)
                    .unwrap_or(serde_json::Value::Null),
                route: r.get(7)?,
                heads_hash: r.get::<_, Option<Vec<u8>>>(8)?.unwrap_or_default(),
                keys: crate::record::projection::FilterKeys {
                    tag: r.get(9)?,
                    addressed_to: r.get(10)?,
                    number: r.get(11)?,
                    group: r.get(12)?,
                    merged_into: r.get(13)?,
                },
                people: people
                    .query_map([&id], |p| Ok((p.get(0)?, p.get(1)?)))?
                    .collect::<Result<_, _>>()?,
            };
            let doc = load_doc(&self.conn, &self.actor, &RecordId::parse("id", &id)?)?;
            let record = Record::from_doc(&doc).map_err(|source| StoreError::Corrupt {
                id: id.clone(),
                source,
            })?;
            let derived = DerivedColumns::of(&record, &doc.heads());
            out.extend(
                stored
                    .differing(&derived)
                    .into_iter()
                    .map(|column| format!("{id}: {column}")),
            );
        }
        Ok(out)
    }

    /// SQLite's own consistency check; `Ok(())` when the file is sound.
    pub fn integrity_check(&self) -> Result<(), StoreError> {
        let verdict: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if verdict == "ok" {
            Ok(())
        } else {
            Err(StoreError::Io(format!("integrity check failed: {verdict}")))
        }
    }
}

fn mandates_of(
    conn: &Connection,
    actor: &ActorId,
    person: &RecordId,
) -> Result<Vec<(Header, Mandate)>, StoreError> {
    let ids: Vec<String> = conn
        .prepare_cached(
            "SELECT record_id FROM record_people WHERE delegate_id = ?1 AND role = 'mandate' ORDER BY record_id",
        )?
        .query_map([person.to_string()], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let id = RecordId::parse("id", &id).map_err(|e| StoreError::Corrupt {
            id: id.clone(),
            source: DocError::Header(e.to_string()),
        })?;
        let doc = load_doc(conn, actor, &id)?;
        let record = Record::from_doc(&doc).map_err(|source| StoreError::Corrupt {
            id: id.to_string(),
            source,
        })?;
        if let Body::Mandate(m) = record.body {
            out.push((record.header, m));
        }
    }
    Ok(out)
}

/// A short hash of a record's heads: equal exactly when two replicas hold the same changes.
pub(crate) fn heads_hash(heads: &[automerge::ChangeHash]) -> Vec<u8> {
    crate::record::doc::heads_hash(heads)
}

/// Loads a record's document: its last full save followed by the changes stored after it, which
/// automerge loads as one byte string.
/// Why a stored record does not read: a kind a newer release added, which this node keeps as
/// it came and is not damaged, or a damaged document.
fn unreadable(conn: &Connection, id: &RecordId, source: DocError) -> StoreError {
    match newer::newer_kind_of(conn, id) {
        Ok(Some(kind)) => StoreError::NewerKind {
            id: id.to_string(),
            kind,
        },
        _ => StoreError::Corrupt {
            id: id.to_string(),
            source,
        },
    }
}

fn load_doc(conn: &Connection, actor: &ActorId, id: &RecordId) -> Result<RecordDoc, StoreError> {
    let id_text = id.to_string();
    let stored =
        sync::stored_state(conn, &id_text, false)?.ok_or_else(|| StoreError::NotFound {
            kind: "",
            id: id_text.clone(),
        })?;
    RecordDoc::load(&stored.doc_bytes(), actor).map_err(|source| StoreError::Corrupt {
        id: id_text,
        source,
    })
}

fn resolve(
    conn: &Connection,
    kind: RecordKind,
    field: &str,
    text: &str,
) -> Result<RecordId, StoreError> {
    let text = text.trim().to_ascii_uppercase();
    if text.len() < 4 || !text.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ValidationError::new(
            field,
            format!(
                "记录编号（或其前缀，至少4位）格式不对：“{}”",
                crate::validate::quote(&text)
            ),
        )
        .into());
    }
    // A delegate is known here by a person record, or, for a delegate of another congress
    // stationed here, by the roster copy of their mandate, which names the person.
    let sql = if kind == RecordKind::Delegate {
        "SELECT id FROM records WHERE kind = ?1 AND id LIKE ?2
         UNION SELECT delegate_id FROM record_people WHERE role = 'mandate' AND delegate_id LIKE ?2
         ORDER BY 1 LIMIT 2"
    } else {
        "SELECT id FROM records WHERE kind = ?1 AND id LIKE ?2 ORDER BY id LIMIT 2"
    };
    let mut stmt = conn.prepare(sql)?;
    let ids: Vec<String> = stmt
        .query_map(params![kind.as_str(), format!("{text}%")], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    match ids.as_slice() {
        [] => Err(StoreError::NotFound {
            kind: kind.label(),
            id: text,
        }),
        [one] => RecordId::parse(field, one).map_err(StoreError::from),
        _ => Err(StoreError::Ambiguous {
            kind: kind.label(),
            prefix: text,
        }),
    }
}

/// What a record's row derives from its document: the columns lists, rollups, routing and
/// repair read without loading it, and its `record_people` rows. The store writes these and
/// [`Store::derived_mismatches`] checks them, through this one derivation.
#[derive(Debug)]
struct DerivedColumns {
    label: String,
    status: Option<String>,
    occurred_on: Option<String>,
    due_on: Option<String>,
    /// The record a personal-data record belongs to.
    subject: Option<String>,
    summary: serde_json::Value,
    /// What lists and rollups filter on.
    keys: crate::record::projection::FilterKeys,
    /// The record's `RouteHints` as JSON.
    route: String,
    heads_hash: Vec<u8>,
    /// `(delegate, role)`, sorted and without repeats, as the table's key holds them.
    people: Vec<(String, String)>,
}

impl DerivedColumns {
    fn of(record: &Record, heads: &[automerge::ChangeHash]) -> DerivedColumns {
        let projection = project(record);
        let mut people: Vec<(String, String)> = projection
            .people
            .iter()
            .map(|(delegate, role)| (delegate.to_string(), role.as_str().to_string()))
            .collect();
        people.sort();
        people.dedup();
        DerivedColumns {
            label: projection.label,
            status: projection.status,
            occurred_on: projection.occurred_on.map(|d| d.to_string()),
            due_on: projection.due_on.map(|d| d.to_string()),
            subject: match &record.body {
                crate::record::Body::Personal(p) => Some(p.subject.to_string()),
                _ => None,
            },
            keys: crate::record::projection::FilterKeys::of(
                record.header.kind,
                &projection.summary,
            ),
            summary: projection.summary,
            route: serde_json::to_string(&crate::route::RouteHints::of(record))
                .unwrap_or_else(|_| "{}".into()),
            heads_hash: heads_hash(heads),
            people,
        }
    }

    /// The names of the columns on which `self` and `other` differ.
    fn differing(&self, other: &DerivedColumns) -> Vec<&'static str> {
        [
            ("label", self.label == other.label),
            ("status", self.status == other.status),
            ("occurred_on", self.occurred_on == other.occurred_on),
            ("due_on", self.due_on == other.due_on),
            ("subject", self.subject == other.subject),
            ("summary", self.summary == other.summary),
            ("tag", self.keys.tag == other.keys.tag),
            (
                "addressed_to",
                self.keys.addressed_to == other.keys.addressed_to,
            ),
            ("number", self.keys.number == other.keys.number),
            ("group_id", self.keys.group == other.keys.group),
            (
                "merged_into",
                self.keys.merged_into == other.keys.merged_into,
            ),
            ("route", self.route == other.route),
            ("heads_hash", self.heads_hash == other.heads_hash),
            ("people", self.people == other.people),
        ]
        .into_iter()
        .filter(|(_, same)| !same)
        .map(|(column, _)| column)
        .collect()
    }
}

/// A record's row as a write stores it: its derived columns, its summary as text and what it
/// adds to this node's counters. All of it follows from the record alone, so a link derives it
/// for a peer's records on the cores that merge them, and the store thread, which every write
/// waits for, only writes it.
#[derive(Debug)]
pub(crate) struct RowValues {
    columns: DerivedColumns,
    summary: String,
    contribution: BTreeMap<String, i64>,
    /// The sender marked the record personal beyond what its kind says
    /// ([`crate::record::merge::Merged::personal_claimed`]); kept in `records.personal_claimed`,
    /// which only ever goes from 0 to 1.
    personal_claimed: bool,
}

impl RowValues {
    /// `own`: the record is homed at the node that stores it, and so counts in its own numbers.
    pub(crate) fn of(record: &Record, heads: &[automerge::ChangeHash], own: bool) -> RowValues {
        let mut columns = DerivedColumns::of(record, heads);
        let contribution = rollup::row_contribution(record.header.kind, own, &columns);
        // The summary is written as text; the value is freed here, off the store thread.
        let summary = std::mem::take(&mut columns.summary);
        RowValues {
            summary: summary.to_string(),
            columns,
            contribution,
            personal_claimed: false,
        }
    }

    /// The row of a record a peer's changes made, for the node at `me`; personal if the sender
    /// said so ([`Merged::personal_claimed`]).
    pub(crate) fn of_merged(merged: &sync::Merged, me: &RegionCode) -> RowValues {
        let record = &merged.record;
        let mut row = RowValues::of(record, &merged.heads, record.header.home == *me);
        row.personal_claimed = merged.personal_claimed;
        row
    }
}

/// A record's row as a write gets it: derived already, or to derive here from the record and
/// its heads.
pub(crate) enum Row<'a> {
    Derived(Box<RowValues>),
    Derive(&'a [automerge::ChangeHash]),
}

/// The changes a write brings, and what they do to the record's stored history.
#[derive(Debug)]
enum History {
    /// Changes added to the history, as every edit and merge makes.
    Extend(Vec<RawChange>),
    /// Changes that are a whole document and replace the history: a rollup's publication.
    Replace(Vec<RawChange>),
}

/// How many positions of replaced changes are kept for peers' checkpoints at most (see
/// `WriteTx::retire_history`): years of publications at a busy county, about 50 MB.
const RETIRED_KEEP: i64 = 1_000_000;

/// The columns of `records` that an index reads, as its key or in its condition. A write names
/// one in its `UPDATE` only when the value changes ([`WriteTx::update_row`]).
const RECORD_INDEXED: [&str; 11] = [
    "last_seq",
    "status",
    "occurred_on",
    "due_on",
    "subject",
    "tag",
    "addressed_to",
    "number",
    "group_id",
    "merged_into",
    "newer_kind",
];

/// The values a write gives the indexed columns, each with its column's name. A record this
/// release writes is of a kind it knows, so `newer_kind` is 0.
fn indexed_values(
    last_seq: i64,
    columns: &DerivedColumns,
) -> Vec<(&'static str, rusqlite::types::Value)> {
    use rusqlite::types::Value;
    let text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::Text);
    vec![
        ("last_seq", Value::Integer(last_seq)),
        ("status", text(&columns.status)),
        ("occurred_on", text(&columns.occurred_on)),
        ("due_on", text(&columns.due_on)),
        ("subject", text(&columns.subject)),
        ("tag", text(&columns.keys.tag)),
        ("addressed_to", text(&columns.keys.addressed_to)),
        (
            "number",
            columns.keys.number.map_or(Value::Null, Value::Integer),
        ),
        ("group_id", text(&columns.keys.group)),
        ("merged_into", text(&columns.keys.merged_into)),
        ("newer_kind", Value::Integer(0)),
    ]
}

/// A stored record's row as a write reads it first ([`WriteTx::held_row`]).
#[derive(Debug)]
pub(super) struct HeldRow {
    last_seq: i64,
    /// `doc_tail`.
    tail: i64,
    counted: Option<String>,
    /// The columns of [`RECORD_INDEXED`], in its order.
    indexed: Vec<rusqlite::types::Value>,
}

/// What a write stores in a record's row that is there already.
struct RecordWrite<'a> {
    /// A full save and the position it covers, when the write compacts the document (or a
    /// publication replaces it, with no save).
    saved: Option<(Vec<u8>, i64)>,
    tail: i64,
    heads_hash: &'a [u8],
    label: &'a str,
    summary: &'a str,
    route: &'a str,
    counted: Option<String>,
    personal_claimed: bool,
    /// The indexed columns' new values, by name ([`indexed_values`]).
    indexed: Vec<(&'static str, rusqlite::types::Value)>,
}

/// What a writer already knows of a record's row before storing it.
#[derive(Debug)]
enum Prior {
    /// Nothing: the row is read.
    Unknown,
    /// There is no row: the record is new here.
    Absent,
    /// The row, as read in this transaction.
    Stored(HeldRow),
}

/// One open write transaction. Everything written through it commits together.
/// What a caller reads the same way before a write (a preview on a reader) and inside it (the
/// write re-checking what it previewed): implemented by [`Store`] and [`WriteTx`].
pub trait Reads {
    fn identity(&self) -> &NodeIdentity;
    fn get(&self, id: &RecordId) -> Result<Record, StoreError>;
    fn list(&self, q: &ListQuery) -> Result<Vec<ListRow>, StoreError>;
    fn personal_for(&self, subject: &RecordId) -> Result<Option<Record>, StoreError>;
    fn mandates_of(&self, person: &RecordId) -> Result<Vec<(Header, Mandate)>, StoreError>;
}

impl Reads for Store {
    fn identity(&self) -> &NodeIdentity {
        Store::identity(self)
    }
    fn get(&self, id: &RecordId) -> Result<Record, StoreError> {
        Store::get(self, id)
    }
    fn list(&self, q: &ListQuery) -> Result<Vec<ListRow>, StoreError> {
        Store::list(self, q)
    }
    fn personal_for(&self, subject: &RecordId) -> Result<Option<Record>, StoreError> {
        Store::personal_for(self, subject)
    }
    fn mandates_of(&self, person: &RecordId) -> Result<Vec<(Header, Mandate)>, StoreError> {
        Store::mandates_of(self, person)
    }
}

impl Reads for WriteTx<'_> {
    fn identity(&self) -> &NodeIdentity {
        self.node
    }
    fn get(&self, id: &RecordId) -> Result<Record, StoreError> {
        WriteTx::get(self, id)
    }
    fn list(&self, q: &ListQuery) -> Result<Vec<ListRow>, StoreError> {
        WriteTx::list(self, q)
    }
    fn personal_for(&self, subject: &RecordId) -> Result<Option<Record>, StoreError> {
        WriteTx::personal_for(self, subject)
    }
    fn mandates_of(&self, person: &RecordId) -> Result<Vec<(Header, Mandate)>, StoreError> {
        WriteTx::mandates_of(self, person)
    }
}

pub struct WriteTx<'a> {
    tx: rusqlite::Transaction<'a>,
    actor: &'a ActorId,
    node: &'a NodeIdentity,
    /// While a peer's batch is stored, the moves of this node's counters summed over its
    /// records, written once at the batch's end (`WriteTx::apply_prepared`) instead of a
    /// statement per counter per record; `None` writes each move as it comes. Nothing reads
    /// the counters while a batch is stored.
    counter_moves: Option<BTreeMap<String, i64>>,
}

impl WriteTx<'_> {
    pub fn node(&self) -> &NodeIdentity {
        self.node
    }

    pub fn author(&self, user: &str) -> Author {
        Author {
            node: self.node.region,
            user: user.to_string(),
        }
    }

    pub fn resolve(
        &self,
        kind: RecordKind,
        field: &str,
        text: &str,
    ) -> Result<RecordId, StoreError> {
        resolve(&self.tx, kind, field, text)
    }

    /// See [`Store::version_of`].
    pub fn version_of(&self, id: &RecordId) -> Result<i64, StoreError> {
        version_of(&self.tx, id)
    }

    /// See [`Store::list`]: a list as this transaction sees the store.
    pub fn list(&self, q: &ListQuery) -> Result<Vec<ListRow>, StoreError> {
        list_rows(&self.tx, q)
    }

    /// See [`Store::personal_for`].
    pub fn personal_for(&self, subject: &RecordId) -> Result<Option<Record>, StoreError> {
        match personal_id(&self.tx, subject)? {
            Some(id) => self.get(&id).map(Some),
            None => Ok(None),
        }
    }

    pub fn get(&self, id: &RecordId) -> Result<Record, StoreError> {
        let doc = load_doc(&self.tx, self.actor, id)?;
        Record::from_doc(&doc).map_err(|source| unreadable(&self.tx, id, source))
    }

    /// The mandates this node holds for `person` (see [`Store::mandates_of`]).
    pub fn mandates_of(&self, person: &RecordId) -> Result<Vec<(Header, Mandate)>, StoreError> {
        mandates_of(&self.tx, self.actor, person)
    }

    /// The persons held here that were merged into `person`, directly or through others.
    pub fn merged_into(&self, person: &RecordId) -> Result<Vec<RecordId>, StoreError> {
        let redirects = rollup::redirects(&self.tx)?;
        rollup::merged_into_each(&redirects)
            .remove(&person.to_string())
            .unwrap_or_default()
            .iter()
            .map(|from| RecordId::parse("id", from).map_err(StoreError::from))
            .collect()
    }

    /// The largest suggestion number already given by this node's congress, for numbering the next.
    /// Registers a special committee (专门委员会) of this node's congress; registering it again
    /// changes nothing. Returns whether it was new.
    pub fn add_special_committee(&mut self, name: &str) -> Result<bool, StoreError> {
        let name = name.trim();
        crate::validate::required_text("committee", name)?;
        crate::validate::bounded_text("committee", name)?;
        let added = self.tx.execute(
            "INSERT OR IGNORE INTO special_committees (name, added_at) VALUES (?1, ?2)",
            params![name, Utc::now().to_rfc3339()],
        )?;
        Ok(added > 0)
    }

    /// The special committees this node's congress has.
    pub fn special_committees(&self) -> Result<Vec<String>, StoreError> {
        special_committees(&self.tx)
    }

    /// The deadline the motions of this congress's `session` carry, if any was registered: the
    /// one its 主席团 set, which every motion of the session shares.
    pub fn motion_deadline(&self, session: &str) -> Result<Option<NaiveDate>, StoreError> {
        // A congress registers a few dozen motions a session: each is read whole.
        let ids: Vec<String> = self
            .tx
            .prepare_cached(
                "SELECT id FROM records WHERE kind = 'motion' AND home = ?1 ORDER BY id",
            )?
            .query_map([self.node.region.as_str()], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for id in ids {
            let id = RecordId::parse("id", &id)?;
            if let Body::Motion(m) = self.get(&id)?.body
                && m.fields.session == session
            {
                return Ok(Some(m.fields.deadline));
            }
        }
        Ok(None)
    }

    pub fn max_suggestion_number(&self) -> Result<u32, StoreError> {
        let n: Option<i64> = self.tx.query_row(
            "SELECT max(number) FROM records WHERE kind = 'suggestion' AND addressed_to = ?1",
            [self.node.region.as_str()],
            |r| r.get(0),
        )?;
        Ok(n.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32)
    }

    /// Creates a record homed at this node. The fields must already be validated.
    pub(crate) fn create<T: Serialize>(
        &mut self,
        kind: RecordKind,
        user: &str,
        fields: &T,
    ) -> Result<Header, StoreError> {
        self.create_inner::<T, ()>(kind, user, fields, None)
    }

    /// Creates a workflow record whose first event (收集, 提交) is written in the same change.
    pub(crate) fn create_with_event<T: Serialize, A: Serialize>(
        &mut self,
        kind: RecordKind,
        user: &str,
        fields: &T,
        action: A,
        date: chrono::NaiveDate,
    ) -> Result<Header, StoreError> {
        self.create_inner(kind, user, fields, Some((action, date)))
    }

    fn create_inner<T: Serialize, A: Serialize>(
        &mut self,
        kind: RecordKind,
        user: &str,
        fields: &T,
        first: Option<(A, chrono::NaiveDate)>,
    ) -> Result<Header, StoreError> {
        let header = Header {
            id: RecordId::new(),
            kind,
            home: self.node.region,
            // Milliseconds: the precision the header has on the wire, so every replica's copy
            // of the header is identical.
            created_at: DateTime::from_timestamp_millis(Utc::now().timestamp_millis())
                .unwrap_or_else(Utc::now),
            created_by: self.author(user),
        };
        let first = first.map(|(action, date)| crate::record::Event {
            id: RecordId::new(),
            lamport: 1,
            recorded_at: header.created_at,
            date,
            author: header.created_by.clone(),
            action,
        });
        let doc = RecordDoc::create_with_event(&header, fields, first.as_ref(), self.actor)
            .map_err(|source| StoreError::Corrupt {
                id: header.id.to_string(),
                source,
            })?;
        let changes = doc.changes_since(&[]);
        self.persist(&doc, changes, None)?;
        Ok(header)
    }

    /// Loads a record, lets `edit` change its document, and stores the result with the changes
    /// `edit` returned. An error from `edit` leaves the record as it was.
    pub(crate) fn modify(
        &mut self,
        id: &RecordId,
        edit: impl FnOnce(&mut RecordDoc, &Record) -> Result<Vec<Change>, StoreError>,
    ) -> Result<Record, StoreError> {
        let mut doc = load_doc(&self.tx, self.actor, id)?;
        let before = Record::from_doc(&doc).map_err(|source| StoreError::Corrupt {
            id: id.to_string(),
            source,
        })?;
        let changes = edit(&mut doc, &before)?;
        self.persist(&doc, changes, None)
    }

    /// Moves this node's counters by what a record's row now contributes less what it
    /// contributed before, and returns the contribution to store with the row: the own numbers
    /// of a record homed here (records homed elsewhere count in their own node's rollup), and
    /// for any record held here what it adds to the quota counters of groups and delegates.
    fn count_row(
        &mut self,
        now: &BTreeMap<String, i64>,
        before: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let before: BTreeMap<String, i64> = before
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        match &mut self.counter_moves {
            Some(moves) => rollup::sum_moves(moves, &before, now),
            None => rollup::move_counters(&self.tx, &before, now)?,
        }
        Ok((!now.is_empty()).then(|| serde_json::to_string(&now).unwrap_or_else(|_| "{}".into())))
    }

    /// Writes a document, the changes that are new to this node, and its projection rows.
    fn persist(
        &mut self,
        doc: &RecordDoc,
        changes: Vec<Change>,
        origin: Option<&RegionCode>,
    ) -> Result<Record, StoreError> {
        let record = Record::from_doc(doc).map_err(|source| StoreError::Corrupt {
            id: "new".into(),
            source,
        })?;
        self.persist_decoded(
            Some(doc),
            Row::Derive(&doc.heads()),
            record,
            History::Extend(changes.into_iter().map(RawChange::from).collect()),
            origin,
            Prior::Unknown,
        )
    }

    /// Writes `rollup` as this node's rollup, published whole: a fresh document of one change
    /// that replaces the record's stored history here, and at every holder it reaches (see
    /// `sync::merge::publication`). Its generation is one more than the publication held, so a
    /// holder can tell newer from older whatever order publications arrive in. Publishing
    /// rather than editing keeps every holder's copy one change long, however often the
    /// numbers move: an edited document would keep every refresh for good, and a parent would
    /// load that growing history to merge each new one.
    fn publish_rollup(
        &mut self,
        held: Option<(Header, u64)>,
        rollup: &mut crate::record::rollup::Rollup,
    ) -> Result<(), StoreError> {
        let (header, generation) = match held {
            Some((header, generation)) => (header, generation),
            None => (
                Header {
                    id: RecordId::new(),
                    kind: RecordKind::Rollup,
                    home: self.node.region,
                    created_at: DateTime::from_timestamp_millis(Utc::now().timestamp_millis())
                        .unwrap_or_else(Utc::now),
                    created_by: self.author(rollup::SYSTEM_USER),
                },
                0,
            ),
        };
        rollup.generation = generation.saturating_add(1);
        let corrupt = |source| StoreError::Corrupt {
            id: header.id.to_string(),
            source,
        };
        let doc = RecordDoc::create(&header, &*rollup, self.actor).map_err(corrupt)?;
        let record = Record::from_doc(&doc).map_err(corrupt)?;
        let changes = doc.changes_since(&[]);
        self.persist_decoded(
            Some(&doc),
            Row::Derive(&doc.heads()),
            record,
            History::Replace(changes.into_iter().map(RawChange::from).collect()),
            None,
            Prior::Unknown,
        )?;
        Ok(())
    }

    /// Deletes a record's change rows before a publication replaces them, keeping each one's
    /// position and hash for the peers that may name it as their checkpoint, and forgets the
    /// positions every peer has confirmed past. At most `RETIRED_KEEP` positions are kept, so a
    /// peer gone for good does not keep them forever; such a peer, back, names a forgotten
    /// position and is resent everything, as after a restore.
    fn retire_history(&mut self, id: &str) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(record_changes::RETIRE)?
            .execute([id])?;
        self.tx
            .prepare_cached(record_changes::DELETE)?
            .execute([id])?;
        self.tx
            .prepare_cached(
                "DELETE FROM retired_changes
                 WHERE seq < (SELECT coalesce(min(confirmed_seq), 0) FROM sync_peers)
                    OR seq <= (SELECT seq FROM retired_changes ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
            )?
            .execute([RETIRED_KEEP])?;
        Ok(())
    }

    /// [`WriteTx::persist`] for a caller that has already decoded the document. `prior` is
    /// what the caller knows of the record's row: a record known to be absent is inserted
    /// without a read, and a row the caller read in this transaction is used as it is;
    /// otherwise the row is read here, once, for the counters it moves from, its document's tail
    /// and the indexed values the write leaves alone. `doc` is
    /// `None` when the record was merged by a replay of its changes rather than by automerge
    /// (`record::replay`); it is then loaded only if the stored tail is due for compaction.
    /// `row` is the record's row as the caller derived it (a link does, off the store
    /// thread), or the heads to derive it from here.
    fn persist_decoded(
        &mut self,
        doc: Option<&RecordDoc>,
        row: Row<'_>,
        record: Record,
        history: History,
        origin: Option<&RegionCode>,
        prior: Prior,
    ) -> Result<Record, StoreError> {
        let id = record.header.id.to_string();
        let (changes, replacing) = match history {
            History::Extend(changes) => (changes, false),
            History::Replace(changes) => (changes, true),
        };
        if replacing {
            self.retire_history(&id)?;
        }
        let (last_seq, new_rows) = self.insert_changes(&id, &changes, origin)?;
        if replacing && new_rows == 0 {
            // A publication found stored already would leave the record with no change rows.
            return Err(StoreError::Corrupt {
                id,
                source: DocError::Header("a publication's change is stored already".into()),
            });
        }
        let inserted = new_rows;
        // The row as stored, read once: what the counters move from, where the document's
        // tail stands, and which indexed columns this write really changes.
        let known_absent = matches!(prior, Prior::Absent);
        let held = self.held(&id, prior)?;
        let last_seq = last_seq.or(held.as_ref().map(|h| h.last_seq)).unwrap_or(0);
        let RowValues {
            columns,
            summary,
            contribution,
            personal_claimed,
        } = match row {
            Row::Derived(row) => *row,
            Row::Derive(heads) => {
                RowValues::of(&record, heads, record.header.home == self.node.region)
            }
        };
        let counted = self.count_row(
            &contribution,
            held.as_ref().and_then(|h| h.counted.as_deref()),
        )?;
        // The document is its last full save plus the changes stored after it, which the
        // change table holds anyway: a write adds its change rows and leaves the saved bytes
        // alone, and a new record has no saved bytes at all. Once the tail grows long, a full
        // save compacts it.
        // A publication's changes are the whole document: no save is left to build on.
        let tail_before = match &held {
            Some(held) if !replacing => held.tail,
            _ => 0,
        };
        let tail = tail_before + inserted;
        let compact = tail > MAX_DOC_TAIL;
        let (saved, doc_seq, tail) = if replacing {
            (Vec::new(), 0, tail)
        } else if compact {
            let saved = match doc {
                Some(doc) => doc.save(),
                // The change rows just written are part of what loads.
                None => load_doc(&self.tx, self.actor, &record.header.id)?.save(),
            };
            (saved, last_seq, 0)
        } else {
            (Vec::new(), 0, tail)
        };
        if let Some(held) = &held {
            let written = RecordWrite {
                saved: (compact || replacing).then_some((saved, doc_seq)),
                tail,
                heads_hash: &columns.heads_hash,
                label: &columns.label,
                summary: &summary,
                route: &columns.route,
                counted,
                personal_claimed,
                indexed: indexed_values(last_seq, &columns),
            };
            self.update_row(&id, held, written)?;
            if self.held_people(&id)? != columns.people {
                self.tx
                    .prepare_cached("DELETE FROM record_people WHERE record_id = ?1")?
                    .execute([&id])?;
                self.insert_people(&id, &columns.people)?;
            }
            return Ok(record);
        }
        self.tx.prepare_cached(
            "INSERT INTO records (id, kind, home, created_at, created_by, doc, last_seq, label, status, occurred_on, due_on, subject, summary, route, doc_tail, heads_hash, doc_seq, tag, addressed_to, number, group_id, counted, merged_into, personal_claimed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?19, ?20, ?21, ?22, ?23, ?24, ?25)
             ON CONFLICT(id) DO UPDATE SET
               doc = CASE WHEN ?18 THEN excluded.doc ELSE records.doc END,
               doc_seq = CASE WHEN ?18 THEN excluded.doc_seq ELSE records.doc_seq END,
               doc_tail = excluded.doc_tail, heads_hash = excluded.heads_hash, last_seq = excluded.last_seq, label = excluded.label,
               status = excluded.status, occurred_on = excluded.occurred_on, due_on = excluded.due_on,
               subject = excluded.subject, summary = excluded.summary, route = excluded.route,
               tag = excluded.tag, addressed_to = excluded.addressed_to, number = excluded.number,
               group_id = excluded.group_id, counted = excluded.counted,
               merged_into = excluded.merged_into, newer_kind = 0,
               personal_claimed = max(records.personal_claimed, excluded.personal_claimed)",
        )?
        .execute(params![
                id,
                record.header.kind.as_str(),
                record.header.home.as_str(),
                record.header.created_at.to_rfc3339(),
                record.header.created_by.to_string(),
                saved,
                last_seq,
                columns.label,
                columns.status,
                columns.occurred_on,
                columns.due_on,
                columns.subject,
                summary,
                columns.route,
                tail,
                columns.heads_hash,
                doc_seq,
                compact || replacing,
                columns.keys.tag,
                columns.keys.addressed_to,
                columns.keys.number,
                columns.keys.group,
                counted,
                columns.keys.merged_into,
                personal_claimed,
            ])?;
        // A record known to be new here has no rows to replace; one found absent may have rows
        // a damaged database kept after its record (`renda sync --repair` restores such records).
        if !known_absent {
            self.tx
                .prepare_cached("DELETE FROM record_people WHERE record_id = ?1")?
                .execute([&id])?;
        }
        self.insert_people(&id, &columns.people)?;
        Ok(record)
    }

    fn insert_people(&mut self, id: &str, people: &[(String, String)]) -> Result<(), StoreError> {
        let mut insert = self.tx.prepare_cached(
            "INSERT OR IGNORE INTO record_people (record_id, delegate_id, role) VALUES (?1, ?2, ?3)",
        )?;
        for (delegate, role) in people {
            insert.execute(params![id, delegate, role])?;
        }
        Ok(())
    }

    /// A record's `record_people` rows, in the order [`DerivedColumns::people`] keeps them.
    fn held_people(&self, id: &str) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT delegate_id, role FROM record_people WHERE record_id = ?1
                 ORDER BY delegate_id, role",
            )?
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?)
    }

    /// The stored row of record `id` as a write needs it, or `None` if there is none.
    pub(super) fn held_row(&self, id: &str) -> Result<Option<HeldRow>, StoreError> {
        // Built once: a peer's batch reads a row per record, on the store thread.
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "SELECT last_seq, doc_tail, counted, {} FROM records WHERE id = ?1",
                RECORD_INDEXED.join(", ")
            )
        });
        Ok(self
            .tx
            .prepare_cached(&SQL)?
            .query_row([id], |r| {
                let mut indexed = Vec::with_capacity(RECORD_INDEXED.len());
                for i in 0..RECORD_INDEXED.len() {
                    indexed.push(r.get::<_, rusqlite::types::Value>(3 + i)?);
                }
                Ok(HeldRow {
                    last_seq: r.get(0)?,
                    tail: r.get(1)?,
                    counted: r.get(2)?,
                    indexed,
                })
            })
            .optional()?)
    }

    /// Rewrites a stored record's row, naming in the `UPDATE` only the indexed columns whose
    /// value changes. SQLite deletes and reinserts a row's entry in every index on a column
    /// an `UPDATE` names, equal values or not: a peer's edit to a hundred opinions, naming
    /// them all, wrote 219 pages to the log, most of them index pages it put back as they were.
    fn update_row(
        &mut self,
        id: &str,
        held: &HeldRow,
        written: RecordWrite<'_>,
    ) -> Result<(), StoreError> {
        use rusqlite::types::Value;
        let RecordWrite {
            saved,
            tail,
            heads_hash,
            label,
            summary,
            route,
            counted,
            personal_claimed,
            indexed,
        } = written;
        let mut sql = String::from(
            "UPDATE records SET doc_tail = ?2, heads_hash = ?3, label = ?4, summary = ?5, route = ?6,
               counted = ?7, personal_claimed = max(personal_claimed, ?8)",
        );
        let mut values: Vec<Value> = vec![
            Value::Text(id.to_string()),
            Value::Integer(tail),
            Value::Blob(heads_hash.to_vec()),
            Value::Text(label.to_string()),
            Value::Text(summary.to_string()),
            Value::Text(route.to_string()),
            counted.map_or(Value::Null, Value::Text),
            Value::Integer(personal_claimed.into()),
        ];
        if let Some((doc, doc_seq)) = saved {
            values.push(Value::Blob(doc));
            values.push(Value::Integer(doc_seq));
            let n = values.len();
            sql.push_str(&format!(", doc = ?{}, doc_seq = ?{n}", n - 1));
        }
        for (column, new) in indexed {
            // Looked up by name, so a column missing from `RECORD_INDEXED` is always written.
            let old = RECORD_INDEXED
                .iter()
                .position(|c| *c == column)
                .map(|i| &held.indexed[i]);
            if old != Some(&new) {
                values.push(new);
                sql.push_str(&format!(", {column} = ?{}", values.len()));
            }
        }
        sql.push_str(" WHERE id = ?1");
        self.tx
            .prepare_cached(&sql)?
            .execute(rusqlite::params_from_iter(values))?;
        Ok(())
    }

    /// Stores the changes of a record that are new to this node, in the change sequence.
    /// Returns the position of the last one stored (`None` when all were held already) and how
    /// many were new.
    fn insert_changes(
        &mut self,
        id: &str,
        changes: &[RawChange],
        origin: Option<&RegionCode>,
    ) -> Result<(Option<i64>, i64), StoreError> {
        let mut last_seq: Option<i64> = None;
        let mut new_rows = 0i64;
        let mut insert = self.tx.prepare_cached(
            "INSERT INTO changes (record_id, hash, bytes, origin) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(record_id, hash) DO NOTHING",
        )?;
        for change in changes {
            let inserted = insert.execute(params![
                id,
                change.hash().as_ref(),
                change.raw_bytes(),
                origin.map(|o| o.as_str())
            ])?;
            if inserted > 0 {
                last_seq = Some(self.tx.last_insert_rowid());
                new_rows += 1;
            }
        }
        Ok((last_seq, new_rows))
    }

    /// The stored row of record `id` as a write knows it: none if known absent, the row the
    /// caller read in this transaction, or else read here, once.
    fn held(&self, id: &str, prior: Prior) -> Result<Option<HeldRow>, StoreError> {
        match prior {
            Prior::Absent => Ok(None),
            Prior::Stored(held) => Ok(Some(held)),
            Prior::Unknown => self.held_row(id),
        }
    }
}

fn special_committees(conn: &Connection) -> Result<Vec<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT name FROM special_committees ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::office;
    use crate::record::Body;
    use crate::record::group::{Venue, VenueKind};

    /// The bundled SQLite keeps no memory statistics (`.cargo/config.toml`): with them, every
    /// allocation SQLite makes anywhere in the process takes one global mutex, which a node's
    /// store thread, readers and checkpointer all wait on.
    #[test]
    fn the_bundled_sqlite_keeps_no_memory_statistics() {
        let conn = Connection::open_in_memory().unwrap();
        let options: Vec<String> = conn
            .prepare("SELECT compile_options FROM pragma_compile_options")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "SQLite was built with its memory statistics: {options:?}"
        );
    }

    fn venue(name: &str, region: RegionCode) -> Venue {
        Venue {
            name: name.into(),
            kind: VenueKind::Station,
            region,
            address: String::new(),
        }
    }

    fn township() -> RegionCode {
        RegionCode::parse("region", "330411101000").unwrap()
    }

    #[test]
    fn a_failed_write_keeps_nothing_and_a_reopened_store_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::init(dir.path(), township(), "王店镇人大主席团", None).unwrap();
        let kept = store
            .write(|tx| office::add_venue(tx, "clerk", venue("联络站", township())))
            .unwrap();
        let before = store.stats().unwrap().changes;
        let err = store
            .write(|tx| {
                office::add_venue(tx, "clerk", venue("第二联络站", township()))?;
                Err::<(), _>(StoreError::Invalid(ValidationError::new(
                    "name",
                    "forced failure",
                )))
            })
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)));
        assert_eq!(store.stats().unwrap().changes, before);
        drop(store);

        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.identity().region, township());
        let rows = store
            .list(&ListQuery {
                kind: Some(RecordKind::Venue),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), vec![kept.id]);
        store.integrity_check().unwrap();
        assert!(matches!(
            Store::init(dir.path(), township(), "again", None),
            Err(StoreError::AlreadyInitialised(_))
        ));
    }

    /// A cached statement keeps its plan from one use to the next, on the writer's connection
    /// and a reader's, whatever was written between.
    #[test]
    fn cached_statements_are_not_planned_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::init(dir.path(), township(), "王店镇人大主席团", None).unwrap();
        let reader = store.open_reader().unwrap();
        let sql = "SELECT delegate_id, role FROM record_people WHERE record_id = ?1 ORDER BY delegate_id, role";
        for round in 0..3 {
            let venue = venue(&format!("实践点{round}"), township());
            let id = store
                .write(|tx| office::add_venue(tx, "clerk", venue))
                .unwrap()
                .id
                .to_string();
            for conn in [&store.conn, &reader.conn] {
                let mut stmt = conn.prepare_cached(sql).unwrap();
                assert_eq!(stmt.query_map([&id], |_| Ok(())).unwrap().count(), 0);
            }
        }
        for conn in [&store.conn, &reader.conn] {
            let stmt = conn.prepare_cached(sql).unwrap();
            assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
        }
    }

    /// Bookkeeping is committed without a flush and every other write with one, also after a
    /// bookkeeping write that failed; what bookkeeping committed is kept.
    #[test]
    fn only_bookkeeping_is_committed_without_a_flush() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::init(dir.path(), township(), "王店镇人大主席团", None).unwrap();
        let level = |tx: &mut WriteTx<'_>| -> Result<i64, StoreError> {
            Ok(tx.tx.query_row("PRAGMA synchronous", [], |r| r.get(0))?)
        };
        let (normal, full) = (1, 2);
        assert_eq!(store.write(level).unwrap(), full);
        assert_eq!(store.write_unflushed(level).unwrap(), normal);
        assert_eq!(store.write(level).unwrap(), full);
        let failed = store.write_unflushed(|tx| {
            level(tx)?;
            Err::<(), _>(StoreError::Closed)
        });
        assert!(matches!(failed, Err(StoreError::Closed)));
        assert_eq!(store.write(level).unwrap(), full);

        let county = RegionCode::parse("region", "330411000000").unwrap();
        store
            .write_unflushed(|tx| tx.record_acked(&county, 7, 1, 1, 100))
            .unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let peer = store
            .peers()
            .unwrap()
            .into_iter()
            .find(|p| p.peer == county);
        assert_eq!(peer.map(|p| p.acked_seq), Some(7));
    }

    /// Only a write that added changes wakes what waits for new records: a link's note of what
    /// its peer acknowledged does not send every live link on the node to read again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_writes_that_add_changes_wake_the_links() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(dir.path(), township(), "王店镇人大主席团", None).unwrap();
        let handle = StoreHandle::spawn(store).unwrap();
        let last_seq = || handle.call(|s| s.last_seq());
        let mut written = handle.subscribe();
        let start = *written.borrow_and_update();
        assert_eq!(start, last_seq().await.unwrap());

        let county = RegionCode::parse("region", "330411000000").unwrap();
        handle
            .write(move |tx| tx.record_acked(&county, 0, 0, 0, 0))
            .await
            .unwrap();
        assert_eq!(
            handle.call(move |s| Ok(s.peers()?.len())).await.unwrap(),
            1,
            "the note was written"
        );
        assert!(
            !written.has_changed().unwrap(),
            "a write of no change woke the links"
        );

        handle
            .write(|tx| office::add_venue(tx, "clerk", venue("实践点", township())))
            .await
            .unwrap();
        assert!(written.has_changed().unwrap());
        let now = *written.borrow_and_update();
        assert!(now > start);
        assert_eq!(now, last_seq().await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_tasks_write_through_one_handle() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(dir.path(), township(), "王店镇人大主席团", None).unwrap();
        let handle = StoreHandle::spawn(store).unwrap();
        let mut tasks = Vec::new();
        for i in 0..40 {
            let handle = handle.clone();
            tasks.push(tokio::spawn(async move {
                handle
                    .write(move |tx| {
                        office::add_venue(tx, "clerk", venue(&format!("实践点{i}"), township()))
                    })
                    .await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let stats = handle.call(|s| s.stats()).await.unwrap();
        let venues = stats
            .records_by_kind
            .iter()
            .find(|(k, _)| *k == RecordKind::Venue)
            .unwrap()
            .1;
        assert_eq!(venues, 40);
        // The four duty rules a new congress is seeded with come first.
        assert_eq!(stats.changes, 44, "one automerge change per created record");
        assert_eq!(stats.last_seq, 44);
    }

    #[test]
    fn a_record_written_many_times_keeps_loading_as_its_tail_is_compacted() {
        use crate::record::activity::{Activity, ActivityKind};
        use crate::record::delegate::{Delegate, Gender};
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::init(dir.path(), township(), "王店镇人大主席团", None).unwrap();
        let mut delegates = Vec::new();
        for i in 0..40 {
            let delegate = Delegate {
                name: format!("代表{i}"),
                gender: Gender::Female,
                birth_year: None,
                ethnicity: None,
                party: None,
                occupation: "农民".into(),
                station: None,
                merged_into: None,
                merge_route: None,
                mandates: std::collections::BTreeMap::new(),
            };
            let seat = office::SeatDraft {
                term: 17,
                constituency: "第一选区".into(),
                stations: Vec::new(),
            };
            delegates.push(
                store
                    .write(|tx| {
                        office::add_delegate(
                            tx,
                            "clerk",
                            delegate,
                            office::Contact::default(),
                            Some(seat),
                        )
                    })
                    .unwrap()
                    .id,
            );
        }
        let draft = office::ActivityDraft {
            activity: Activity {
                kind: ActivityKind::ActivityDay,
                date: chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
                topic: "代表活动日".into(),
                organiser: "王店镇人大主席团".into(),
                group: None,
                venue: None,
                participants: Default::default(),
                constituents_received: 0,
                outcome: String::new(),
            },
            participants: vec![],
        };
        let activity = store
            .write(|tx| office::add_activity(tx, "clerk", draft))
            .unwrap()
            .id;
        let tail = |store: &Store| -> i64 {
            store
                .conn
                .query_row(
                    "SELECT doc_tail FROM records WHERE id = ?1",
                    [activity.to_string()],
                    |r| r.get(0),
                )
                .unwrap()
        };
        let mut tails = Vec::new();
        for d in &delegates {
            store
                .write(|tx| office::sign_in(tx, &activity, &[*d]))
                .unwrap();
            tails.push(tail(&store));
        }
        assert!(tails.iter().all(|t| *t <= MAX_DOC_TAIL), "{tails:?}");
        assert!(
            tails.contains(&0),
            "the tail was compacted at least once: {tails:?}"
        );
        let Body::Activity(a) = store.get(&activity).unwrap().body else {
            panic!("not an activity")
        };
        assert_eq!(a.participants.len(), 40);
    }

    /// A new congress is seeded with its first duty rules once; a node rebuilt from its parent
    /// is not, and never will be, so its own rules coming back are its only ones.
    #[test]
    fn duty_rules_are_seeded_once_and_never_at_a_rebuilt_node() {
        let county = RegionCode::parse("region", "330411000000").unwrap();
        let fresh = tempfile::tempdir().unwrap();
        let mut store = Store::init(fresh.path(), county, "秀洲区人大常委会", None).unwrap();
        assert_eq!(store.quota_rules(&county).unwrap().len(), 4);
        let again = store
            .write(|tx| tx.seed_quota_rules(QuotaRules::default()))
            .unwrap();
        assert_eq!(again, 0);

        let rebuilt = tempfile::tempdir().unwrap();
        Store::rebuild(
            rebuilt.path(),
            Some(county),
            Some("秀洲区人大常委会"),
            Some("127.0.0.1:7700"),
        )
        .unwrap();
        let mut store = Store::open(rebuilt.path()).unwrap();
        assert!(store.quota_rules(&county).unwrap().is_empty());
        let seeded = store
            .write(|tx| tx.seed_quota_rules(QuotaRules::default()))
            .unwrap();
        assert_eq!(
            seeded, 0,
            "the first rollup after the rebuild seeds nothing"
        );
        assert!(store.quota_rules(&county).unwrap().is_empty());
    }

    #[test]
    fn subtree_lists_use_the_code_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let county = RegionCode::parse("region", "330411000000").unwrap();
        let mut store = Store::init(dir.path(), county, "秀洲区人大常委会", None).unwrap();
        store
            .write(|tx| office::add_venue(tx, "clerk", venue("区代表之家", county)))
            .unwrap();
        let within = |code: &str| {
            store
                .list(&ListQuery {
                    kind: Some(RecordKind::Venue),
                    within: Some(RegionCode::parse("within", code).unwrap()),
                    ..Default::default()
                })
                .unwrap()
                .len()
        };
        assert_eq!(within("330411000000"), 1);
        assert_eq!(within("330400000000"), 1);
        assert_eq!(within("000000000000"), 1);
        assert_eq!(within("330411101000"), 0);
        assert_eq!(within("330402000000"), 0);
    }
}
