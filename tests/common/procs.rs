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
        .env("RENDA_LOG", "warn")
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
