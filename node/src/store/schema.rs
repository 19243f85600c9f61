//! The SQLite schema and its migrations, versioned by `PRAGMA user_version`.

use rusqlite::Connection;

use super::StoreError;

/// Each entry moves the schema one version up; an entry is never edited once released.
const MIGRATIONS: &[&str] = &[
    // 1: the node, its records, the local change sequence and the query projections.
    r#"
    CREATE TABLE node (
        singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
        region      TEXT NOT NULL,
        name        TEXT NOT NULL,
        parent_addr TEXT,
        actor       BLOB NOT NULL,
        created_at  TEXT NOT NULL
    );

    -- One row per record: the header as columns (routing reads these without loading the
    -- document), the saved automerge document, and the projection columns lists filter on.
    CREATE TABLE records (
        id          TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,
        home        TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        created_by  TEXT NOT NULL,
        doc         BLOB NOT NULL,
        last_seq    INTEGER NOT NULL,
        label       TEXT NOT NULL,
        status      TEXT,
        occurred_on TEXT,
        due_on      TEXT,
        subject     TEXT,
        summary     TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX records_kind_status   ON records(kind, status);
    CREATE INDEX records_kind_home     ON records(kind, home);
    CREATE INDEX records_kind_occurred ON records(kind, occurred_on);
    CREATE INDEX records_due           ON records(due_on) WHERE due_on IS NOT NULL;
    CREATE INDEX records_last_seq      ON records(last_seq);
    CREATE INDEX records_subject       ON records(subject) WHERE subject IS NOT NULL;

    -- The local change sequence: every automerge change this node holds, in the order it came
    -- to hold it. Sync checkpoints are positions in this sequence. `origin` is the peer region a
    -- change arrived from, NULL for changes written here.
    CREATE TABLE changes (
        seq       INTEGER PRIMARY KEY AUTOINCREMENT,
        record_id TEXT NOT NULL,
        hash      BLOB NOT NULL UNIQUE,
        bytes     BLOB NOT NULL,
        origin    TEXT
    );
    CREATE INDEX changes_record ON changes(record_id, seq);

    -- Which delegates a record involves, for duty records (履职档案) and per-delegate lists.
    CREATE TABLE record_people (
        record_id   TEXT NOT NULL,
        delegate_id TEXT NOT NULL,
        role        TEXT NOT NULL,
        PRIMARY KEY (record_id, delegate_id, role)
    ) WITHOUT ROWID;
    CREATE INDEX record_people_delegate ON record_people(delegate_id);
    "#,
    // 2: sync. Route hints beside the header, and one row per peer with its checkpoints.
    r#"
    ALTER TABLE records ADD COLUMN route TEXT NOT NULL DEFAULT '{}';

    -- One row per sync peer (the parent and each child). `received_seq` is the position in the
    -- peer's change sequence up to which this node has applied everything the peer sent; it is
    -- written in the same transaction as the changes it covers. `acked_seq` is the position in
    -- this node's sequence the peer has acknowledged.
    CREATE TABLE sync_peers (
        peer          TEXT PRIMARY KEY,
        received_seq  INTEGER NOT NULL DEFAULT 0,
        acked_seq     INTEGER NOT NULL DEFAULT 0,
        last_success  TEXT,
        last_error    TEXT,
        records_in    INTEGER NOT NULL DEFAULT 0,
        records_out   INTEGER NOT NULL DEFAULT 0,
        changes_in    INTEGER NOT NULL DEFAULT 0,
        changes_out   INTEGER NOT NULL DEFAULT 0,
        bytes_in      INTEGER NOT NULL DEFAULT 0,
        bytes_out     INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    "#,
    // 3: restores. `node.restore_id` is set by `renda restore`; a link resends everything both
    // ways until that peer's `resynced_restore` matches it.
    r#"
    ALTER TABLE node ADD COLUMN restore_id TEXT;
    ALTER TABLE sync_peers ADD COLUMN resynced_restore TEXT;
    "#,
    // 4: a record's stored document is a full save followed by the change chunks appended since
    // (automerge loads both); `doc_tail` counts those chunks so the store compacts now and then.
    r#"
    ALTER TABLE records ADD COLUMN doc_tail INTEGER NOT NULL DEFAULT 0;
    "#,
    // 5: a hash of each record's heads, for subtree digests.
    r#"
    ALTER TABLE records ADD COLUMN heads_hash BLOB;
    "#,
    // 6: a record's document is its last full save (`doc`, empty if it never had one) followed
    // by its changes after `doc_seq` in the change table, which holds them anyway; `doc_tail`
    // counts those changes. Documents saved before this hold all their changes already.
    r#"
    ALTER TABLE records ADD COLUMN doc_seq INTEGER NOT NULL DEFAULT 0;
    UPDATE records SET doc_seq = last_seq, doc_tail = 0;
    "#,
    // 7: records of a kind in id order (the primary key follows every index entry), so a list
    // of a kind walks its records in page order and stops after a page.
    r#"
    CREATE INDEX records_kind ON records(kind);
    "#,
    // 8: changes a peer sent that this node refused (who sent them, for which record, which
    // rule), kept for audit. The refused changes themselves are never stored.
    r#"
    CREATE TABLE audit (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        at        TEXT NOT NULL,
        peer      TEXT NOT NULL,
        record_id TEXT NOT NULL,
        kind      TEXT NOT NULL,
        rule      TEXT NOT NULL,
        reason    TEXT NOT NULL,
        changes   INTEGER NOT NULL
    );
    -- Per link: records this node refused from the peer, records the peer refused from this
    -- node, and the peer's word on the last one it refused (so the sender can see it too).
    ALTER TABLE sync_peers ADD COLUMN refused_in INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sync_peers ADD COLUMN refused_out INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sync_peers ADD COLUMN last_refusal TEXT;
    "#,
    // 9: credentials of the local API and the dashboard. Only a hash of each token is kept.
    r#"
    CREATE TABLE credentials (
        name       TEXT PRIMARY KEY,
        role       TEXT NOT NULL,
        token_hash BLOB NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    ) WITHOUT ROWID;
    "#,
    // 10: the hash of the change at `received_seq` in the peer's sequence, as the peer named it.
    // The node names it back in its Hello, so a peer restored from a copy of its files, which
    // holds another change (or none) there, can tell the checkpoint is not about its history.
    // `resync_owed`: this node found the peer's checkpoint of its sequence untrustworthy (its
    // files were copied back, its log lost) and owes the peer a completed resync.
    // `node.link_timeout_secs`: the running node's link timeout, so `renda status` beside it
    // judges a stalled link by the same measure.
    r#"
    ALTER TABLE sync_peers ADD COLUMN received_hash BLOB;
    ALTER TABLE sync_peers ADD COLUMN resync_owed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE node ADD COLUMN link_timeout_secs INTEGER;
    "#,
    // 11: dashboard sessions. The browser's cookie holds a random session id, never a
    // credential's token, so logging out or a session's expiry ends it; only its hash is kept.
    r#"
    CREATE TABLE sessions (
        id_hash    BLOB PRIMARY KEY,
        credential TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX sessions_expiry ON sessions (expires_at);
    "#,
    // 12: the values lists and rollups filter on, as columns the record model derives
    // (`FilterKeys`), so the store never reads inside a summary to find a record. Filled here
    // from the summaries the model derived when each row was written: the same values.
    r#"
    ALTER TABLE records ADD COLUMN tag TEXT;
    ALTER TABLE records ADD COLUMN addressed_to TEXT;
    ALTER TABLE records ADD COLUMN number INTEGER;
    ALTER TABLE records ADD COLUMN group_id TEXT;
    UPDATE records SET
        tag = CASE kind WHEN 'activity' THEN json_extract(summary, '$.kind')
                        WHEN 'suggestion' THEN json_extract(summary, '$.class') END,
        addressed_to = CASE kind WHEN 'suggestion' THEN json_extract(summary, '$.addressed_to') END,
        number = CASE kind WHEN 'suggestion' THEN json_extract(summary, '$.number') END,
        group_id = CASE kind WHEN 'activity' THEN json_extract(summary, '$.group') END;
    CREATE INDEX records_kind_tag ON records(kind, tag) WHERE tag IS NOT NULL;
    CREATE INDEX records_addressed ON records(addressed_to, number) WHERE addressed_to IS NOT NULL;
    CREATE INDEX records_group ON records(group_id, occurred_on) WHERE group_id IS NOT NULL;
    "#,
    // 13: the node's own counters, moved by each write of a record homed here in the same
    // transaction (`record::rollup::contribution`), so a rollup reads them instead of counting
    // every record. `records.counted` is the contribution a row made, to take off when it
    // changes. The counters are built from the rows on the first open after this step
    // (`node.counters_version`), and again whenever a release changes how records count.
    r#"
    CREATE TABLE own_counters (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;
    ALTER TABLE records ADD COLUMN counted TEXT;
    ALTER TABLE node ADD COLUMN counters_version INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX records_home_kind ON records(home, kind);
    "#,
    // 14: positions of changes a newer publication replaced. A rollup is published whole and
    // each publication replaces the record's stored history (`WriteTx::publish_rollup`), so
    // its earlier change rows are deleted; a peer may still name one of their positions as its
    // checkpoint of this node's sequence, and the hash kept here is what that claim is checked
    // against. Positions every peer has confirmed past (`sync_peers.confirmed_seq`: the end of
    // the last batch it acknowledged, which it stored with its checkpoint) are forgotten.
    r#"
    CREATE TABLE retired_changes (
        seq  INTEGER PRIMARY KEY,
        hash BLOB NOT NULL
    );
    ALTER TABLE sync_peers ADD COLUMN confirmed_seq INTEGER NOT NULL DEFAULT 0;
    "#,
    // 15: a kind's records in id order with their home beside each id, for a subtree's list
    // (`Store::list` with `within`): walking it stops after the page and skips the records of
    // other subtrees inside the index, where the `(kind, home)` index made SQLite sort every
    // record of the subtree for the first page.
    r#"
    CREATE INDEX records_kind_list ON records(kind, id, home);
    "#,
    // 16: the person a person record was merged into (`FilterKeys::merged_into`), so that
    // counts and duty records follow a merge without reading summaries. Filled here from the
    // summaries the model derived (no release before this one wrote a merge).
    r#"
    ALTER TABLE records ADD COLUMN merged_into TEXT;
    UPDATE records SET merged_into = json_extract(summary, '$.merged_into') WHERE kind = 'delegate';
    CREATE INDEX records_merged ON records(merged_into) WHERE merged_into IS NOT NULL;
    "#,
    // 17: whether this congress's first duty rules were seeded (`WriteTx::seed_quota_rules`).
    // A node from before rule records has not, and seeds them on its next rollup; a node
    // rebuilt from its parent has, so it waits for its own rules to come back instead of
    // making a second set.
    // And a group's kind (专业, 区域) as its `tag` (`FilterKeys::tag`), which says which duty
    // rules bind it; filled here from the summaries the model derived.
    r#"
    ALTER TABLE node ADD COLUMN quota_rules_seeded INTEGER NOT NULL DEFAULT 0;
    UPDATE records SET tag = json_extract(summary, '$.kind') WHERE kind = 'group';
    "#,
    // 18: the special committees (专门委员会) this node's congress has, which its 主席团 may refer
    // a motion to and which may propose one. Only the congress itself takes a motion's steps, so
    // the list is the node's own and is not synced.
    r#"
    CREATE TABLE special_committees (
        name     TEXT PRIMARY KEY,
        added_at TEXT NOT NULL
    );
    "#,
    // 19: personal accounts for the workbench: a credential may have a password (an argon2 PHC
    // string) staff log in with, and an admin may disable it and enable it again (revoking is
    // for good). And the forms the workbench applied, by the idempotency key each form carries,
    // so a form submitted twice applies once; the record it wrote is where the second
    // submission is sent.
    r#"
    ALTER TABLE credentials ADD COLUMN password_hash TEXT;
    ALTER TABLE credentials ADD COLUMN disabled_at TEXT;
    CREATE TABLE form_submissions (
        key        TEXT PRIMARY KEY,
        credential TEXT NOT NULL,
        record     TEXT,
        at         INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 20: the node's own secrets, made on first use and never synced: the key that signs the
    // QR codes of its activities and venues.
    r#"
    CREATE TABLE node_secrets (
        name  TEXT PRIMARY KEY,
        value BLOB NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 21: `records_kind_list` (15) walks a kind's records in id order as `records_kind` (7)
    // did, so every stored record kept an index entry no query needed.
    r#"
    DROP INDEX records_kind;
    "#,
    // 22: records of kinds a newer release added, stored as they came (`store::newer`), are
    // marked so they can be told apart and derived once the node is upgraded, and those not
    // sent to a peer whose protocol cannot carry them are noted (`held_back`); a program's
    // credential may be limited to a subtree (`within`); a sender's mark that a record is
    // personal, beyond what its kind says, is kept for good beside the route derived from the
    // record; and a record's route carries its personal-data flag, which routing obeys for
    // every kind (`RouteHints::personal`), so the personal records stored before it get the
    // flag.
    r#"
    ALTER TABLE records ADD COLUMN newer_kind INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE records ADD COLUMN personal_claimed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE credentials ADD COLUMN within TEXT;
    CREATE TABLE held_back (
        peer      TEXT NOT NULL,
        record_id TEXT NOT NULL,
        PRIMARY KEY (peer, record_id)
    ) WITHOUT ROWID;
    CREATE INDEX records_newer_kind ON records(kind) WHERE newer_kind = 1;
    UPDATE records SET route = json_set(route, '$.personal', json('true')) WHERE kind = 'personal';
    "#,
    // 23: when the node last took a backup and where it wrote it, and when its database was
    // last checked with what result, for `renda status`, the metrics and the fleet view; and
    // a program's credential that opens the Query API only (`api_only`).
    r#"
    ALTER TABLE credentials ADD COLUMN api_only INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE node ADD COLUMN last_backup_at TEXT;
    ALTER TABLE node ADD COLUMN last_backup_file TEXT;
    ALTER TABLE node ADD COLUMN last_check_at TEXT;
    ALTER TABLE node ADD COLUMN last_check_result TEXT;
    ALTER TABLE node ADD COLUMN certificate_not_after TEXT;
    CREATE TABLE renewals (
        child      TEXT NOT NULL,
        old_serial TEXT NOT NULL,
        new_serial TEXT NOT NULL,
        at         TEXT NOT NULL,
        not_after  TEXT NOT NULL
    );
    CREATE INDEX renewals_child ON renewals(child);
    "#,
    // 24: a change's hash is unique within its record rather than across the table. The
    // table-wide unique index kept entries in hash order, which is random: a peer's edit to a
    // hundred neighbouring records wrote some eighty of its pages, half of the commit, where an
    // index led by the record id keeps a record's changes together and the same edit writes a
    // few. A change's hash covers its record's id (in the first change) or changes of that
    // record (in its dependencies), so no change belongs to two records and the narrower rule
    // refuses nothing the old one allowed. SQLite drops a column's `UNIQUE` only with its
    // table, so the table is copied; its sequence counter is carried over, since positions of
    // deleted changes are never handed out again.
    r#"
    CREATE TABLE changes_next (
        seq       INTEGER PRIMARY KEY AUTOINCREMENT,
        record_id TEXT NOT NULL,
        hash      BLOB NOT NULL,
        bytes     BLOB NOT NULL,
        origin    TEXT
    );
    INSERT INTO changes_next (seq, record_id, hash, bytes, origin)
        SELECT seq, record_id, hash, bytes, origin FROM changes ORDER BY seq;
    DELETE FROM sqlite_sequence WHERE name = 'changes_next';
    INSERT INTO sqlite_sequence (name, seq)
        SELECT 'changes_next', seq FROM sqlite_sequence WHERE name = 'changes';
    DROP TABLE changes;
    ALTER TABLE changes_next RENAME TO changes;
    CREATE UNIQUE INDEX changes_record_hash ON changes(record_id, hash);
    "#,
    // 25: a record's changes are found by the unique index on `(record_id, hash)` alone. Its
    // entries carry each row's position, so the reads of one record's changes in order search
    // it by the record, skip the positions they do not want and sort the rest (in proportion to
    // the record's history, tens of microseconds for hundreds of changes); the index on
    // `(record_id, seq)` beside it cost every stored change one more b-tree entry and an edit's
    // commit one more page for each record it touched. A database made at 24 by a build
    // before this step has that index; 24 no longer builds it.
    r#"
    DROP INDEX IF EXISTS changes_record;
    "#,
];

/// The schema version a file is at, refused if a newer release wrote it (`SchemaTooNew`); it
/// only reads.
pub(crate) fn version_of(conn: &Connection) -> Result<usize, StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(StoreError::SchemaTooNew {
            found: version,
            supported: MIGRATIONS.len(),
        });
    }
    Ok(version)
}

/// The copies of the database at `db` taken before migrations, beside it, with the schema
/// version each holds: `renda.sqlite.schema-<version>.<when>.bak`.
#[cfg(test)]
pub(crate) fn backups(db: &std::path::Path) -> Vec<(usize, std::path::PathBuf)> {
    let prefix = format!(
        "{}.schema-",
        db.file_name().unwrap_or_default().to_string_lossy()
    );
    let dir = db.parent().unwrap_or(std::path::Path::new("."));
    let mut found: Vec<(usize, std::path::PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix(&prefix)?.strip_suffix(".bak")?;
            let version = rest.split('.').next()?.parse().ok()?;
            Some((version, entry.path()))
        })
        .collect();
    found.sort();
    found
}

/// Writes a consistent copy of the database beside it before a migration, named after the
/// schema version the copy holds and when it was taken ([`backups`]). Each migrating process
/// writes its own under a name of its own, and never replaces an earlier copy: an operator who
/// undid an upgrade and upgrades again keeps both. A copy that does not hold `start`, the
/// version this process found, was taken while another process migrated: that process wrote
/// the copy to go back to, and this one is dropped. Copies left half-written by a process that
/// died are removed.
fn back_up(conn: &Connection, db: &std::path::Path, start: usize) -> Result<(), StoreError> {
    remove_dead_partials(db);
    let io = |path: &std::path::Path, e: std::io::Error| {
        StoreError::Io(format!("{}: {e}", path.display()))
    };
    let now = chrono::Utc::now();
    let mut partial = db.as_os_str().to_os_string();
    partial.push(format!(
        ".backup-{}-{}.partial",
        std::process::id(),
        now.timestamp_nanos_opt().unwrap_or_default()
    ));
    let partial = std::path::PathBuf::from(partial);
    let copied = conn
        .execute("VACUUM INTO ?1", [partial.to_string_lossy()])
        .and_then(|_| {
            Connection::open_with_flags(&partial, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?
                .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        });
    let held = match copied {
        Ok(held) => usize::try_from(held).unwrap_or(usize::MAX),
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.into());
        }
    };
    if held != start {
        return std::fs::remove_file(&partial).map_err(|e| io(&partial, e));
    }
    let mut name = db.as_os_str().to_os_string();
    name.push(format!(
        ".schema-{held}.{}-{}.bak",
        now.format("%Y%m%dT%H%M%S%6fZ"),
        std::process::id()
    ));
    let backup = std::path::PathBuf::from(name);
    std::fs::rename(&partial, &backup).map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        io(&backup, e)
    })
}

/// Removes the half-written copies (`<db>.backup-<pid>-<nanos>.partial`) of processes that are
/// no longer running, each possibly as large as the database. Where the system cannot say
/// whether a process runs (no `/proc`), nothing is removed.
fn remove_dead_partials(db: &std::path::Path) {
    let prefix = format!(
        "{}.backup-",
        db.file_name().unwrap_or_default().to_string_lossy()
    );
    let dir = db.parent().unwrap_or(std::path::Path::new("."));
    let proc = std::path::Path::new("/proc");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(&prefix)
            .filter(|rest| rest.ends_with(".partial"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if proc.is_dir() && !proc.join(pid.to_string()).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Brings the schema up to this release's, one step per transaction: a process killed half-way
/// leaves the file at the last step it committed, and the next open carries on from there.
/// Before the first step on a file that held data (any version above 0), a consistent copy is
/// written beside it ([`back_up`]), so an upgrade can be undone by putting the copy back and
/// running the older release.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let start = version_of(conn)?;
    if start == MIGRATIONS.len() {
        return Ok(());
    }
    if start > 0
        && let Some(db) = conn
            .path()
            .filter(|p| !p.is_empty())
            .map(std::path::PathBuf::from)
    {
        back_up(conn, &db, start)?;
    }
    // Another process may be migrating the same file: a node starting for the first time while
    // an operator runs `renda status` on its directory. Each step takes the write lock first and
    // reads the version again under it, so a step another process has just committed is not run
    // twice (running it twice failed with "duplicate column" and stopped the node).
    loop {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version = version_of(&tx)?;
        let Some(sql) = MIGRATIONS.get(version) else {
            return Ok(());
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (version + 1) as i64)?;
        tx.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file a newer release migrated is refused by name of both versions, and not a byte of
    /// it changes: neither the schema nor a pragma is written.
    #[test]
    fn a_newer_database_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let region = crate::region::RegionCode::parse("region", "330411101000").unwrap();
        drop(crate::store::Store::init(dir.path(), region, "王店镇人大主席团", None).unwrap());
        let db = dir.path().join(crate::store::DB_FILE);
        let newer = MIGRATIONS.len() + 3;
        {
            let conn = Connection::open(&db).unwrap();
            conn.pragma_update(None, "user_version", newer as i64)
                .unwrap();
            // Checkpointed and back to the rollback journal, so the main file is all of it
            // and opening it in WAL mode would rewrite its header.
            conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
        }
        let before = std::fs::read(&db).unwrap();
        let refused = crate::store::Store::open(dir.path()).unwrap_err();
        match &refused {
            StoreError::SchemaTooNew { found, supported } => {
                assert_eq!((*found, *supported), (newer, MIGRATIONS.len()));
            }
            other => panic!("expected SchemaTooNew, got {other}"),
        }
        let message = refused.to_string();
        assert!(
            message.contains(&newer.to_string()) && message.contains(&MIGRATIONS.len().to_string()),
            "{message}"
        );
        assert!(std::fs::read(&db).unwrap() == before, "the file changed");
        assert!(
            !dir.path()
                .join(format!("{}-wal", crate::store::DB_FILE))
                .exists()
        );
    }

    /// Migrating a file that held data first writes a whole copy of it beside it, at the
    /// version it had.
    #[test]
    fn a_copy_is_taken_before_migrating() {
        let dir = tempfile::tempdir().unwrap();
        let region = crate::region::RegionCode::parse("region", "330411101000").unwrap();
        drop(crate::store::Store::init(dir.path(), region, "王店镇人大主席团", None).unwrap());
        let db = dir.path().join(crate::store::DB_FILE);
        let last = MIGRATIONS.len() - 1;
        // The last step marked undone, so that opening runs it again, which it can: it drops
        // an index if it is there.
        let undo_last_step = || {
            let conn = Connection::open(&db).unwrap();
            conn.pragma_update(None, "user_version", last as i64)
                .unwrap();
        };
        undo_last_step();
        drop(crate::store::Store::open(dir.path()).unwrap());
        let copies = backups(&db);
        assert_eq!(copies.len(), 1, "{copies:?}");
        assert_eq!(copies[0].0, last);
        let copy = Connection::open(&copies[0].1).unwrap();
        let version: i64 = copy
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version as usize, last);
        let node: i64 = copy
            .query_row("SELECT count(*) FROM node", [], |r| r.get(0))
            .unwrap();
        assert_eq!(node, 1);
        let conn = Connection::open(&db).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version as usize, MIGRATIONS.len());
        drop(conn);
        drop(copy);

        // Undone and upgraded again: the first copy is kept beside the second.
        undo_last_step();
        drop(crate::store::Store::open(dir.path()).unwrap());
        let copies = backups(&db);
        assert_eq!(copies.len(), 2, "{copies:?}");
        assert!(copies.iter().all(|(version, _)| *version == last));

        // A half-written copy of a process that died is removed on the next migration; one of
        // a process still running (this one) is left to it.
        let partial = |pid: u32| {
            let mut name = db.as_os_str().to_os_string();
            name.push(format!(".backup-{pid}-1.partial"));
            std::path::PathBuf::from(name)
        };
        let (dead, alive) = (partial(4_000_000_000), partial(std::process::id()));
        std::fs::write(&dead, b"half").unwrap();
        std::fs::write(&alive, b"half").unwrap();
        undo_last_step();
        drop(crate::store::Store::open(dir.path()).unwrap());
        assert!(!dead.exists() || !std::path::Path::new("/proc").is_dir());
        assert!(alive.exists());
        assert_eq!(backups(&db).len(), 3);
    }

    /// Step 24 copies the change table to drop its table-wide unique hash: every row keeps its
    /// position and bytes, a position handed out before (a deleted row's too) is not handed out
    /// again, and a change is still stored once per record.
    #[test]
    fn the_change_table_copy_keeps_every_position() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("changes.sqlite")).unwrap();
        for sql in &MIGRATIONS[..23] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 23).unwrap();
        type Row = (i64, String, Vec<u8>, Vec<u8>, Option<String>);
        let rows = |conn: &Connection| -> Vec<Row> {
            conn.prepare("SELECT seq, record_id, hash, bytes, origin FROM changes ORDER BY seq")
                .unwrap()
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        for (record, hash, origin) in [
            ("a", 1u8, None),
            ("a", 2, Some("330411101000")),
            ("b", 3, None),
            ("b", 4, None),
        ] {
            conn.execute(
                "INSERT INTO changes (record_id, hash, bytes, origin) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![record, [hash; 32], vec![hash; 5], origin],
            )
            .unwrap();
        }
        // The last position deleted, as a replaced publication's are.
        conn.execute("DELETE FROM changes WHERE seq = 4", [])
            .unwrap();
        let before = rows(&conn);

        migrate(&mut conn).unwrap();
        assert_eq!(version_of(&conn).unwrap(), MIGRATIONS.len());
        assert_eq!(rows(&conn), before);
        let insert = |record: &str, hash: u8| {
            conn.execute(
                "INSERT INTO changes (record_id, hash, bytes, origin) VALUES (?1, ?2, ?3, NULL)
                 ON CONFLICT(record_id, hash) DO NOTHING",
                rusqlite::params![record, [hash; 32], vec![hash; 5]],
            )
            .unwrap()
        };
        assert_eq!(insert("b", 5), 1);
        assert_eq!(
            conn.last_insert_rowid(),
            5,
            "position 4 was handed out before"
        );
        assert_eq!(insert("a", 2), 0, "a record holds a change once");
        let unique_on_hash_alone: i64 = conn
            .query_row(
                "SELECT count(*) FROM pragma_index_list('changes') il
                 WHERE il.\"unique\" AND (SELECT group_concat(name) FROM pragma_index_info(il.name)) = 'hash'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(unique_on_hash_alone, 0);
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }

    /// Step 25 drops the index on `(record_id, seq)`: every statement the store runs on one
    /// record's changes (`store::record_changes`) searches the unique index on
    /// `(record_id, hash)` instead of scanning the change table.
    #[test]
    fn a_records_changes_are_found_by_the_unique_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM pragma_index_list('changes') ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(indexes, ["changes_record_hash"]);
        for sql in super::super::record_changes::EVERY {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(
                    rusqlite::params_from_iter(["r", "0"].iter().take(sql.matches('?').count())),
                    |r| r.get(3),
                )
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                plan.iter()
                    .any(|step| step.contains("changes_record_hash (record_id=?)")),
                "{sql}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|step| step.starts_with("SCAN")),
                "{sql}: {plan:?}"
            );
        }
    }

    /// Two processes opening a new database at once (here two connections on two threads,
    /// many times over) both end with every migration applied once, and neither fails.
    #[test]
    fn connections_migrating_one_file_at_once_both_succeed() {
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("race.sqlite");
            let open = |path: std::path::PathBuf| {
                std::thread::spawn(move || {
                    let mut conn = Connection::open(&path).unwrap();
                    conn.busy_timeout(std::time::Duration::from_secs(10))
                        .unwrap();
                    migrate(&mut conn)
                })
            };
            let (a, b) = (open(path.clone()), open(path.clone()));
            for result in [a.join().unwrap(), b.join().unwrap()] {
                assert!(result.is_ok(), "round {round}: {result:?}");
            }
            let conn = Connection::open(&path).unwrap();
            let version: i64 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(version as usize, MIGRATIONS.len());
        }
    }
}
