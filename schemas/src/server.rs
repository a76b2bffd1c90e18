//! Which ClickHouse features a server has, from the version it reports.
//!
//! insite runs on ClickHouse 18.16 (the only server the registries carry)
//! and on current releases. [`ServerVersion::parse`] reads what
//! `SELECT version()` answers (`18.16.1`, `23.8.1.2992`, `26.9.2.1`), and
//! [`Features::of`] switches on what that release supports:
//!
//! | feature | from | used for |
//! |---|---|---|
//! | [`Features::low_cardinality`] | 19.6 | `LowCardinality(String)` for symbol-, source- and kind-like columns of new tables |
//! | [`Features::ttl`] | 19.6 | `TTL` retention of the raw tables (`clickhouse.raw_ttl_days`) |
//! | [`Features::datetime64`] | 20.5 | `DateTime64(3, 'UTC')` `ALIAS` columns over the millisecond columns |
//!
//! The lines are conservative: each is a release that has the feature (and,
//! for `DateTime64`, `fromUnixTimestamp64Milli`) on by default; an earlier
//! release may have it too, or behind a setting (18.16's `LowCardinality`
//! needs `allow_experimental_low_cardinality_type`). Only the ends, 18.16
//! and the current engine of `scripts/check-clickhouse-current.sh`, are
//! tested.

use std::fmt;

/// A ClickHouse release, as `SELECT version()` reports it: `major.minor`
/// and up to two more numbers (`patch`, `build`; 0 when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerVersion {
    /// The year-like major version (18, 23, 26, ...).
    pub major: u32,
    /// The minor version.
    pub minor: u32,
    /// The patch number.
    pub patch: u32,
    /// The build number.
    pub build: u32,
}

/// A version string that is not `major.minor[.patch[.build]]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ClickHouse reported version {0:?}, not major.minor[.patch[.build]]")]
pub struct BadVersion(pub String);

impl ServerVersion {
    /// ClickHouse 18.16.1, the Debian package the suite runs against.
    pub const V18_16: Self = Self::new(18, 16, 1, 0);

    /// `major.minor.patch.build`.
    pub const fn new(major: u32, minor: u32, patch: u32, build: u32) -> Self {
        Self {
            major,
            minor,
            patch,
            build,
        }
    }

    /// Parses `SELECT version()`'s answer: `18.16.1`, `26.9.2.1`,
    /// `23.8.1.2992`; surrounding whitespace and quotes are ignored, and so
    /// is a suffix after the numbers (`24.3.1.2672-lts`, `25.1.1.1 (official
    /// build)`).
    pub fn parse(text: &str) -> Result<Self, BadVersion> {
        let bad = || BadVersion(text.to_owned());
        let trimmed = text.trim().trim_matches(['"', '\'']);
        let numeric = trimmed
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()
            .unwrap_or_default();
        let mut parts = numeric.split('.');
        let mut next = |required: bool| -> Result<u32, BadVersion> {
            match parts.next() {
                Some(p) => p.parse().map_err(|_| bad()),
                None if required => Err(bad()),
                None => Ok(0),
            }
        };
        let version = Self::new(next(true)?, next(true)?, next(false)?, next(false)?);
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(version)
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}.{}",
            self.major, self.minor, self.patch, self.build
        )
    }
}

/// The features of newer servers that insite uses where they exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Features {
    /// `LowCardinality(String)` columns without a setting.
    pub low_cardinality: bool,
    /// Table `TTL` clauses (`ALTER TABLE … MODIFY TTL`).
    pub ttl: bool,
    /// `DateTime64` and `fromUnixTimestamp64Milli`.
    pub datetime64: bool,
}

impl Features {
    /// None: what ClickHouse 18.16 gets.
    pub const NONE: Self = Self {
        low_cardinality: false,
        ttl: false,
        datetime64: false,
    };

    /// The first release with `LowCardinality` on by default (insite's line).
    pub const LOW_CARDINALITY_FROM: ServerVersion = ServerVersion::new(19, 6, 0, 0);
    /// The first release with table `TTL`.
    pub const TTL_FROM: ServerVersion = ServerVersion::new(19, 6, 0, 0);
    /// The first release with `DateTime64` and `fromUnixTimestamp64Milli`.
    pub const DATETIME64_FROM: ServerVersion = ServerVersion::new(20, 5, 0, 0);

    /// What `version` supports.
    pub fn of(version: ServerVersion) -> Self {
        Self {
            low_cardinality: version >= Self::LOW_CARDINALITY_FROM,
            ttl: version >= Self::TTL_FROM,
            datetime64: version >= Self::DATETIME64_FROM,
        }
    }

    /// The features named, for logs: `low_cardinality,ttl,datetime64`, or
    /// `none`.
    pub fn names(&self) -> String {
        let names: Vec<&str> = [
            (self.low_cardinality, "low_cardinality"),
            (self.ttl, "ttl"),
            (self.datetime64, "datetime64"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(",")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_versions_servers_report() {
        assert_eq!(
            ServerVersion::parse("18.16.1").unwrap(),
            ServerVersion::new(18, 16, 1, 0)
        );
        assert_eq!(
            ServerVersion::parse("26.9.2.1").unwrap(),
            ServerVersion::new(26, 9, 2, 1)
        );
        assert_eq!(
            ServerVersion::parse("23.8.1.2992").unwrap(),
            ServerVersion::new(23, 8, 1, 2992)
        );
        assert_eq!(
            ServerVersion::parse(" \"24.3.1.2672-lts\"\n").unwrap(),
            ServerVersion::new(24, 3, 1, 2672)
        );
        assert_eq!(
            ServerVersion::parse("25.1").unwrap(),
            ServerVersion::new(25, 1, 0, 0)
        );
    }

    #[test]
    fn refuses_what_is_not_a_version() {
        for text in ["", "18", "x.y", "18.", "1.2.3.4.5", "v18.16", "18.-1"] {
            assert_eq!(
                ServerVersion::parse(text),
                Err(BadVersion(text.into())),
                "{text:?}"
            );
        }
    }

    #[test]
    fn versions_order_numerically() {
        let v = |s| ServerVersion::parse(s).unwrap();
        assert!(v("18.16.1") < v("19.6"));
        assert!(v("19.10.1") > v("19.6.3"));
        assert!(v("23.8.1.2992") < v("23.8.2.1"));
        assert!(v("26.9.2.1") > v("23.8.1.2992"));
    }

    #[test]
    fn old_servers_get_no_new_features_and_current_ones_all() {
        assert_eq!(Features::of(ServerVersion::V18_16), Features::NONE);
        assert_eq!(Features::NONE.names(), "none");
        for current in ["23.8.1.2992", "26.9.2.1"] {
            let f = Features::of(ServerVersion::parse(current).unwrap());
            assert!(f.low_cardinality && f.ttl && f.datetime64, "{current}");
            assert_eq!(f.names(), "low_cardinality,ttl,datetime64");
        }
        let between = Features::of(ServerVersion::parse("19.16.14.65").unwrap());
        assert!(between.ttl && between.low_cardinality && !between.datetime64);
    }
}
