//! NATS subject builders and parsers.
//!
//! | subject | content |
//! |---|---|
//! | `md.trades.<SYM>` | trades |
//! | `md.quotes.<SYM>` | quotes |
//! | `social.posts.<source>` | posts |
//! | `md.clock.<origin>`, `social.clock.<origin>` | clock ticks of an idle stream ([`crate::events::ClockTick`]) |
//! | `insite.bars.<interval>.<SYM>` | bars |
//! | `insite.sentiment.<interval>.<SYM>` | sentiment windows |
//! | `insite.trending.<interval>` | trending lists |
//! | `insite.alerts.<SYM>` | alerts |
//! | `insite.dlq.<stage>` | rejected input |
//! | `insite.live.bars.<interval>.<SYM>` | provisional bars |
//! | `insite.live.sentiment.<interval>.<SYM>` | provisional sentiment windows |
//! | `insite.live.trending.<interval>` | provisional trending lists |
//!
//! Final results go on `insite.bars.…`, `insite.sentiment.…` and so on, which
//! the DERIVED stream stores; provisional ones (the in-progress window,
//! updated every 100 ms) go on the parallel `insite.live.…` tree, which no
//! stream captures: they reach only the subscribers connected at the time.
//! [`live_to_final`] maps a live subject to the final one of the same
//! window, the topic readers subscribe to.
//! A symbol's `.` is written `_` in a subject token (see
//! [`Symbol::subject_token`]); every other token is validated, so a subject
//! never carries a wildcard or an empty token.

use crate::error::InvalidValue;
use crate::symbol::{SourceName, Symbol};
use crate::time::Interval;

/// Subject of a symbol's trades.
pub fn trades(symbol: &Symbol) -> String {
    format!("md.trades.{}", symbol.subject_token())
}

/// Subject of a symbol's quotes.
pub fn quotes(symbol: &Symbol) -> String {
    format!("md.quotes.{}", symbol.subject_token())
}

/// Subject of a source's posts.
pub fn posts(source: &SourceName) -> String {
    format!("social.posts.{source}")
}

/// Subject of the clock ticks that `origin` writes into the market stream.
pub fn market_clock(origin: &SourceName) -> String {
    format!("md.clock.{origin}")
}

/// Subject of the clock ticks that `origin` writes into the social stream.
pub fn social_clock(origin: &SourceName) -> String {
    format!("social.clock.{origin}")
}

/// Subject of a symbol's bars of one interval.
pub fn bars(interval: Interval, symbol: &Symbol) -> String {
    format!("insite.bars.{interval}.{}", symbol.subject_token())
}

/// Subject of a symbol's sentiment windows of one interval.
pub fn sentiment(interval: Interval, symbol: &Symbol) -> String {
    format!("insite.sentiment.{interval}.{}", symbol.subject_token())
}

/// Subject of the trending lists of one interval.
pub fn trending(interval: Interval) -> String {
    format!("insite.trending.{interval}")
}

/// Subject of a symbol's alerts.
pub fn alerts(symbol: &Symbol) -> String {
    format!("insite.alerts.{}", symbol.subject_token())
}

/// The token after `insite.` that starts the live (provisional, not stored)
/// subject tree: `insite.live.>`.
pub const LIVE_TOKEN: &str = "live";

/// Subject of a symbol's provisional bars of one interval (not stored).
pub fn live_bars(interval: Interval, symbol: &Symbol) -> String {
    format!(
        "insite.{LIVE_TOKEN}.bars.{interval}.{}",
        symbol.subject_token()
    )
}

/// Subject of a symbol's provisional sentiment windows of one interval (not
/// stored).
pub fn live_sentiment(interval: Interval, symbol: &Symbol) -> String {
    format!(
        "insite.{LIVE_TOKEN}.sentiment.{interval}.{}",
        symbol.subject_token()
    )
}

/// Subject of the provisional trending lists of one interval (not stored).
pub fn live_trending(interval: Interval) -> String {
    format!("insite.{LIVE_TOKEN}.trending.{interval}")
}

/// The final subject of a live one (`insite.live.bars.1m.AAPL` →
/// `insite.bars.1m.AAPL`), or `None` if `subject` is not under
/// `insite.live.`. The result is not validated: [`parse`] it.
///
/// ```
/// use insite_schemas::subjects::live_to_final;
/// assert_eq!(live_to_final("insite.live.bars.1m.AAPL").as_deref(), Some("insite.bars.1m.AAPL"));
/// assert_eq!(live_to_final("insite.bars.1m.AAPL"), None);
/// ```
pub fn live_to_final(subject: &str) -> Option<String> {
    subject
        .strip_prefix("insite.")
        .and_then(|rest| rest.strip_prefix(LIVE_TOKEN))
        .and_then(|rest| rest.strip_prefix('.'))
        .map(|rest| format!("insite.{rest}"))
}

/// Dead-letter subject of a stage (`ingest`, `pipeline`, ...).
pub fn dlq(stage: &str) -> String {
    format!("insite.dlq.{stage}")
}

/// What a parsed subject names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// `md.trades.<SYM>`
    Trades(Symbol),
    /// `md.quotes.<SYM>`
    Quotes(Symbol),
    /// `social.posts.<source>`
    Posts(SourceName),
    /// `md.clock.<origin>`
    MarketClock(SourceName),
    /// `social.clock.<origin>`
    SocialClock(SourceName),
    /// `insite.bars.<interval>.<SYM>`
    Bars(Interval, Symbol),
    /// `insite.sentiment.<interval>.<SYM>`
    Sentiment(Interval, Symbol),
    /// `insite.trending.<interval>`
    Trending(Interval),
    /// `insite.alerts.<SYM>`
    Alerts(Symbol),
    /// `insite.dlq.<stage>`
    DeadLetter(String),
}

/// Parses a subject into what it names, validating every token.
///
/// ```
/// use insite_schemas::subjects::{parse, Subject};
/// use insite_schemas::Symbol;
/// assert_eq!(parse("md.trades.BRK_B").unwrap(), Subject::Trades(Symbol::new("BRK.B").unwrap()));
/// assert!(parse("md.trades.*").is_err());
/// ```
pub fn parse(subject: &str) -> Result<Subject, InvalidValue> {
    let tokens: Vec<&str> = subject.split('.').collect();
    let parsed = match tokens.as_slice() {
        ["md", "trades", sym] => Subject::Trades(Symbol::from_subject_token(sym)?),
        ["md", "quotes", sym] => Subject::Quotes(Symbol::from_subject_token(sym)?),
        ["social", "posts", source] => Subject::Posts(SourceName::new(source)?),
        ["md", "clock", origin] => Subject::MarketClock(SourceName::new(origin)?),
        ["social", "clock", origin] => Subject::SocialClock(SourceName::new(origin)?),
        ["insite", "bars", interval, sym] => {
            Subject::Bars(interval.parse()?, Symbol::from_subject_token(sym)?)
        }
        ["insite", "sentiment", interval, sym] => {
            Subject::Sentiment(interval.parse()?, Symbol::from_subject_token(sym)?)
        }
        ["insite", "trending", interval] => Subject::Trending(interval.parse()?),
        ["insite", "alerts", sym] => Subject::Alerts(Symbol::from_subject_token(sym)?),
        ["insite", "dlq", stage] if SourceName::new(stage).is_ok() => {
            Subject::DeadLetter((*stage).to_owned())
        }
        _ => {
            return Err(InvalidValue::new(
                "subject",
                format!("{subject:?} is not an insite subject"),
            ))
        }
    };
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_and_parser_agree() {
        let sym = Symbol::new("BRK.B").unwrap();
        let src = SourceName::new("reddit").unwrap();
        let m = Interval::MINUTE;
        let cases = [
            (trades(&sym), Subject::Trades(sym.clone())),
            (quotes(&sym), Subject::Quotes(sym.clone())),
            (posts(&src), Subject::Posts(src.clone())),
            (market_clock(&src), Subject::MarketClock(src.clone())),
            (social_clock(&src), Subject::SocialClock(src.clone())),
            (bars(m, &sym), Subject::Bars(m, sym.clone())),
            (sentiment(m, &sym), Subject::Sentiment(m, sym.clone())),
            (trending(m), Subject::Trending(m)),
            (alerts(&sym), Subject::Alerts(sym.clone())),
            (dlq("pipeline"), Subject::DeadLetter("pipeline".into())),
        ];
        for (subject, expected) in cases {
            assert_eq!(parse(&subject).unwrap(), expected, "{subject}");
        }
        assert_eq!(bars(m, &sym), "insite.bars.1m.BRK_B");
    }

    #[test]
    fn live_subjects_mirror_the_final_ones() {
        let sym = Symbol::new("BRK.B").unwrap();
        let m = Interval::MINUTE;
        assert_eq!(live_bars(m, &sym), "insite.live.bars.1m.BRK_B");
        for (live, fin) in [
            (live_bars(m, &sym), bars(m, &sym)),
            (live_sentiment(m, &sym), sentiment(m, &sym)),
            (live_trending(m), trending(m)),
        ] {
            assert!(live.starts_with("insite.live."), "{live}");
            assert_eq!(live_to_final(&live), Some(fin));
            // Not a final subject: the DERIVED stream's filters never match it.
            assert!(parse(&live).is_err(), "{live}");
        }
        assert_eq!(live_to_final("insite.livestock.x"), None);
        assert_eq!(live_to_final("md.trades.A"), None);
    }

    #[test]
    fn rejects_foreign_and_wildcard_subjects() {
        for bad in [
            "md.trades",
            "md.trades.>",
            "md.trades.aapl",
            "insite.bars.7x.AAPL",
            "x.y.z",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
