//! The pipeline's inbound decoder: `Insite-Schema` header plus MessagePack
//! payload, one event or a batch, every event validated. The first byte
//! picks the header (known, unknown, future version or missing); the rest is
//! the payload. What decodes must encode again and decode to the same.
#![no_main]

use insite_schemas::wire::{self, Inbound};
use insite_schemas::{Batch, SchemaId};
use libfuzzer_sys::fuzz_target;

const HEADERS: [Option<&str>; 10] = [
    Some("trade.v1"),
    Some("trade_batch.v1"),
    Some("quote.v1"),
    Some("quote_batch.v1"),
    Some("post.v1"),
    Some("post_batch.v1"),
    Some("trade.v2"),
    Some("bar.v1"),
    Some("nonsense"),
    None,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let header = HEADERS[usize::from(pick) % HEADERS.len()];
    let _ = header.map(str::parse::<SchemaId>);
    let Ok(inbound) = wire::decode_inbound(header, payload) else {
        return;
    };
    // Re-encoded as a batch of the same kind, the events read back the same.
    let (header, again) = match &inbound {
        Inbound::Trades(v) => ("trade_batch.v1", wire::encode(&Batch { events: v.clone() })),
        Inbound::Quotes(v) => ("quote_batch.v1", wire::encode(&Batch { events: v.clone() })),
        Inbound::Posts(v) => ("post_batch.v1", wire::encode(&Batch { events: v.clone() })),
    };
    let again = again.expect("a decoded message encodes");
    let back = wire::decode_inbound(Some(header), &again).expect("an encoded message decodes");
    assert_eq!(back, inbound);
});
