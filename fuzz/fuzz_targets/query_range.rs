//! The query service's range and symbol parsing: path segments
//! `symbol/interval/from/to/limit` as the range routes receive them, a
//! valid request or a 400 naming the parameter, never a crash.
#![no_main]

use std::sync::LazyLock;

use insite_query::api::params;
use insite_query::{AppState, QueryConfig};
use insite_schemas::config::{ClickHouseConfig, RedisConfig};
use libfuzzer_sys::fuzz_target;

/// A state with unreachable backends: only its config is used.
static STATE: LazyLock<(tokio::runtime::Runtime, AppState)> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let state = {
        let _entered = runtime.enter();
        let redis = RedisConfig {
            url: "redis://127.0.0.1:1/0".into(),
            ..RedisConfig::default()
        };
        let clickhouse = ClickHouseConfig {
            url: "http://127.0.0.1:1".into(),
            ..ClickHouseConfig::default()
        };
        AppState::new(QueryConfig::default(), &redis, &clickhouse).expect("a state")
    };
    (runtime, state)
});

fuzz_target!(|text: &str| {
    let state = &STATE.1;
    let mut parts = text.splitn(5, '/');
    let symbol = parts.next().unwrap_or("");
    let interval = parts.next().unwrap_or("");
    let from = parts.next().unwrap_or("");
    let to = parts.next().unwrap_or("");
    let limit = parts.next();
    let _ = params::parse_symbol(text);
    let _ = params::parse_bound("from", text, false);
    let _ = params::parse_bound("to", text, true);
    let _ = params::parse_limit(Some(text), 10, 100, "limit");
    if let Ok(ranged) = params::range_request(state, symbol, interval, from, to, limit) {
        let request = ranged.request;
        let limits = &state.inner.config.limits;
        assert_eq!(
            request.from % request.interval.millis(),
            0,
            "from is a window start"
        );
        assert!((1..=limits.max_page).contains(&request.limit));
    }
});
