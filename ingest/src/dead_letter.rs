//! Dead letters: records that could not be decoded, kept with where they were and why, so that
//! no record is lost without a trace and a user can see at once what a new input shape needs.
//!
//! One shape serves every place that keeps them: the scan's `--dead-letter` file and the
//! capture store's `dead_letter/` parts hold the same NDJSON lines.

use serde::{Deserialize, Serialize};

use crate::error::DecodeError;

/// Bytes of a record kept in its dead letter: enough to recognise the record, bounded however
/// large it was.
pub const EXCERPT_BYTES: usize = 256;

/// One record that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The input the record came from (a file's path).
    pub source: String,
    /// Line number of the record's first line (1-based), where it is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// Byte offset of the record's first byte in its source.
    pub offset: u64,
    /// What was wrong with it, in full.
    pub error: String,
    /// Why it was refused, the same for every record refused alike ([`DecodeError::reason`]).
    pub reason: String,
    /// The start of the record, as text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub excerpt: String,
}

impl DeadLetter {
    /// The dead letter of `record`, at `offset` of `source`, refused for `error`.
    pub fn refused(
        source: impl Into<String>,
        offset: u64,
        error: &DecodeError,
        record: &[u8],
    ) -> Self {
        DeadLetter {
            source: source.into(),
            line: None,
            offset,
            error: error.to_string(),
            reason: error.reason(),
            excerpt: excerpt(record),
        }
    }

    /// The same, with the record's line number.
    pub fn at_line(self, line: u64) -> Self {
        DeadLetter {
            line: Some(line),
            ..self
        }
    }

    /// The dead letter as one NDJSON line (without the newline).
    pub fn to_json_line(&self) -> String {
        // Strings and numbers only: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Memory the dead letter holds, for byte-bounded queues.
    pub fn heap_bytes(&self) -> usize {
        self.source.len() + self.error.len() + self.reason.len() + self.excerpt.len()
    }
}

/// The start of a record as text: at most [`EXCERPT_BYTES`], bytes that are not UTF-8 replaced,
/// the line end left out.
pub fn excerpt(record: &[u8]) -> String {
    let cut = record.len().min(EXCERPT_BYTES);
    let text = String::from_utf8_lossy(&record[..cut]);
    text.trim_end_matches(['\n', '\r']).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_says_where_what_and_why_and_reads_back() {
        let error = DecodeError::BadTimestamp("soon".into());
        let letter = DeadLetter::refused("/var/log/audit.log", 120, &error, b"{\"ts\":\"soon\"}\n")
            .at_line(3);
        let line = letter.to_json_line();
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["source"], "/var/log/audit.log");
        assert_eq!(value["line"], 3);
        assert_eq!(value["offset"], 120);
        assert_eq!(value["error"], "invalid timestamp `soon`");
        assert_eq!(value["reason"], "invalid timestamp");
        assert_eq!(value["excerpt"], "{\"ts\":\"soon\"}");
        let back: DeadLetter = serde_json::from_str(&line).unwrap();
        assert_eq!(back, letter);
    }

    #[test]
    fn excerpts_are_bounded_and_text_whatever_the_record() {
        let huge = vec![b'x'; 10 * EXCERPT_BYTES];
        assert_eq!(excerpt(&huge).len(), EXCERPT_BYTES);
        // A multi-byte character cut in two, and bytes that are not UTF-8 at all.
        let mut cut = vec![b'a'; EXCERPT_BYTES - 1];
        cut.extend("é".as_bytes());
        assert!(excerpt(&cut).ends_with('\u{FFFD}'));
        assert_eq!(excerpt(&[0xff, b'{']), "\u{FFFD}{");
        let letter = DeadLetter::refused("s", 0, &DecodeError::NotUtf8, &[]);
        assert!(!letter.to_json_line().contains("excerpt"));
        assert!(!letter.to_json_line().contains("\"line\""));
    }
}
