//! Raw automerge changes forged from the input (`record::replay::forge`: honest edits by three
//! replicas, and what no honest node sends), replayed and held to automerge: wherever the
//! replay accepts them, automerge must load the bytes a store keeps to the same content and
//! heads, before and after a compaction. Then the forged changes are mangled byte by byte and
//! Renda's change reader is held to automerge's on every one automerge still parses. A
//! disagreement panics, and the fuzzer keeps the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    renda_node::sync::untrusted::replay_against_automerge(data);
});
