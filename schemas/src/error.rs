//! Typed errors of the wire contract.
//!
//! Every error says what was wrong in words fit for a dead-letter header
//! ([`DecodeError::reason`]) and sorts itself as bad data, so that callers
//! dead-letter the message and go on rather than retry or stop.

use std::borrow::Cow;

/// A value that breaks a rule of the contract (a bad symbol, a negative price).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct InvalidValue {
    /// The field or kind of value that is wrong.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl InvalidValue {
    /// A new error about `field`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// Why an inbound message could not be turned into events.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The message has no `Insite-Schema` header.
    #[error("missing Insite-Schema header")]
    MissingSchema,
    /// The `Insite-Schema` header is not of the form `<type>.v<N>`, or names
    /// a type this reader does not know.
    #[error("unknown schema {0:?}")]
    UnknownSchema(String),
    /// The type is known but not at this version.
    #[error(
        "unsupported version {version} of schema {kind} (this reader knows v1..=v{supported})"
    )]
    UnsupportedVersion {
        /// The schema type named by the header.
        kind: &'static str,
        /// The version named by the header.
        version: u32,
        /// The newest version this reader understands.
        supported: u32,
    },
    /// The type is known but not expected on this stream (a bar on the
    /// market stream, say).
    #[error("schema {schema} is not accepted here (expected one of: {expected})")]
    UnexpectedSchema {
        /// The schema named by the header.
        schema: String,
        /// The schemas that are accepted.
        expected: &'static str,
    },
    /// The payload is not valid MessagePack of the announced type.
    #[error("malformed {schema} payload: {source}")]
    Malformed {
        /// The schema named by the header.
        schema: String,
        /// The decoder's own error.
        #[source]
        source: rmp_serde::decode::Error,
    },
    /// The payload decoded but a value breaks a rule of the contract.
    #[error("invalid {schema} payload: {source}")]
    Invalid {
        /// The schema named by the header.
        schema: String,
        /// Which rule was broken.
        #[source]
        source: InvalidValue,
    },
}

impl DecodeError {
    /// A one-line reason for a dead-letter header (no line breaks, bounded
    /// length).
    pub fn reason(&self) -> Cow<'static, str> {
        let mut text = self.to_string().replace(['\r', '\n'], " ");
        if text.len() > 512 {
            let mut cut = 509;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str("...");
        }
        Cow::Owned(text)
    }

    /// A short, stable code for the kind of failure, for metrics labels and
    /// the `Insite-Error-Kind` dead-letter header.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingSchema => "missing_schema",
            Self::UnknownSchema(_) => "unknown_schema",
            Self::UnsupportedVersion { .. } => "unsupported_version",
            Self::UnexpectedSchema { .. } => "unexpected_schema",
            Self::Malformed { .. } => "malformed",
            Self::Invalid { .. } => "invalid",
        }
    }
}

/// Why a value could not be encoded (only values that cannot be represented,
/// which the schema types never produce).
#[derive(Debug, thiserror::Error)]
#[error("encode failed: {0}")]
pub struct EncodeError(#[from] pub rmp_serde::encode::Error);
