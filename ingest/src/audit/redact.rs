//! Keeps secret values out of everything audithound stores, prints or logs.
//!
//! The values of Secrets (`data`, `stringData`, the `last-applied-configuration` annotation that
//! repeats them, JSON Patch values), the token of a TokenRequest response and the token of a
//! TokenReview request are replaced by [`REDACTED`] before an object leaves the decoder.

use std::borrow::Cow;

use serde_json::Value;

/// What replaces a secret value.
pub const REDACTED: &str = "[REDACTED]";

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Whether objects of this resource may hold secret values.
pub(crate) fn needs_redaction(resource: &str, subresource: Option<&str>) -> bool {
    matches!(
        (resource, subresource),
        ("secrets", _) | ("serviceaccounts", Some("token")) | ("tokenreviews", _)
    )
}

/// The object with its secret values replaced. Text that is not JSON cannot be checked, so it
/// is dropped entirely rather than passed through.
pub(crate) fn redact<'a>(resource: &str, object: &'a str) -> Option<Cow<'a, str>> {
    let Ok(mut value) = serde_json::from_str::<Value>(object) else {
        return Some(Cow::Borrowed(REDACTED));
    };
    match resource {
        "secrets" => redact_secret(&mut value),
        _ => redact_tokens(&mut value),
    }
    serde_json::to_string(&value).ok().map(Cow::Owned)
}

fn redact_map_values(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (_, val) in map.iter_mut() {
                *val = Value::String(REDACTED.into());
            }
        }
        Value::Null => {}
        other => *other = Value::String(REDACTED.into()),
    }
}

/// Secrets, secret lists, and patches of secrets (merge patches are objects, JSON Patches arrays).
fn redact_secret(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (key, val) in map.iter_mut() {
                match key.as_str() {
                    "data" | "stringData" => redact_map_values(val),
                    LAST_APPLIED => *val = Value::String(REDACTED.into()),
                    // A JSON Patch operation's value may be any part of the secret.
                    "value" => *val = Value::String(REDACTED.into()),
                    _ => redact_secret(val),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_secret),
        _ => {}
    }
}

/// TokenRequest responses (`status.token`) and TokenReview requests (`spec.token`).
fn redact_tokens(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (key, val) in map.iter_mut() {
                if key == "token" && val.is_string() {
                    *val = Value::String(REDACTED.into());
                } else {
                    redact_tokens(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_tokens),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_data_string_data_and_last_applied_are_redacted() {
        let secret = r#"{"kind":"Secret","type":"Opaque","metadata":{"name":"db","annotations":{
            "kubectl.kubernetes.io/last-applied-configuration":"{\"data\":{\"password\":\"aHVudGVyMg==\"}}"}},
            "data":{"password":"aHVudGVyMg=="},"stringData":{"user":"admin"}}"#;
        let out = redact("secrets", secret).unwrap();
        assert!(!out.contains("aHVudGVyMg"), "{out}");
        assert!(!out.contains("admin"), "{out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["data"]["password"], REDACTED);
        assert_eq!(v["metadata"]["name"], "db");
        assert_eq!(v["type"], "Opaque");
    }

    #[test]
    fn secret_lists_and_json_patches_are_redacted() {
        let list = r#"{"kind":"SecretList","items":[{"data":{"k":"c2VjcmV0"}},{"data":{"k":"b3RoZXI="}}]}"#;
        let out = redact("secrets", list).unwrap();
        assert!(!out.contains("c2VjcmV0") && !out.contains("b3RoZXI="));
        let patch = r#"[{"op":"replace","path":"/data/k","value":"c2VjcmV0"}]"#;
        assert!(!redact("secrets", patch).unwrap().contains("c2VjcmV0"));
    }

    #[test]
    fn token_request_and_token_review_tokens_are_redacted() {
        let resp = r#"{"kind":"TokenRequest","spec":{"expirationSeconds":3600},"status":{"token":"eyJhbGciOi.secret","expirationTimestamp":"2024-01-01T00:00:00Z"}}"#;
        let out = redact("serviceaccounts", resp).unwrap();
        assert!(!out.contains("eyJhbGciOi"));
        assert!(out.contains("expirationSeconds"));
        let review = r#"{"kind":"TokenReview","spec":{"token":"eyJhbGciOi.other"}}"#;
        assert!(
            !redact("tokenreviews", review)
                .unwrap()
                .contains("eyJhbGciOi")
        );
    }

    #[test]
    fn unparseable_secret_text_is_dropped_not_passed_through() {
        assert_eq!(redact("secrets", "password=hunter2").unwrap(), REDACTED);
    }
}
