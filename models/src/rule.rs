//! The rule file format: what a detection rule says about itself.
//!
//! A rule is a YAML document holding metadata and one SQL query over the event tables; its rows
//! become findings. Loading, validating and running rules is the analytics crate's job; this module
//! only defines the shape, so that every crate (and the API) speaks of rules the same way.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::severity::Severity;

/// A detection rule as written in a rule file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique id; a user rule with the id of a built-in one replaces it.
    pub id: String,
    /// One line for humans.
    pub title: String,
    /// What the rule detects and why it matters.
    #[serde(default)]
    pub description: String,
    /// Severity of its findings.
    pub severity: Severity,
    /// ATT&CK and Threat Matrix technique ids (validated against the catalog).
    #[serde(default)]
    pub techniques: Vec<String>,
    /// Free-form tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Disabled rules are loaded and validated but never run.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// For rules that aggregate over recent events: how far back their window reaches (`5m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// How matching rows merge into one finding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup: Option<DedupSpec>,
    /// Named allow-lists of column values whose rows never become findings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<ExceptionList>,
    /// Lists that the SQL refers to as `${name}` and that a config may override.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, Vec<String>>,
    /// Template of the finding's explanation: `{column}` is replaced with the row's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    /// The query; its rows become findings.
    pub sql: String,
    /// Tests that `audithound rules test` runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<RuleTest>,
    /// Where the rule came from (Sigma import keeps the original id, author and references).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, serde_json::Value>,
}

fn default_true() -> bool {
    true
}

/// Deduplication: rows with equal key columns within one period make one finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupSpec {
    /// Columns of the rule's output whose values identify one incident.
    pub key: Vec<String>,
    /// Length of the period (`10m`, `1h`); rows in the same period merge.
    pub period: String,
}

/// A named allow-list: rows whose `column` holds one of `values` are dropped.
///
/// A value ending in `*` matches every value with that prefix; a `*` anywhere else matches any
/// run of characters but `/` and `:` (`602401143452.dkr.ecr.*.amazonaws.com/eks/kube-proxy`).
/// For list columns, a row is dropped when every element matches. `list` names a shared list
/// (the built-in pack's `lists/`) whose values the list holds too, so that one list of the
/// cluster's own components serves every rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionList {
    /// Name under which a config extends the list.
    pub name: String,
    /// Output column the list applies to.
    pub column: String,
    /// Allowed values.
    #[serde(default)]
    pub values: Vec<String>,
    /// A shared list whose values are allowed too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
}

/// A test carried inside a rule file: events in, expected findings out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleTest {
    /// What the test shows.
    pub name: String,
    /// Inline records (audit events or any supported log record), or raw log text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<TestEvents>,
    /// A log file, relative to the rule file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Whether the rule must produce at least one finding (`true`) or none (`false`).
    #[serde(rename = "match")]
    pub expect_match: bool,
    /// Exact number of findings expected, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// Field values that the first finding must carry (`severity`, `user`, `namespace`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, serde_json::Value>,
    /// Parameter values for this test, overriding the rule's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, Vec<String>>,
}

/// The input events of a rule test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TestEvents {
    /// Records written as YAML/JSON objects, one per event.
    Records(Vec<serde_json::Value>),
    /// Raw log text in any supported format.
    Text(String),
}

/// A duration that is not of the form `<number><unit>` with unit ms, s, m, h or d.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{0}` (expected a number followed by ms, s, m, h or d, e.g. `5m`)")]
pub struct InvalidDuration(pub String);

/// Parses durations as rules write them: `500ms`, `30s`, `5m`, `1h`, `1d`.
pub fn parse_duration(text: &str) -> Result<Duration, InvalidDuration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| InvalidDuration(text.to_string()))?;
    let secs = match unit.trim() {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(InvalidDuration(text.to_string())),
    };
    if n == 0 {
        return Err(InvalidDuration(text.to_string()));
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_duration("five minutes").is_err());
        assert!(parse_duration("0m").is_err());
        assert!(parse_duration("5 weeks").is_err());
    }

    #[test]
    fn rule_spec_reads_minimal_json_and_defaults_to_enabled() {
        let spec: RuleSpec = serde_json::from_value(serde_json::json!({
            "id": "r1", "title": "t", "severity": "high", "sql": "SELECT 1"
        }))
        .unwrap();
        assert!(spec.enabled);
        assert!(spec.techniques.is_empty());
        let err = serde_json::from_value::<RuleSpec>(serde_json::json!({
            "id": "r1", "title": "t", "severity": "high", "sql": "SELECT 1", "sevrity": "x"
        }));
        assert!(err.is_err(), "misspelt keys are refused, not ignored");
    }
}
