//! Stable `Nats-Msg-Id` values, so that JetStream drops a republished
//! duplicate within its duplicate window.
//!
//! The id comes from the source where the source has one (a venue's trade
//! id, a post id); otherwise it is a 128-bit hash of the encoded content, so
//! the same event published twice gets the same id.

use crate::events::{Post, Quote, Trade};
use crate::wire::{self, Batch};

fn content_hash<T: serde::Serialize>(value: &T) -> String {
    // Encoding the schema types cannot fail (no maps with non-string keys,
    // no unrepresentable values); should it ever, the Debug text still gives
    // a stable, content-derived id.
    let bytes = wire::encode(value).unwrap_or_default();
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes))
}

/// The message id of one trade: `t:<SYM>:<exchange>:<trade_id>`, or
/// `t:<SYM>:h:<hash>` when the trade has no id.
pub fn trade_msg_id(trade: &Trade) -> String {
    if trade.trade_id.is_empty() {
        format!("t:{}:h:{}", trade.symbol, content_hash(trade))
    } else {
        format!("t:{}:{}:{}", trade.symbol, trade.exchange, trade.trade_id)
    }
}

/// The message id of one quote: quotes have no venue id, so always a hash.
pub fn quote_msg_id(quote: &Quote) -> String {
    format!("q:{}:h:{}", quote.symbol, content_hash(quote))
}

/// The message id of one post: `p:<source>:<id>`.
pub fn post_msg_id(post: &Post) -> String {
    format!("p:{}:{}", post.source, post.id)
}

/// The message id of a batch: its kind, its first event's id and a hash of
/// the whole batch (so the same batch re-sent gets the same id, and two
/// batches that merely start alike do not collide).
pub fn batch_msg_id<T: serde::Serialize>(prefix: &str, first_id: &str, batch: &Batch<T>) -> String {
    format!("{prefix}:{first_id}:{}", content_hash(batch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::trade;

    const TS: i64 = 1_700_000_000_000;

    #[test]
    fn ids_come_from_the_source_when_present() {
        assert_eq!(trade_msg_id(&trade("AAPL", TS, "77")), "t:AAPL:XNAS:77");
    }

    #[test]
    fn hashed_ids_are_stable_and_content_sensitive() {
        let a = trade("AAPL", TS, "");
        let mut b = a.clone();
        assert_eq!(trade_msg_id(&a), trade_msg_id(&b));
        b.price = 10.01;
        assert_ne!(trade_msg_id(&a), trade_msg_id(&b));
        assert!(trade_msg_id(&a).starts_with("t:AAPL:h:"));
    }
}
