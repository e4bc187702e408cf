//! One decoded audit event, before it joins a batch.

use std::borrow::Cow;
use std::collections::BTreeSet;

/// The typed facts of one audit event, borrowing from the input where it can.
///
/// Every decoder (native, GKE, AKS, EKS) fills one of these; the batch builder turns many of them
/// into an Arrow `RecordBatch` with the `audit` schema.
#[derive(Debug, Default, Clone)]
pub struct AuditRow<'a> {
    pub cluster: Option<Cow<'a, str>>,
    pub ts_micros: i64,
    pub request_received_micros: Option<i64>,
    pub audit_id: Option<Cow<'a, str>>,
    pub stage: Option<Cow<'a, str>>,
    pub level: Option<Cow<'a, str>>,
    pub verb: Option<Cow<'a, str>>,
    pub request_uri: Option<Cow<'a, str>>,
    pub user_name: Option<Cow<'a, str>>,
    pub user_groups: Option<Vec<Cow<'a, str>>>,
    pub impersonated_user: Option<Cow<'a, str>>,
    pub impersonated_groups: Option<Vec<Cow<'a, str>>>,
    pub source_ips: Option<Vec<Cow<'a, str>>>,
    pub user_agent: Option<Cow<'a, str>>,
    pub resource: Option<Cow<'a, str>>,
    pub subresource: Option<Cow<'a, str>>,
    pub namespace: Option<Cow<'a, str>>,
    pub name: Option<Cow<'a, str>>,
    pub api_group: Option<Cow<'a, str>>,
    pub api_version: Option<Cow<'a, str>>,
    pub response_code: Option<i32>,
    pub response_reason: Option<Cow<'a, str>>,
    pub response_message: Option<Cow<'a, str>>,
    pub decision: Option<Cow<'a, str>>,
    pub reason: Option<Cow<'a, str>>,
    pub pod_security_violations: Option<Cow<'a, str>>,
    pub annotations: Option<Cow<'a, str>>,
    pub exec_command: Option<String>,
    pub unknown_fields: Option<String>,
    pub request_object: Option<Cow<'a, str>>,
    pub response_object: Option<Cow<'a, str>>,
    /// Facts of the object, for the resources that have them (pods, workloads, RBAC, ...);
    /// boxed, as few events have them and the row is moved for every event.
    pub facts: Option<Box<ObjectFacts>>,
    /// The event's text from the value of `user` to the end of the value of `userAgent`
    /// without the value of `sourceIPs`, when the user, impersonation and user agent columns
    /// come from it alone (not a column): the decode-time screen finds the verdicts of all of
    /// them by this one text.
    pub identity: Option<IdentityText<'a>>,
}

/// The text of an event's `user`, `impersonatedUser` and `userAgent` members as the apiserver
/// writes them (one after the other, with `sourceIPs` between them), less the value of
/// `sourceIPs`: equal texts mean equal user, impersonation and user agent columns.
///
/// The source addresses are left out because they vary far more than the rest (a kubelet per
/// node address, a person per workstation): with them, a cluster has thousands of kinds of
/// identity text and their lookups miss the cache; without them, a few dozen. The screen finds
/// an address's verdict by the address itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityText<'a> {
    /// From the value of `user` to the start of the value of `sourceIPs`; to the end of the
    /// value of `userAgent` when there is no `sourceIPs`.
    pub head: &'a str,
    /// From the end of the value of `sourceIPs` to the end of the value of `userAgent`; empty
    /// when there is no `sourceIPs`.
    pub tail: &'a str,
}

impl IdentityText<'_> {
    /// Bytes of text in all.
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    /// Whether there is no text at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the text as one key: the head, a NUL byte, the tail. A record read as identity
    /// text has no control bytes, so the NUL marks where the head ends and no two identity
    /// texts give one key.
    pub fn write_key(&self, out: &mut String) {
        out.clear();
        out.push_str(self.head);
        out.push('\0');
        out.push_str(self.tail);
    }
}

/// Facts extracted from the request (or response) object, owned because they are assembled
/// from nested structures.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ObjectFacts {
    pub object_kind: Option<String>,
    pub privileged: Option<bool>,
    pub host_pid: Option<bool>,
    pub host_network: Option<bool>,
    pub host_ipc: Option<bool>,
    pub host_paths: Option<Vec<String>>,
    pub capabilities_added: Option<Vec<String>>,
    pub images: Option<Vec<String>>,
    pub run_as_root: Option<bool>,
    pub allow_privilege_escalation: Option<bool>,
    pub read_only_root_fs: Option<bool>,
    pub seccomp_unconfined: Option<bool>,
    pub apparmor_unconfined: Option<bool>,
    pub service_account: Option<String>,
    pub automount_token: Option<bool>,
    pub runtime_class: Option<String>,
    pub rule_verbs: Option<Vec<String>>,
    pub rule_resources: Option<Vec<String>>,
    pub rule_api_groups: Option<Vec<String>>,
    pub rule_grants: Option<Vec<String>>,
    pub role_ref_kind: Option<String>,
    pub role_ref_name: Option<String>,
    pub subjects: Option<Vec<String>>,
    pub webhook_targets: Option<Vec<String>>,
    pub service_type: Option<String>,
    pub secret_type: Option<String>,
    pub token_expiration_seconds: Option<i64>,
    pub labels: Option<String>,
    /// `metadata.name` of the object (a controller's pod has none in its `objectRef`).
    pub object_name: Option<String>,
    /// The controlling owner, as `Kind/name`.
    pub owner: Option<String>,
    /// The workload the object belongs to, as `Kind/name`.
    pub workload: Option<String>,
}

/// Clears one column's value of a row.
type Clear = fn(&mut AuditRow<'_>);

/// The columns a decoder may leave null, with how to clear each. Object facts are left out:
/// they are rare and owned, so filling them costs little.
const CLEARABLE: &[(&str, Clear)] = &[
    ("request_received_ts", |r| r.request_received_micros = None),
    ("audit_id", |r| r.audit_id = None),
    ("stage", |r| r.stage = None),
    ("level", |r| r.level = None),
    ("verb", |r| r.verb = None),
    ("request_uri", |r| r.request_uri = None),
    ("user_name", |r| r.user_name = None),
    ("user_groups", |r| r.user_groups = None),
    ("impersonated_user", |r| r.impersonated_user = None),
    ("impersonated_groups", |r| r.impersonated_groups = None),
    ("user_agent", |r| r.user_agent = None),
    ("resource", |r| r.resource = None),
    ("subresource", |r| r.subresource = None),
    ("namespace", |r| r.namespace = None),
    ("name", |r| r.name = None),
    ("api_group", |r| r.api_group = None),
    ("api_version", |r| r.api_version = None),
    ("response_code", |r| r.response_code = None),
    ("response_reason", |r| r.response_reason = None),
    ("response_message", |r| r.response_message = None),
    ("decision", |r| r.decision = None),
    ("reason", |r| r.reason = None),
    ("pod_security_violations", |r| {
        r.pod_security_violations = None
    }),
    ("annotations", |r| r.annotations = None),
    ("exec_command", |r| r.exec_command = None),
    ("unknown_fields", |r| r.unknown_fields = None),
    ("request_object", |r| r.request_object = None),
    ("response_object", |r| r.response_object = None),
];

/// Names of the columns that a decoder may leave null.
#[cfg(test)]
pub(crate) fn clearable_columns() -> impl Iterator<Item = &'static str> {
    CLEARABLE.iter().map(|(name, _)| *name)
}

/// The columns that nobody reads, cleared from each row before it joins a batch: copying the
/// text of columns that no rule looks at would be a good part of decoding.
#[derive(Debug, Clone, Default)]
pub(crate) struct Omissions(Vec<Clear>);

impl Omissions {
    /// Clears every clearable column not in `kept`; `None` keeps them all.
    pub(crate) fn keeping(kept: Option<&BTreeSet<String>>) -> Self {
        let Some(kept) = kept else {
            return Omissions::default();
        };
        let mut clear: Vec<Clear> = CLEARABLE
            .iter()
            .filter(|(name, _)| !kept.contains(*name))
            .map(|(_, clear)| *clear)
            .collect();
        // `source_ip` is the first of `source_ips`: the list goes only when both do.
        if !kept.contains("source_ip") && !kept.contains("source_ips") {
            clear.push(|r| r.source_ips = None);
        }
        Omissions(clear)
    }

    /// Clears the omitted columns of `row`.
    pub(crate) fn apply(&self, row: &mut AuditRow<'_>) {
        for clear in &self.0 {
            clear(row);
        }
    }
}
