//! Judging events: rule loading and validation, the DataFusion rule engine, windows,
//! deduplication and exceptions, and rule tests.
//!
//! This crate owns turning batches of the event tables into findings. It does not read logs
//! (the ingest crate does) and does not serve HTTP (the api crate does).

pub mod builtin;
pub mod credentials;
pub mod decode_screen;
pub mod dedup;
pub mod engine;
pub mod enrich;
pub mod error;
pub mod forensic;
pub mod image_ref;
pub mod matches;
pub mod params;
pub mod patterns;
pub mod prescreen;
pub mod reads;
pub mod regex_match;
pub mod rules;
pub mod shared_lists;
pub mod sigma;
pub mod store;
#[cfg(test)]
mod test_plans;
pub mod testing;
pub mod udf;

pub use engine::{BatchOutcome, RuleConfig, RuleEngine};
pub use error::{EngineError, RuleError};
pub use rules::{LoadedRule, RulePack, RuleSource};
