//! The previous release's binary and this one in one federation, both ways, as operators run
//! them: a county of one release and a township of the other, each a `renda run` process with
//! its own database, write records that must reach the other over a live link; then the node of
//! the previous release is upgraded in place (stopped, and started again on the same directory
//! with this release's binary) and the federation goes on.
//!
//! The previous release is built by `scripts/test.sh --soak`, which names its binary in
//! `RENDA_PREVIOUS_BIN`; the test is ignored in the default run, where building a second tree
//! would take longer than everything else.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::procs::wait_for;

const NEW: &str = env!("CARGO_BIN_EXE_renda");
const COUNTY: &str = "330411000000";
const TOWNSHIP: &str = "330411101000";

fn previous() -> PathBuf {
    let path = std::env::var_os("RENDA_PREVIOUS_BIN").map(PathBuf::from).expect(
        "RENDA_PREVIOUS_BIN names the previous release's binary; scripts/test.sh --soak builds it",
    );
    assert!(path.exists(), "{} does not exist", path.display());
    path
}

fn renda(bin: &Path, data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .args(args)
        .env("RENDA_DATA_DIR", data)
        .env("RENDA_USER", "测试员")
        .env_remove("RENDA_LOG")
        .output()
        .expect("run renda")
}

fn ok(bin: &Path, data: &Path, args: &[&str]) -> String {
    let out = renda(bin, data, args);
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The ids of the records of `kind` a node lists; empty while it cannot answer.
fn ids(bin: &Path, data: &Path, kind: &str) -> BTreeSet<String> {
    let out = renda(bin, data, &[kind, "list", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    rows.as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["id"].as_str().map(String::from))
        .collect()
}

/// A `renda run` process, killed when dropped.
struct Running(Child);

impl Running {
    /// Stops the node as an operator does before an upgrade: SIGTERM, and the node ends its
    /// links and closes its database.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("renda run did not stop within 20 s of SIGTERM");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(bin: &Path, data: &Path, listen: Option<&str>, log: &Path) -> Running {
    let mut cmd = Command::new(bin);
    cmd.arg("run");
    if let Some(addr) = listen {
        cmd.args(["--listen", addr]);
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Running(
        cmd.env("RENDA_DATA_DIR", data)
            .env("RENDA_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start renda run"),
    )
}

/// A county running `county_bin` and a township running `town_bin`, linked live: each writes,
/// and each sees what the other wrote. Then whichever runs the previous release is upgraded in
/// place, and each writes again.
fn federation(county_bin: &Path, town_bin: &Path, label: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (county, town) = (dir.path().join("county"), dir.path().join("town"));
    let log = dir.path().join("renda.log");
    let addr = format!("127.0.0.1:{}", common::free_ports(1)[0]);
    ok(
        county_bin,
        &county,
        &["init", "--region", COUNTY, "--name", "秀洲区人大常委会"],
    );
    ok(
        town_bin,
        &town,
        &[
            "init",
            "--region",
            TOWNSHIP,
            "--name",
            "王店镇人大主席团",
            "--parent",
            &addr,
        ],
    );
    let mut county_run = run(county_bin, &county, Some(&addr), &log);
    let mut town_run = run(town_bin, &town, None, &log);

    let mut opinions = BTreeSet::new();
    let mut notices = BTreeSet::new();
    let round = |county_bin: &Path,
                 town_bin: &Path,
                 opinions: &mut BTreeSet<String>,
                 notices: &mut BTreeSet<String>,
                 when: &str| {
        let opinion = ok(
            town_bin,
            &town,
            &[
                "opinion",
                "add",
                "--source",
                "reception",
                "--content",
                &format!("{label}，{when}：村道路灯损坏"),
            ],
        );
        opinions.insert(opinion.trim().to_string());
        let notice = ok(
            county_bin,
            &county,
            &[
                "notice",
                "add",
                "--title",
                &format!("{label}，{when}：通知"),
                "--body",
                "请各镇按时完成。",
            ],
        );
        notices.insert(notice.trim().to_string());
        wait_for(
            &format!("{label}, {when}: the county holds the township's opinions"),
            Duration::from_secs(60),
            || ids(county_bin, &county, "opinion").is_superset(opinions),
        );
        wait_for(
            &format!("{label}, {when}: the township holds the county's notices"),
            Duration::from_secs(60),
            || ids(town_bin, &town, "notice").is_superset(notices),
        );
    };
    round(county_bin, town_bin, &mut opinions, &mut notices, "升级前");

    // The node of the previous release is upgraded in place.
    let (county_bin, town_bin) = if county_bin != Path::new(NEW) {
        county_run.stop();
        county_run = run(Path::new(NEW), &county, Some(&addr), &log);
        (Path::new(NEW), town_bin)
    } else {
        town_run.stop();
        town_run = run(Path::new(NEW), &town, None, &log);
        (county_bin, Path::new(NEW))
    };
    round(county_bin, town_bin, &mut opinions, &mut notices, "升级后");
    drop((county_run, town_run));
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !log.contains("ERROR") && !log.contains("panicked"),
        "{label}: {log}"
    );
}

#[test]
#[ignore = "builds on the previous release's binary: run by scripts/test.sh --soak"]
fn the_previous_release_and_this_one_link_both_ways_and_upgrade_in_place() {
    let old = previous();
    federation(&old, Path::new(NEW), "旧版区县，新版乡镇");
    federation(Path::new(NEW), &old, "新版区县，旧版乡镇");
}
