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
    /// A timestamp in no form that audit logs or the pipelines that carry them write.
    #[error("invalid timestamp `{0}`")]
    BadTimestamp(String),
    /// A record that is not valid UTF-8.
    #[error("record is not valid UTF-8")]
    NotUtf8,
    /// Decoded rows that could not be assembled into a batch: the decoder and the table's
    /// schema disagree (a bug), reported for the records of the batch rather than a panic.
    #[error("building an Arrow batch failed: {0}")]
    BatchAssembly(String),
}

impl DecodeError {
    /// Why the record was refused, in words that do not depend on where in the record the
    /// fault was nor on the record's values (a position, an oversized event's size, a bad
    /// timestamp's text): records refused for one reason share it, so that a summary counts
    /// them together.
    pub fn reason(&self) -> String {
        match self {
            DecodeError::Json(message) => {
                let message = match message.rfind(" at line ") {
                    Some(at) => &message[..at],
                    None => message,
                };
                // serde_json quotes the offending value in backticks: `0`, `"x"`.
                let mut general = String::with_capacity(message.len());
                let mut parts = message.split('`');
                while let Some(outside) = parts.next() {
                    general.push_str(outside.strip_suffix(' ').unwrap_or(outside));
                    parts.next();
                }
                format!("malformed JSON: {general}")
            }
            DecodeError::NotAuditEvent(why) => format!("not a Kubernetes audit event: {why}"),
            DecodeError::Oversized { limit, .. } => {
                format!("event larger than the limit of {limit} bytes")
            }
            DecodeError::BadTimestamp(_) => "invalid timestamp".into(),
            DecodeError::NotUtf8 => "record is not valid UTF-8".into(),
            DecodeError::BatchAssembly(_) => "building an Arrow batch failed".into(),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_leave_out_positions_and_values() {
        let a: DecodeError = serde_json::from_str::<serde_json::Value>("{\"a\":")
            .unwrap_err()
            .into();
        let b: DecodeError = serde_json::from_str::<serde_json::Value>("[1, {\"bb\":")
            .unwrap_err()
            .into();
        assert_eq!(a.reason(), b.reason());
        assert!(
            a.reason().starts_with("malformed JSON: EOF"),
            "{}",
            a.reason()
        );
        let kind =
            |v: &str| -> DecodeError { serde_json::from_str::<Vec<String>>(v).unwrap_err().into() };
        assert_eq!(kind("[0]").reason(), kind("[5]").reason());
        assert_eq!(
            kind("[0]").reason(),
            "malformed JSON: invalid type: integer, expected a string"
        );
        assert_eq!(
            DecodeError::BadTimestamp("soon".into()).reason(),
            DecodeError::BadTimestamp("later".into()).reason()
        );
        let big = |size| DecodeError::Oversized { size, limit: 10 };
        assert_eq!(big(11).reason(), big(99).reason());
    }
}
