//! Deduplication: the rows of one incident become one finding with a count.
//!
//! Rows of a rule whose key columns are equal merge into the open finding while they keep coming
//! within the rule's period of its last evidence. The finding's id is stable: it is derived from
//! the rule, the cluster, the key and the period bucket of the first evidence (or, for a key that
//! is the request's audit id, from the id alone), so the same input always gives the same ids.
//! Stages of one request (RequestReceived, ResponseStarted, ResponseComplete) share an audit id
//! and count once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use audithound_models::finding::stable_id;
use audithound_models::{Finding, Severity, TechniqueRef};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::matches::Match;

/// What a rule contributes to its findings.
#[derive(Debug, Clone)]
pub struct RuleIdentity {
    /// Rule id.
    pub rule_id: String,
    /// Rule title.
    pub title: String,
    /// Severity of its findings.
    pub severity: Severity,
    /// Resolved techniques.
    pub techniques: Vec<TechniqueRef>,
    /// Tags.
    pub tags: Vec<String>,
    /// Explanation template (`{column}` placeholders).
    pub explanation: Option<String>,
    /// Key columns, if the rule names them.
    pub dedup_key: Option<Vec<String>>,
    /// Merge period.
    pub period: Duration,
    /// Whether the rule aggregates over a window (its rows repeat as the window slides).
    pub windowed: bool,
}

/// Columns that describe the evidence rather than identify the incident.
const NON_KEY_COLUMNS: [&str; 7] = [
    "ts",
    "first_seen",
    "last_seen",
    "count",
    "event_ids",
    "explanation",
    "stage",
];
const MAX_EVENT_IDS: usize = 20;
const MAX_TRACKED_IDS: usize = 100_000;

struct Open {
    finding: Finding,
    seen_ids: HashSet<String>,
    period: Duration,
}

/// Open incidents of every rule.
#[derive(Default)]
pub struct Deduplicator {
    open: HashMap<String, Open>,
}

impl Deduplicator {
    /// An empty deduplicator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Merges a match into its open incident (or opens one) and returns the finding as it now is.
    pub fn absorb(&mut self, rule: &RuleIdentity, m: &Match) -> Finding {
        let cluster = m.text("cluster");
        let (key, time_in_id) = incident_key(rule, m);
        let map_key = stable_id([
            rule.rule_id.as_str(),
            cluster.as_deref().unwrap_or(""),
            key.as_str(),
        ]);
        let ids = m.event_ids();

        if let Some(open) = self.open.get_mut(&map_key) {
            let gap_ok = m.first_seen <= open.finding.last_seen + chrono_duration(open.period);
            if gap_ok {
                merge(open, rule, m, &ids);
                return open.finding.clone();
            }
        }
        let bucket = bucket_of(m.first_seen, rule.period);
        let bucket_text = bucket.to_string();
        let mut parts = vec![
            rule.rule_id.as_str(),
            cluster.as_deref().unwrap_or(""),
            key.as_str(),
        ];
        if time_in_id {
            parts.push(bucket_text.as_str());
        }
        let id = stable_id(parts);
        let mut seen_ids: HashSet<String> = HashSet::new();
        seen_ids.extend(ids.iter().cloned());
        let count = if m.columns.contains_key("count") || ids.is_empty() {
            m.count()
        } else {
            seen_ids.len() as u64
        };
        let finding = Finding {
            id,
            rule_id: rule.rule_id.clone(),
            title: rule.title.clone(),
            severity: row_severity(rule, m),
            techniques: rule.techniques.clone(),
            time: m.first_seen,
            cluster,
            user: m.text("user_name").or_else(|| m.text("user")),
            source_ip: m.text("source_ip"),
            namespace: m.text("namespace"),
            resource: match (m.text("resource"), m.text("subresource")) {
                (Some(r), Some(s)) if !s.is_empty() => Some(format!("{r}/{s}")),
                (r, _) => r,
            },
            name: m.text("name"),
            verb: m.text("verb"),
            event_ids: ids.into_iter().take(MAX_EVENT_IDS).collect(),
            count,
            first_seen: m.first_seen,
            last_seen: m.last_seen,
            explanation: explanation(rule, m),
            tags: rule.tags.clone(),
            evidence: evidence(m),
            incident: map_key.clone(),
        };
        let open = Open {
            finding: finding.clone(),
            seen_ids,
            period: rule.period,
        };
        self.open.insert(map_key, open);
        finding
    }

    /// Reopens an incident stored by an earlier run, so replayed evidence merges into it
    /// instead of opening a second finding.
    pub fn restore(&mut self, finding: Finding, period: Duration) {
        if finding.incident.is_empty() {
            return;
        }
        let seen_ids = finding.event_ids.iter().cloned().collect();
        self.open.insert(
            finding.incident.clone(),
            Open {
                finding,
                seen_ids,
                period,
            },
        );
    }

    /// Forgets incidents whose period has passed at event time `watermark`; they are final.
    pub fn expire(&mut self, watermark: DateTime<Utc>) {
        self.open
            .retain(|_, o| o.finding.last_seen + chrono_duration(o.period) >= watermark);
    }

    /// How many incidents are open.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }
}

fn merge(open: &mut Open, rule: &RuleIdentity, m: &Match, ids: &[String]) {
    let f = &mut open.finding;
    let explicit_count = m.columns.contains_key("count");
    let mut new_ids = 0u64;
    for id in ids {
        if open.seen_ids.len() < MAX_TRACKED_IDS && open.seen_ids.insert(id.clone()) {
            new_ids += 1;
            if f.event_ids.len() < MAX_EVENT_IDS {
                f.event_ids.push(id.clone());
            }
        }
    }
    f.count = if rule.windowed || (explicit_count && rule.dedup_key.is_none()) {
        f.count.max(m.count())
    } else if explicit_count {
        f.count + m.count()
    } else if ids.is_empty() {
        f.count + 1
    } else {
        f.count + new_ids
    };
    f.severity = f.severity.max(row_severity(rule, m));
    f.first_seen = f.first_seen.min(m.first_seen);
    f.last_seen = f.last_seen.max(m.last_seen);
    if rule.windowed {
        f.explanation = explanation(rule, m);
        f.evidence = evidence(m);
    }
}

/// The incident key of a match, and whether the finding id must include the time bucket.
fn incident_key(rule: &RuleIdentity, m: &Match) -> (String, bool) {
    if let Some(cols) = &rule.dedup_key {
        let parts: Vec<String> = cols
            .iter()
            .map(|c| m.columns.get(c).map_or("null".into(), Value::to_string))
            .collect();
        return (parts.join("\u{1f}"), true);
    }
    if let Some(id) = m.text("audit_id") {
        return (format!("audit_id={id}"), false);
    }
    let parts: Vec<String> = m
        .columns
        .iter()
        .filter(|(k, _)| !NON_KEY_COLUMNS.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    (parts.join("\u{1f}"), true)
}

/// The rule's severity, or the row's own `severity` column when the query sets one (rules that
/// raise severity for restricted namespaces, say).
fn row_severity(rule: &RuleIdentity, m: &Match) -> Severity {
    m.text("severity")
        .and_then(|s| s.parse().ok())
        .unwrap_or(rule.severity)
}

fn bucket_of(t: DateTime<Utc>, period: Duration) -> i64 {
    let p = (period.as_micros() as i64).max(1);
    t.timestamp_micros().div_euclid(p)
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn evidence(m: &Match) -> BTreeMap<String, Value> {
    const FIELDS: [&str; 15] = [
        "severity",
        "ts",
        "first_seen",
        "last_seen",
        "user_name",
        "user",
        "source_ip",
        "namespace",
        "resource",
        "subresource",
        "name",
        "verb",
        "cluster",
        "audit_id",
        "explanation",
    ];
    m.columns
        .iter()
        .filter(|(k, v)| {
            !FIELDS.contains(&k.as_str())
                && !v.is_null()
                && k.as_str() != "event_ids"
                && k.as_str() != "count"
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn explanation(rule: &RuleIdentity, m: &Match) -> String {
    if let Some(e) = m.text("explanation") {
        return e;
    }
    match &rule.explanation {
        Some(template) => fill_template(template, m),
        None => {
            let who = m
                .text("user_name")
                .or_else(|| m.text("user"))
                .unwrap_or_else(|| "someone".into());
            let what = [
                m.text("verb"),
                m.text("resource"),
                m.text("namespace").map(|n| format!("in {n}")),
                m.text("name"),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
            format!("{}: {who} {what}", rule.title).trim().to_string()
        }
    }
}

/// Replaces `{column}` with the row's value (lists joined with commas; `?` when null).
pub fn fill_template(template: &str, m: &Match) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end)
                if after[..end]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                let name = &after[..end];
                let value = match m.columns.get(name) {
                    Some(Value::Array(items)) => items
                        .iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
                        .collect::<Vec<_>>()
                        .join(", "),
                    Some(Value::Null) | None => "?".to_string(),
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                };
                out.push_str(&value);
                rest = &after[end + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(key: Option<Vec<&str>>, windowed: bool) -> RuleIdentity {
        RuleIdentity {
            rule_id: "r".into(),
            title: "T".into(),
            severity: Severity::High,
            techniques: vec![],
            tags: vec![],
            explanation: Some("{user_name} did {verb} on {name}".into()),
            dedup_key: key.map(|k| k.into_iter().map(String::from).collect()),
            period: Duration::from_secs(600),
            windowed,
        }
    }

    fn m(secs: i64, cols: &[(&str, Value)]) -> Match {
        let t = DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap();
        Match {
            columns: cols
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            first_seen: t,
            last_seen: t,
        }
    }

    #[test]
    fn stages_of_one_request_make_one_finding_counted_once() {
        let mut d = Deduplicator::new();
        let r = rule(None, false);
        let a = d.absorb(
            &r,
            &m(
                0,
                &[
                    ("audit_id", "a1".into()),
                    ("stage", "RequestReceived".into()),
                ],
            ),
        );
        let b = d.absorb(
            &r,
            &m(
                1,
                &[
                    ("audit_id", "a1".into()),
                    ("stage", "ResponseComplete".into()),
                ],
            ),
        );
        assert_eq!(a.id, b.id);
        assert_eq!(b.count, 1);
        assert_eq!(b.event_ids, ["a1"]);
    }

    #[test]
    fn keyed_rows_within_the_period_merge_and_after_a_gap_open_a_new_finding() {
        let mut d = Deduplicator::new();
        let r = rule(Some(vec!["user_name"]), false);
        let first = d.absorb(
            &r,
            &m(0, &[("user_name", "eve".into()), ("audit_id", "1".into())]),
        );
        let same = d.absorb(
            &r,
            &m(
                300,
                &[("user_name", "eve".into()), ("audit_id", "2".into())],
            ),
        );
        assert_eq!(first.id, same.id);
        assert_eq!(same.count, 2);
        let other_user = d.absorb(
            &r,
            &m(
                301,
                &[("user_name", "bob".into()), ("audit_id", "3".into())],
            ),
        );
        assert_ne!(other_user.id, first.id);
        let later = d.absorb(
            &r,
            &m(
                300 + 601,
                &[("user_name", "eve".into()), ("audit_id", "4".into())],
            ),
        );
        assert_ne!(
            later.id, first.id,
            "a gap longer than the period starts a new incident"
        );
        assert_eq!(later.count, 1);
    }

    #[test]
    fn clusters_never_merge_and_ids_are_reproducible() {
        let r = rule(Some(vec!["user_name"]), false);
        let row = |c: &str| m(0, &[("user_name", "eve".into()), ("cluster", c.into())]);
        let a = Deduplicator::new().absorb(&r, &row("prod"));
        let b = Deduplicator::new().absorb(&r, &row("staging"));
        let a2 = Deduplicator::new().absorb(&r, &row("prod"));
        assert_ne!(a.id, b.id);
        assert_eq!(a.id, a2.id);
    }

    #[test]
    fn windowed_rows_repeat_as_the_window_slides_and_keep_the_largest_count() {
        let mut d = Deduplicator::new();
        let r = rule(Some(vec!["user_name"]), true);
        d.absorb(
            &r,
            &m(0, &[("user_name", "eve".into()), ("count", 12.into())]),
        );
        let f = d.absorb(
            &r,
            &m(5, &[("user_name", "eve".into()), ("count", 15.into())]),
        );
        assert_eq!(f.count, 15);
    }

    #[test]
    fn explanation_template_fills_columns() {
        let f = Deduplicator::new().absorb(
            &rule(None, false),
            &m(
                0,
                &[
                    ("user_name", "eve".into()),
                    ("verb", "create".into()),
                    ("audit_id", "x".into()),
                ],
            ),
        );
        assert_eq!(f.explanation, "eve did create on ?");
    }

    #[test]
    fn expired_incidents_are_forgotten() {
        let mut d = Deduplicator::new();
        let r = rule(Some(vec!["user_name"]), false);
        d.absorb(&r, &m(0, &[("user_name", "eve".into())]));
        d.expire(DateTime::from_timestamp(1_700_000_000 + 599, 0).unwrap());
        assert_eq!(d.open_count(), 1);
        d.expire(DateTime::from_timestamp(1_700_000_000 + 601, 0).unwrap());
        assert_eq!(d.open_count(), 0);
    }
}
