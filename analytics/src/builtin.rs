//! The built-in rule pack, embedded in the binary from `analytics/rules/`.

/// Every built-in rule file: (file name, YAML text).
pub const BUILTIN_RULES: &[(&str, &str)] = &[
    (
        "admission-webhook-changed.yaml",
        include_str!("../rules/admission-webhook-changed.yaml"),
    ),
    (
        "anonymous-request-allowed.yaml",
        include_str!("../rules/anonymous-request-allowed.yaml"),
    ),
    (
        "auth-failure-burst.yaml",
        include_str!("../rules/auth-failure-burst.yaml"),
    ),
    (
        "cluster-admin-binding.yaml",
        include_str!("../rules/cluster-admin-binding.yaml"),
    ),
    (
        "configmap-credentials.yaml",
        include_str!("../rules/configmap-credentials.yaml"),
    ),
    (
        "coredns-config-changed.yaml",
        include_str!("../rules/coredns-config-changed.yaml"),
    ),
    (
        "cronjob-changed.yaml",
        include_str!("../rules/cronjob-changed.yaml"),
    ),
    (
        "csr-non-system.yaml",
        include_str!("../rules/csr-non-system.yaml"),
    ),
    (
        "daemonset-created.yaml",
        include_str!("../rules/daemonset-created.yaml"),
    ),
    (
        "dangerous-capabilities.yaml",
        include_str!("../rules/dangerous-capabilities.yaml"),
    ),
    (
        "ephemeral-container.yaml",
        include_str!("../rules/ephemeral-container.yaml"),
    ),
    (
        "events-deleted.yaml",
        include_str!("../rules/events-deleted.yaml"),
    ),
    (
        "host-namespaces.yaml",
        include_str!("../rules/host-namespaces.yaml"),
    ),
    (
        "image-registry-not-allowed.yaml",
        include_str!("../rules/image-registry-not-allowed.yaml"),
    ),
    (
        "image-unpinned.yaml",
        include_str!("../rules/image-unpinned.yaml"),
    ),
    (
        "impersonation-privileged.yaml",
        include_str!("../rules/impersonation-privileged.yaml"),
    ),
    (
        "kubelet-proxy.yaml",
        include_str!("../rules/kubelet-proxy.yaml"),
    ),
    (
        "mass-deletion.yaml",
        include_str!("../rules/mass-deletion.yaml"),
    ),
    (
        "offensive-tool-user-agent.yaml",
        include_str!("../rules/offensive-tool-user-agent.yaml"),
    ),
    (
        "permission-enumeration.yaml",
        include_str!("../rules/permission-enumeration.yaml"),
    ),
    ("pod-exec.yaml", include_str!("../rules/pod-exec.yaml")),
    (
        "pod-port-forward.yaml",
        include_str!("../rules/pod-port-forward.yaml"),
    ),
    (
        "pod-security-violation.yaml",
        include_str!("../rules/pod-security-violation.yaml"),
    ),
    (
        "privileged-container.yaml",
        include_str!("../rules/privileged-container.yaml"),
    ),
    (
        "role-escalation-verbs.yaml",
        include_str!("../rules/role-escalation-verbs.yaml"),
    ),
    (
        "role-grants-exec-or-sensitive-write.yaml",
        include_str!("../rules/role-grants-exec-or-sensitive-write.yaml"),
    ),
    (
        "role-wildcard.yaml",
        include_str!("../rules/role-wildcard.yaml"),
    ),
    (
        "sa-token-external-ip.yaml",
        include_str!("../rules/sa-token-external-ip.yaml"),
    ),
    (
        "secrets-across-namespaces.yaml",
        include_str!("../rules/secrets-across-namespaces.yaml"),
    ),
    (
        "secrets-listed.yaml",
        include_str!("../rules/secrets-listed.yaml"),
    ),
    (
        "sensitive-hostpath.yaml",
        include_str!("../rules/sensitive-hostpath.yaml"),
    ),
    (
        "service-exposed.yaml",
        include_str!("../rules/service-exposed.yaml"),
    ),
    (
        "serviceaccount-in-kube-system.yaml",
        include_str!("../rules/serviceaccount-in-kube-system.yaml"),
    ),
    (
        "system-role-modified.yaml",
        include_str!("../rules/system-role-modified.yaml"),
    ),
    (
        "token-request-non-kubelet.yaml",
        include_str!("../rules/token-request-non-kubelet.yaml"),
    ),
    (
        "workload-in-system-namespace.yaml",
        include_str!("../rules/workload-in-system-namespace.yaml"),
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml"))
            .collect();
        on_disk.sort();
        let embedded: Vec<String> = BUILTIN_RULES.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(on_disk, embedded, "add new rule files to BUILTIN_RULES");
    }
}
