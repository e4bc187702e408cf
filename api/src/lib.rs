//! The REST API of audithound: findings for SIEMs, forensic queries, rules and techniques, the
//! audit webhook receiver, health and metrics.
//!
//! Not built yet: the SIEM API issue fills this crate. It depends on `analytics` and `models`
//! and is used only by the binary.

/// The API's version string, served at `/version` once the router exists.
pub const API_VERSION: &str = "v1";
