//! Getting events into audithound: inputs, framing, decoders and batches.
//!
//! This crate owns reading bytes (files, directories, `.gz`, stdin; later the live tailer and
//! the webhook body), cutting them into records (lines, or pretty-printed documents), decoding
//! records of every supported format into Arrow batches of the event tables, and counting what
//! could not be decoded. It does not evaluate rules or know about findings.

pub mod audit;
pub mod capture;
pub mod dead_letter;
pub mod error;
pub mod framing;
pub mod input;
pub mod netlog;
pub mod reader;
pub mod table_builder;
pub mod tail;
pub mod time;

pub use arrow::record_batch::RecordBatch;
pub use audit::{AuditDecoder, DEFAULT_MAX_EVENT_BYTES, DecodeOptions, RecordOutcome};
pub use dead_letter::DeadLetter;
pub use error::{DecodeError, InputError};
pub use framing::{FramedRecord, Framer};
pub use reader::{BadRecord, DecodedBatch, ReadOptions, ReadStats, read_audit_inputs};
