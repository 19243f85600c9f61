//! Shared helpers for the multi-process tests: a node in a temporary data directory, driven
//! through the real `renda` binary.

#![allow(dead_code)]

pub mod browser;
pub mod data;
pub mod fed;
pub mod http;
pub mod peer;
pub mod procs;
pub mod proxy;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

pub const WANGDIAN: &str = "330411101000";
pub const XIUZHOU: &str = "330411000000";

pub struct Node {
    _dir: TempDir,
    pub data: PathBuf,
}

impl Node {
    /// An initialised node for `region`.
    pub fn init(region: &str, name: &str) -> Node {
        let node = Node::empty();
        node.ok(&["init", "--region", region, "--name", name]);
        node
    }

    /// A data directory with no node in it yet.
    pub fn empty() -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        Node { _dir: dir, data }
    }

    pub fn cmd(&self) -> Command {
        let mut cmd = Command::cargo_bin("renda").expect("renda binary");
        cmd.env("RENDA_DATA_DIR", &self.data)
            .env("RENDA_USER", "测试员")
            .env_remove("RENDA_LOG");
        cmd
    }

    /// Runs a command that must succeed and returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().expect("run renda");
        assert!(
            out.status.success(),
            "renda {args:?} failed with {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs a command that creates a record and returns the new id.
    pub fn create(&self, args: &[&str]) -> String {
        let out = self.ok(args);
        let id = out.trim().to_string();
        assert_eq!(id.len(), 26, "expected a record id, got {out:?}");
        id
    }

    /// Runs a command with `--json` and parses its output.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all)).expect("valid JSON")
    }

    /// Runs a command that must fail with `code`; returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.cmd().args(args).output().expect("run renda");
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(
            out.status.code(),
            Some(code),
            "renda {args:?}: stderr {stderr}"
        );
        assert!(
            !stderr.contains("panicked"),
            "renda {args:?} panicked: {stderr}"
        );
        stderr
    }

    /// How many changes the node holds: a write that was refused must not move it.
    pub fn change_count(&self) -> u64 {
        self.json(&["status"])["store"]["changes"]
            .as_u64()
            .expect("change count")
    }

    pub fn db(&self) -> PathBuf {
        self.data.join("renda.sqlite")
    }

    /// Starts `renda run --listen` on a free loopback port and returns the process and the
    /// address it listens on, read from its banner.
    pub fn run_listening(&self) -> (std::process::Child, String) {
        use std::io::{BufRead, BufReader};
        use std::process::Stdio;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_renda"))
            .args(["run", "--listen", "127.0.0.1:0"])
            .env("RENDA_DATA_DIR", self.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start renda run");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read the banner");
        let addr = line
            .split("正在 ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        (child, addr)
    }

    pub fn path(&self) -> &Path {
        &self.data
    }
}

/// Registers a township delegate and returns the id.
pub fn delegate(node: &Node, name: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "delegate",
        "add",
        "--name",
        name,
        "--gender",
        "女",
        "--occupation",
        "村民委员会主任",
        "--term",
        "17",
        "--constituency",
        "第七选区",
    ];
    args.extend_from_slice(extra);
    node.create(&args)
}

/// `n` distinct ports that are free now, below the kernel's ephemeral range (32768 and up on
/// Linux). A port the kernel hands out for `bind(0)` is closed again before the node binds it,
/// and any other process's `bind(0)` or outgoing connection may take it in between (a node then
/// fails to start and the federation never completes); ports below the range are handed out by
/// no one.
pub fn free_ports(n: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    while ports.len() < n {
        let port = 20_000 + rand::random::<u16>() % 12_000;
        if !ports.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
        }
    }
    ports
}

/// Fails unless every row of `store` holds the columns its document derives and the own
/// counters equal a recount of its records; `what` names the store in the message.
pub fn assert_store_sound(store: &renda_node::store::Store, what: &str) {
    assert_eq!(
        store.derived_mismatches().unwrap(),
        Vec::<String>::new(),
        "{what}: columns differ from the documents"
    );
    assert_eq!(
        store
            .verify_own_counters(renda_node::calendar::today())
            .unwrap(),
        Vec::<String>::new(),
        "{what}: own counters differ from the records"
    );
}

/// Turns a database this release wrote back into the file schema version 11 left: no filter
/// columns (nor the own counters of 13, nor the retired positions of 14, nor the merge column
/// of 16, nor the seed flag of 17, nor the committees of 18, nor the accounts and applied forms
/// of 19, nor the secrets of 20, nor the newer-kind mark of 22), with the kind index that 21
/// drops and the change table's hash unique across the table, as before 24. Opening it again
/// runs every migration from 12 on.
pub fn downgrade_to_schema_11(conn: &rusqlite::Connection) {
    conn.execute_batch(
        "CREATE TABLE changes_before (
             seq       INTEGER PRIMARY KEY AUTOINCREMENT,
             record_id TEXT NOT NULL,
             hash      BLOB NOT NULL UNIQUE,
             bytes     BLOB NOT NULL,
             origin    TEXT
         );
         INSERT INTO changes_before SELECT seq, record_id, hash, bytes, origin FROM changes ORDER BY seq;
         DELETE FROM sqlite_sequence WHERE name = 'changes_before';
         INSERT INTO sqlite_sequence (name, seq) SELECT 'changes_before', seq FROM sqlite_sequence WHERE name = 'changes';
         DROP TABLE changes; ALTER TABLE changes_before RENAME TO changes;
         CREATE INDEX changes_record ON changes(record_id, seq);
         ALTER TABLE credentials DROP COLUMN api_only; ALTER TABLE node DROP COLUMN last_backup_at;
         ALTER TABLE node DROP COLUMN last_backup_file; ALTER TABLE node DROP COLUMN last_check_at;
         ALTER TABLE node DROP COLUMN last_check_result; ALTER TABLE node DROP COLUMN certificate_not_after; DROP TABLE renewals;
         DROP INDEX records_newer_kind; ALTER TABLE records DROP COLUMN newer_kind;
         ALTER TABLE records DROP COLUMN personal_claimed; DROP TABLE held_back;
         ALTER TABLE credentials DROP COLUMN within;
         DROP TABLE node_secrets; DROP TABLE form_submissions;
         ALTER TABLE credentials DROP COLUMN password_hash; ALTER TABLE credentials DROP COLUMN disabled_at;
         DROP TABLE special_committees; ALTER TABLE node DROP COLUMN quota_rules_seeded;
         DROP INDEX records_merged; ALTER TABLE records DROP COLUMN merged_into;
         DROP INDEX records_kind_list; CREATE INDEX records_kind ON records(kind);
         DROP TABLE retired_changes; ALTER TABLE sync_peers DROP COLUMN confirmed_seq;
         DROP TABLE own_counters; DROP INDEX records_home_kind;
         ALTER TABLE records DROP COLUMN counted; ALTER TABLE node DROP COLUMN counters_version;
         DROP INDEX records_kind_tag; DROP INDEX records_addressed; DROP INDEX records_group;
         ALTER TABLE records DROP COLUMN tag; ALTER TABLE records DROP COLUMN addressed_to;
         ALTER TABLE records DROP COLUMN number; ALTER TABLE records DROP COLUMN group_id;
         PRAGMA user_version = 11;",
    )
    .expect("downgrade to schema 11");
}

/// A child process killed when dropped, so a test that fails half-way leaves no `renda run`
/// behind to write into a removed directory or hold a port.
pub struct KillOnDrop(pub std::process::Child);

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
