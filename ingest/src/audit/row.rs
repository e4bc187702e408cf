//! One decoded audit event, before it joins a batch.

use std::borrow::Cow;

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
    /// Facts of the object, for the resources that have them (pods, workloads, RBAC, ...).
    pub facts: Option<ObjectFacts>,
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
}
