//! The RSS/Atom reader: any document gives posts, rejects, or nothing,
//! never a crash; a second read of the same document gives no new posts.
#![no_main]

use std::time::Duration;

use insite_ingest::source::rss::{RssConfig, RssSource};
use insite_ingest::source::SourceItem;
use insite_ingest::Event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = RssConfig::new("http://127.0.0.1:1/feed.xml", Duration::from_secs(60))
        .expect("a valid feed config");
    let mut source = RssSource::new(config);
    for item in source.parse_document(data, 1_700_000_000_000) {
        if let SourceItem::Event(Event::Post(post)) = item {
            post.validate().expect("a parsed post is valid");
        }
    }
    let again = source.parse_document(data, 1_700_000_000_000);
    assert!(
        !again.iter().any(|i| matches!(i, SourceItem::Event(_))),
        "a second read of one document gave new posts"
    );
});
