//! The VADER implementation against the reference `vaderSentiment` 3.3.2:
//! `data/vader_reference.tsv` holds the reference's own scores (written by
//! `data/vader_reference.py`) for its demo examples, whose scores its README
//! publishes, and for sentences exercising each rule.

#![allow(clippy::unwrap_used)]

use insite_operators::vader::SentimentAnalyzer;

const REFERENCE: &str = include_str!("data/vader_reference.tsv");

/// Python's `round(x, n)` prints values correctly rounded; a value within
/// half a unit of the last digit (plus float noise) is a match.
fn close(ours: f64, theirs: f64, decimals: i32) -> bool {
    (ours - theirs).abs() <= 0.5 * 10f64.powi(-decimals) + 1e-9
}

#[test]
fn matches_reference_vader_on_its_examples_and_rules() {
    let vader = SentimentAnalyzer::vader();
    let mut checked = 0;
    let mut mismatches = Vec::new();
    for line in REFERENCE.lines().filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 5, "bad reference line {line:?}");
        let text = fields[0];
        let expected: Vec<f64> = fields[1..].iter().map(|f| f.parse().unwrap()).collect();
        let s = vader.polarity_scores(text);
        let ok = close(s.compound, expected[0], 4)
            && close(s.neg, expected[1], 3)
            && close(s.neu, expected[2], 3)
            && close(s.pos, expected[3], 3);
        if !ok {
            mismatches.push(format!("{text:?}: ours {s:?}, reference {expected:?}"));
        }
        checked += 1;
    }
    assert!(checked >= 100, "only {checked} reference sentences");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn published_readme_scores() {
    // Compound scores printed in the reference README.
    let vader = SentimentAnalyzer::vader();
    for (text, compound) in [
        ("VADER is smart, handsome, and funny.", 0.8316),
        ("VADER is VERY SMART, handsome, and FUNNY!!!", 0.9342),
        ("VADER is not smart, handsome, nor funny.", -0.7424),
        ("At least it isn't a horrible book.", 0.431),
        ("Today SUX!", -0.5461),
        ("Make sure you :) or :D today!", 0.8633),
    ] {
        assert!(
            close(vader.compound(text), compound, 4),
            "{text}: {}",
            vader.compound(text)
        );
    }
}
