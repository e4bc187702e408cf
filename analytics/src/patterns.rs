//! The patterns of exception lists: a value, a prefix, or a value with wildcards.
//!
//! A pattern without `*` matches that value; a `*` at the end matches any rest (a prefix, as
//! exception lists always had); a `*` elsewhere matches any run of characters within one part
//! of a name: no `/` and no `:`, so that `602401143452.dkr.ecr.*.amazonaws.com/eks/kube-proxy`
//! lets the region vary but not the registry or the path.

/// Whether `value` matches `pattern`.
pub fn matches(value: &str, pattern: &str) -> bool {
    let (body, prefix) = match pattern.strip_suffix('*') {
        Some(body) => (body, true),
        None => (pattern, false),
    };
    if !body.contains('*') {
        return if prefix {
            value.starts_with(body)
        } else {
            value == body
        };
    }
    wildcards(value.as_bytes(), body.as_bytes(), prefix)
}

/// `value` against `pattern`'s parts between inner `*`s; with `prefix`, any rest may follow.
fn wildcards(value: &[u8], pattern: &[u8], prefix: bool) -> bool {
    match pattern.iter().position(|b| *b == b'*') {
        None => {
            if prefix {
                value.starts_with(pattern)
            } else {
                value == pattern
            }
        }
        Some(star) => {
            let (literal, rest) = (&pattern[..star], &pattern[star + 1..]);
            let Some(after) = value.strip_prefix(literal) else {
                return false;
            };
            // The star takes 0.. characters of one part of the name.
            let part = after
                .iter()
                .position(|b| matches!(b, b'/' | b':'))
                .unwrap_or(after.len());
            (0..=part).any(|taken| wildcards(&after[taken..], rest, prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_prefixes_and_wildcards_within_one_part() {
        assert!(matches("pause", "pause"));
        assert!(!matches("pause2", "pause"));
        assert!(matches("registry.corp/app:1", "registry.corp/*"));
        assert!(matches("anything", "*"));
        let ecr = "kube-system:602401143452.dkr.ecr.*.amazonaws.com/eks/kube-proxy";
        assert!(matches(
            "kube-system:602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/kube-proxy",
            ecr
        ));
        // Neither the registry nor the path may move into the star.
        assert!(!matches(
            "kube-system:602401143452.dkr.ecr.evil.com/x.amazonaws.com/eks/kube-proxy",
            ecr
        ));
        assert!(!matches(
            "kube-system:602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/kube-proxy-evil",
            ecr
        ));
        let any_namespace = "gke-managed-*:gke.gcr.io/*";
        assert!(matches(
            "gke-managed-cim:gke.gcr.io/kube-state-metrics",
            any_namespace
        ));
        assert!(!matches(
            "default:gke.gcr.io/kube-state-metrics",
            any_namespace
        ));
        assert!(!matches(
            "gke-managed-x:evil.io:gke.gcr.io/y",
            any_namespace
        ));
        assert!(matches(
            "us-docker.pkg.dev/gke-release/x",
            "*-docker.pkg.dev/gke-release/*"
        ));
    }
}
