//! A saved automerge document, as read back from a node's SQLite file or a backup.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // Renda catches the panics automerge raises on some malformed input and turns them
        // into errors; libFuzzer's hook would abort on those too. A panic that escapes the
        // target still aborts: libfuzzer-sys catches it and aborts the run.
        std::panic::set_hook(Box::new(|_| {}));
    },
    |data: &[u8]| {
        renda_node::sync::untrusted::load_document(data);
    }
);
