//! The query service's WebSocket client ops (`subscribe` and
//! `unsubscribe` with symbols and kinds): topics or an error message for
//! the client, never a crash.
#![no_main]

use std::sync::LazyLock;

use insite_query::config::StreamConfig;
use insite_query::stream::Hub;
use insite_schemas::Interval;
use libfuzzer_sys::fuzz_target;

static HUB: LazyLock<Hub> =
    LazyLock::new(|| Hub::new(StreamConfig::default(), vec![Interval::MINUTE]));

fuzz_target!(|text: &str| {
    if let Ok((topics, _op)) = HUB.parse_op(text) {
        assert!(!topics.is_empty(), "an accepted op names a topic");
    }
});
