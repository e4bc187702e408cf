//! Rule tests: the `tests:` a rule file carries, run against the rule alone.
//!
//! Each test's events (inline records, raw log text, or a fixture file relative to the rule file)
//! are decoded like any input, fed to an engine holding only that rule, and the findings are
//! checked against `match`, `count` and `fields`.

use std::collections::BTreeMap;

use audithound_ingest::reader::{ReadOptions, decode_bytes};
use audithound_models::Finding;
use audithound_models::rule::{RuleTest, TestEvents};
use serde_json::Value;

use crate::engine::{RuleConfig, RuleEngine};
use crate::rules::LoadedRule;

/// The result of one rule test.
#[derive(Debug, Clone, PartialEq)]
pub struct TestResult {
    /// The rule.
    pub rule_id: String,
    /// The test's name.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// On success, the first finding (if any) in one line; on failure, why.
    pub detail: String,
}

/// Runs every test of a rule.
pub fn run_rule_tests(rule: &LoadedRule, config: &RuleConfig) -> Vec<TestResult> {
    rule.spec
        .tests
        .iter()
        .map(|t| run_one(rule, t, config))
        .collect()
}

fn run_one(rule: &LoadedRule, test: &RuleTest, config: &RuleConfig) -> TestResult {
    let result = |passed: bool, detail: String| TestResult {
        rule_id: rule.spec.id.clone(),
        name: test.name.clone(),
        passed,
        detail,
    };
    let input = match test_input(rule, test) {
        Ok(i) => i,
        Err(e) => return result(false, e),
    };
    let (batches, bad, _) = decode_bytes(&input, &ReadOptions::default());
    if let Some(b) = bad.first() {
        return result(
            false,
            format!("test event at line {} does not decode: {}", b.line, b.error),
        );
    }
    let mut engine = match RuleEngine::single(rule, config, &test.params) {
        Ok(e) => e,
        Err(e) => return result(false, e.to_string()),
    };
    let mut findings: BTreeMap<String, Finding> = BTreeMap::new();
    let mut directory = crate::enrich::IpDirectory::new();
    for (table, batch) in batches {
        let batch = directory.enrich(table, batch);
        let outcome = engine.process(table, &batch);
        if let Some(e) = outcome.errors.first() {
            return result(false, e.to_string());
        }
        for f in outcome.findings {
            findings.insert(f.id.clone(), f);
        }
    }
    let mut findings: Vec<Finding> = findings.into_values().collect();
    findings.sort_by(|a, b| a.first_seen.cmp(&b.first_seen).then(a.id.cmp(&b.id)));

    if test.expect_match && findings.is_empty() {
        return result(false, "expected a finding, got none".into());
    }
    if !test.expect_match && !findings.is_empty() {
        return result(
            false,
            format!(
                "expected no finding, got {}: {}",
                findings.len(),
                summary(&findings[0])
            ),
        );
    }
    if let Some(n) = test.count.filter(|n| *n != findings.len()) {
        return result(
            false,
            format!("expected {n} finding(s), got {}", findings.len()),
        );
    }
    if let Some(first) = findings.first() {
        let actual = serde_json::to_value(first).unwrap_or(Value::Null);
        for (field, want) in &test.fields {
            let got = field_value(&actual, field);
            if !values_equal(&got, want) {
                return result(
                    false,
                    format!("field `{field}`: expected {want}, got {got}"),
                );
            }
        }
        return result(true, summary(first));
    }
    result(true, "no finding, as expected".into())
}

fn test_input(rule: &LoadedRule, test: &RuleTest) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    match &test.events {
        Some(TestEvents::Records(records)) => {
            for r in records {
                out.extend_from_slice(r.to_string().as_bytes());
                out.push(b'\n');
            }
        }
        Some(TestEvents::Text(text)) => out.extend_from_slice(text.as_bytes()),
        None => {}
    }
    if let Some(file) = &test.file {
        let base = rule.base_dir.clone().unwrap_or_default();
        let path = base.join(file);
        let bytes = std::fs::read(&path)
            .map_err(|e| format!("cannot read test file `{}`: {e}", path.display()))?;
        out.extend_from_slice(&bytes);
        out.push(b'\n');
    }
    if test.events.is_none() && test.file.is_none() {
        return Err("test has neither `events` nor `file`".into());
    }
    Ok(out)
}

/// A field of the finding's JSON, by name, or by `evidence.<name>`.
fn field_value(finding: &Value, field: &str) -> Value {
    let mut cur = finding;
    for part in field.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => return Value::Null,
        }
    }
    cur.clone()
}

fn values_equal(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        // A list of technique objects matches a list of ids.
        (Value::Array(items), Value::String(s)) => items
            .iter()
            .any(|i| i.as_str() == Some(s) || i.get("id").and_then(Value::as_str) == Some(s)),
        (a, b) => a == b,
    }
}

fn summary(f: &Finding) -> String {
    format!(
        "[{}] {} user={} ns={} name={} count={}",
        f.severity,
        f.explanation,
        f.user.as_deref().unwrap_or("-"),
        f.namespace.as_deref().unwrap_or("-"),
        f.name.as_deref().unwrap_or("-"),
        f.count
    )
}
