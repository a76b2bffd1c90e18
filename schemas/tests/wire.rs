//! Property tests of the wire format: valid values survive a round trip,
//! garbage never panics, old readers ignore new fields, and every kind of
//! bad input gets its own typed error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use insite_schemas::wire::{self, decode_inbound, decode_result, schema_of};
use insite_schemas::{
    Alert, AlertKind, Bar, Batch, DecodeError, Finality, Inbound, Interval, Post, Quote,
    SentimentWindow, SourceName, Symbol, Trade, Trending, TrendingEntry,
};
use proptest::prelude::*;
use serde::Serialize;

fn symbol() -> impl Strategy<Value = Symbol> {
    "[A-Z0-9.\\-]{1,12}".prop_map(|s| Symbol::new(&s).unwrap())
}

fn source() -> impl Strategy<Value = SourceName> {
    "[a-z0-9_\\-]{1,32}".prop_map(|s| SourceName::new(&s).unwrap())
}

fn ts() -> impl Strategy<Value = i64> {
    946_684_800_000i64..4_102_444_800_000
}

fn price() -> impl Strategy<Value = f64> {
    (1u64..10_000_000_000).prop_map(|cents| cents as f64 / 10_000.0)
}

fn trade() -> impl Strategy<Value = Trade> {
    (
        symbol(),
        ts(),
        price(),
        1u64..10_000_000,
        "[A-Z]{0,4}",
        "[a-z0-9]{0,20}",
        prop::collection::vec("[A-Z0-9]{1,2}", 0..3),
    )
        .prop_map(
            |(symbol, ts, price, size, exchange, trade_id, conditions)| Trade {
                symbol,
                ts,
                price,
                size,
                exchange: exchange.into(),
                trade_id: trade_id.into(),
                conditions: conditions.into_iter().map(Into::into).collect(),
            },
        )
}

fn quote() -> impl Strategy<Value = Quote> {
    (symbol(), ts(), price(), any::<u32>(), price(), any::<u32>()).prop_map(
        |(symbol, ts, bid, bs, ask, as_)| Quote {
            symbol,
            ts,
            bid,
            bid_size: u64::from(bs),
            ask,
            ask_size: u64::from(as_),
        },
    )
}

fn post() -> impl Strategy<Value = Post> {
    (
        "[a-zA-Z0-9_]{1,40}",
        source(),
        ".{0,20}",
        ts(),
        ".{0,200}",
        prop::collection::vec(symbol(), 0..4),
        prop::option::of(any::<u64>()),
    )
        .prop_map(
            |(id, source, author, ts, text, cashtags, author_followers)| Post {
                id,
                source,
                author,
                ts,
                text,
                cashtags,
                author_followers,
            },
        )
}

fn finality() -> impl Strategy<Value = Finality> {
    prop_oneof![Just(Finality::Final), Just(Finality::Provisional)]
}

fn interval() -> impl Strategy<Value = Interval> {
    (1u32..=86_400).prop_map(|s| Interval::from_seconds(s).unwrap())
}

fn bar() -> impl Strategy<Value = Bar> {
    (
        symbol(),
        interval(),
        ts(),
        price(),
        price(),
        any::<u64>(),
        any::<u64>(),
        finality(),
    )
        .prop_map(
            |(symbol, interval, ts, a, b, volume, trades, finality)| Bar {
                symbol,
                interval,
                window_start: interval.window_start(ts),
                open: a,
                high: a.max(b),
                low: a.min(b),
                close: b,
                volume,
                vwap: (a + b) / 2.0,
                trades,
                finality,
            },
        )
}

proptest! {
    #[test]
    fn trades_round_trip_single_and_batched(trades in prop::collection::vec(trade(), 1..20)) {
        for t in &trades {
            let payload = wire::encode(t).unwrap();
            let header = schema_of::<Trade>().to_string();
            prop_assert_eq!(decode_inbound(Some(&header), &payload).unwrap(), Inbound::Trades(vec![t.clone()]));
        }
        let batch = Batch { events: trades.clone() };
        let payload = wire::encode(&batch).unwrap();
        let header = schema_of::<Batch<Trade>>().to_string();
        prop_assert_eq!(decode_inbound(Some(&header), &payload).unwrap(), Inbound::Trades(trades));
    }

    #[test]
    fn quotes_and_posts_round_trip(q in quote(), p in post()) {
        let header = schema_of::<Quote>().to_string();
        prop_assert_eq!(decode_inbound(Some(&header), &wire::encode(&q).unwrap()).unwrap(), Inbound::Quotes(vec![q]));
        let header = schema_of::<Post>().to_string();
        prop_assert_eq!(decode_inbound(Some(&header), &wire::encode(&p).unwrap()).unwrap(), Inbound::Posts(vec![p]));
    }

    #[test]
    fn results_round_trip(b in bar(), s in symbol(), i in interval(), t in ts(), score in -1.0f64..=1.0, n in any::<u64>()) {
        let header = schema_of::<Bar>().to_string();
        prop_assert_eq!(decode_result::<Bar>(Some(&header), &wire::encode(&b).unwrap()).unwrap(), b);

        let w = SentimentWindow {
            symbol: s.clone(), interval: i, window_start: i.window_start(t), posts: n, score,
            positive: n / 2, negative: n / 4, neutral: n - n / 2 - n / 4, weighted_score: score / 2.0,
            finality: Finality::Final,
        };
        let header = schema_of::<SentimentWindow>().to_string();
        prop_assert_eq!(decode_result::<SentimentWindow>(Some(&header), &wire::encode(&w).unwrap()).unwrap(), w);

        let tr = Trending {
            interval: i, window_start: i.window_start(t), finality: Finality::Provisional,
            entries: vec![TrendingEntry { symbol: s.clone(), mentions: n, zscore: score * 3.0 }],
        };
        let header = schema_of::<Trending>().to_string();
        prop_assert_eq!(decode_result::<Trending>(Some(&header), &wire::encode(&tr).unwrap()).unwrap(), tr);

        let a = Alert {
            symbol: s, kind: AlertKind::VolumeSpike, interval: i, window_start: i.window_start(t),
            value: 4.2, threshold: 3.0, message: "volume 4.2x its recent mean".into(),
        };
        let header = schema_of::<Alert>().to_string();
        prop_assert_eq!(decode_result::<Alert>(Some(&header), &wire::encode(&a).unwrap()).unwrap(), a);
    }

    #[test]
    fn garbage_is_an_error_never_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), header in "(trade|quote|post|trade_batch|bar|x)\\.v[0-9]") {
        // Whatever comes back, it came back: no panic. Valid MessagePack of
        // the right shape is astronomically unlikely from random bytes, and
        // if it happens it must still pass validation.
        if let Ok(inbound) = decode_inbound(Some(&header), &bytes) {
            prop_assert!(!header.starts_with('x'));
            let _ = inbound.len();
        }
    }

    #[test]
    fn truncated_payloads_are_malformed(t in trade(), cut in 0usize..1000) {
        let payload = wire::encode(&t).unwrap();
        let cut = cut % payload.len();
        let err = decode_inbound(Some("trade.v1"), &payload[..cut]).unwrap_err();
        prop_assert!(matches!(err, DecodeError::Malformed { .. }), "{err}");
    }
}

#[test]
fn an_old_reader_ignores_a_new_field() {
    #[derive(Serialize)]
    struct TradeV2<'a> {
        symbol: &'a str,
        ts: i64,
        price: f64,
        size: u64,
        exchange: &'a str,
        trade_id: &'a str,
        conditions: Vec<String>,
        venue_latency_us: u64,
        tape: &'a str,
    }
    let payload = wire::encode(&TradeV2 {
        symbol: "MSFT",
        ts: 1_700_000_000_000,
        price: 370.25,
        size: 10,
        exchange: "XNAS",
        trade_id: "abc",
        conditions: vec!["@".into()],
        venue_latency_us: 12,
        tape: "C",
    })
    .unwrap();
    let Inbound::Trades(trades) = decode_inbound(Some("trade.v1"), &payload).unwrap() else {
        panic!("not trades")
    };
    assert_eq!(trades[0].symbol.as_str(), "MSFT");
    assert_eq!(trades[0].trade_id, "abc");
}

#[test]
fn optional_fields_may_be_left_out() {
    #[derive(Serialize)]
    struct MinimalTrade {
        symbol: &'static str,
        ts: i64,
        price: f64,
        size: u64,
    }
    let payload = wire::encode(&MinimalTrade {
        symbol: "A",
        ts: 1_700_000_000_000,
        price: 1.0,
        size: 1,
    })
    .unwrap();
    let Inbound::Trades(trades) = decode_inbound(Some("trade.v1"), &payload).unwrap() else {
        panic!("not trades")
    };
    assert!(
        trades[0].exchange.is_empty()
            && trades[0].trade_id.is_empty()
            && trades[0].conditions.is_empty()
    );
}

#[test]
fn every_kind_of_bad_input_has_its_typed_error() {
    let good = wire::encode(&Trade {
        symbol: Symbol::new("A").unwrap(),
        ts: 1_700_000_000_000,
        price: 1.0,
        size: 1,
        exchange: "".into(),
        trade_id: "".into(),
        conditions: vec![],
    })
    .unwrap();
    assert!(matches!(
        decode_inbound(None, &good),
        Err(DecodeError::MissingSchema)
    ));
    assert!(matches!(
        decode_inbound(Some("trade"), &good),
        Err(DecodeError::UnknownSchema(_))
    ));
    assert!(matches!(
        decode_inbound(Some("candle.v1"), &good),
        Err(DecodeError::UnknownSchema(_))
    ));
    assert!(matches!(
        decode_inbound(Some("trade.v2"), &good),
        Err(DecodeError::UnsupportedVersion {
            kind: "trade",
            version: 2,
            supported: 1
        })
    ));
    assert!(matches!(
        decode_inbound(Some("trade.v0"), &good),
        Err(DecodeError::UnsupportedVersion { .. })
    ));
    assert!(matches!(
        decode_inbound(Some("bar.v1"), &good),
        Err(DecodeError::UnexpectedSchema { .. })
    ));
    assert!(matches!(
        decode_inbound(Some("quote.v1"), &good),
        Err(DecodeError::Malformed { .. })
    ));
    assert!(matches!(
        decode_result::<Bar>(Some("trade.v1"), &good),
        Err(DecodeError::UnexpectedSchema { .. })
    ));

    #[derive(Serialize)]
    struct Raw {
        symbol: &'static str,
        ts: i64,
        price: f64,
        size: u64,
    }
    let cases = [
        (
            Raw {
                symbol: "aapl",
                ts: 1_700_000_000_000,
                price: 1.0,
                size: 1,
            },
            "symbol",
        ),
        (
            Raw {
                symbol: "A",
                ts: 1_700_000_000,
                price: 1.0,
                size: 1,
            },
            "ts",
        ),
        (
            Raw {
                symbol: "A",
                ts: 1_700_000_000_000,
                price: -1.0,
                size: 1,
            },
            "price",
        ),
        (
            Raw {
                symbol: "A",
                ts: 1_700_000_000_000,
                price: f64::NAN,
                size: 1,
            },
            "price",
        ),
        (
            Raw {
                symbol: "A",
                ts: 1_700_000_000_000,
                price: 1.0,
                size: 0,
            },
            "size",
        ),
    ];
    for (raw, field) in cases {
        let err = decode_inbound(Some("trade.v1"), &wire::encode(&raw).unwrap()).unwrap_err();
        let reason = err.reason();
        assert!(reason.contains(field), "{field}: {reason}");
        assert!(!reason.contains('\n'));
        match field {
            // A bad symbol fails inside the decoder (Symbol's Deserialize).
            "symbol" => assert_eq!(err.code(), "malformed"),
            _ => assert_eq!(err.code(), "invalid", "{reason}"),
        }
    }
}
