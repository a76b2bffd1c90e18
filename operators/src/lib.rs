//! insite-operators: not yet implemented.
