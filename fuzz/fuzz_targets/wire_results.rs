//! The decoders of derived results and clock ticks, as the query service's
//! feed and the pipeline read them: bars, sentiment windows, trending
//! lists, alerts, late events, clock ticks. The first byte picks the type
//! (and a header that names it, or another type); the rest is the payload.
#![no_main]

use insite_schemas::wire;
use insite_schemas::{Alert, Bar, LateEvent, SentimentWindow, Trending};
use libfuzzer_sys::fuzz_target;

const HEADERS: [Option<&str>; 9] = [
    Some("bar.v1"),
    Some("sentiment.v1"),
    Some("trending.v1"),
    Some("alert.v1"),
    Some("late_event.v1"),
    Some("clock.v1"),
    Some("clock.v9"),
    Some("trade.v1"),
    None,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let header = HEADERS[usize::from(pick >> 3) % HEADERS.len()];
    match pick % 6 {
        0 => drop(wire::decode_result::<Bar>(header, payload)),
        1 => drop(wire::decode_result::<SentimentWindow>(header, payload)),
        2 => drop(wire::decode_result::<Trending>(header, payload)),
        3 => drop(wire::decode_result::<Alert>(header, payload)),
        4 => drop(wire::decode_result::<LateEvent>(header, payload)),
        _ => drop(wire::decode_clock(header, payload)),
    }
});
