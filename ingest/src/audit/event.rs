//! The native `audit.k8s.io` Event (v1 and v1beta1), as the apiserver's log and webhook
//! backends write it, and the envelopes of the managed clouds that carry it.
//!
//! Everything is deserialised in one pass into borrowed, typed fields; nested objects that no
//! column needs are skipped, and the request/response objects are kept as raw JSON text.

use std::borrow::Cow;

use std::fmt;
use std::marker::PhantomData;
use std::sync::LazyLock;

use memchr::memmem::Finder;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// The union of the top-level fields of every shape audithound reads: a native Event, an
/// EventList, an AKS record or Event Hub batch, a GKE LogEntry, a CloudWatch Logs envelope or an
/// exported CloudWatch event. Which fields are present tells the shape. Top-level keys that none
/// of these shapes has are kept in `unknown` (raw), so that rules can still reach them.
#[derive(Debug, Default)]
pub(crate) struct Envelope<'a> {
    pub kind: Option<Cow<'a, str>>,
    pub level: Option<Cow<'a, str>>,
    pub audit_id: Option<Cow<'a, str>>,
    pub stage: Option<Cow<'a, str>>,
    pub request_uri: Option<Cow<'a, str>>,
    pub verb: Option<Cow<'a, str>>,
    pub user: Option<UserInfo<'a>>,
    pub impersonated_user: Option<UserInfo<'a>>,
    pub source_ips: Option<Vec<Cow<'a, str>>>,
    pub user_agent: Option<Cow<'a, str>>,
    pub object_ref: Option<ObjectRef<'a>>,
    pub response_status: Option<ResponseStatus<'a>>,
    pub request_object: Option<&'a RawValue>,
    pub response_object: Option<&'a RawValue>,
    pub request_received_timestamp: Option<Cow<'a, str>>,
    pub stage_timestamp: Option<Cow<'a, str>>,
    pub timestamp: Option<&'a RawValue>,
    pub metadata: Option<EventMetadata<'a>>,
    pub annotations: Option<&'a RawValue>,
    pub items: Option<&'a RawValue>,
    pub records: Option<&'a RawValue>,
    pub properties: Option<&'a RawValue>,
    pub category: Option<Cow<'a, str>>,
    pub resource_id: Option<Cow<'a, str>>,
    pub proto_payload: Option<&'a RawValue>,
    pub resource: Option<&'a RawValue>,
    pub labels: Option<&'a RawValue>,
    pub operation: Option<&'a RawValue>,
    pub insert_id: Option<Cow<'a, str>>,
    pub message_type: Option<Cow<'a, str>>,
    pub log_group: Option<Cow<'a, str>>,
    pub log_events: Option<&'a RawValue>,
    pub message: Option<&'a RawValue>,
    pub unknown: Vec<(Cow<'a, str>, &'a RawValue)>,
}

/// A string that borrows from the input when it has no escapes (serde's own `Cow` does not).
#[derive(Deserialize)]
#[serde(transparent)]
struct BorrowCow<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Envelope<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EnvelopeVisitor<'a>(PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for EnvelopeVisitor<'a> {
            type Value = Envelope<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object (an audit event or a log record carrying one)")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Envelope<'a>, M::Error> {
                let mut env = Envelope::default();
                while let Some(BorrowCow(key)) = map.next_key::<BorrowCow<'a>>()? {
                    match key.as_ref() {
                        "kind" => {
                            env.kind = map.next_value::<Option<BorrowCow<'a>>>()?.map(|b| b.0)
                        }
                        "level" => {
                            env.level = map.next_value::<Option<BorrowCow<'a>>>()?.map(|b| b.0)
                        }
                        "auditID" => {
                            env.audit_id = map.next_value::<Option<BorrowCow<'a>>>()?.map(|b| b.0)
                        }
                        "stage" => {
                            env.stage = map.next_value::<Option<BorrowCow<'a>>>()?.map(|b| b.0)
                        }
                        "requestURI" => {
                            env.request_uri =
                                map.next_value::<Option<BorrowCow<'a>>>()?.map(|b| b.0)
                        }
                        "verb" => {
                            env.verb = map.next_value::<Option<BorrowCow<'a>>>()?.map(|b| b.0)
                        }
                        "user" => env.user = map.next_value()?,
                        "impersonatedUser" => env.impersonated_user = map.next_value()?,
                        "sourceIPs" => env.source_ips = map.next_value()?,
                        "userAgent" => {
                            env.user_agent = map.next_value::<Option<BorrowCow<'a>>>()?.map(|b| b.0)
                        }
                        "objectRef" => env.object_ref = map.next_value()?,
                        "responseStatus" => env.response_status = map.next_value()?,
                        "requestObject" => env.request_object = map.next_value()?,
                        "responseObject" => env.response_object = map.next_value()?,
                        "requestReceivedTimestamp" => {
                            env.request_received_timestamp =
                                map.next_value::<Option<BorrowCow<'a>>>()?.map(|b| b.0)
                        }
                        "stageTimestamp" => {
                            env.stage_timestamp =
                                map.next_value::<Option<BorrowCow<'a>>>()?.map(|b| b.0)
                        }
                        "timestamp" => env.timestamp = map.next_value()?,
                        "metadata" => env.metadata = map.next_value()?,
                        "annotations" => env.annotations = map.next_value()?,
                        "items" => env.items = map.next_value()?,
                        "records" => env.records = map.next_value()?,
                        "properties" => env.properties = map.next_value()?,
                        "category" => {
                            env.category = map.next_value::<Option<BorrowCow<'a>>>()?.map(|b| b.0)
                        }
                        "resourceId" | "resourceID" => {
                            env.resource_id =
                                map.next_value::<Option<BorrowCow<'a>>>()?.map(|b| b.0)
                        }
                        "protoPayload" => env.proto_payload = map.next_value()?,
                        "resource" => env.resource = map.next_value()?,
                        "labels" => env.labels = map.next_value()?,
                        "operation" => env.operation = map.next_value()?,
                        "insertId" => {
                            env.insert_id = map.next_value::<Option<BorrowCow<'a>>>()?.map(|b| b.0)
                        }
                        "messageType" => {
                            env.message_type =
                                map.next_value::<Option<BorrowCow<'a>>>()?.map(|b| b.0)
                        }
                        "logGroup" => {
                            env.log_group = map.next_value::<Option<BorrowCow<'a>>>()?.map(|b| b.0)
                        }
                        "logEvents" => env.log_events = map.next_value()?,
                        "message" => env.message = map.next_value()?,
                        "apiVersion" => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                        _ => env.unknown.push((key, map.next_value()?)),
                    }
                }
                Ok(env)
            }
        }

        deserializer.deserialize_map(EnvelopeVisitor(PhantomData))
    }
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

/// Searchers for the names of the annotations that have columns (built once: building one
/// costs more than searching an event's annotations with it).
static ANNOTATION_FINDERS: LazyLock<[Finder<'static>; 3]> = LazyLock::new(|| {
    [
        Finder::new("authorization.k8s.io/decision"),
        Finder::new("authorization.k8s.io/reason"),
        Finder::new("pod-security.kubernetes.io/audit-violations"),
    ]
});

impl<'a> KnownAnnotations<'a> {
    /// The known annotations of an Event's `annotations` object, given as its raw JSON text.
    /// Each key is looked up in the text instead of parsing the whole map a second time (that
    /// was a twentieth of decoding: nearly every event carries annotations).
    pub(crate) fn find(raw: &'a str) -> KnownAnnotations<'a> {
        let [decision, reason, violations] = &*ANNOTATION_FINDERS;
        KnownAnnotations {
            decision: string_member(raw, decision),
            reason: string_member(raw, reason),
            pod_security_violations: string_member(raw, violations),
        }
    }
}

/// The string value of the member whose name `key` searches for (a name with no characters
/// JSON escapes) in the JSON object `raw`, which must be valid JSON. In valid JSON, an unescaped
/// quote, the name and a quote, followed by a colon, can only be a member name, so mentions of
/// the name inside values are passed over. A value that is not a string (null, say) counts as
/// absent.
fn string_member<'a>(raw: &'a str, key: &Finder<'_>) -> Option<Cow<'a, str>> {
    let bytes = raw.as_bytes();
    for at in key.find_iter(bytes) {
        let end = at + key.needle().len();
        if at == 0 || bytes[at - 1] != b'"' || bytes.get(end) != Some(&b'"') {
            continue;
        }
        let backslashes = bytes[..at - 1]
            .iter()
            .rev()
            .take_while(|b| **b == b'\\')
            .count();
        if backslashes % 2 == 1 {
            continue;
        }
        let Some(value) = raw[end + 1..].trim_start().strip_prefix(':') else {
            continue;
        };
        return json_string(value.trim_start());
    }
    None
}

/// The JSON string at the start of `text` (from its opening quote), unescaped, borrowed when it
/// has no escapes; `None` when `text` does not start with a string. `text` comes from JSON that
/// serde_json has already read whole, so the string is well formed; a lone UTF-16 surrogate
/// escape becomes U+FFFD. (serde_json's own string reader, used here before, was half the cost
/// of finding the annotations: it is made for untrusted input and copies through a scratch
/// buffer.)
fn json_string(text: &str) -> Option<Cow<'_, str>> {
    let mut rest = text.strip_prefix('"')?;
    // Filled from the first escape on; until then the string is a slice of `text`.
    let mut unescaped: Option<String> = None;
    loop {
        let at = memchr::memchr2(b'"', b'\\', rest.as_bytes())?;
        if rest.as_bytes()[at] == b'"' {
            return Some(match unescaped {
                None => Cow::Borrowed(&rest[..at]),
                Some(mut out) => {
                    out.push_str(&rest[..at]);
                    Cow::Owned(out)
                }
            });
        }
        let out = unescaped.get_or_insert_with(|| String::with_capacity(at + 32));
        out.push_str(&rest[..at]);
        let escape = *rest.as_bytes().get(at + 1)?;
        // Both bytes are ASCII, so the slice starts on a character boundary.
        rest = &rest[at + 2..];
        match escape {
            b'"' => out.push('"'),
            b'\\' => out.push('\\'),
            b'/' => out.push('/'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let (c, used) = unicode_escape(rest)?;
                out.push(c);
                rest = &rest[used..];
            }
            _ => return None,
        }
    }
}

/// The character of a `\u` escape whose four hex digits start `rest` (joined with a second
/// escape when the first is a leading surrogate), and how many bytes of `rest` it used.
fn unicode_escape(rest: &str) -> Option<(char, usize)> {
    let hex = |s: &str| -> Option<u32> {
        let digits = s.get(..4)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(digits, 16).ok()
    };
    let high = hex(rest)?;
    if (0xD800..0xDC00).contains(&high) {
        let low = rest
            .get(4..)
            .and_then(|r| r.strip_prefix("\\u"))
            .and_then(hex)
            .filter(|low| (0xDC00..0xE000).contains(low));
        if let Some(low) = low {
            let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
            return Some((char::from_u32(c).unwrap_or('\u{FFFD}'), 10));
        }
    }
    Some((char::from_u32(high).unwrap_or('\u{FFFD}'), 4))
}

/// A JSON value that is null or absent, as serde_json's raw values show it.
pub(crate) fn is_null(raw: &RawValue) -> bool {
    raw.get().trim() == "null"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_unescape_as_serde_json_does() {
        for literal in [
            r#""""#,
            r#""allow""#,
            r#""RBAC: allowed by ClusterRoleBinding \"system:x\" of ClusterRole \"y\"""#,
            r#""a\\b\/c\bd\fe\nf\rg\th""#,
            r#""caf\u00e9 \u0041 \u4e2d""#,
            r#""emoji \ud83d\ude00 end""#,
            r#""ends with an escaped quote\"""#,
            r#""raw unicode: é, 中, 😀""#,
            r#""\\""#,
        ] {
            let expected: String = serde_json::from_str(literal).expect("valid JSON");
            let text = format!("{literal}, \"next\": 1");
            let got = json_string(&text).expect("a string");
            assert_eq!(got, expected, "{literal}");
            assert_eq!(
                matches!(got, Cow::Borrowed(_)),
                !literal.contains('\\'),
                "{literal}: borrowed exactly when it has no escapes"
            );
        }
        assert_eq!(
            json_string(r#""lone \ud83d here""#).as_deref(),
            Some("lone \u{FFFD} here")
        );
        assert_eq!(json_string("null"), None);
        assert_eq!(json_string(r#""unterminated"#), None);
    }

    #[test]
    fn known_annotations_are_found_by_name_not_by_mention() {
        let raw = r#"{"note":"authorization.k8s.io/decision","x\"authorization.k8s.io/reason":"no",
            "authorization.k8s.io/decision" : "allow","authorization.k8s.io/reason":"RBAC: \"ok\"",
            "pod-security.kubernetes.io/audit-violations":null}"#;
        let known = KnownAnnotations::find(raw);
        assert_eq!(known.decision.as_deref(), Some("allow"));
        assert_eq!(known.reason.as_deref(), Some("RBAC: \"ok\""));
        assert_eq!(known.pod_security_violations, None);
        // The same as parsing the whole map.
        let parsed: KnownAnnotations<'_> = serde_json::from_str(raw).expect("valid JSON");
        assert_eq!(parsed.decision, known.decision);
        assert_eq!(parsed.reason, known.reason);
        let number = KnownAnnotations::find(r#"{"authorization.k8s.io/decision":1}"#);
        assert_eq!(
            number.decision, None,
            "a value that is not text counts as absent"
        );
        let none = KnownAnnotations::find(r#"{"a":"b"}"#);
        assert!(none.decision.is_none() && none.reason.is_none());
    }
}
