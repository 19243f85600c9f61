//! A link message from a peer: protobuf decoding, the protocol version, the bounded inflate of a
//! batch, each record's automerge changes and the document they build.
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
        renda_node::sync::untrusted::receive_link_message(data);
    }
);
