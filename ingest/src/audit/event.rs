//! The native `audit.k8s.io` Event (v1 and v1beta1), as the apiserver's log and webhook
//! backends write it, and the envelopes of the managed clouds that carry it.
//!
//! Everything is deserialised in one pass into borrowed, typed fields; nested objects that no
//! column needs are skipped, and the request/response objects are kept as raw JSON text.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// The union of the top-level fields of every shape audithound reads: a native Event, an
/// EventList, an AKS record or Event Hub batch, a GKE LogEntry, a CloudWatch Logs envelope or an
/// exported CloudWatch event. Which fields are present tells the shape.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Envelope<'a> {
    #[serde(borrow)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub level: Option<Cow<'a, str>>,
    #[serde(rename = "auditID", borrow)]
    pub audit_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub stage: Option<Cow<'a, str>>,
    #[serde(rename = "requestURI", borrow)]
    pub request_uri: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub verb: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub user: Option<UserInfo<'a>>,
    #[serde(borrow)]
    pub impersonated_user: Option<UserInfo<'a>>,
    #[serde(rename = "sourceIPs", borrow)]
    pub source_ips: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    pub user_agent: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub object_ref: Option<ObjectRef<'a>>,
    #[serde(borrow)]
    pub response_status: Option<ResponseStatus<'a>>,
    #[serde(borrow)]
    pub request_object: Option<&'a RawValue>,
    #[serde(borrow)]
    pub response_object: Option<&'a RawValue>,
    #[serde(borrow)]
    pub request_received_timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub stage_timestamp: Option<Cow<'a, str>>,
    /// v1beta1 and older logs carry `timestamp`; GKE LogEntries too.
    #[serde(borrow)]
    pub timestamp: Option<&'a RawValue>,
    #[serde(borrow)]
    pub metadata: Option<EventMetadata<'a>>,
    #[serde(borrow)]
    pub annotations: Option<&'a RawValue>,

    // EventList, JSON arrays of events.
    #[serde(borrow)]
    pub items: Option<&'a RawValue>,
    // AKS: Event Hub batch, and one diagnostic record.
    #[serde(borrow)]
    pub records: Option<&'a RawValue>,
    #[serde(borrow)]
    pub properties: Option<&'a RawValue>,
    #[serde(borrow)]
    pub category: Option<Cow<'a, str>>,
    #[serde(rename = "resourceId", alias = "resourceID", borrow)]
    pub resource_id: Option<Cow<'a, str>>,
    // GKE Cloud Audit Logs.
    #[serde(borrow)]
    pub proto_payload: Option<&'a RawValue>,
    #[serde(borrow)]
    pub resource: Option<&'a RawValue>,
    #[serde(borrow)]
    pub labels: Option<&'a RawValue>,
    #[serde(borrow)]
    pub operation: Option<&'a RawValue>,
    #[serde(borrow)]
    pub insert_id: Option<Cow<'a, str>>,
    // CloudWatch Logs subscription envelope and exported events.
    #[serde(borrow)]
    pub message_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub log_group: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub log_events: Option<&'a RawValue>,
    #[serde(borrow)]
    pub message: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct UserInfo<'a> {
    #[serde(borrow)]
    pub username: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub groups: Option<Vec<Cow<'a, str>>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ObjectRef<'a> {
    #[serde(borrow)]
    pub resource: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub namespace: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub api_group: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub api_version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub subresource: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct ResponseStatus<'a> {
    pub code: Option<i32>,
    #[serde(borrow)]
    pub reason: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub message: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventMetadata<'a> {
    #[serde(borrow)]
    pub creation_timestamp: Option<Cow<'a, str>>,
}

/// The annotations of an Event that have columns of their own.
#[derive(Debug, Deserialize, Default)]
pub(crate) struct KnownAnnotations<'a> {
    #[serde(rename = "authorization.k8s.io/decision", borrow)]
    pub decision: Option<Cow<'a, str>>,
    #[serde(rename = "authorization.k8s.io/reason", borrow)]
    pub reason: Option<Cow<'a, str>>,
    #[serde(rename = "pod-security.kubernetes.io/audit-violations", borrow)]
    pub pod_security_violations: Option<Cow<'a, str>>,
}

/// A JSON value that is null or absent, as serde_json's raw values show it.
pub(crate) fn is_null(raw: &RawValue) -> bool {
    raw.get().trim() == "null"
}
