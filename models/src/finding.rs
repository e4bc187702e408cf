//! What a rule reports: the `Finding`.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::severity::Severity;
use crate::technique::{Framework, Technique};

/// A technique as a finding names it: id, name and framework.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TechniqueRef {
    /// The technique id, e.g. `T1609`.
    pub id: String,
    /// The technique name, e.g. `Container Administration Command`.
    pub name: String,
    /// The framework of the id.
    pub framework: Framework,
}

impl From<&Technique> for TechniqueRef {
    fn from(t: &Technique) -> Self {
        TechniqueRef {
            id: t.id.clone(),
            name: t.name.clone(),
            framework: t.framework,
        }
    }
}

/// One incident that a rule found, after deduplication.
///
/// The `id` is stable: the same rule over the same evidence in the same cluster always yields the
/// same id, so replaying a log (after a crash, or twice by mistake) never makes a second finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable id (hex), derived from the rule, the cluster and the deduplication key.
    pub id: String,
    /// The id of the rule that produced it.
    pub rule_id: String,
    /// The rule's title.
    pub title: String,
    /// How urgent it is.
    pub severity: Severity,
    /// ATT&CK and Threat Matrix techniques the behaviour belongs to.
    pub techniques: Vec<TechniqueRef>,
    /// Time of the evidence (the first event of the incident).
    #[serde(serialize_with = "rfc3339")]
    pub time: DateTime<Utc>,
    /// Which cluster it happened in, when known.
    pub cluster: Option<String>,
    /// The principal that acted.
    pub user: Option<String>,
    /// The client address.
    pub source_ip: Option<String>,
    /// Namespace of the object acted on.
    pub namespace: Option<String>,
    /// Resource acted on (with subresource as `resource/subresource`).
    pub resource: Option<String>,
    /// Name of the object acted on.
    pub name: Option<String>,
    /// The verb of the request.
    pub verb: Option<String>,
    /// Audit ids of the evidence events (capped; `count` says how many there were).
    pub event_ids: Vec<String>,
    /// How many matching rows were merged into this finding.
    pub count: u64,
    /// Event time of the first evidence.
    #[serde(serialize_with = "rfc3339")]
    pub first_seen: DateTime<Utc>,
    /// Event time of the last evidence.
    #[serde(serialize_with = "rfc3339")]
    pub last_seen: DateTime<Utc>,
    /// One or two sentences saying what happened and why it matters.
    pub explanation: String,
    /// The rule's tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Other columns the rule returned, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub evidence: BTreeMap<String, serde_json::Value>,
    /// The deduplication state's key of the incident (rule, cluster, key columns): lets a
    /// restarted sidecar merge replayed evidence into the finding it already stored.
    #[serde(skip)]
    pub incident: String,
}

fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// Derives a stable finding id from the parts that identify an incident.
///
/// Parts are length-prefixed before hashing so that `("ab", "c")` and `("a", "bc")` differ.
pub fn stable_id<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_id_depends_on_every_part_and_their_boundaries() {
        let a = stable_id(["rule", "cluster-a", "alice"]);
        assert_eq!(a, stable_id(["rule", "cluster-a", "alice"]));
        assert_ne!(a, stable_id(["rule", "cluster-b", "alice"]));
        assert_ne!(stable_id(["ab", "c"]), stable_id(["a", "bc"]));
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn finding_serialises_times_as_rfc3339_utc() {
        let t = DateTime::parse_from_rfc3339("2024-05-01T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let f = Finding {
            id: "x".into(),
            rule_id: "r".into(),
            title: "t".into(),
            severity: Severity::High,
            techniques: vec![],
            time: t,
            cluster: None,
            user: Some("alice".into()),
            source_ip: None,
            namespace: None,
            resource: None,
            name: None,
            verb: None,
            event_ids: vec![],
            count: 1,
            first_seen: t,
            last_seen: t,
            explanation: "e".into(),
            tags: vec![],
            evidence: BTreeMap::new(),
            incident: String::new(),
        };
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["time"], "2024-05-01T10:00:00.123456Z");
        assert_eq!(v["severity"], "high");
    }
}
