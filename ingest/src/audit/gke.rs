//! GKE Cloud Audit Logs: a `LogEntry` whose `protoPayload` describes a Kubernetes API call.
//!
//! `methodName` (`io.k8s.core.v1.pods.create`) gives the verb and subresource, `resourceName`
//! (`core/v1/namespaces/ns/pods/name/status`) the group, namespace, resource and name, and
//! `resource.labels.cluster_name` the cluster. Entries of other services (`container.googleapis.com`
//! cluster operations) are not Kubernetes API events: the caller counts them as skipped.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::row::AuditRow;

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProtoPayload<'a> {
    #[serde(borrow)]
    pub service_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub method_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub resource_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub authentication_info: Option<AuthenticationInfo<'a>>,
    #[serde(borrow)]
    pub request_metadata: Option<RequestMetadata<'a>>,
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
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RequestMetadata<'a> {
    #[serde(borrow)]
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
/// resource names.
pub(crate) fn fill_target<'a>(
    method: Option<&'a str>,
    resource_name: Option<&'a str>,
    row: &mut AuditRow<'a>,
) {
    if let Some(method) = method {
        let segs: Vec<&str> = method.split('.').collect();
        if let Some(vpos) = segs.iter().position(|s| is_version(s)) {
            let after = &segs[vpos + 1..];
            if let Some((verb, rest)) = after.split_last() {
                row.verb = Some(Cow::Borrowed(*verb));
                if let Some(resource) = rest.first() {
                    row.resource = Some(Cow::Borrowed(*resource));
                }
                if rest.len() >= 2 {
                    row.subresource = Some(Cow::Borrowed(rest[1]));
                }
            }
            row.api_version = Some(Cow::Borrowed(segs[vpos]));
            row.api_group = Some(Cow::Owned(group_from_method(&segs[..vpos])));
        }
    }
    if let Some(rn) = resource_name {
        let segs: Vec<&'a str> = rn.split('/').filter(|s| !s.is_empty()).collect();
        if segs.len() >= 3 {
            row.api_group = Some(Cow::Borrowed(if segs[0] == "core" { "" } else { segs[0] }));
            row.api_version = Some(Cow::Borrowed(segs[1]));
            let mut rest = &segs[2..];
            if rest.len() >= 3 && rest[0] == "namespaces" {
                row.namespace = Some(Cow::Borrowed(rest[1]));
                rest = &rest[2..];
            } else if rest.len() == 2 && rest[0] == "namespaces" {
                row.namespace = Some(Cow::Borrowed(rest[1]));
            }
            if let Some(r) = rest.first() {
                row.resource = Some(Cow::Borrowed(*r));
            }
            if let Some(n) = rest.get(1) {
                row.name = Some(Cow::Borrowed(*n));
            }
            if let Some(s) = rest.get(2) {
                row.subresource = Some(Cow::Borrowed(*s));
            }
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
    fn grpc_codes_map_to_http() {
        assert_eq!(http_status(0), 200);
        assert_eq!(http_status(7), 403);
        assert_eq!(http_status(16), 401);
    }
}
