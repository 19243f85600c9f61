//! The architecture invariants docs/architecture.md enforces by crate boundaries, checked on
//! the dependency graph cargo resolves: the record model performs no I/O, and the hub reaches
//! the database only through the node's store.

use std::process::Command;

/// The packages `package` depends on (normal dependencies), to `depth` levels (0: all).
fn dependencies(package: &str, depth: Option<u32>) -> Vec<String> {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
        "tree",
        "--offline",
        "--locked",
        "-p",
        package,
        "-e",
        "normal",
    ])
    .args(["--prefix", "none", "--format", "{p}"])
    .current_dir(env!("CARGO_MANIFEST_DIR"));
    if let Some(depth) = depth {
        cmd.args(["--depth", &depth.to_string()]);
    }
    let out = cmd.output().expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Architecture invariant: the record model (renda-model) performs no I/O. Nothing it depends
/// on, however deep, is a database, network or async runtime crate.
#[test]
fn the_record_model_depends_on_no_io_crate() {
    let deps = dependencies("renda-model", None);
    assert!(deps.iter().any(|d| d == "automerge"), "{deps:?}");
    for io in [
        "rusqlite",
        "libsqlite3-sys",
        "tokio",
        "tonic",
        "prost",
        "hyper",
        "rustls",
        "renda-proto",
        "renda-node",
    ] {
        assert!(
            !deps.iter().any(|d| d == io),
            "renda-model depends on {io}: {deps:?}"
        );
    }
}

/// Architecture invariant: the hub never opens SQLite itself; it reads and writes records
/// through the node's store handle.
#[test]
fn the_hub_reaches_sqlite_only_through_the_node() {
    let direct = dependencies("renda-hub", Some(1));
    assert!(direct.iter().any(|d| d == "renda-node"), "{direct:?}");
    assert!(
        !direct.iter().any(|d| d == "rusqlite"),
        "renda-hub depends on rusqlite directly: {direct:?}"
    );
}
