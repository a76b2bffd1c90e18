//! Errors of the operators crate.
//!
//! Only configuration can be wrong here: the operators take validated
//! events and never fail on data (a late event is a result, not an error).
//! A [`ConfigError`] is of the "bad data" sort: fix the config, do not retry.

/// A setting that cannot work, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid operators setting `{field}`: {reason}")]
pub struct ConfigError {
    /// The setting, as written in the config (`trending.size`).
    pub field: &'static str,
    /// Why it is rejected.
    pub reason: String,
}

impl ConfigError {
    /// A new error about `field`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}
