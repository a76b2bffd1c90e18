//! Validated identifiers: ticker symbols and social source names.
//!
//! Both are checked once, where they enter the system (decoding, subject
//! parsing, CLI arguments), so that everything downstream can put them into
//! NATS subjects, Redis keys and SQL without further checks.

use std::fmt;
use std::str::FromStr;

use compact_str::CompactString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::InvalidValue;

/// The longest ticker symbol accepted.
pub const MAX_SYMBOL_LEN: usize = 12;

/// The longest social source name accepted.
pub const MAX_SOURCE_LEN: usize = 32;

/// An upper-case ticker symbol matching `[A-Z0-9.\-]{1,12}`.
///
/// Stored inline (no heap allocation) since symbols are short, so cloning one
/// on the hot path costs a copy of 24 bytes.
///
/// ```
/// use insite_schemas::Symbol;
/// let s: Symbol = "BRK.B".parse().unwrap();
/// assert_eq!(s.as_str(), "BRK.B");
/// assert!("brk".parse::<Symbol>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Symbol(CompactString);

impl Symbol {
    /// Checks `value` and wraps it.
    pub fn new(value: &str) -> Result<Self, InvalidValue> {
        if is_valid_symbol(value) {
            Ok(Self(CompactString::new(value)))
        } else {
            Err(InvalidValue::new(
                "symbol",
                format!("{value:?} is not an upper-case ticker matching [A-Z0-9.-]{{1,{MAX_SYMBOL_LEN}}}"),
            ))
        }
    }

    /// The symbol as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The symbol as one NATS subject token: `.` separates subject tokens, so
    /// it is written as `_` (which no symbol contains) and read back by
    /// [`Symbol::from_subject_token`].
    pub fn subject_token(&self) -> CompactString {
        if self.0.contains('.') {
            self.0.replace('.', "_").into()
        } else {
            self.0.clone()
        }
    }

    /// Reads a symbol back from its subject token (see [`Symbol::subject_token`]).
    pub fn from_subject_token(token: &str) -> Result<Self, InvalidValue> {
        if token.contains('.') {
            return Err(InvalidValue::new(
                "symbol",
                format!("subject token {token:?} contains '.'"),
            ));
        }
        Self::new(&token.replace('_', "."))
    }

    /// A stable 64-bit hash of the symbol, the same on every process and
    /// platform; used to route a symbol to a worker.
    pub fn route_hash(&self) -> u64 {
        xxhash_rust::xxh3::xxh3_64(self.0.as_bytes())
    }
}

/// Whether `value` is a valid ticker symbol.
pub fn is_valid_symbol(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_SYMBOL_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Symbol({})", self.0)
    }
}

impl FromStr for Symbol {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for Symbol {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Serialize for Symbol {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Symbol {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = CompactString::deserialize(deserializer)?;
        if is_valid_symbol(&raw) {
            Ok(Self(raw))
        } else {
            Err(serde::de::Error::custom(format!(
                "invalid symbol {raw:?}: expected [A-Z0-9.-]{{1,{MAX_SYMBOL_LEN}}}"
            )))
        }
    }
}

/// The name of a social source (`x`, `reddit`, `stocktwits`, `news`, ...),
/// matching `[a-z0-9_-]{1,32}` so that it can be a subject token.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct SourceName(CompactString);

impl SourceName {
    /// Checks `value` and wraps it.
    pub fn new(value: &str) -> Result<Self, InvalidValue> {
        if is_valid_source(value) {
            Ok(Self(CompactString::new(value)))
        } else {
            Err(InvalidValue::new(
                "source",
                format!("{value:?} does not match [a-z0-9_-]{{1,{MAX_SOURCE_LEN}}}"),
            ))
        }
    }

    /// The source name as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// Whether `value` is a valid social source name.
pub fn is_valid_source(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_SOURCE_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SourceName {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl Serialize for SourceName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SourceName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = CompactString::deserialize(deserializer)?;
        if is_valid_source(&raw) {
            Ok(Self(raw))
        } else {
            Err(serde::de::Error::custom(format!(
                "invalid source {raw:?}: expected [a-z0-9_-]{{1,{MAX_SOURCE_LEN}}}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_tickers() {
        for ok in ["A", "AAPL", "BRK.B", "RDS-A", "0700", "ABCDEFGHIJKL"] {
            assert!(Symbol::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_non_tickers() {
        for bad in [
            "",
            "aapl",
            "AAPL ",
            "ABCDEFGHIJKLM",
            "A*",
            "A>",
            "$AAPL",
            "ÄPL",
        ] {
            let err = Symbol::new(bad).unwrap_err();
            assert_eq!(err.field, "symbol");
        }
    }

    #[test]
    fn subject_token_round_trips_dots() {
        let s = Symbol::new("BRK.B").unwrap();
        assert_eq!(s.subject_token(), "BRK_B");
        assert_eq!(Symbol::from_subject_token("BRK_B").unwrap(), s);
        assert!(Symbol::from_subject_token("BRK.B").is_err());
    }

    #[test]
    fn source_names() {
        assert!(SourceName::new("stocktwits").is_ok());
        assert!(SourceName::new("X").is_err());
        assert!(SourceName::new("a.b").is_err());
    }
}
