//! GKE Cloud Audit Logs: a `LogEntry` whose `protoPayload` describes a Kubernetes API call.
//!
//! `methodName` (`io.k8s.core.v1.pods.create`) gives the verb and subresource, `resourceName`
//! (`core/v1/namespaces/ns/pods/name/status`) the group, namespace, resource and name, and
//! `resource.labels.cluster_name` the cluster. Entries of other services (`container.googleapis.com`
//! cluster operations) are not Kubernetes API events: the caller counts them as skipped.
//!
//! Entries arrive trimmed too (by exporters, data lakes and test suites): without `timestamp`,
//! `request` or `response`, with only `methodName` and `resourceName`, with `authorizationInfo`
//! and no `status`, with `callerIp` spelled `callerIP`, with the principal as a subject or an
//! authority selector instead of an email. What they carry is read.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::event::{Envelope, KnownAnnotations};
use super::native::{
    Surroundings, added_time, derived_audit_id, exec_command, fill_objects, present, source_label,
    timestamp_value,
};
use super::row::AuditRow;
use crate::error::DecodeError;

/// Top-level members of an entry that hold its time when `timestamp` does not: Cloud
/// Logging's time of receipt, then those a data lake or collector adds.
const ENTRY_TIME_MEMBERS: [&str; 3] = ["receiveTimestamp", "p_event_time", "@timestamp"];

/// The row of a Kubernetes API call's entry, and whether its time is its own (`false`: the
/// entry has neither `timestamp` nor `receiveTimestamp`, and the time was taken from around it
/// or is the time it was read).
///
/// `configured` is the cluster named by the configuration, for entries that name none;
/// `record` the entry's JSON text (for an audit id derived from it).
pub(crate) fn row<'a>(
    env: &Envelope<'a>,
    p: ProtoPayload<'a>,
    around: Surroundings<'a>,
    configured: Option<&'a str>,
    record: &[u8],
) -> Result<(AuditRow<'a>, bool), DecodeError> {
    let stamped = present(env.timestamp).map(timestamp_value).transpose()?;
    let received = added_time(&env.unknown, &ENTRY_TIME_MEMBERS[..1]);
    let in_payload = p
        .timestamp
        .and_then(|t| present(Some(t.get())))
        .and_then(|t| timestamp_value(t).ok());
    let own = stamped.or(received).or(in_payload);
    let ts = match own {
        Some(ts) => ts,
        None => added_time(&env.unknown, &ENTRY_TIME_MEMBERS[1..])
            .or(around.time)
            .unwrap_or_else(|| chrono::Utc::now().timestamp_micros()),
    };
    let resource: MonitoredResource<'a> = env
        .resource
        .map(serde_json::from_str)
        .transpose()?
        .unwrap_or_default();
    let gke_cluster = resource.labels.and_then(|l| l.cluster_name);
    let operation: Operation<'a> = env
        .operation
        .map(serde_json::from_str)
        .transpose()?
        .unwrap_or_default();
    let labels: KnownAnnotations<'a> = env
        .labels
        .map(serde_json::from_str)
        .transpose()
        .unwrap_or_default()
        .unwrap_or_default();
    let (code, checked) = outcome(&p);

    let mut row = AuditRow {
        cluster: gke_cluster
            .or(around.cluster.map(Cow::Borrowed))
            .or_else(|| source_label(&env.unknown))
            .or(configured.map(Cow::Borrowed)),
        ts_micros: ts,
        request_received_micros: Some(ts),
        audit_id: Some(
            operation
                .id
                .or_else(|| env.insert_id.clone())
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| Cow::Owned(derived_audit_id(record))),
        ),
        stage: Some(Cow::Borrowed("ResponseComplete")),
        level: Some(Cow::Borrowed(if p.request.is_some() {
            "RequestResponse"
        } else {
            "Metadata"
        })),
        user_name: p.authentication_info.as_ref().and_then(|a| a.principal()),
        decision: labels.decision.or(checked.map(Cow::Borrowed)),
        reason: labels.reason,
        pod_security_violations: labels.pod_security_violations,
        annotations: env.labels.map(Cow::Borrowed),
        response_code: code,
        response_message: p
            .status
            .as_ref()
            .and_then(|s| s.message.clone())
            .map(Cow::Owned),
        ..Default::default()
    };
    if let Some(meta) = &p.request_metadata {
        row.source_ips = meta.caller_ip.clone().map(|ip| vec![ip]);
        row.user_agent = meta.caller_supplied_user_agent.clone();
    }
    row.request_uri =
        request_uri(p.method_name.as_deref(), p.resource_name.as_deref()).map(Cow::Owned);
    fill_target(p.method_name.clone(), p.resource_name.clone(), &mut row);
    fill_objects(
        &mut row,
        p.request.map(|r| Cow::Borrowed(r.get())),
        p.response.map(|r| Cow::Borrowed(r.get())),
    );
    row.exec_command = exec_command(&row);
    Ok((row, own.is_some()))
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProtoPayload<'a> {
    #[serde(borrow)]
    pub service_name: Option<Cow<'a, str>>,
    /// Raw JSON; some exporters put the entry's time here.
    #[serde(borrow)]
    pub timestamp: Option<&'a RawValue>,
    #[serde(borrow)]
    pub method_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub resource_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub authentication_info: Option<AuthenticationInfo<'a>>,
    #[serde(borrow)]
    pub request_metadata: Option<RequestMetadata<'a>>,
    pub authorization_info: Option<Vec<AuthorizationInfo>>,
    pub status: Option<Status>,
    #[serde(borrow)]
    pub request: Option<&'a RawValue>,
    #[serde(borrow)]
    pub response: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuthenticationInfo<'a> {
    #[serde(borrow)]
    pub principal_email: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub principal_subject: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub authority_selector: Option<Cow<'a, str>>,
}

impl<'a> AuthenticationInfo<'a> {
    /// Who made the call: the principal's email (a Kubernetes user name for in-cluster
    /// identities), else its subject, else the authority selector (`system:anonymous`).
    pub(crate) fn principal(&self) -> Option<Cow<'a, str>> {
        [
            &self.principal_email,
            &self.principal_subject,
            &self.authority_selector,
        ]
        .into_iter()
        .find_map(|p| p.clone().filter(|p| !p.is_empty()))
    }
}

/// One permission the authorizer checked.
#[derive(Debug, Deserialize, Default)]
pub(crate) struct AuthorizationInfo {
    pub granted: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RequestMetadata<'a> {
    #[serde(borrow, alias = "callerIP")]
    pub caller_ip: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub caller_supplied_user_agent: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct Status {
    pub code: Option<i32>,
    pub message: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct MonitoredResource<'a> {
    #[serde(borrow)]
    pub labels: Option<ResourceLabels<'a>>,
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct ResourceLabels<'a> {
    #[serde(borrow)]
    pub cluster_name: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct Operation<'a> {
    #[serde(borrow)]
    pub id: Option<Cow<'a, str>>,
}

/// Whether the payload is a Kubernetes API call (`k8s.io`), not a cloud control-plane operation.
pub(crate) fn is_kubernetes_api(p: &ProtoPayload<'_>) -> bool {
    p.service_name.as_deref() == Some("k8s.io")
        || p.method_name
            .as_deref()
            .is_some_and(|m| m.starts_with("io.k8s."))
}

/// The outcome of a call whose entry may lack a status: the HTTP status and the
/// authorization decision. A google.rpc status code maps to the HTTP status the apiserver
/// would have answered (an empty status is OK); without one, a `Failure` Status in the
/// response gives its code, and a permission the authorizer did not grant gives 403. `None`
/// when the entry tells nothing of the outcome.
pub(crate) fn outcome(p: &ProtoPayload<'_>) -> (Option<i32>, Option<&'static str>) {
    let checked = p.authorization_info.as_deref().unwrap_or_default();
    let denied = checked.iter().any(|a| a.granted == Some(false));
    let decision = match (checked.is_empty(), denied) {
        (true, _) => None,
        (false, true) => Some("forbid"),
        (false, false) => Some("allow"),
    };
    if let Some(code) = p.status.as_ref().and_then(|s| s.code).filter(|c| *c != 0) {
        return (Some(http_status(code)), decision);
    }
    if let Some(failure) = p
        .response
        .and_then(|r| serde_json::from_str::<ResponseStatus>(r.get()).ok())
        .filter(|r| r.status.as_deref() == Some("Failure"))
    {
        return (Some(failure.code.unwrap_or(500)), decision);
    }
    let code = if denied {
        Some(403)
    } else if p.status.is_some() || decision.is_some() || p.response.is_some() {
        Some(200)
    } else {
        None
    };
    (code, decision)
}

/// The paths the API server serves that are not resources: health, version, discovery.
const NON_RESOURCE_PATHS: [&str; 8] = [
    "healthz", "livez", "readyz", "version", "metrics", "openapi", "api", "apis",
];

/// The request URI the API server saw, rebuilt from the resource name (an entry has none of its
/// own): `core/v1/namespaces/ns/pods/p` → `/api/v1/namespaces/ns/pods/p`,
/// `apps/v1/...` → `/apis/apps/v1/...`; a health or discovery path (`readyz`, `/readyz`,
/// `core/v1/healthz`, or only a method `io.k8s.readyz`) → `/readyz`.
pub(crate) fn request_uri(method: Option<&str>, resource_name: Option<&str>) -> Option<String> {
    let name = resource_name
        .map(|n| n.trim_matches('/'))
        .filter(|n| !n.is_empty());
    let Some(name) = name else {
        // `io.k8s.readyz`: a non-resource path named by the method alone.
        let last = method?.strip_prefix("io.k8s.")?.rsplit('.').next()?;
        return NON_RESOURCE_PATHS
            .contains(&last)
            .then(|| format!("/{last}"));
    };
    let segs: Vec<&str> = name.split('/').collect();
    if let Some(path) = segs.iter().position(|s| NON_RESOURCE_PATHS.contains(s))
        && (path == 0 || segs.len() <= 3)
    {
        return Some(format!("/{}", segs[path..].join("/")));
    }
    match segs.as_slice() {
        ["core", version, rest @ ..] => Some(format!("/api/{version}/{}", rest.join("/"))),
        [_, _, _, ..] => Some(format!("/apis/{name}")),
        _ => Some(format!("/{name}")),
    }
}

/// A `Status` object as a failed call's response: its outcome and HTTP code.
#[derive(Debug, Deserialize)]
struct ResponseStatus {
    status: Option<String>,
    code: Option<i32>,
}

/// Maps a google.rpc status code to the HTTP status the apiserver would have answered.
pub(crate) fn http_status(grpc: i32) -> i32 {
    match grpc {
        0 => 200,
        1 => 499,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}

/// Fills verb, subresource, group, version, namespace, resource and name from the method and
/// resource names (borrowed from the input, or unescaped into owned strings).
fn fill_target<'a>(
    method: Option<Cow<'a, str>>,
    resource_name: Option<Cow<'a, str>>,
    row: &mut AuditRow<'a>,
) {
    match method {
        Some(Cow::Borrowed(m)) => fill_from_method(m, row, Cow::Borrowed),
        Some(Cow::Owned(m)) => fill_from_method(&m, row, |s| Cow::Owned(s.to_string())),
        None => {}
    }
    match resource_name {
        Some(Cow::Borrowed(n)) => fill_from_resource_name(n, row, Cow::Borrowed),
        Some(Cow::Owned(n)) => fill_from_resource_name(&n, row, |s| Cow::Owned(s.to_string())),
        None => {}
    }
}

/// Verb, subresource, version and group from `io.k8s.<group>.<version>.<resource>[.<sub>].<verb>`;
/// `text` makes a column's text of a part of `method`.
fn fill_from_method<'a, 'b>(
    method: &'b str,
    row: &mut AuditRow<'a>,
    text: impl Fn(&'b str) -> Cow<'a, str>,
) {
    let segs: Vec<&'b str> = method.split('.').collect();
    if let Some(vpos) = segs.iter().position(|s| is_version(s)) {
        let after = &segs[vpos + 1..];
        if let Some((verb, rest)) = after.split_last() {
            row.verb = Some(text(verb));
            if let Some(resource) = rest.first() {
                row.resource = Some(text(resource));
            }
            if rest.len() >= 2 {
                row.subresource = Some(text(rest[1]));
            }
        }
        row.api_version = Some(text(segs[vpos]));
        row.api_group = Some(Cow::Owned(group_from_method(&segs[..vpos])));
    }
}

/// Group, version, namespace, resource, name and subresource from
/// `<group>/<version>[/namespaces/<ns>]/<resource>[/<name>[/<sub>]]`; `text` makes a column's
/// text of a part of `name`.
fn fill_from_resource_name<'a, 'b>(
    name: &'b str,
    row: &mut AuditRow<'a>,
    text: impl Fn(&'b str) -> Cow<'a, str>,
) {
    let segs: Vec<&'b str> = name.split('/').filter(|s| !s.is_empty()).collect();
    if segs.len() >= 3 {
        row.api_group = Some(text(if segs[0] == "core" { "" } else { segs[0] }));
        row.api_version = Some(text(segs[1]));
        let mut rest = &segs[2..];
        if rest.len() >= 3 && rest[0] == "namespaces" {
            row.namespace = Some(text(rest[1]));
            rest = &rest[2..];
        } else if rest.len() == 2 && rest[0] == "namespaces" {
            row.namespace = Some(text(rest[1]));
        }
        if let Some(r) = rest.first() {
            row.resource = Some(text(r));
        }
        if let Some(n) = rest.get(1) {
            row.name = Some(text(n));
        }
        if let Some(s) = rest.get(2) {
            row.subresource = Some(text(s));
        }
    }
}

fn is_version(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    if digits == 0 {
        return false;
    }
    let tail = &rest[digits..];
    tail.is_empty()
        || ["alpha", "beta"].iter().any(|p| {
            tail.strip_prefix(p)
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        })
}

/// `io.k8s.core` → "", `io.k8s.apps` → "apps", `io.k8s.authorization.rbac` →
/// "rbac.authorization.k8s.io", `com.example.stable` → "stable.example.com".
fn group_from_method(segs: &[&str]) -> String {
    let inner: Vec<&str> = match segs {
        ["io", "k8s", rest @ ..] => rest.to_vec(),
        other => {
            let mut v = other.to_vec();
            v.reverse();
            return v.join(".");
        }
    };
    match inner.as_slice() {
        ["core"] | [] => String::new(),
        [single]
            if matches!(
                *single,
                "apps" | "batch" | "autoscaling" | "policy" | "extensions"
            ) =>
        {
            single.to_string()
        }
        _ => {
            let mut v = inner.clone();
            v.reverse();
            format!("{}.k8s.io", v.join("."))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill_target<'a>(
        method: Option<&'a str>,
        resource_name: Option<&'a str>,
        row: &mut AuditRow<'a>,
    ) {
        super::fill_target(
            method.map(Cow::Borrowed),
            resource_name.map(Cow::Borrowed),
            row,
        );
    }

    #[test]
    fn method_and_resource_names_give_the_target() {
        let mut row = AuditRow::default();
        fill_target(
            Some("io.k8s.core.v1.pods.status.patch"),
            Some("core/v1/namespaces/1-2-deployment-update/pods/nginx-xf5f4/status"),
            &mut row,
        );
        assert_eq!(row.verb.as_deref(), Some("patch"));
        assert_eq!(row.resource.as_deref(), Some("pods"));
        assert_eq!(row.subresource.as_deref(), Some("status"));
        assert_eq!(row.namespace.as_deref(), Some("1-2-deployment-update"));
        assert_eq!(row.name.as_deref(), Some("nginx-xf5f4"));
        assert_eq!(row.api_group.as_deref(), Some(""));
    }

    #[test]
    fn groups_are_rebuilt_from_reversed_method_names() {
        let mut row = AuditRow::default();
        fill_target(
            Some("io.k8s.authorization.rbac.v1.clusterrolebindings.create"),
            None,
            &mut row,
        );
        assert_eq!(row.api_group.as_deref(), Some("rbac.authorization.k8s.io"));
        assert_eq!(row.resource.as_deref(), Some("clusterrolebindings"));
        let mut row = AuditRow::default();
        fill_target(Some("io.k8s.apps.v1.deployments.create"), None, &mut row);
        assert_eq!(row.api_group.as_deref(), Some("apps"));
        let mut row = AuditRow::default();
        fill_target(
            Some("io.k8s.core.v1.pods.exec.create"),
            Some("core/v1/namespaces/prod/pods/web-0/exec"),
            &mut row,
        );
        assert_eq!(row.subresource.as_deref(), Some("exec"));
        assert_eq!(row.verb.as_deref(), Some("create"));
    }

    #[test]
    fn cluster_scoped_and_namespace_objects() {
        let mut row = AuditRow::default();
        fill_target(
            None,
            Some("rbac.authorization.k8s.io/v1/clusterroles/admin"),
            &mut row,
        );
        assert_eq!(row.resource.as_deref(), Some("clusterroles"));
        assert_eq!(row.name.as_deref(), Some("admin"));
        assert_eq!(row.namespace, None);
        let mut row = AuditRow::default();
        fill_target(None, Some("core/v1/namespaces/kube-system"), &mut row);
        assert_eq!(row.resource.as_deref(), Some("namespaces"));
    }

    #[test]
    fn request_uris_are_rebuilt_from_resource_names() {
        let uri = |m: Option<&str>, n: Option<&str>| request_uri(m, n);
        assert_eq!(
            uri(None, Some("core/v1/namespaces/default/pods/web-0/exec")).as_deref(),
            Some("/api/v1/namespaces/default/pods/web-0/exec")
        );
        assert_eq!(
            uri(
                None,
                Some("rbac.authorization.k8s.io/v1/clusterrolebindings/admin")
            )
            .as_deref(),
            Some("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/admin")
        );
        for name in ["readyz", "/readyz", "core/v1/readyz"] {
            assert_eq!(uri(None, Some(name)).as_deref(), Some("/readyz"), "{name}");
        }
        assert_eq!(uri(Some("io.k8s.readyz"), None).as_deref(), Some("/readyz"));
        assert_eq!(uri(Some("io.k8s.core.v1.pods.list"), None), None);
        // A resource that is named like a path is still a resource.
        assert_eq!(
            uri(None, Some("core/v1/namespaces/version/pods/x")).as_deref(),
            Some("/api/v1/namespaces/version/pods/x")
        );
    }

    #[test]
    fn grpc_codes_map_to_http() {
        assert_eq!(http_status(0), 200);
        assert_eq!(http_status(7), 403);
        assert_eq!(http_status(16), 401);
    }
}
