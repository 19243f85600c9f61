//! A node killed while it migrates its database opens again and finishes the migration, with
//! nothing lost: a township's file is taken back to schema 11, and `renda status` (which
//! migrates on open) is killed with SIGKILL after a delay that grows a millisecond or two each
//! round, until it finishes on its own. After every kill the file opens, reaches the latest
//! schema, holds every record with its derived columns and counters sound. Random jitter on the
//! delays: the seed is printed, `RENDA_SEED=<n>` replays it.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Node, WANGDIAN};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn schema_version(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .expect("open")
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("read the schema version")
}

/// The schema version as a reader sees it, or `None` where a process killed while switching the
/// file to WAL left a journal that only a writer may roll back (`Store::open` must).
fn schema_version_read_only(db: &Path) -> Option<i64> {
    let read = || {
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?
            .query_row("PRAGMA user_version", [], |r| r.get(0))
    };
    match read() {
        Ok(version) => Some(version),
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ReadOnly => {
            None
        }
        Err(e) => panic!("read the schema version: {e}"),
    }
}

/// Removes the database and everything SQLite and the migration keep beside it.
fn remove_database(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("list the data directory") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with(renda_node::store::DB_FILE) {
            std::fs::remove_file(&path).expect("remove");
        }
    }
}

#[test]
fn a_migration_killed_half_way_finishes_on_the_next_open() {
    let seed: u64 = std::env::var("RENDA_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("migration kill seed: {seed} (replay with RENDA_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);

    let latest = {
        let fresh = Node::init(WANGDIAN, "王店镇人大主席团");
        schema_version(&fresh.db())
    };
    let node = Node::init(WANGDIAN, "王店镇人大主席团");
    node.ok(&["debug", "write-loop", "--count", "1500"]);
    let records = |db: &Path| -> i64 {
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row("SELECT count(*) FROM records", [], |r| r.get(0))
            .unwrap()
    };
    let written = records(&node.db());
    assert!(written >= 1500, "{written} records");
    {
        let conn = rusqlite::Connection::open(node.db()).unwrap();
        common::downgrade_to_schema_11(&conn);
        // Everything into the main file, so one copy of it is the whole old database.
        conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    }
    let old = node.path().with_extension("schema-11");
    std::fs::copy(node.db(), &old).unwrap();

    let mut delay_ms = 0u64;
    let mut halfway = Vec::new();
    let mut hot_journals = 0;
    loop {
        remove_database(node.path());
        std::fs::copy(&old, node.db()).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_renda"))
            .arg("status")
            .env("RENDA_DATA_DIR", node.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn renda status");
        std::thread::sleep(Duration::from_millis(delay_ms));
        let finished = child.try_wait().expect("poll the child").is_some();
        let _ = child.kill();
        child.wait().expect("reap the child");
        let at = schema_version_read_only(&node.db());
        if let Some(at) = at
            && at > 11
            && at < latest
        {
            halfway.push(at);
        }
        hot_journals += usize::from(at.is_none());

        let store = renda_node::store::Store::open(node.path())
            .unwrap_or_else(|e| panic!("killed after {delay_ms} ms at schema {at:?}: {e}"));
        assert_eq!(schema_version(&node.db()), latest, "after {delay_ms} ms");
        assert_eq!(records(&node.db()), written, "after {delay_ms} ms");
        common::assert_store_sound(&store, &format!("after {delay_ms} ms"));
        drop(store);
        if finished || delay_ms > 5_000 {
            break;
        }
        delay_ms += rng.random_range(1..=2);
    }
    println!(
        "killed between steps at schemas {halfway:?}; {hot_journals} kills left a journal to roll back"
    );
    assert!(
        !halfway.is_empty(),
        "no kill landed between two steps of the migration (seed {seed})"
    );
}
