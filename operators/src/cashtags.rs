//! Cashtag extraction: `$TSLA` is a mention of TSLA, `$5` and `$5.00` are
//! amounts, `$brk.b` is BRK.B.
//!
//! A cashtag is a `$` at the start of the text or after a character that is
//! not a letter, digit or `$`, followed by a letter, then letters and digits,
//! optionally followed by `.` or `-` and more letters and digits (a share
//! class, `BRK.B`, `RDS-A`). It is upper-cased and must then be a valid
//! [`Symbol`] (at most 12 characters); trailing punctuation (`$TSLA.`,
//! `$TSLA's`) is not part of it. Each symbol is reported once per text, in
//! order of first appearance.
//!
//! ```
//! use insite_operators::cashtags::extract_cashtags;
//! let tags = extract_cashtags("$tsla and $BRK.B up, $5.00 coffee, $TSLA again. US$100");
//! let tags: Vec<&str> = tags.iter().map(|s| s.as_str()).collect();
//! assert_eq!(tags, ["TSLA", "BRK.B"]);
//! ```

use insite_schemas::Symbol;

/// The cashtags of `text`, upper-cased and de-duplicated, in order of first
/// appearance.
pub fn extract_cashtags(text: &str) -> Vec<Symbol> {
    let bytes = text.as_bytes();
    let mut found: Vec<Symbol> = Vec::new();
    let mut i = 0;
    while let Some(offset) = bytes[i..].iter().position(|b| *b == b'$') {
        let dollar = i + offset;
        i = dollar + 1;
        let preceded_ok = dollar == 0 || {
            // The previous character, which may be multi-byte.
            let prev = text[..dollar].chars().next_back();
            !prev.is_some_and(|c| c.is_alphanumeric() || c == '$')
        };
        if !preceded_ok || !bytes.get(i).is_some_and(u8::is_ascii_alphabetic) {
            continue;
        }
        let mut end = i;
        while end < bytes.len() && bytes[end].is_ascii_alphanumeric() {
            end += 1;
        }
        // Share-class suffixes: `.B`, `-A`, only when followed by an
        // alphanumeric (so a full stop ends the tag).
        while end + 1 < bytes.len()
            && matches!(bytes[end], b'.' | b'-')
            && bytes[end + 1].is_ascii_alphanumeric()
        {
            end += 1;
            while end < bytes.len() && bytes[end].is_ascii_alphanumeric() {
                end += 1;
            }
        }
        // A tag running into other word characters (`$TSLAé`) is not a tag.
        if text[end..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric())
        {
            i = end;
            continue;
        }
        let tag = text[i..end].to_ascii_uppercase();
        i = end;
        if let Ok(symbol) = Symbol::new(&tag) {
            if !found.contains(&symbol) {
                found.push(symbol);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(text: &str) -> Vec<String> {
        extract_cashtags(text)
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn finds_tickers_not_amounts() {
        assert_eq!(tags("$TSLA to the moon"), ["TSLA"]);
        assert_eq!(tags("paid $5 for $5.00 of $5k"), Vec::<String>::new());
        assert_eq!(tags("$brk.b and $RDS-A."), ["BRK.B", "RDS-A"]);
        assert_eq!(tags("($AAPL), $msft's, $GOOG!"), ["AAPL", "MSFT", "GOOG"]);
        assert_eq!(tags("$TSLA $tsla $Tsla"), ["TSLA"]);
        assert_eq!(tags("US$100 a$B $$TSLA"), Vec::<String>::new());
        assert_eq!(tags("$ABCDEFGHIJKLMN too long"), Vec::<String>::new());
        assert_eq!(tags("trailing $"), Vec::<String>::new());
        assert_eq!(tags("émoji→$NVDA"), ["NVDA"]);
        assert_eq!(tags("$TSLA."), ["TSLA"]);
    }
}
