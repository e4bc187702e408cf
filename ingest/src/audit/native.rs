//! The row of a native `audit.k8s.io` Event, whatever a pipeline left of it.
//!
//! Hand-written and test events, data lakes and log pipelines drop or rewrite fields: no
//! `kind`, `stage`, `level` or `auditID`, timestamps in other forms or none at all, the request
//! object as a JSON string. Such an event is still judged: its time is taken from the fields a
//! data lake or collector adds (Panther's `p_event_time`, `@timestamp`, ...), then from the
//! records around it (a CloudWatch event's, a container runtime's, else the event before it in
//! the same file), then the time it was read; an event without an audit id gets one derived
//! from its content, so that reading it again gives the same id.

use std::borrow::Cow;

use sha2::{Digest, Sha256};

use super::event::{Envelope, KnownAnnotations, is_null};
use super::row::AuditRow;
use super::{facts, redact};
use crate::error::DecodeError;
use crate::time::{parse_rfc3339_fast, parse_timestamp_micros};

/// What the records around an event (wrappers, envelopes, the line it came in) tell about it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Surroundings<'c> {
    /// The cluster a wrapper names (a managed cloud's envelope).
    pub cluster: Option<&'c str>,
    /// The wrapper's time (microseconds), else the time of the event before, for events without
    /// one of their own.
    pub time: Option<i64>,
}

/// Top-level members that data lakes and collectors add beside an event's own, holding the
/// event's time, in the order they are trusted.
pub(super) const ADDED_TIME_MEMBERS: [&str; 5] =
    ["p_event_time", "@timestamp", "time", "eventTime", "date"];

/// Top-level member of a data lake's record naming the source the event came from (Panther's
/// log source label: a cluster, as its users name them).
const SOURCE_LABEL_MEMBER: &str = "p_source_label";

/// A native event as one row, and whether its time is its own (`false`: none of its timestamp
/// fields held one, so it was taken from around it, or is the time it was read).
///
/// `around` is what the records around it say; `configured` the cluster named by the
/// configuration, used when nothing else names one; `record` the event's JSON text.
pub(super) fn native_row<'a>(
    env: Box<Envelope<'a>>,
    around: Surroundings<'a>,
    configured: Option<&'a str>,
    record: &'a [u8],
) -> Result<(Box<AuditRow<'a>>, bool), DecodeError> {
    let stage_ts = present(env.stage_timestamp)
        .map(timestamp_value)
        .transpose()?;
    let received_ts = present(env.request_received_timestamp)
        .map(timestamp_value)
        .transpose()?;
    let legacy_ts = present(env.timestamp).map(timestamp_value).transpose()?;
    let meta_ts = env
        .metadata
        .as_ref()
        .and_then(|m| m.creation_timestamp.as_deref())
        .map(parse_timestamp_micros)
        .transpose()?;
    let own = stage_ts.or(received_ts).or(legacy_ts).or(meta_ts);
    let ts = match own {
        Some(ts) => ts,
        None => added_time(&env.unknown, &ADDED_TIME_MEMBERS)
            .or(around.time)
            .unwrap_or_else(|| chrono::Utc::now().timestamp_micros()),
    };

    // Built in place on the heap, like the envelope: a row is most of a kilobyte.
    let mut row = Box::<AuditRow<'a>>::default();
    row.cluster = around
        .cluster
        .map(Cow::Borrowed)
        .or_else(|| source_label(&env.unknown))
        .or(configured.map(Cow::Borrowed));
    row.ts_micros = ts;
    row.request_received_micros = received_ts.or(legacy_ts);
    row.audit_id = Some(
        env.audit_id
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| Cow::Owned(derived_audit_id(record))),
    );
    row.stage = env.stage;
    row.level = env.level;
    row.verb = env.verb;
    row.request_uri = env.request_uri;
    row.source_ips = env.source_ips;
    row.user_agent = env.user_agent;
    row.identity = env.identity;
    if let Some(user) = env.user {
        row.user_name = user.username;
        row.user_groups = user.groups;
    }
    if let Some(user) = env.impersonated_user {
        row.impersonated_user = user.username;
        row.impersonated_groups = user.groups;
    }
    if let Some(obj) = env.object_ref {
        row.resource = obj.resource;
        row.subresource = obj.subresource;
        row.namespace = obj.namespace;
        row.name = obj.name;
        row.api_group = obj.api_group;
        row.api_version = obj.api_version;
    }
    if let Some(status) = env.response_status {
        row.response_code = status.code;
        row.response_reason = status.reason;
        row.response_message = status.message;
    }
    if let Some(raw) = env.annotations.filter(|r| !is_null(r)) {
        let known = env
            .known_annotations
            .unwrap_or_else(|| KnownAnnotations::find(raw));
        row.decision = known.decision;
        row.reason = known.reason;
        row.pod_security_violations = known.pod_security_violations;
        row.annotations = Some(Cow::Borrowed(raw));
    }
    fill_objects(
        &mut row,
        env.request_object.map(object_text),
        env.response_object.map(object_text),
    );
    row.exec_command = exec_command(&row);
    row.unknown_fields = unknown_fields(&env.unknown);
    Ok((row, own.is_some()))
}

/// A raw JSON value unless it is `null`.
pub(super) fn present(raw: Option<&str>) -> Option<&str> {
    raw.filter(|r| !is_null(r))
}

/// The first of the top-level members `names` (of those no known shape has) that reads as a
/// time.
pub(super) fn added_time(unknown: &[(Cow<'_, str>, &str)], names: &[&str]) -> Option<i64> {
    names.iter().find_map(|name| {
        let (_, raw) = unknown.iter().find(|(key, _)| key == name)?;
        timestamp_value(raw).ok()
    })
}

/// The source label a data lake put beside the event (a cluster's name), if there is one.
pub(super) fn source_label<'a>(unknown: &[(Cow<'a, str>, &'a str)]) -> Option<Cow<'a, str>> {
    let (_, raw) = unknown.iter().find(|(key, _)| key == SOURCE_LABEL_MEMBER)?;
    json_text(raw).filter(|t| !t.is_empty())
}

/// A JSON string's text, borrowed when it has no escapes; `None` for any other value.
pub(super) fn json_text(raw: &str) -> Option<Cow<'_, str>> {
    let raw = raw.trim();
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// A request or response object as JSON text. Some pipelines store it as a JSON string that
/// holds the object's JSON: that string is read, and its object is the object.
fn object_text(raw: &str) -> Cow<'_, str> {
    if raw.trim_start().starts_with('"')
        && let Some(inner) = json_text(raw)
        && matches!(inner.trim_start().as_bytes().first(), Some(b'{' | b'['))
        && serde_json::from_str::<serde::de::IgnoredAny>(&inner).is_ok()
    {
        return inner;
    }
    Cow::Borrowed(raw)
}

/// An audit id for an event that has none: a hash of its text, written as a UUID is, so that
/// the same event always gets the same id.
pub(super) fn derived_audit_id(record: &[u8]) -> String {
    let d = Sha256::digest(record);
    let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Keeps the request and response objects (redacted where they may hold secrets) and extracts
/// the facts of the one that describes the object as written.
pub(super) fn fill_objects<'a>(
    row: &mut AuditRow<'a>,
    request: Option<Cow<'a, str>>,
    response: Option<Cow<'a, str>>,
) {
    let request = request.filter(|r| !is_null(r));
    let response = response.filter(|r| !is_null(r));
    let resource = row.resource.as_deref().unwrap_or("");
    let subresource = row.subresource.as_deref();
    let writes = matches!(row.verb.as_deref(), Some("create" | "update" | "patch"));
    if writes && facts::resource_has_facts(resource, subresource) {
        // A create or update carries the whole object in the request; a patch carries only the
        // change, so its facts come from the response (the object as patched) when the policy
        // keeps it.
        let source = if row.verb.as_deref() == Some("patch") {
            response.as_ref().or(request.as_ref())
        } else {
            request.as_ref().or(response.as_ref())
        };
        if let Some(obj) = source {
            row.facts = Some(Box::new(facts::extract(resource, subresource, obj)));
        }
    }
    // A controller's create names the object by `generateName`, so its `objectRef` has no
    // name: the name is the object's (the response's, where the request has none).
    if row.verb.as_deref() == Some("create") && row.name.as_deref().is_none_or(str::is_empty) {
        let named = row
            .facts
            .as_ref()
            .and_then(|f| f.object_name.clone())
            .or_else(|| response.as_deref().and_then(object_name));
        if let Some(name) = named {
            row.name = Some(Cow::Owned(name));
        }
    }
    if redact::needs_redaction(resource, subresource) {
        row.request_object = request.and_then(|o| redacted(resource, o));
        row.response_object = response.and_then(|o| redacted(resource, o));
    } else {
        row.request_object = request;
        row.response_object = response;
    }
}

/// `metadata.name` of an object given as JSON text.
fn object_name(object: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Named {
        metadata: Option<Metadata>,
    }
    #[derive(serde::Deserialize)]
    struct Metadata {
        name: Option<String>,
    }
    let named: Named = serde_json::from_str(object).ok()?;
    named.metadata?.name.filter(|n| !n.is_empty())
}

/// An object with its secrets replaced ([`redact::redact`]), borrowing from the input where
/// the object does.
fn redacted<'a>(resource: &str, object: Cow<'a, str>) -> Option<Cow<'a, str>> {
    match object {
        Cow::Borrowed(text) => redact::redact(resource, text),
        Cow::Owned(text) => redact::redact(resource, &text).map(|r| Cow::Owned(r.into_owned())),
    }
}

/// Top-level keys that no known shape has, as one JSON object (`None` when there are none).
fn unknown_fields(unknown: &[(Cow<'_, str>, &str)]) -> Option<String> {
    if unknown.is_empty() {
        return None;
    }
    let mut out = String::from("{");
    for (i, (key, value)) in unknown.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(key.as_ref()).ok()?);
        out.push(':');
        out.push_str(value);
    }
    out.push('}');
    Some(out)
}

/// The command of an exec request: the `command` query parameters of its URI, or the
/// `command` list of its request object (GKE's and newer clients' record of it).
pub(super) fn exec_command(row: &AuditRow<'_>) -> Option<String> {
    if row.subresource.as_deref() != Some("exec") {
        return None;
    }
    let from_uri = row.request_uri.as_deref().and_then(|uri| {
        let query = uri.split_once('?')?.1;
        let parts: Vec<String> = query
            .split('&')
            .filter_map(|kv| kv.strip_prefix("command="))
            .map(percent_decode)
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    });
    from_uri.or_else(|| {
        #[derive(serde::Deserialize)]
        struct ExecRequest {
            command: Vec<String>,
        }
        let request = row.request_object.as_deref()?;
        let exec: ExecRequest = serde_json::from_str(request).ok()?;
        (!exec.command.is_empty()).then(|| exec.command.join(" "))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A timestamp given as raw JSON: a string in any form [`parse_timestamp_micros`] reads, or a
/// number of seconds, milliseconds, microseconds or nanoseconds since the epoch.
pub(super) fn timestamp_value(raw: &str) -> Result<i64, DecodeError> {
    // The apiserver's own `"2024-05-01T10:00:00.123456Z"`, read at once: a string with an
    // escape in it is never that shape, so it reaches the general reading below.
    if let Some(micros) = raw
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .and_then(parse_rfc3339_fast)
    {
        return Ok(micros);
    }
    let text = raw.trim();
    if text.starts_with('"') {
        return match json_text(text) {
            Some(inner) => parse_timestamp_micros(&inner),
            None => Err(DecodeError::BadTimestamp(text.to_string())),
        };
    }
    parse_timestamp_micros(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_audit_ids_are_stable_and_shaped_like_uuids() {
        let a = derived_audit_id(br#"{"verb":"get"}"#);
        assert_eq!(a, derived_audit_id(br#"{"verb":"get"}"#));
        assert_ne!(a, derived_audit_id(br#"{"verb":"list"}"#));
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
    }

    #[test]
    fn timestamps_come_as_strings_or_numbers() {
        let second = 1_669_680_544_000_000;
        assert_eq!(timestamp_value("\"2022-11-29 00:09:04\""), Ok(second));
        assert_eq!(timestamp_value("1669680544"), Ok(second));
        assert_eq!(timestamp_value("1669680544000"), Ok(second));
        assert_eq!(timestamp_value("\"1669680544\""), Ok(second));
        assert!(timestamp_value("\"soon\"").is_err());
        assert!(timestamp_value("true").is_err());
    }

    #[test]
    fn an_object_stored_as_a_json_string_is_read_as_the_object() {
        assert_eq!(
            object_text(r#""{\"kind\":\"Pod\"}""#),
            Cow::<str>::Borrowed(r#"{"kind":"Pod"}"#)
        );
        // Any other string stays what it is.
        assert_eq!(object_text(r#""hello""#), r#""hello""#);
        assert_eq!(object_text(r#""{not json""#), r#""{not json""#);
        assert_eq!(object_text(r#"{"kind":"Pod"}"#), r#"{"kind":"Pod"}"#);
    }
}
