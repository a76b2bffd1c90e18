//! The trades and quotes CSV readers of `insite ingest files`: header, then
//! records, every bad line a reject (never a crash). The first byte picks
//! trades or quotes.
#![no_main]

use insite_ingest::files::{read_records, FileKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let kind = if pick & 1 == 0 {
        FileKind::Trades
    } else {
        FileKind::Quotes
    };
    if let Ok((events, _rejects)) =
        read_records(kind, "fuzz.csv", std::io::Cursor::new(body.to_vec()))
    {
        for event in &events {
            event.validate().expect("a read event is valid");
        }
    }
});
