//! The Query API's contract, guarded in the default test run: `buf lint` holds
//! `renda.query.v1` to buf's STANDARD rules (proto/buf.yaml leaves the sync protocol, whose
//! names and method paths never change, and Google's vendored types as they are), and `buf
//! breaking` compares every .proto file with the copy of each release kept under
//! proto/released/<tag>/, so a field renumbered, renamed or removed fails the run. buf comes
//! from PyPI (`buf-bin`), which scripts/test.sh installs; it needs no schema registry, since
//! every import is vendored.

use std::path::{Path, PathBuf};
use std::process::Command;

fn proto_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("proto")
}

/// The `buf` binary: on the PATH, or where pip put it.
fn buf() -> PathBuf {
    if Command::new("buf").arg("--version").output().is_ok() {
        return PathBuf::from("buf");
    }
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .expect("python3 (scripts/test.sh installs buf-bin with pip)");
    let path = PathBuf::from(String::from_utf8_lossy(&scripts.stdout).trim()).join("buf");
    assert!(
        path.exists(),
        "buf is not installed: scripts/test.sh installs it (pip install buf-bin)"
    );
    path
}

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(buf())
        .args(args)
        .current_dir(proto_dir())
        .output()
        .expect("run buf");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_query_api_passes_the_proto_linter() {
    let (ok, said) = run(&["lint"]);
    assert!(ok, "buf lint:\n{said}");
}

#[test]
fn no_proto_file_breaks_a_released_one() {
    let released: Vec<PathBuf> = std::fs::read_dir(proto_dir().join("released"))
        .expect("proto/released/ keeps each release's .proto files")
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!released.is_empty());
    for against in released {
        let (ok, said) = run(&["breaking", "--against", against.to_str().unwrap()]);
        assert!(ok, "buf breaking against {}:\n{said}", against.display());
    }
}

/// The check can fail: a copy of the released files that has a field the tree lacks is broken
/// by the tree, as a field removed would be.
#[test]
fn the_breaking_check_finds_a_removed_field() {
    let release = std::fs::read_dir(proto_dir().join("released"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let copy = tempfile::tempdir().unwrap();
    let target = copy.path().join("renda/v1");
    std::fs::create_dir_all(&target).unwrap();
    for file in ["sync.proto", "query.proto"] {
        std::fs::copy(release.join("renda/v1").join(file), target.join(file)).unwrap();
    }
    let sync = target.join("sync.proto");
    let text = std::fs::read_to_string(&sync).unwrap();
    let grown = text.replacen(
        "message RecordHeader {",
        "message RecordHeader {\n  string removed_later = 99;",
        1,
    );
    assert_ne!(grown, text);
    std::fs::write(&sync, grown).unwrap();
    let (ok, said) = run(&["breaking", "--against", copy.path().to_str().unwrap()]);
    assert!(!ok, "a removed field passed: {said}");
    assert!(said.contains("removed_later"), "{said}");
}

/// Every release the changelog names as tagged keeps its .proto files under proto/released/,
/// so the breaking check compares the tree with each of them: a release tagged without its
/// copy (the Query API's first, say) fails here rather than going unguarded.
#[test]
fn every_tagged_release_keeps_its_proto_files() {
    let changelog =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/CHANGELOG.md")).unwrap();
    let tagged: Vec<&str> = changelog
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .filter_map(|l| l.split_once(" (tag `").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split('`').next())
        .collect();
    assert!(tagged.contains(&"v0.6.0"), "{tagged:?}");
    for tag in tagged {
        let dir = proto_dir().join("released").join(tag);
        assert!(
            dir.is_dir(),
            "{tag} is tagged but {} is missing: copy proto/proto there when tagging",
            dir.display()
        );
    }
}
