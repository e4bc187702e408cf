//! Arrow schemas of the event tables.
//!
//! Columns are flat, typed and snake_case. Facts that rules need from request objects (pod
//! security settings of pods and of every workload with a pod template, RBAC rules and bindings,
//! webhook targets) are extracted into typed columns at decode time; the raw request and response
//! objects stay available as JSON text in `request_object` and `response_object`.

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The logical type of an audit column, before it becomes an Arrow type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// UTF-8 text.
    Text,
    /// A list of UTF-8 strings.
    TextList,
    /// A boolean (null when the event does not say).
    Bool,
    /// A 32-bit integer.
    Int32,
    /// A 64-bit integer.
    Int64,
    /// A 64-bit float.
    Float64,
    /// A UTC timestamp with microsecond precision.
    Timestamp,
}

impl ColumnType {
    /// The Arrow type that represents this column.
    pub fn arrow_type(self) -> DataType {
        match self {
            ColumnType::Text => DataType::Utf8,
            ColumnType::TextList => {
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
            }
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Int32 => DataType::Int32,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }
}

/// One column of the `audit` table: its name, type and meaning.
#[derive(Debug, Clone, Copy)]
pub struct AuditColumn {
    /// The column name as rules write it.
    pub name: &'static str,
    /// Its type.
    pub kind: ColumnType,
    /// What it holds, for documentation and `rules` tooling.
    pub doc: &'static str,
}

macro_rules! columns {
    ($(#[$meta:meta])* $const_name:ident { $( $name:ident : $kind:ident = $doc:literal ),* $(,)? }) => {
        $(#[$meta])*
        pub const $const_name: &[AuditColumn] = &[
            $( AuditColumn { name: stringify!($name), kind: ColumnType::$kind, doc: $doc } ),*
        ];
    };
}

columns! {
    /// Every column of the `audit` table, in schema order.
    AUDIT_COLUMNS {
    cluster: Text = "Cluster the event came from (--cluster, config, or the cloud wrapper).",
    ts: Timestamp = "Event time: stageTimestamp, else requestReceivedTimestamp, else timestamp.",
    request_received_ts: Timestamp = "When the apiserver received the request.",
    audit_id: Text = "auditID, shared by every stage of one request.",
    stage: Text = "RequestReceived, ResponseStarted, ResponseComplete or Panic.",
    level: Text = "Audit level: Metadata, Request or RequestResponse.",
    verb: Text = "Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection, ...",
    request_uri: Text = "The request URI, query included.",
    user_name: Text = "Authenticated user name.",
    user_groups: TextList = "Groups of the authenticated user.",
    impersonated_user: Text = "User impersonated through Impersonate-User, if any.",
    impersonated_groups: TextList = "Groups impersonated, if any.",
    source_ip: Text = "First source IP (the client as the apiserver saw it).",
    source_ips: TextList = "Every source IP, X-Forwarded-For chain included.",
    user_agent: Text = "User-Agent header.",
    resource: Text = "Resource (pods, secrets, clusterrolebindings, ...).",
    subresource: Text = "Subresource (exec, attach, portforward, proxy, token, ephemeralcontainers, ...).",
    namespace: Text = "Namespace of the object, if namespaced.",
    name: Text = "Name of the object.",
    api_group: Text = "API group (empty for the core group).",
    api_version: Text = "API version of the object reference.",
    response_code: Int32 = "HTTP status code of the response.",
    response_reason: Text = "responseStatus.reason (Forbidden, NotFound, ...).",
    response_message: Text = "responseStatus.message.",
    decision: Text = "authorization.k8s.io/decision annotation (allow, forbid).",
    reason: Text = "authorization.k8s.io/reason annotation.",
    pod_security_violations: Text = "pod-security.kubernetes.io/audit-violations annotation.",
    annotations: Text = "Every annotation of the event, as a JSON object.",
    object_kind: Text = "Kind of the request (or response) object.",
    privileged: Bool = "Some container (init and ephemeral included) runs privileged.",
    host_pid: Bool = "Pod spec sets hostPID.",
    host_network: Bool = "Pod spec sets hostNetwork.",
    host_ipc: Bool = "Pod spec sets hostIPC.",
    host_paths: TextList = "hostPath volume paths.",
    capabilities_added: TextList = "Linux capabilities added by any container.",
    images: TextList = "Images of every container (init and ephemeral included).",
    run_as_root: Bool = "Some container may run as root (runAsUser 0, or no runAsNonRoot and no non-zero runAsUser).",
    allow_privilege_escalation: Bool = "Some container sets allowPrivilegeEscalation: true.",
    read_only_root_fs: Bool = "Every container sets readOnlyRootFilesystem: true.",
    seccomp_unconfined: Bool = "A seccomp profile Unconfined is set (field or legacy annotation).",
    apparmor_unconfined: Bool = "An AppArmor profile unconfined is set (field or annotation).",
    service_account: Text = "serviceAccountName of the pod spec.",
    automount_token: Bool = "automountServiceAccountToken of the pod spec (null if unset).",
    runtime_class: Text = "runtimeClassName of the pod spec.",
    exec_command: Text = "Command of an exec request (from the request URI), arguments joined by spaces.",
    rule_verbs: TextList = "Verbs of every rule of a Role or ClusterRole.",
    rule_resources: TextList = "Resources of every rule of a Role or ClusterRole.",
    rule_api_groups: TextList = "API groups of every rule of a Role or ClusterRole.",
    rule_grants: TextList = "Every resource:verb pair a Role or ClusterRole grants (`pods/exec:create`, `*:*`), and url:verb for non-resource URLs (`/metrics:get`).",
    role_ref_kind: Text = "roleRef.kind of a RoleBinding or ClusterRoleBinding.",
    role_ref_name: Text = "roleRef.name of a RoleBinding or ClusterRoleBinding.",
    subjects: TextList = "Subjects of a binding, as Kind:name or ServiceAccount:namespace/name.",
    webhook_targets: TextList = "Targets of admission webhooks: service namespace/name or URL.",
    service_type: Text = "spec.type of a Service.",
    secret_type: Text = "type of a Secret.",
    token_expiration_seconds: Int64 = "spec.expirationSeconds of a TokenRequest.",
    labels: Text = "metadata.labels of the request object, as a JSON object.",
    owner: Text = "The controlling owner of the request object (metadata.ownerReferences), as Kind/name: `ReplicaSet/web-7d9f5c4b8`.",
    workload: Text = "The workload the object belongs to, as Kind/name: the owner's, with a ReplicaSet's Deployment and a Job's CronJob derived from their names (`Deployment/web`), else the object's own.",
    unknown_fields: Text = "Top-level fields of the event that are not part of the audit.k8s.io Event, as a JSON object.",
    request_object: Text = "The request object as JSON text (secret values redacted).",
    response_object: Text = "The response object as JSON text (secret values and tokens redacted).",
}}

columns! {
    /// Every column of the `dns` table (CoreDNS, Zeek, Hubble DNS), in schema order.
    DNS_COLUMNS {
    cluster: Text = "Cluster the record came from.",
    ts: Timestamp = "Time of the query or response.",
    source_format: Text = "coredns, zeek or hubble.",
    message_type: Text = "query, response, or exchange (a log line that describes both).",
    client_ip: Text = "Address of the client that asked.",
    client_port: Int32 = "Its port.",
    server_ip: Text = "Address of the resolver.",
    server_port: Int32 = "Its port.",
    query_id: Int32 = "DNS message id.",
    qname: Text = "Queried name, without the trailing dot, lowercase.",
    qtype: Text = "Query type (A, AAAA, TXT, ...).",
    rcode: Text = "Response code (NOERROR, NXDOMAIN, SERVFAIL, ...).",
    proto: Text = "udp or tcp.",
    response_size: Int64 = "Size of the response in bytes.",
    duration_ms: Float64 = "Time to answer, in milliseconds.",
    answers: TextList = "Answers (addresses, names).",
    client_namespace: Text = "Namespace of the client pod, when known (or enriched from flows).",
    client_pod: Text = "Name of the client pod, when known (or enriched from flows).",
    node: Text = "Node that observed the record.",
}}

columns! {
    /// Every column of the `flow` table (Hubble, AWS VPC flow logs), in schema order.
    FLOW_COLUMNS {
    cluster: Text = "Cluster the record came from.",
    ts: Timestamp = "Time of the flow (start of the window for VPC flow logs).",
    source_format: Text = "hubble or vpc.",
    src_ip: Text = "Source address.",
    src_port: Int32 = "Source port.",
    dst_ip: Text = "Destination address.",
    dst_port: Int32 = "Destination port.",
    proto: Text = "TCP, UDP, ICMPv4, ICMPv6, SCTP, or the IANA number.",
    verdict: Text = "FORWARDED, DROPPED, AUDIT, REDIRECTED, ERROR (Hubble); ACCEPT, REJECT (VPC).",
    drop_reason: Text = "Why a flow was dropped.",
    direction: Text = "INGRESS or EGRESS, when known.",
    is_reply: Bool = "Whether the packet answers an earlier one.",
    tcp_flags: Text = "TCP flags seen (SYN, ACK, RST, ...), comma-separated.",
    src_namespace: Text = "Namespace of the source pod, when known (or enriched).",
    src_pod: Text = "Name of the source pod, when known (or enriched).",
    src_labels: TextList = "Labels of the source endpoint.",
    dst_namespace: Text = "Namespace of the destination pod, when known (or enriched).",
    dst_pod: Text = "Name of the destination pod, when known (or enriched).",
    dst_labels: TextList = "Labels of the destination endpoint.",
    dst_names: TextList = "DNS names the destination address was resolved from (Hubble).",
    bytes: Int64 = "Bytes in the flow (VPC).",
    packets: Int64 = "Packets in the flow (VPC).",
    node: Text = "Node that observed the flow.",
    interface_id: Text = "Network interface (VPC).",
    account_id: Text = "Cloud account (VPC).",
}}

/// The event tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TableKind {
    /// Kubernetes audit events.
    Audit,
    /// DNS queries and responses.
    Dns,
    /// Network flows.
    Flow,
}

impl TableKind {
    /// Every table.
    pub const ALL: [TableKind; 3] = [TableKind::Audit, TableKind::Dns, TableKind::Flow];

    /// The table's name in SQL and in the capture store.
    pub fn name(self) -> &'static str {
        match self {
            TableKind::Audit => "audit",
            TableKind::Dns => "dns",
            TableKind::Flow => "flow",
        }
    }

    /// Its columns.
    pub fn columns(self) -> &'static [AuditColumn] {
        match self {
            TableKind::Audit => AUDIT_COLUMNS,
            TableKind::Dns => DNS_COLUMNS,
            TableKind::Flow => FLOW_COLUMNS,
        }
    }

    /// Its Arrow schema.
    pub fn schema(self) -> SchemaRef {
        match self {
            TableKind::Audit => audit_schema(),
            TableKind::Dns => {
                static S: OnceLock<SchemaRef> = OnceLock::new();
                S.get_or_init(|| schema_of(DNS_COLUMNS)).clone()
            }
            TableKind::Flow => {
                static S: OnceLock<SchemaRef> = OnceLock::new();
                S.get_or_init(|| schema_of(FLOW_COLUMNS)).clone()
            }
        }
    }

    /// The table with this name.
    pub fn from_name(name: &str) -> Option<TableKind> {
        TableKind::ALL.into_iter().find(|t| t.name() == name)
    }
}

fn schema_of(columns: &[AuditColumn]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(c.name, c.kind.arrow_type(), c.name != "ts"))
            .collect::<Vec<_>>(),
    ))
}

/// The Arrow schema of the `audit` table.
pub fn audit_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA.get_or_init(|| schema_of(AUDIT_COLUMNS)).clone()
}

/// The position of a column in the `audit` schema, if it exists.
pub fn audit_column_index(name: &str) -> Option<usize> {
    AUDIT_COLUMNS.iter().position(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_schema_has_unique_snake_case_columns() {
        let schema = audit_schema();
        let mut names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert!(
            names
                .iter()
                .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
        let before = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), before);
    }

    #[test]
    fn every_table_starts_with_cluster_and_ts() {
        for t in TableKind::ALL {
            let schema = t.schema();
            assert_eq!(schema.field(0).name(), "cluster", "{}", t.name());
            assert_eq!(schema.field(1).name(), "ts", "{}", t.name());
            assert_eq!(TableKind::from_name(t.name()), Some(t));
        }
    }

    #[test]
    fn event_time_is_a_utc_microsecond_timestamp_and_never_null() {
        let schema = audit_schema();
        let ts = schema.field_with_name("ts").unwrap();
        assert_eq!(ts.data_type(), &ColumnType::Timestamp.arrow_type());
        assert!(!ts.is_nullable());
        assert_eq!(audit_column_index("cluster"), Some(0));
    }
}
