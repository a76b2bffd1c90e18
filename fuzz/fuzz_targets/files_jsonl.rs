//! The posts JSONL reader of `insite ingest files`: one object a line,
//! every bad line a reject (never a crash).
#![no_main]

use insite_ingest::files::{read_records, FileKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((events, _rejects)) = read_records(
        FileKind::Posts,
        "fuzz.jsonl",
        std::io::Cursor::new(data.to_vec()),
    ) {
        for event in &events {
            event.validate().expect("a read event is valid");
        }
    }
});
