//! Replays the committed fuzz corpus and every committed crasher (`fuzz/corpus/<target>/`,
//! `fuzz/artifacts/<target>/`) through the functions the fuzz targets call, so the normal test
//! run catches a regression of anything the fuzzer ever found. `RENDA_WRITE_FUZZ_SEEDS=1` with
//! `--ignored` writes fresh seeds made from real messages into the corpus.

use std::path::{Path, PathBuf};

use renda_node::record::replay::{Compared, forge};
use renda_node::sync::untrusted::{
    load_document, receive_link_message, replay_against_automerge, sample_batch_message,
    sample_document,
};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every file under `fuzz/{corpus,artifacts}/<target>/`.
fn inputs(target: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for kind in ["corpus", "artifacts"] {
        let dir = fuzz_dir().join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file() && path.file_name().is_some_and(|n| n != ".gitkeep") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn replay(target: &str, run: impl Fn(&[u8])) {
    let files = inputs(target);
    // The seeds are committed: an empty list means the corpus went missing, not that all is well.
    assert!(
        !files.is_empty(),
        "no corpus for the {target} fuzz target under {}",
        fuzz_dir().display()
    );
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        println!("{target}: {} ({} bytes)", file.display(), bytes.len());
        run(&bytes);
    }
}

#[test]
fn the_link_message_corpus_and_crashers_decode_without_panicking() {
    replay("link_message", |b| {
        receive_link_message(b);
    });
}

#[test]
fn the_document_corpus_and_crashers_load_without_panicking() {
    replay("document", |b| {
        load_document(b);
    });
}

/// The differential target: every committed input forges a history, and wherever the replay
/// accepts it automerge agrees (a disagreement panics). Some inputs must get that far, or the
/// corpus would test nothing.
#[test]
fn the_replay_corpus_agrees_with_automerge() {
    let agreed = std::cell::Cell::new(0);
    replay("replay", |b| {
        if let Compared::Agreed(_) = replay_against_automerge(b) {
            agreed.set(agreed.get() + 1);
        }
    });
    assert!(
        agreed.get() >= 10,
        "only {} inputs replayed to the end",
        agreed.get()
    );
}

#[test]
fn the_seeds_are_real_messages() {
    // At least one committed input of each target is a message a node accepts, so the fuzzer
    // starts from the real format rather than from noise.
    let accepted = inputs("link_message")
        .iter()
        .filter(|f| receive_link_message(&std::fs::read(f).unwrap()) > 0)
        .count();
    assert!(accepted > 0, "no link_message seed decodes to a batch");
    let loaded = inputs("document")
        .iter()
        .filter(|f| load_document(&std::fs::read(f).unwrap()))
        .count();
    assert!(loaded > 0, "no document seed loads as a record");
}

#[test]
#[ignore = "writes seed files; run by hand with RENDA_WRITE_FUZZ_SEEDS=1"]
fn write_seeds() {
    if std::env::var_os("RENDA_WRITE_FUZZ_SEEDS").is_none() {
        return;
    }
    let dir = fuzz_dir().join("corpus");
    std::fs::write(
        // One seed per protocol version: seeds of an older version stay, as the fuzzer's
        // starting points for messages a node refuses.
        dir.join(format!(
            "link_message/seed-notice-batch-v{}",
            renda_proto::PROTOCOL_VERSION
        )),
        sample_batch_message(),
    )
    .unwrap();
    let document = dir.join("document/seed-notice-document");
    if !document.exists() {
        std::fs::write(document, sample_document()).unwrap();
    }
    // Programs for the replay target from a fixed generator, half of them honest (first byte's
    // high bit): the fuzzer mutates from there.
    let replay = dir.join("replay");
    std::fs::create_dir_all(&replay).unwrap();
    let mut next = forge::seeded(0x9e37_79b9_7f4a_7c15_u64);
    for n in 0..48 {
        let len = 8 + (next() % 120) as usize;
        let mut program: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if n % 2 == 0 {
            program[0] |= 0x80;
        }
        std::fs::write(replay.join(format!("seed-{n:02}")), program).unwrap();
    }
}
