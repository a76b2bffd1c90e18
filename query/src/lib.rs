//! insite-query: not yet implemented.
