//! Security facts extracted from request and response objects.
//!
//! Only the resources that carry the facts are parsed, into typed structs that skip every field
//! no column needs: pod security settings from Pods and from every workload with a pod template
//! (Deployment, DaemonSet, StatefulSet, ReplicaSet, ReplicationController, Job, CronJob,
//! PodTemplate), RBAC rules and bindings, admission webhook targets, Service types, Secret types,
//! TokenRequest lifetimes and object labels. Patches are partial objects: whatever they carry is
//! extracted, and a JSON Patch (an array) yields nothing rather than an error. Pods and
//! workloads are read by the audit JSON reader first ([`fast`]), and by serde_json when it gives up.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::row::ObjectFacts;

mod fast;

/// The top-level fields of any Kubernetes object that facts come from. Its `spec` is kept as
/// JSON text to be read by the carrier's own type, or read at once as `S`: a pod's or a
/// workload's object is then parsed in one pass instead of once for the object, once for its
/// spec and once for the pod template (the facts were half the cost of building rows).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct K8sObject<'a, S = &'a RawValue> {
    kind: Option<String>,
    metadata: Option<ObjectMeta>,
    spec: Option<S>,
    #[serde(borrow)]
    template: Option<&'a RawValue>,
    rules: Option<Vec<PolicyRule>>,
    role_ref: Option<RoleRef>,
    subjects: Option<Vec<Subject>>,
    webhooks: Option<Vec<Webhook>>,
    #[serde(rename = "type")]
    type_: Option<String>,
}

/// An object's metadata as far as facts go. The name and the owner references are kept as
/// JSON values: a value of an unexpected type there costs the ownership facts, not the others.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectMeta {
    name: Option<serde_json::Value>,
    labels: Option<BTreeMap<String, serde_json::Value>>,
    annotations: Option<BTreeMap<String, serde_json::Value>>,
    owner_references: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyRule {
    verbs: Option<Vec<String>>,
    resources: Option<Vec<String>>,
    api_groups: Option<Vec<String>>,
    #[serde(rename = "nonResourceURLs")]
    non_resource_urls: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct RoleRef {
    kind: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Subject {
    kind: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Webhook {
    client_config: Option<ClientConfig>,
}

#[derive(Debug, Default, Deserialize)]
struct ClientConfig {
    url: Option<String>,
    service: Option<ServiceRef>,
}

#[derive(Debug, Default, Deserialize)]
struct ServiceRef {
    namespace: Option<String>,
    name: Option<String>,
}

/// `spec` of a workload: where its pod template lives, kept as JSON text or read at once as
/// `T` (see [`K8sObject`]).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkloadSpec<'a, T = &'a RawValue> {
    template: Option<T>,
    #[serde(borrow)]
    job_template: Option<&'a RawValue>,
    #[serde(rename = "type")]
    type_: Option<String>,
    expiration_seconds: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
struct PodTemplate {
    metadata: Option<ObjectMeta>,
    spec: Option<PodSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    containers: Option<Vec<Container>>,
    init_containers: Option<Vec<Container>>,
    ephemeral_containers: Option<Vec<Container>>,
    #[serde(rename = "hostPID")]
    host_pid: Option<bool>,
    #[serde(rename = "hostIPC")]
    host_ipc: Option<bool>,
    host_network: Option<bool>,
    volumes: Option<Vec<Volume>>,
    security_context: Option<SecurityContext>,
    service_account_name: Option<String>,
    service_account: Option<String>,
    automount_service_account_token: Option<bool>,
    runtime_class_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Container {
    image: Option<String>,
    security_context: Option<SecurityContext>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecurityContext {
    privileged: Option<bool>,
    capabilities: Option<Capabilities>,
    run_as_user: Option<i64>,
    run_as_non_root: Option<bool>,
    allow_privilege_escalation: Option<bool>,
    read_only_root_filesystem: Option<bool>,
    seccomp_profile: Option<Profile>,
    app_armor_profile: Option<Profile>,
}

#[derive(Debug, Default, Deserialize)]
struct Capabilities {
    add: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct Profile {
    #[serde(rename = "type")]
    type_: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Volume {
    host_path: Option<HostPath>,
}

#[derive(Debug, Default, Deserialize)]
struct HostPath {
    path: Option<String>,
}

/// Cap on the resource:verb pairs kept for one role.
const MAX_GRANTS: usize = 1024;

/// Which kind of facts a resource carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carrier {
    Pod,
    Workload,
    CronJob,
    PodTemplate,
    Role,
    Binding,
    Webhook,
    Service,
    Secret,
    TokenRequest,
    Namespace,
    Other,
}

fn carrier(resource: &str, subresource: Option<&str>) -> Carrier {
    match (resource, subresource) {
        ("pods", None | Some("ephemeralcontainers")) => Carrier::Pod,
        (
            "deployments"
            | "daemonsets"
            | "statefulsets"
            | "replicasets"
            | "replicationcontrollers"
            | "jobs",
            None,
        ) => Carrier::Workload,
        ("cronjobs", None) => Carrier::CronJob,
        ("podtemplates", None) => Carrier::PodTemplate,
        ("roles" | "clusterroles", None) => Carrier::Role,
        ("rolebindings" | "clusterrolebindings", None) => Carrier::Binding,
        ("mutatingwebhookconfigurations" | "validatingwebhookconfigurations", None) => {
            Carrier::Webhook
        }
        ("services", None) => Carrier::Service,
        ("secrets", None) => Carrier::Secret,
        ("serviceaccounts", Some("token")) => Carrier::TokenRequest,
        ("namespaces", None) => Carrier::Namespace,
        (_, None) => Carrier::Other,
        _ => Carrier::Other,
    }
}

/// Whether objects of this resource are worth parsing for facts at all.
pub(crate) fn resource_has_facts(resource: &str, subresource: Option<&str>) -> bool {
    carrier(resource, subresource) != Carrier::Other
}

/// Extracts the facts of `object` (request or response object of an event on `resource`).
/// Objects that do not parse as the expected shape yield no facts, never an error.
pub(crate) fn extract(resource: &str, subresource: Option<&str>, object: &str) -> ObjectFacts {
    let kind = carrier(resource, subresource);
    if kind == Carrier::Other {
        return ObjectFacts::default();
    }
    if let Ok(object) = fast::read(kind, object) {
        return object.facts();
    }
    if let Some(facts) = one_pass(kind, object) {
        return facts;
    }
    by_parts(kind, object)
}

/// [`extract`] part by part: the object, then its spec, then the pod template; each part that
/// does not parse yields no facts, and the parts before it stand.
fn by_parts(kind: Carrier, object: &str) -> ObjectFacts {
    let mut facts = ObjectFacts::default();
    if kind == Carrier::Other {
        return facts;
    }
    let Ok(obj) = serde_json::from_str::<K8sObject<'_>>(object) else {
        return facts;
    };
    facts.object_kind = obj.kind.clone();
    if let Some(labels) = obj.metadata.as_ref().and_then(|m| m.labels.as_ref()) {
        facts.labels = serde_json::to_string(labels).ok();
    }
    ownership(obj.kind.as_deref(), obj.metadata.as_ref(), &mut facts);
    match kind {
        Carrier::Pod => {
            if let Some(spec) = obj
                .spec
                .and_then(|s| serde_json::from_str::<PodSpec>(s.get()).ok())
            {
                pod_facts(&spec, obj.metadata.as_ref(), &mut facts);
            }
        }
        Carrier::Workload | Carrier::CronJob => {
            let template = obj
                .spec
                .and_then(|s| serde_json::from_str::<WorkloadSpec<'_>>(s.get()).ok())
                .and_then(|spec| {
                    if kind == Carrier::CronJob {
                        spec.job_template
                            .and_then(|jt| serde_json::from_str::<K8sObject<'_>>(jt.get()).ok())
                            .and_then(|jt| jt.spec)
                            .and_then(|s| serde_json::from_str::<WorkloadSpec<'_>>(s.get()).ok())
                            .and_then(|s| s.template)
                    } else {
                        spec.template
                    }
                })
                .and_then(|t| serde_json::from_str::<PodTemplate>(t.get()).ok());
            if let Some(PodTemplate {
                metadata,
                spec: Some(spec),
            }) = template
            {
                pod_facts(&spec, metadata.as_ref(), &mut facts);
            }
        }
        Carrier::PodTemplate => {
            if let Some(PodTemplate {
                metadata,
                spec: Some(spec),
            }) = obj
                .template
                .and_then(|t| serde_json::from_str::<PodTemplate>(t.get()).ok())
            {
                pod_facts(&spec, metadata.as_ref(), &mut facts);
            }
        }
        Carrier::Role => {
            if let Some(rules) = &obj.rules {
                let mut verbs = Vec::new();
                let mut resources = Vec::new();
                let mut groups = Vec::new();
                let mut grants: Vec<String> = Vec::new();
                for r in rules {
                    extend_unique(&mut verbs, r.verbs.iter().flatten());
                    extend_unique(&mut resources, r.resources.iter().flatten());
                    extend_unique(&mut groups, r.api_groups.iter().flatten());
                    // Non-resource URLs (`/healthz`, `/metrics`) are granted as `url:verb`.
                    for res in r.resources.iter().chain(&r.non_resource_urls).flatten() {
                        for verb in r.verbs.iter().flatten() {
                            let grant = format!("{res}:{verb}");
                            if grants.len() < MAX_GRANTS && !grants.contains(&grant) {
                                grants.push(grant);
                            }
                        }
                    }
                }
                facts.rule_grants = Some(grants);
                facts.rule_verbs = Some(verbs);
                facts.rule_resources = Some(resources);
                facts.rule_api_groups = Some(groups);
            }
        }
        Carrier::Binding => {
            if let Some(rr) = &obj.role_ref {
                facts.role_ref_kind = rr.kind.clone();
                facts.role_ref_name = rr.name.clone();
            }
            if let Some(subjects) = &obj.subjects {
                facts.subjects = Some(subjects.iter().map(subject_text).collect());
            }
        }
        Carrier::Webhook => {
            if let Some(webhooks) = &obj.webhooks {
                let targets = webhooks
                    .iter()
                    .filter_map(|w| {
                        let cc = w.client_config.as_ref()?;
                        if let Some(url) = &cc.url {
                            return Some(url.clone());
                        }
                        let svc = cc.service.as_ref()?;
                        Some(format!(
                            "{}/{}",
                            svc.namespace.as_deref().unwrap_or(""),
                            svc.name.as_deref().unwrap_or("")
                        ))
                    })
                    .collect();
                facts.webhook_targets = Some(targets);
            }
        }
        Carrier::Service => {
            facts.service_type = obj
                .spec
                .and_then(|s| serde_json::from_str::<WorkloadSpec<'_>>(s.get()).ok())
                .and_then(|s| s.type_);
        }
        Carrier::Secret => facts.secret_type = obj.type_.clone(),
        Carrier::TokenRequest => {
            facts.token_expiration_seconds = obj
                .spec
                .and_then(|s| serde_json::from_str::<WorkloadSpec<'_>>(s.get()).ok())
                .and_then(|s| s.expiration_seconds);
        }
        Carrier::Namespace | Carrier::Other => {}
    }
    facts
}

/// A pod spec, with a workload's pod template's metadata (`None` for a pod, whose own metadata
/// goes with its spec).
type PodSpecAndMeta = (PodSpec, Option<Option<ObjectMeta>>);

/// A pod's or a (non-cron) workload's object as far as its facts go.
struct PodObject {
    kind: Option<String>,
    meta: Option<ObjectMeta>,
    pod: Option<PodSpecAndMeta>,
}

impl PodObject {
    fn facts(self) -> ObjectFacts {
        let mut facts = ObjectFacts {
            object_kind: self.kind,
            ..ObjectFacts::default()
        };
        if let Some(labels) = self.meta.as_ref().and_then(|m| m.labels.as_ref()) {
            facts.labels = serde_json::to_string(labels).ok();
        }
        let kind = facts.object_kind.clone();
        ownership(kind.as_deref(), self.meta.as_ref(), &mut facts);
        if let Some((spec, template_meta)) = self.pod {
            // A pod's own metadata; a workload's pod template's.
            let pod_meta = match template_meta {
                Some(m) => m,
                None => self.meta,
            };
            pod_facts(&spec, pod_meta.as_ref(), &mut facts);
        }
        facts
    }
}

/// The facts of a pod or a (non-cron) workload read in one pass, the same as [`extract`]'s;
/// `None` for other objects and for objects that are not wholly of the expected shape, which
/// `extract` reads part by part (keeping what parses).
fn one_pass(kind: Carrier, object: &str) -> Option<ObjectFacts> {
    let object = match kind {
        Carrier::Pod => {
            let obj = serde_json::from_str::<K8sObject<'_, PodSpec>>(object).ok()?;
            PodObject {
                kind: obj.kind,
                meta: obj.metadata,
                pod: obj.spec.map(|spec| (spec, None)),
            }
        }
        Carrier::Workload => {
            let obj = serde_json::from_str::<K8sObject<'_, WorkloadSpec<'_, PodTemplate>>>(object)
                .ok()?;
            let pod = match obj.spec.and_then(|s| s.template) {
                Some(PodTemplate {
                    metadata,
                    spec: Some(spec),
                }) => Some((spec, Some(metadata))),
                _ => None,
            };
            PodObject {
                kind: obj.kind,
                meta: obj.metadata,
                pod,
            }
        }
        _ => return None,
    };
    Some(object.facts())
}

/// The object's name, its controlling owner (`Kind/name`) and the workload it belongs to, from
/// its own metadata.
///
/// The workload is what a person wrote: the owner's, with the Deployment of a ReplicaSet that
/// carries a `pod-template-hash` (`web-7d9f5c4b8` → `Deployment/web`) and the CronJob of a Job
/// named as a CronJob names its Jobs (`backup-28391040` → `CronJob/backup`) derived from their
/// names; the object's own kind and name when it has no owner.
fn ownership(kind: Option<&str>, meta: Option<&ObjectMeta>, facts: &mut ObjectFacts) {
    let Some(meta) = meta else {
        return;
    };
    facts.object_name = meta
        .name
        .as_ref()
        .and_then(serde_json::Value::as_str)
        .filter(|n| !n.is_empty())
        .map(String::from);
    let owners = meta
        .owner_references
        .as_ref()
        .and_then(serde_json::Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    fn text<'v>(o: &'v serde_json::Value, k: &str) -> Option<&'v str> {
        o.get(k).and_then(serde_json::Value::as_str)
    }
    let owner = owners
        .iter()
        .find(|o| o.get("controller") == Some(&serde_json::Value::Bool(true)))
        .or(owners.first())
        .and_then(|o| Some((text(o, "kind")?, text(o, "name")?)));
    let Some((owner_kind, owner_name)) = owner else {
        facts.workload = kind
            .zip(facts.object_name.as_deref())
            .map(|(kind, name)| format!("{kind}/{name}"));
        return;
    };
    facts.owner = Some(format!("{owner_kind}/{owner_name}"));
    let template_hash = meta
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-template-hash"))
        .and_then(serde_json::Value::as_str);
    facts.workload = Some(match (owner_kind, template_hash) {
        ("ReplicaSet", Some(hash)) => {
            let deployment = owner_name
                .strip_suffix(hash)
                .and_then(|n| n.strip_suffix('-'))
                .or_else(|| owner_name.rsplit_once('-').map(|(d, _)| d))
                .unwrap_or(owner_name);
            format!("Deployment/{deployment}")
        }
        ("Job", _) => match owner_name.rsplit_once('-') {
            Some((cron, minutes))
                if minutes.len() >= 8 && minutes.bytes().all(|b| b.is_ascii_digit()) =>
            {
                format!("CronJob/{cron}")
            }
            _ => format!("Job/{owner_name}"),
        },
        _ => format!("{owner_kind}/{owner_name}"),
    });
}

fn subject_text(s: &Subject) -> String {
    let kind = s.kind.as_deref().unwrap_or("");
    let name = s.name.as_deref().unwrap_or("");
    match (kind, &s.namespace) {
        ("ServiceAccount", Some(ns)) => format!("ServiceAccount:{ns}/{name}"),
        _ => format!("{kind}:{name}"),
    }
}

fn extend_unique<'s>(into: &mut Vec<String>, items: impl Iterator<Item = &'s String>) {
    for item in items {
        if !into.iter().any(|x| x == item) {
            into.push(item.clone());
        }
    }
}

/// Whether an annotation of a pod (or pod template) names a seccomp profile, in the form that
/// came before the `seccompProfile` field.
fn is_seccomp_annotation(key: &str) -> bool {
    key == "seccomp.security.alpha.kubernetes.io/pod"
        || key.starts_with("container.seccomp.security.alpha.kubernetes.io/")
}

/// Whether an annotation of a pod (or pod template) names a container's AppArmor profile, in
/// the form that came before the `appArmorProfile` field.
fn is_apparmor_annotation(key: &str) -> bool {
    key.starts_with("container.apparmor.security.beta.kubernetes.io/")
}

fn pod_facts(spec: &PodSpec, meta: Option<&ObjectMeta>, facts: &mut ObjectFacts) {
    let containers: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter())
        .chain(spec.ephemeral_containers.iter())
        .flatten()
        .collect();
    let pod_sc = spec.security_context.as_ref();

    facts.host_pid = spec.host_pid;
    facts.host_ipc = spec.host_ipc;
    facts.host_network = spec.host_network;
    facts.service_account = spec
        .service_account_name
        .clone()
        .or_else(|| spec.service_account.clone());
    facts.automount_token = spec.automount_service_account_token;
    facts.runtime_class = spec.runtime_class_name.clone();
    facts.host_paths = Some(
        spec.volumes
            .iter()
            .flatten()
            .filter_map(|v| v.host_path.as_ref()?.path.clone())
            .collect(),
    );
    facts.images = Some(containers.iter().filter_map(|c| c.image.clone()).collect());

    let mut caps = Vec::new();
    for c in &containers {
        if let Some(add) = c
            .security_context
            .as_ref()
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|c| c.add.as_ref())
        {
            extend_unique(&mut caps, add.iter());
        }
    }
    facts.capabilities_added = Some(caps);

    fn csc<'c>(c: &&'c Container) -> Option<&'c SecurityContext> {
        c.security_context.as_ref()
    }
    facts.privileged = Some(
        containers
            .iter()
            .any(|c| csc(c).and_then(|s| s.privileged) == Some(true)),
    );
    facts.allow_privilege_escalation = Some(
        containers
            .iter()
            .any(|c| csc(c).and_then(|s| s.allow_privilege_escalation) == Some(true)),
    );

    if !containers.is_empty() {
        facts.read_only_root_fs = Some(
            containers
                .iter()
                .all(|c| csc(c).and_then(|s| s.read_only_root_filesystem) == Some(true)),
        );
        facts.run_as_root = Some(containers.iter().any(|c| {
            let user = csc(c)
                .and_then(|s| s.run_as_user)
                .or(pod_sc.and_then(|s| s.run_as_user));
            let non_root = csc(c)
                .and_then(|s| s.run_as_non_root)
                .or(pod_sc.and_then(|s| s.run_as_non_root));
            match user {
                Some(0) => true,
                Some(_) => false,
                None => non_root != Some(true),
            }
        }));
    }

    let profile_is = |p: Option<&Profile>, want: &str| {
        p.and_then(|p| p.type_.as_deref())
            .is_some_and(|t| t.eq_ignore_ascii_case(want))
    };
    let seccomp_field = profile_is(
        pod_sc.and_then(|s| s.seccomp_profile.as_ref()),
        "Unconfined",
    ) || containers.iter().any(|c| {
        profile_is(
            csc(c).and_then(|s| s.seccomp_profile.as_ref()),
            "Unconfined",
        )
    });
    let seccomp_annotation = meta.and_then(|m| m.annotations.as_ref()).is_some_and(|a| {
        a.iter()
            .any(|(k, v)| is_seccomp_annotation(k) && v.as_str() == Some("unconfined"))
    });
    facts.seccomp_unconfined = Some(seccomp_field || seccomp_annotation);
    let apparmor_field = profile_is(
        pod_sc.and_then(|s| s.app_armor_profile.as_ref()),
        "Unconfined",
    ) || containers.iter().any(|c| {
        profile_is(
            csc(c).and_then(|s| s.app_armor_profile.as_ref()),
            "Unconfined",
        )
    });
    let apparmor_annotation = meta.and_then(|m| m.annotations.as_ref()).is_some_and(|a| {
        a.iter()
            .any(|(k, v)| is_apparmor_annotation(k) && v.as_str() == Some("unconfined"))
    });
    facts.apparmor_unconfined = Some(apparmor_field || apparmor_annotation);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass reading of pods and workloads gives what reading them part by part gives,
    /// on every such object of the fixtures and on objects damaged at each level.
    #[test]
    fn reading_in_one_pass_agrees_with_reading_part_by_part() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
        let mut objects: Vec<(String, Option<String>, String)> = Vec::new();
        for file in ["attack/intrusion.log", "audit/native/audit2rbac-demo.log"] {
            let text = std::fs::read_to_string(root.join(file)).expect("fixture");
            for line in text.lines() {
                let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                let field = |k: &str| event["objectRef"][k].as_str().map(str::to_string);
                let Some(resource) = field("resource") else {
                    continue;
                };
                for key in ["requestObject", "responseObject"] {
                    if event[key].is_object() {
                        objects.push((
                            resource.clone(),
                            field("subresource"),
                            event[key].to_string(),
                        ));
                    }
                }
            }
        }
        let pod = r#"{"kind":"Pod","metadata":{"labels":{"app":"a"}},"spec":{"hostNetwork":true,
            "containers":[{"image":"x","securityContext":{"privileged":true}}]}}"#;
        let deployment = r#"{"kind":"Deployment","metadata":{"labels":{"app":"d"}},"spec":{"template":
            {"metadata":{"labels":{"app":"t"}},"spec":{"containers":[{"image":"y"}]}}}}"#;
        for (resource, object) in [
            ("pods", pod.to_string()),
            (
                "pods",
                pod.replace(r#""hostNetwork":true"#, r#""hostNetwork":"yes""#),
            ),
            (
                "pods",
                pod.replace(r#""kind":"Pod""#, r#""kind":"Pod","rules":7"#),
            ),
            ("pods", pod.replace(r#""spec":{"#, r#""spec":null,"x":{"#)),
            ("deployments", deployment.to_string()),
            (
                "deployments",
                deployment.replace(r#""image":"y""#, r#""image":5"#),
            ),
            (
                "deployments",
                deployment.replace(r#""template":"#, r#""replicas":"two","template":"#),
            ),
            (
                "deployments",
                deployment.replace(r#""metadata":{"labels":{"app":"t"}}"#, r#""metadata":3"#),
            ),
            (
                "deployments",
                deployment.replace(r#""kind":"Deployment""#, r#""kind":1"#),
            ),
        ] {
            objects.push((resource.to_string(), None, object));
        }
        let mut read_at_once = 0;
        for (resource, subresource, object) in &objects {
            let kind = carrier(resource, subresource.as_deref());
            if let Some(facts) = one_pass(kind, object) {
                read_at_once += 1;
                assert_eq!(facts, by_parts(kind, object), "{object}");
            }
            assert_eq!(
                extract(resource, subresource.as_deref(), object),
                by_parts(kind, object),
                "{object}"
            );
        }
        assert!(
            read_at_once >= 5,
            "only {read_at_once} objects were read in one pass"
        );
    }

    #[test]
    fn privileged_container_in_a_deployment_template_is_seen() {
        let obj = r#"{"kind":"Deployment","spec":{"template":{"spec":{
            "hostPID":true,
            "volumes":[{"name":"root","hostPath":{"path":"/"}}],
            "containers":[{"name":"a","image":"nginx:1.25","securityContext":{"privileged":true,
                "capabilities":{"add":["SYS_ADMIN","NET_ADMIN"]}}}],
            "initContainers":[{"name":"i","image":"busybox"}]}}}}"#;
        let f = extract("deployments", None, obj);
        assert_eq!(f.object_kind.as_deref(), Some("Deployment"));
        assert_eq!(f.privileged, Some(true));
        assert_eq!(f.host_pid, Some(true));
        assert_eq!(f.host_paths, Some(vec!["/".to_string()]));
        assert_eq!(
            f.capabilities_added,
            Some(vec!["SYS_ADMIN".to_string(), "NET_ADMIN".to_string()])
        );
        assert_eq!(
            f.images,
            Some(vec!["nginx:1.25".to_string(), "busybox".to_string()])
        );
        assert_eq!(f.run_as_root, Some(true));
    }

    #[test]
    fn cronjob_pod_template_is_reached_through_the_job_template() {
        let obj = r#"{"kind":"CronJob","spec":{"schedule":"* * * * *","jobTemplate":{"spec":{"template":{"spec":{
            "hostNetwork":true,"containers":[{"name":"c","image":"alpine",
            "securityContext":{"runAsNonRoot":true,"readOnlyRootFilesystem":true}}]}}}}}}"#;
        let f = extract("cronjobs", None, obj);
        assert_eq!(f.host_network, Some(true));
        assert_eq!(f.privileged, Some(false));
        assert_eq!(f.run_as_root, Some(false));
        assert_eq!(f.read_only_root_fs, Some(true));
    }

    #[test]
    fn pod_level_run_as_user_zero_overrides_run_as_non_root_absence() {
        let obj = r#"{"kind":"Pod","spec":{"securityContext":{"runAsUser":0},
            "containers":[{"name":"c","image":"x"}]}}"#;
        assert_eq!(extract("pods", None, obj).run_as_root, Some(true));
        let obj = r#"{"kind":"Pod","spec":{"securityContext":{"runAsUser":1000},
            "containers":[{"name":"c","image":"x"}]}}"#;
        assert_eq!(extract("pods", None, obj).run_as_root, Some(false));
    }

    #[test]
    fn ephemeral_container_images_and_seccomp_annotation_count() {
        let obj = r#"{"kind":"Pod","metadata":{"annotations":{"seccomp.security.alpha.kubernetes.io/pod":"unconfined"}},
            "spec":{"containers":[{"name":"c","image":"app"}],
            "ephemeralContainers":[{"name":"debugger","image":"busybox","securityContext":{"privileged":true}}]}}"#;
        let f = extract("pods", Some("ephemeralcontainers"), obj);
        assert_eq!(f.privileged, Some(true));
        assert_eq!(f.seccomp_unconfined, Some(true));
        assert!(f.images.unwrap().contains(&"busybox".to_string()));
    }

    #[test]
    fn rbac_rules_and_bindings_are_flattened() {
        let role = r#"{"kind":"ClusterRole","rules":[{"apiGroups":[""],"resources":["pods","pods/exec"],"verbs":["create","get"]},
            {"apiGroups":["*"],"resources":["*"],"verbs":["*"]}]}"#;
        let f = extract("clusterroles", None, role);
        assert_eq!(
            f.rule_verbs,
            Some(vec!["create".into(), "get".into(), "*".into()])
        );
        assert!(f.rule_resources.unwrap().contains(&"pods/exec".to_string()));
        let grants = f.rule_grants.unwrap();
        assert!(
            grants.contains(&"pods/exec:create".to_string()) && grants.contains(&"*:*".to_string()),
            "{grants:?}"
        );
        assert!(!grants.contains(&"pods:*".to_string()));
        let binding = r#"{"kind":"ClusterRoleBinding","roleRef":{"kind":"ClusterRole","name":"cluster-admin"},
            "subjects":[{"kind":"ServiceAccount","name":"default","namespace":"dev"},{"kind":"User","name":"mallory"}]}"#;
        let f = extract("clusterrolebindings", None, binding);
        assert_eq!(f.role_ref_name.as_deref(), Some("cluster-admin"));
        assert_eq!(
            f.subjects,
            Some(vec![
                "ServiceAccount:dev/default".into(),
                "User:mallory".into()
            ])
        );
    }

    #[test]
    fn webhook_targets_name_services_and_urls() {
        let obj = r#"{"kind":"MutatingWebhookConfiguration","webhooks":[
            {"name":"a","clientConfig":{"service":{"namespace":"evil","name":"hook"}}},
            {"name":"b","clientConfig":{"url":"https://attacker.example/hook"}}]}"#;
        let f = extract("mutatingwebhookconfigurations", None, obj);
        assert_eq!(
            f.webhook_targets,
            Some(vec![
                "evil/hook".into(),
                "https://attacker.example/hook".into()
            ])
        );
    }

    #[test]
    fn owners_name_the_workload_a_person_wrote() {
        let pod_of = |owner_kind: &str, owner: &str, labels: &str| {
            format!(
                r#"{{"kind":"Pod","metadata":{{"generateName":"{owner}-","labels":{{{labels}}},
                "ownerReferences":[{{"apiVersion":"apps/v1","kind":"{owner_kind}","name":"{owner}","uid":"u","controller":true}}]}},
                "spec":{{"containers":[{{"image":"nginx"}}]}}}}"#
            )
        };
        let facts = extract(
            "pods",
            None,
            &pod_of(
                "ReplicaSet",
                "web-7d9f5c4b8",
                r#""app":"web","pod-template-hash":"7d9f5c4b8""#,
            ),
        );
        assert_eq!(facts.owner.as_deref(), Some("ReplicaSet/web-7d9f5c4b8"));
        assert_eq!(facts.workload.as_deref(), Some("Deployment/web"));
        assert_eq!(facts.object_name, None, "named by generateName");
        // An old cluster's hash label differs from the name's suffix.
        let facts = extract(
            "pods",
            None,
            &pod_of(
                "ReplicaSet",
                "nginx-deployment-5cdcc99dbf",
                r#""pod-template-hash":"1787755869""#,
            ),
        );
        assert_eq!(
            facts.workload.as_deref(),
            Some("Deployment/nginx-deployment")
        );
        // A ReplicaSet without the label is nobody's Deployment.
        let facts = extract("pods", None, &pod_of("ReplicaSet", "bare-rs", ""));
        assert_eq!(facts.workload.as_deref(), Some("ReplicaSet/bare-rs"));
        let facts = extract("pods", None, &pod_of("Job", "backup-28391040", ""));
        assert_eq!(facts.workload.as_deref(), Some("CronJob/backup"));
        let facts = extract("pods", None, &pod_of("Job", "migrate-v2", ""));
        assert_eq!(facts.workload.as_deref(), Some("Job/migrate-v2"));
        let facts = extract("pods", None, &pod_of("DaemonSet", "kube-proxy", ""));
        assert_eq!(facts.workload.as_deref(), Some("DaemonSet/kube-proxy"));
        // The ReplicaSet itself, and a workload nobody owns.
        let rs = r#"{"kind":"ReplicaSet","metadata":{"name":"web-7d9f5c4b8","labels":{"pod-template-hash":"7d9f5c4b8"},
            "ownerReferences":[{"kind":"Deployment","name":"web","controller":true}]},
            "spec":{"template":{"spec":{"containers":[{"image":"nginx"}]}}}}"#;
        let facts = extract("replicasets", None, rs);
        assert_eq!(facts.workload.as_deref(), Some("Deployment/web"));
        assert_eq!(facts.object_name.as_deref(), Some("web-7d9f5c4b8"));
        let bare = r#"{"kind":"Pod","metadata":{"name":"shell"},"spec":{"containers":[{"image":"alpine"}]}}"#;
        let facts = extract("pods", None, bare);
        assert_eq!(
            (facts.owner, facts.workload.as_deref()),
            (None, Some("Pod/shell"))
        );
        // Owners of a shape no controller writes cost the ownership, not the other facts.
        let odd = bare.replace(
            r#""name":"shell""#,
            r#""name":7,"ownerReferences":{"kind":1}"#,
        );
        let facts = extract("pods", None, &odd);
        assert_eq!((facts.owner, facts.workload), (None, None));
        assert_eq!(facts.images, Some(vec!["alpine".to_string()]));
    }

    #[test]
    fn json_patch_and_garbage_yield_no_facts() {
        assert_eq!(
            extract("pods", None, r#"[{"op":"add","path":"/x","value":1}]"#),
            ObjectFacts::default()
        );
        assert_eq!(extract("pods", None, "not json"), ObjectFacts::default());
        assert_eq!(
            extract("configmaps", None, r#"{"kind":"ConfigMap"}"#),
            ObjectFacts::default()
        );
    }
}
