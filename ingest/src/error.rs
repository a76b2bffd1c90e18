//! Typed errors of the ingest workers, sorted into retryable, bad data and
//! internal so that callers know whether to retry, dead-letter or stop.

use std::path::PathBuf;

/// How an [`IngestError`] should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// A server or network failed; the same work may succeed later.
    Retryable,
    /// The input is wrong; retrying cannot help.
    BadData,
    /// A bug or a broken local environment.
    Internal,
}

/// Why an ingest run stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// A publish was not acknowledged even after every retry (with the same
    /// `Nats-Msg-Id`), or the server refused it outright.
    #[error(
        "publishing to {subject} (msg id {msg_id}) failed after {attempts} attempt(s): {reason}"
    )]
    Publish {
        /// The subject.
        subject: String,
        /// The message id.
        msg_id: String,
        /// How many times it was sent.
        attempts: u32,
        /// The last error.
        reason: String,
    },
    /// NATS could not be reached.
    #[error("connecting to NATS at {url}: {reason}")]
    Connect {
        /// The URL(s).
        url: String,
        /// The client's error.
        reason: String,
    },
    /// The JetStream streams could not be created or checked.
    #[error(transparent)]
    Streams(#[from] insite_sinks::streams::StreamSetupError),
    /// A value could not be encoded (a bug: the schema types always encode).
    #[error(transparent)]
    Encode(#[from] insite_schemas::EncodeError),
    /// An input file could not be opened or read.
    #[error("reading {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An input as a whole is unusable (a CSV file without a required
    /// column, say). Single bad lines are dead-lettered instead.
    #[error("{origin}: {reason}")]
    BadInput {
        /// Where (file and line, URL).
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// A setting is out of range or inconsistent.
    #[error("invalid ingest settings: {0}")]
    Config(String),
    /// A live source failed in a way reconnecting cannot fix.
    #[error("source {source_name}: {reason}")]
    Source {
        /// The source.
        source_name: String,
        /// What happened.
        reason: String,
    },
}

impl IngestError {
    /// Whether to retry, dead-letter or stop.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Publish { .. }
            | Self::Connect { .. }
            | Self::Streams(_)
            | Self::Source { .. } => ErrorClass::Retryable,
            Self::BadInput { .. } | Self::Config(_) => ErrorClass::BadData,
            Self::Encode(_) | Self::Io { .. } => ErrorClass::Internal,
        }
    }
}
