//! insite-pipeline: not yet implemented.
