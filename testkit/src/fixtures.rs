//! What tests are fed: the value builders of [`insite_schemas::fixtures`]
//! ([`bar`], [`trade`], [`symbol`]) and the recorded input files under
//! `testkit/fixtures/` ([`file()`]).

use std::path::PathBuf;

pub use insite_schemas::fixtures::*;

/// The fixture file at `path` under `testkit/fixtures/` (e.g.
/// `"ingest/trades.csv"`).
pub fn file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path)
}

/// The text of the fixture file at `path` under `testkit/fixtures/`.
///
/// # Panics
/// If the file cannot be read.
pub fn text(path: &str) -> String {
    let file = file(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()))
}
