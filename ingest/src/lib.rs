//! insite-ingest: not yet implemented.
