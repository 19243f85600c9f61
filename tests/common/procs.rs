//! Nodes as separate processes: the `renda` binary run as an operator or a clerk would, and
//! `renda run --config` processes that a test kills with SIGKILL.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_renda");

pub fn renda(args: &[&str], data: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("RENDA_DATA_DIR", data)
        .env("RENDA_USER", "测试员")
        .env_remove("RENDA_LOG")
        .output()
        .expect("run renda")
}

pub fn ok(args: &[&str], data: &Path) -> String {
    let out = renda(args, data);
    assert!(
        out.status.success(),
        "renda {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A running `renda run --config`, killed with SIGKILL when dropped.
pub struct Running {
    child: Child,
}

impl Running {
    /// Whether the process has ended (it should not have, until it is killed).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start(config: &Path, log: &Path) -> Running {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        // `RENDA_TEST_LOG=info` to read what a failing run's nodes did.
        .env(
            "RENDA_LOG",
            std::env::var("RENDA_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("start renda run");
    Running { child }
}

pub fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn opinion_ids(data: &Path) -> BTreeSet<String> {
    record_ids(data, "opinion")
}

/// The ids of the records of `kind` (`opinion`, `notice` …) a node holds, by its CLI; empty
/// while the node cannot answer.
pub fn record_ids(data: &Path, kind: &str) -> BTreeSet<String> {
    let out = renda(&[kind, "list", "--json"], data);
    if !out.status.success() {
        // The node may be starting up or busy: try again later.
        return BTreeSet::new();
    }
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    rows.as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The deployed configs back up into /var/backups/renda. A test's node keeps its level's
/// schedule but backs up into `data`, so no run writes outside its own directory, and none finds
/// another run's backup there and skips its own (a backup in the directory counts as taken).
pub fn backups_into(table: &mut toml::Table, data: &Path) {
    if let Some(toml::Value::Table(backup)) = table.get_mut("backup") {
        backup.insert("dir".into(), data.join("backups").to_str().unwrap().into());
    }
}

/// How many backups `data`'s node took into it (see [`backups_into`]).
pub fn backups_taken(data: &Path) -> usize {
    std::fs::read_dir(data.join("backups"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".sqlite"))
                .count()
        })
        .unwrap_or(0)
}

/// One node of the process federations: its level's file from deploy/config, with the addresses
/// and the data directory changed to this machine's loopback and a temporary directory.
pub struct NodeSpec {
    pub level: &'static str,
    pub region: &'static str,
    pub name: &'static str,
    pub parent: Option<usize>,
    pub listens: bool,
}

pub const FEDERATION: &[NodeSpec] = &[
    NodeSpec {
        level: "national",
        region: "000000000000",
        name: "全国人大常委会",
        parent: None,
        listens: true,
    },
    NodeSpec {
        level: "province",
        region: "330000000000",
        name: "浙江省人大常委会",
        parent: Some(0),
        listens: true,
    },
    NodeSpec {
        level: "city",
        region: "330400000000",
        name: "嘉兴市人大常委会",
        parent: Some(1),
        listens: true,
    },
    NodeSpec {
        level: "county",
        region: "330411000000",
        name: "秀洲区人大常委会",
        parent: Some(2),
        listens: true,
    },
    NodeSpec {
        level: "township",
        region: "330411101000",
        name: "王店镇人大主席团",
        parent: Some(3),
        listens: false,
    },
    NodeSpec {
        level: "township",
        region: "330411102000",
        name: "新塍镇人大主席团",
        parent: Some(3),
        listens: false,
    },
];
