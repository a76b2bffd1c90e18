//! The Finnhub-style trades WebSocket frame parser: trades, and rejects for
//! what is bad, never a crash.
#![no_main]

use insite_ingest::source::finnhub::parse_frame;
use insite_ingest::source::SourceItem;
use insite_ingest::Event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    for item in parse_frame(text, "fuzz") {
        if let SourceItem::Event(Event::Trade(trade)) = item {
            trade.validate().expect("a parsed trade is valid");
        }
    }
});
