//! insite-sinks: not yet implemented.
