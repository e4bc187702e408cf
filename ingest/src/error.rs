//! Errors of the ingest crate.

use std::path::PathBuf;

/// Why one record could not be decoded. The pipeline counts it, keeps it in the dead-letter
/// output with its position, and goes on with the next record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not JSON, or JSON with a field of the wrong type.
    #[error("malformed JSON: {0}")]
    Json(String),
    /// Valid JSON, but not any shape of audit event that audithound reads.
    #[error("not a Kubernetes audit event: {0}")]
    NotAuditEvent(String),
    /// An event larger than the configured limit.
    #[error("event of {size} bytes exceeds the limit of {limit} bytes")]
    Oversized {
        /// Size of the event in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A timestamp that is not RFC 3339.
    #[error("invalid timestamp `{0}`")]
    BadTimestamp(String),
    /// A record that is not valid UTF-8.
    #[error("record is not valid UTF-8")]
    NotUtf8,
}

impl From<serde_json::Error> for DecodeError {
    fn from(e: serde_json::Error) -> Self {
        DecodeError::Json(e.to_string())
    }
}

/// Why an input could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The path does not exist or cannot be opened.
    #[error("cannot open `{path}`: {source}")]
    Open {
        /// The path given.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Reading failed midway.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The path being read.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A path that matched nothing readable.
    #[error("`{0}` holds no files to read")]
    Empty(PathBuf),
    /// Building an Arrow batch failed (a bug: the builder and the schema disagree).
    #[error("building an Arrow batch failed: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}
