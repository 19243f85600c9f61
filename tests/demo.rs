//! The README's main command: `renda demo` takes a real node through a suggestion's whole life.

use std::process::Command;

#[test]
fn the_demo_takes_a_suggestion_from_submission_to_closing_and_runs_twice() {
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_renda"))
            .args(["demo", "--demo-dir"])
            .arg(dir.path().join("node"))
            .output()
            .expect("run the demo");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "demo failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for expected in [
            "已立案待交办",
            "办理中，答复期限 2026-06-10",
            "已答复待评价",
            "待销号",
            "已办结",
            "第1号",
        ] {
            assert!(
                stdout.contains(expected),
                "demo output lacks {expected}: {stdout}"
            );
        }
        // The node it leaves behind is a real one the CLI can open.
        let listed = Command::new(env!("CARGO_BIN_EXE_renda"))
            .args([
                "suggestion",
                "list",
                "--status",
                "closed",
                "--json",
                "--data-dir",
            ])
            .arg(dir.path().join("node"))
            .output()
            .unwrap();
        let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
        assert_eq!(rows.as_array().unwrap().len(), 1);
    }
}
