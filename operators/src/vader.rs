//! VADER sentiment scoring (Hutto & Gilbert, 2014), implemented from the
//! reference Python package `vaderSentiment` 3.3.2, with a finance lexicon on
//! top.
//!
//! The algorithm follows the reference step by step: emoji replaced by their
//! descriptions, whitespace tokens with surrounding punctuation stripped
//! (unless that leaves two characters or fewer, which keeps emoticons),
//! lexicon valence per token, ALL-CAPS emphasis when only some words are in
//! capitals, booster and dampener words up to three tokens back (scaled by
//! distance), negation up to three tokens back (including "n't" and the "no"
//! rules), "never so/this", "without doubt", special idioms ("the bomb",
//! "kiss of death", ...), "least", the contrastive "but", and `!`/`?`
//! emphasis, then `x / sqrt(x² + 15)` normalisation to the compound score in
//! [-1, 1].
//!
//! Two details are reproduced on purpose because the reference has them:
//! the "but" rule locates each score by *value* (Python `list.index`), so a
//! score equal to an earlier one can be scaled at the earlier position; and
//! the three-tokens-back "never so/this" test binds as `(never and so/this)
//! or so/this`. For texts with more than [`MAX_FAITHFUL_BUT_SCORES`]
//! non-zero token scores the "but" rule scales by position instead, so that
//! its cost stays linear on hostile input.
//!
//! The lexicon is data, not code: `data/vader_lexicon.txt` (the reference's
//! own file, MIT licence in `data/VADER_LICENSE.txt`),
//! `data/emoji_utf8_lexicon.txt`, and `data/finance_lexicon.txt`, whose
//! entries (bullish, bearish, moon, calls, puts, beat, miss, downgrade, ...)
//! are added to, or replace, VADER's.
//!
//! ```
//! use insite_operators::vader::SentimentAnalyzer;
//! let vader = SentimentAnalyzer::vader();
//! // The reference prints 0.8316 for this sentence.
//! let s = vader.polarity_scores("VADER is smart, handsome, and funny.");
//! assert!((s.compound - 0.8316).abs() < 5e-5);
//! // With the finance lexicon, market slang counts.
//! let finance = SentimentAnalyzer::finance();
//! assert!(finance.compound("$TSLA looking bullish, calls printing") > 0.05);
//! assert!(finance.compound("brutal downgrade, bagholders everywhere") < -0.05);
//! ```

use std::borrow::Cow;
use std::sync::LazyLock;

use rustc_hash::FxHashMap;

/// The reference lexicon (word, mean valence in [-4, 4], ...), tab-separated.
pub const VADER_LEXICON: &str = include_str!("../data/vader_lexicon.txt");
/// The reference emoji lexicon (emoji, description), tab-separated.
pub const EMOJI_LEXICON: &str = include_str!("../data/emoji_utf8_lexicon.txt");
/// insite's finance extension (word, valence in [-4, 4]), tab-separated, `#`
/// comments.
pub const FINANCE_LEXICON: &str = include_str!("../data/finance_lexicon.txt");

/// Above this many non-zero token scores, the "but" rule scales by position
/// rather than by the reference's value lookup (which is quadratic).
pub const MAX_FAITHFUL_BUT_SCORES: usize = 512;

/// Booster increment (empirically derived by VADER's authors).
const B_INCR: f64 = 0.293;
/// Dampener decrement.
const B_DECR: f64 = -0.293;
/// ALL-CAPS emphasis increment.
const C_INCR: f64 = 0.733;
/// Negation scalar.
const N_SCALAR: f64 = -0.74;
/// Normalisation constant of the compound score.
const ALPHA: f64 = 15.0;

/// The reference's negation words (a token containing "n't" negates too).
const NEGATE: &[&str] = &[
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

/// The reference's single-word boosters (positive) and dampeners (negative).
const BOOSTERS: &[(&str, f64)] = &[
    ("absolutely", B_INCR),
    ("amazingly", B_INCR),
    ("awfully", B_INCR),
    ("completely", B_INCR),
    ("considerable", B_INCR),
    ("considerably", B_INCR),
    ("decidedly", B_INCR),
    ("deeply", B_INCR),
    ("effing", B_INCR),
    ("enormous", B_INCR),
    ("enormously", B_INCR),
    ("entirely", B_INCR),
    ("especially", B_INCR),
    ("exceptional", B_INCR),
    ("exceptionally", B_INCR),
    ("extreme", B_INCR),
    ("extremely", B_INCR),
    ("fabulously", B_INCR),
    ("flipping", B_INCR),
    ("flippin", B_INCR),
    ("frackin", B_INCR),
    ("fracking", B_INCR),
    ("fricking", B_INCR),
    ("frickin", B_INCR),
    ("frigging", B_INCR),
    ("friggin", B_INCR),
    ("fully", B_INCR),
    ("fuckin", B_INCR),
    ("fucking", B_INCR),
    ("fuggin", B_INCR),
    ("fugging", B_INCR),
    ("greatly", B_INCR),
    ("hella", B_INCR),
    ("highly", B_INCR),
    ("hugely", B_INCR),
    ("incredible", B_INCR),
    ("incredibly", B_INCR),
    ("intensely", B_INCR),
    ("major", B_INCR),
    ("majorly", B_INCR),
    ("more", B_INCR),
    ("most", B_INCR),
    ("particularly", B_INCR),
    ("purely", B_INCR),
    ("quite", B_INCR),
    ("really", B_INCR),
    ("remarkably", B_INCR),
    ("so", B_INCR),
    ("substantially", B_INCR),
    ("thoroughly", B_INCR),
    ("total", B_INCR),
    ("totally", B_INCR),
    ("tremendous", B_INCR),
    ("tremendously", B_INCR),
    ("uber", B_INCR),
    ("unbelievably", B_INCR),
    ("unusually", B_INCR),
    ("utter", B_INCR),
    ("utterly", B_INCR),
    ("very", B_INCR),
    ("almost", B_DECR),
    ("barely", B_DECR),
    ("hardly", B_DECR),
    ("kinda", B_DECR),
    ("kindof", B_DECR),
    ("kind-of", B_DECR),
    ("less", B_DECR),
    ("little", B_DECR),
    ("marginal", B_DECR),
    ("marginally", B_DECR),
    ("occasional", B_DECR),
    ("occasionally", B_DECR),
    ("partly", B_DECR),
    ("scarce", B_DECR),
    ("scarcely", B_DECR),
    ("slight", B_DECR),
    ("slightly", B_DECR),
    ("somewhat", B_DECR),
    ("sorta", B_DECR),
    ("sortof", B_DECR),
    ("sort-of", B_DECR),
];

/// The reference's two-word boosters and dampeners.
const BOOSTER_BIGRAMS: &[(&str, &str, f64)] = &[
    ("just", "enough", B_DECR),
    ("kind", "of", B_DECR),
    ("sort", "of", B_DECR),
];

/// The reference's special-case idioms (two or three words).
const SPECIAL_CASES: &[(&[&str], f64)] = &[
    (&["the", "shit"], 3.0),
    (&["the", "bomb"], 3.0),
    (&["bad", "ass"], 1.5),
    (&["bus", "stop"], 0.0),
    (&["yeah", "right"], -2.0),
    (&["kiss", "of", "death"], -1.5),
    (&["to", "die", "for"], 3.0),
    (&["beating", "heart"], 3.5),
];

/// Python's `string.punctuation`.
fn is_punct(c: char) -> bool {
    c.is_ascii_punctuation()
}

/// Python's `str.isupper()`: at least one cased character, none lower-case.
fn is_upper(word: &str) -> bool {
    let mut upper = false;
    for c in word.chars() {
        if c.is_lowercase() {
            return false;
        }
        upper |= c.is_uppercase();
    }
    upper
}

fn lower(word: &str) -> Cow<'_, str> {
    if word
        .bytes()
        .any(|b| !b.is_ascii() || b.is_ascii_uppercase())
    {
        Cow::Owned(word.to_lowercase())
    } else {
        Cow::Borrowed(word)
    }
}

fn negated(word: &str) -> bool {
    NEGATE.contains(&word) || word.contains("n't")
}

/// VADER's four scores of one text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolarityScores {
    /// Share of negative valence.
    pub neg: f64,
    /// Share of neutral tokens.
    pub neu: f64,
    /// Share of positive valence.
    pub pos: f64,
    /// Normalised sum of valences, in [-1, 1] (not rounded; the reference
    /// rounds it to four decimals for display).
    pub compound: f64,
}

/// A word → valence table.
#[derive(Debug, Clone, Default)]
pub struct Lexicon {
    words: FxHashMap<String, f64>,
}

impl Lexicon {
    /// Parses `word<TAB>valence[<TAB>...]` lines; blank lines, `#` comments
    /// and lines whose valence is not a finite number are skipped (the
    /// bundled files are checked by tests to parse completely).
    pub fn parse(text: &str) -> Self {
        let mut lexicon = Self::default();
        lexicon.extend_from(text);
        lexicon
    }

    /// Adds (or replaces) the entries in `text` (same format as
    /// [`Lexicon::parse`]); returns how many lines were taken.
    pub fn extend_from(&mut self, text: &str) -> usize {
        let mut taken = 0;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with("# ") || line == "#" {
                continue;
            }
            let mut fields = line.split('\t');
            let (Some(word), Some(value)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            if !value.is_finite() || word.is_empty() {
                continue;
            }
            // Keys are kept as written: the reference looks up lower-cased
            // tokens, so an upper-case entry (an emoticon like "XD") never
            // matches, there as here.
            self.words.insert(word.to_owned(), value);
            taken += 1;
        }
        taken
    }

    /// The valence of a lower-case word.
    pub fn get(&self, word: &str) -> Option<f64> {
        self.words.get(word).copied()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether the lexicon is empty.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
}

static VADER: LazyLock<SentimentAnalyzer> =
    LazyLock::new(|| SentimentAnalyzer::new(Lexicon::parse(VADER_LEXICON)));

static FINANCE: LazyLock<SentimentAnalyzer> = LazyLock::new(|| {
    let mut lexicon = Lexicon::parse(VADER_LEXICON);
    lexicon.extend_from(FINANCE_LEXICON);
    SentimentAnalyzer::new(lexicon)
});

/// A VADER analyzer over one lexicon.
#[derive(Debug, Clone)]
pub struct SentimentAnalyzer {
    lexicon: Lexicon,
    boosters: FxHashMap<&'static str, f64>,
    emojis: FxHashMap<char, String>,
}

/// One token with its lower-case form and whether it is in the lexicon.
struct Token<'a> {
    raw: &'a str,
    lower: Cow<'a, str>,
    in_lexicon: Option<f64>,
}

impl SentimentAnalyzer {
    /// An analyzer over `lexicon`, with VADER's emoji descriptions.
    pub fn new(lexicon: Lexicon) -> Self {
        let mut emojis = FxHashMap::default();
        for line in EMOJI_LEXICON.lines() {
            let mut fields = line.trim().split('\t');
            if let (Some(emoji), Some(description)) = (fields.next(), fields.next()) {
                let mut chars = emoji.chars();
                // The reference compares one character at a time, so only
                // single-character entries can ever match.
                if let (Some(c), None) = (chars.next(), chars.next()) {
                    emojis.insert(c, description.to_owned());
                }
            }
        }
        Self {
            lexicon,
            boosters: BOOSTERS.iter().copied().collect(),
            emojis,
        }
    }

    /// The shared analyzer with VADER's own lexicon only.
    pub fn vader() -> &'static SentimentAnalyzer {
        &VADER
    }

    /// The shared analyzer with VADER's lexicon plus the finance extension;
    /// the one the dataflow uses.
    pub fn finance() -> &'static SentimentAnalyzer {
        &FINANCE
    }

    /// The lexicon.
    pub fn lexicon(&self) -> &Lexicon {
        &self.lexicon
    }

    /// The compound score of `text`, in [-1, 1].
    pub fn compound(&self, text: &str) -> f64 {
        self.polarity_scores(text).compound
    }

    fn replace_emoji<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if text.is_ascii() || !text.chars().any(|c| self.emojis.contains_key(&c)) {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len() + 32);
        let mut prev_space = true;
        for c in text.chars() {
            if let Some(description) = self.emojis.get(&c) {
                if !prev_space {
                    out.push(' ');
                }
                out.push_str(description);
                prev_space = false;
            } else {
                out.push(c);
                prev_space = c == ' ';
            }
        }
        Cow::Owned(out)
    }

    /// VADER's neg/neu/pos/compound scores of `text`.
    pub fn polarity_scores(&self, text: &str) -> PolarityScores {
        let text = self.replace_emoji(text);
        let text = text.trim();
        let tokens: Vec<Token<'_>> = text
            .split_whitespace()
            .map(|word| {
                let stripped = word.trim_matches(is_punct);
                let raw = if stripped.chars().count() <= 2 {
                    word
                } else {
                    stripped
                };
                let lower = lower(raw);
                let in_lexicon = self.lexicon.get(&lower);
                Token {
                    raw,
                    lower,
                    in_lexicon,
                }
            })
            .collect();
        let caps = tokens.iter().filter(|t| is_upper(t.raw)).count();
        let cap_diff = caps > 0 && caps < tokens.len();

        let mut sentiments = Vec::with_capacity(tokens.len());
        for (i, token) in tokens.iter().enumerate() {
            if self.boosters.contains_key(token.lower.as_ref())
                || (token.lower == "kind" && tokens.get(i + 1).is_some_and(|n| n.lower == "of"))
            {
                sentiments.push(0.0);
                continue;
            }
            sentiments.push(self.valence(&tokens, i, cap_diff));
        }
        but_check(&tokens, &mut sentiments);
        score_valence(&sentiments, text)
    }

    fn scalar_inc_dec(&self, token: &Token<'_>, valence: f64, cap_diff: bool) -> f64 {
        let Some(&base) = self.boosters.get(token.lower.as_ref()) else {
            return 0.0;
        };
        let mut scalar = if valence < 0.0 { -base } else { base };
        if cap_diff && is_upper(token.raw) {
            if valence > 0.0 {
                scalar += C_INCR;
            } else {
                scalar -= C_INCR;
            }
        }
        scalar
    }

    fn valence(&self, tokens: &[Token<'_>], i: usize, cap_diff: bool) -> f64 {
        let token = &tokens[i];
        let Some(base) = token.in_lexicon else {
            return 0.0;
        };
        let w = |k: usize| tokens[k].lower.as_ref();
        let mut valence = base;
        // "no" before another lexicon word negates it rather than scoring.
        if token.lower == "no" && tokens.get(i + 1).is_some_and(|n| n.in_lexicon.is_some()) {
            valence = 0.0;
        }
        if (i > 0 && w(i - 1) == "no")
            || (i > 1 && w(i - 2) == "no")
            || (i > 2 && w(i - 3) == "no" && matches!(w(i - 1), "or" | "nor"))
        {
            valence = base * N_SCALAR;
        }
        if cap_diff && is_upper(token.raw) {
            if valence > 0.0 {
                valence += C_INCR;
            } else {
                valence -= C_INCR;
            }
        }
        for start in 0..3 {
            if i > start && tokens[i - (start + 1)].in_lexicon.is_none() {
                let mut s = self.scalar_inc_dec(&tokens[i - (start + 1)], valence, cap_diff);
                if start == 1 && s != 0.0 {
                    s *= 0.95;
                }
                if start == 2 && s != 0.0 {
                    s *= 0.9;
                }
                valence += s;
                valence = negation_check(valence, tokens, start, i);
                if start == 2 {
                    valence = special_idioms_check(valence, tokens, i);
                }
            }
        }
        least_check(valence, tokens, i)
    }
}

fn negation_check(valence: f64, tokens: &[Token<'_>], start: usize, i: usize) -> f64 {
    let w = |k: usize| tokens[k].lower.as_ref();
    match start {
        0 => {
            if negated(w(i - 1)) {
                return valence * N_SCALAR;
            }
        }
        1 => {
            if w(i - 2) == "never" && matches!(w(i - 1), "so" | "this") {
                return valence * 1.25;
            } else if w(i - 2) == "without" && w(i - 1) == "doubt" {
                return valence;
            } else if negated(w(i - 2)) {
                return valence * N_SCALAR;
            }
        }
        _ => {
            // The reference's precedence: (never and so/this) or so/this.
            if (w(i - 3) == "never" && matches!(w(i - 2), "so" | "this"))
                || matches!(w(i - 1), "so" | "this")
            {
                return valence * 1.25;
            } else if w(i - 3) == "without" && (w(i - 2) == "doubt" || w(i - 1) == "doubt") {
                return valence;
            } else if negated(w(i - 3)) {
                return valence * N_SCALAR;
            }
        }
    }
    valence
}

fn seq_is(tokens: &[Token<'_>], from: usize, words: &[&str]) -> bool {
    tokens.len() >= from + words.len()
        && words
            .iter()
            .enumerate()
            .all(|(k, word)| tokens[from + k].lower == *word)
}

fn special_case(tokens: &[Token<'_>], from: usize, len: usize) -> Option<f64> {
    SPECIAL_CASES
        .iter()
        .find(|(words, _)| words.len() == len && seq_is(tokens, from, words))
        .map(|(_, value)| *value)
}

fn special_idioms_check(mut valence: f64, tokens: &[Token<'_>], i: usize) -> f64 {
    // onezero, twoonezero, twoone, threetwoone, threetwo: the first match wins.
    let sequences = [(i - 1, 2), (i - 2, 3), (i - 2, 2), (i - 3, 3), (i - 3, 2)];
    if let Some(value) = sequences
        .iter()
        .find_map(|&(from, len)| special_case(tokens, from, len))
    {
        valence = value;
    }
    if tokens.len() - 1 > i {
        if let Some(value) = special_case(tokens, i, 2) {
            valence = value;
        }
    }
    if tokens.len() - 1 > i + 1 {
        if let Some(value) = special_case(tokens, i, 3) {
            valence = value;
        }
    }
    // Booster bigrams: threetwoone (three words, never a bigram), threetwo, twoone.
    for from in [i - 3, i - 2] {
        for (a, b, value) in BOOSTER_BIGRAMS {
            if tokens[from].lower == *a && tokens[from + 1].lower == *b {
                valence += value;
            }
        }
    }
    valence
}

fn least_check(valence: f64, tokens: &[Token<'_>], i: usize) -> f64 {
    let least = |k: usize| tokens[k].in_lexicon.is_none() && tokens[k].lower == "least";
    if i > 1 && least(i - 1) {
        if tokens[i - 2].lower != "at" && tokens[i - 2].lower != "very" {
            return valence * N_SCALAR;
        }
    } else if i > 0 && least(i - 1) {
        return valence * N_SCALAR;
    }
    valence
}

fn but_check(tokens: &[Token<'_>], sentiments: &mut [f64]) {
    let Some(bi) = tokens.iter().position(|t| t.lower == "but") else {
        return;
    };
    let scale = |si: usize, v: f64| {
        if si < bi {
            Some(v * 0.5)
        } else if si > bi {
            Some(v * 1.5)
        } else {
            None
        }
    };
    let non_zero = sentiments.iter().filter(|v| **v != 0.0).count();
    if non_zero > MAX_FAITHFUL_BUT_SCORES {
        for (si, v) in sentiments.iter_mut().enumerate() {
            if let Some(scaled) = scale(si, *v) {
                *v = scaled;
            }
        }
        return;
    }
    // The reference: for each value in turn, find its first occurrence by
    // value and scale that position. Zeros stay zero whatever happens.
    for k in 0..sentiments.len() {
        let v = sentiments[k];
        if v == 0.0 {
            continue;
        }
        let si = sentiments.iter().position(|x| *x == v).unwrap_or(k);
        if let Some(scaled) = scale(si, v) {
            sentiments[si] = scaled;
        }
    }
}

fn punctuation_emphasis(text: &str) -> f64 {
    let ep = text.bytes().filter(|b| *b == b'!').count().min(4) as f64 * 0.292;
    let qm_count = text.bytes().filter(|b| *b == b'?').count();
    let qm = match qm_count {
        0 | 1 => 0.0,
        2 | 3 => qm_count as f64 * 0.18,
        _ => 0.96,
    };
    ep + qm
}

fn normalize(score: f64) -> f64 {
    (score / (score * score + ALPHA).sqrt()).clamp(-1.0, 1.0)
}

fn score_valence(sentiments: &[f64], text: &str) -> PolarityScores {
    if sentiments.is_empty() {
        return PolarityScores {
            neg: 0.0,
            neu: 0.0,
            pos: 0.0,
            compound: 0.0,
        };
    }
    let mut sum: f64 = sentiments.iter().sum();
    let amplifier = punctuation_emphasis(text);
    if sum > 0.0 {
        sum += amplifier;
    } else if sum < 0.0 {
        sum -= amplifier;
    }
    let compound = normalize(sum);
    let (mut pos_sum, mut neg_sum, mut neu_count) = (0.0, 0.0, 0usize);
    for &s in sentiments {
        if s > 0.0 {
            pos_sum += s + 1.0;
        }
        if s < 0.0 {
            neg_sum += s - 1.0;
        }
        if s == 0.0 {
            neu_count += 1;
        }
    }
    if pos_sum > neg_sum.abs() {
        pos_sum += amplifier;
    } else if pos_sum < neg_sum.abs() {
        neg_sum -= amplifier;
    }
    let total = pos_sum + neg_sum.abs() + neu_count as f64;
    PolarityScores {
        neg: (neg_sum / total).abs(),
        neu: (neu_count as f64 / total).abs(),
        pos: (pos_sum / total).abs(),
        compound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_lexicons_parse_completely() {
        let vader = Lexicon::parse(VADER_LEXICON);
        // Every line parses; a few words appear twice, the later entry wins
        // (as in the reference's dict).
        let mut keys: Vec<&str> = VADER_LEXICON
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| l.trim().split('\t').next())
            .collect();
        assert_eq!(keys.len(), 7520);
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(vader.len(), keys.len());
        let mut finance = Lexicon::default();
        let taken = finance.extend_from(FINANCE_LEXICON);
        let data_lines = FINANCE_LEXICON
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .count();
        assert_eq!(taken, data_lines);
        for word in [
            "bullish",
            "bearish",
            "moon",
            "calls",
            "puts",
            "beat",
            "miss",
            "downgrade",
        ] {
            assert!(finance.get(word).is_some(), "{word}");
        }
    }

    #[test]
    fn empty_and_punctuation_only_text_is_neutral() {
        let v = SentimentAnalyzer::vader();
        for text in ["", "   ", "!!!", "$5.00", "\u{1F600}"] {
            let s = v.polarity_scores(text);
            assert!(
                s.compound.is_finite() && (-1.0..=1.0).contains(&s.compound),
                "{text}"
            );
        }
        assert_eq!(v.compound(""), 0.0);
    }

    #[test]
    fn finance_terms_override_vader() {
        let f = SentimentAnalyzer::finance();
        let v = SentimentAnalyzer::vader();
        assert_eq!(v.compound("bullish"), 0.0);
        assert!(f.compound("bullish") > 0.3);
        assert!(f.compound("bearish") < -0.3);
        assert!(f.compound("not bullish") < 0.0);
    }

    #[test]
    fn hostile_but_input_stays_bounded() {
        let text = format!("{} but {}", "good ".repeat(5000), "bad ".repeat(5000));
        let s = SentimentAnalyzer::vader().compound(&text);
        assert!((-1.0..=1.0).contains(&s));
    }
}
