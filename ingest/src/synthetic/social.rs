//! The social half of the simulator: posts with cashtags by authors with
//! heavy-tailed follower counts, in finance language whose sentiment leans
//! with the symbol's recent price move.

use insite_schemas::{Post, SourceName, Symbol, TimestampMs};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Pareto};

const BULLISH: [&str; 14] = [
    "breaking out, this is going much higher",
    "ripping higher on strong volume",
    "strong buy here, loading up",
    "calls are printing today",
    "beat and raise, very bullish",
    "bullish divergence on the daily chart",
    "new highs incoming",
    "accumulating more shares on every dip",
    "analyst upgrade, price target raised",
    "momentum is strong, holding long",
    "great earnings, undervalued at this price",
    "squeeze is on, to the moon",
    "rally looks healthy, adding to my position",
    "buyers stepping in, solid support",
];

const BEARISH: [&str; 14] = [
    "getting crushed today, ugly",
    "breaking down hard, support lost",
    "puts are paying off nicely",
    "selling everything, this looks weak",
    "bearish engulfing candle, watch out",
    "downgrade incoming, stay away",
    "terrible guidance, expect more downside",
    "dumping on heavy volume",
    "stop loss hit, I'm out",
    "overvalued here, shorting the bounce",
    "missed estimates, disappointing quarter",
    "sell-off accelerating, bagholders beware",
    "losing money on this one, weak hands folding",
    "lawsuit news is bad, plunging",
];

const NEUTRAL: [&str; 12] = [
    "anyone watching this today?",
    "what's the play here?",
    "holding through earnings, we'll see",
    "volume looks normal so far",
    "chart check before the close",
    "thoughts on the conference call?",
    "flat day so far",
    "waiting for the Fed minutes",
    "added to my watchlist",
    "range bound until the next catalyst",
    "interesting options activity",
    "earnings date is next week",
];

const HANDLE_WORDS: [&str; 16] = [
    "alpha", "bull", "bear", "tape", "chart", "value", "quant", "macro", "swing", "theta", "gamma",
    "delta", "dip", "trend", "flow", "yield",
];

/// Which way a post leans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lean {
    /// Bullish language.
    Bullish,
    /// Bearish language.
    Bearish,
    /// Neither.
    Neutral,
}

/// An author: handle and reach.
#[derive(Debug, Clone)]
pub(crate) struct Author {
    /// The handle.
    pub(crate) handle: String,
    /// Followers (Pareto-distributed: most have few, a few have very many).
    pub(crate) followers: u64,
}

/// `count` authors with heavy-tailed follower counts.
pub(crate) fn authors(count: usize, rng: &mut ChaCha8Rng) -> Vec<Author> {
    let pareto = Pareto::new(25.0, 1.1).ok();
    (0..count)
        .map(|i| {
            let word = HANDLE_WORDS[rng.random_range(0..HANDLE_WORDS.len())];
            let followers = pareto
                .map(|p| p.sample(rng))
                .unwrap_or(25.0_f64)
                .min(50_000_000.0) as u64;
            Author {
                handle: format!("{word}_{i}"),
                followers,
            }
        })
        .collect()
}

/// The lean of a post about a symbol that moved by `recent_move` (a log
/// return against its slow average): a 0.5% move up makes bullish posts
/// about three times as likely as bearish ones.
pub(crate) fn pick_lean(recent_move: f64, rng: &mut ChaCha8Rng) -> Lean {
    let p_up = 1.0 / (1.0 + (-recent_move * 250.0).exp());
    if rng.random_bool(0.3) {
        Lean::Neutral
    } else if rng.random_bool(p_up.clamp(0.0, 1.0)) {
        Lean::Bullish
    } else {
        Lean::Bearish
    }
}

/// The text of a post about `symbol` (and maybe `other`) with `lean`.
pub(crate) fn text(
    symbol: &Symbol,
    other: Option<&Symbol>,
    lean: Lean,
    rng: &mut ChaCha8Rng,
) -> String {
    let bank: &[&str] = match lean {
        Lean::Bullish => &BULLISH,
        Lean::Bearish => &BEARISH,
        Lean::Neutral => &NEUTRAL,
    };
    let phrase = bank[rng.random_range(0..bank.len())];
    let mut text = match rng.random_range(0..3) {
        0 => format!("${symbol} {phrase}"),
        1 => format!("{phrase} ${symbol}"),
        _ => format!("${symbol}: {phrase}"),
    };
    if let Some(other) = other {
        text.push_str(&format!(" (also watching ${other})"));
    }
    if lean == Lean::Bullish && rng.random_bool(0.2) {
        text.push_str(" 🚀");
    }
    text
}

/// The source a post comes from: x, reddit or stocktwits.
pub(crate) fn pick_source(sources: &[SourceName; 3], rng: &mut ChaCha8Rng) -> SourceName {
    let u: f64 = rng.random();
    if u < 0.55 {
        sources[0].clone()
    } else if u < 0.8 {
        sources[1].clone()
    } else {
        sources[2].clone()
    }
}

/// A post.
pub(crate) fn post(
    id: String,
    source: SourceName,
    author: &Author,
    ts: TimestampMs,
    text: String,
) -> Post {
    Post {
        id,
        source,
        author: author.handle.clone(),
        ts,
        text,
        cashtags: Vec::new(),
        author_followers: Some(author.followers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn sentiment_follows_the_move() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let count = |m: f64, rng: &mut ChaCha8Rng| {
            (0..4_000)
                .filter(|_| pick_lean(m, rng) == Lean::Bullish)
                .count()
        };
        let up = count(0.01, &mut rng);
        let down = count(-0.01, &mut rng);
        assert!(up > 4 * down, "up {up} down {down}");
    }

    #[test]
    fn followers_are_heavy_tailed() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut f: Vec<u64> = authors(2_000, &mut rng)
            .iter()
            .map(|a| a.followers)
            .collect();
        f.sort_unstable();
        let median = f[f.len() / 2];
        let top = f[f.len() - 1];
        assert!(top > 100 * median, "median {median} top {top}");
    }

    #[test]
    fn text_carries_the_cashtag() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let s = Symbol::new("NVDA").unwrap();
        let t = text(&s, None, Lean::Bullish, &mut rng);
        assert!(t.contains("$NVDA"), "{t}");
    }
}
