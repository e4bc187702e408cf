//! The shared vocabulary of audithound.
//!
//! This crate owns the Arrow schemas of the event tables, the `Finding` a rule produces, the
//! `Severity` scale, the technique catalog (ATT&CK for Containers, the Microsoft Threat Matrix for
//! Kubernetes, and the ATT&CK Enterprise techniques that rules use) and the rule file format.
//! It does no I/O: reading logs, running SQL and serving HTTP live in the other crates.

pub mod finding;
pub mod rule;
pub mod schema;
pub mod severity;
pub mod technique;

pub use finding::{Finding, TechniqueRef};
pub use rule::{DedupSpec, ExceptionList, RuleSpec, RuleTest};
pub use schema::{AuditColumn, TableKind, audit_schema};
pub use severity::Severity;
pub use technique::{Catalog, Framework, Technique, UnknownTechnique};
