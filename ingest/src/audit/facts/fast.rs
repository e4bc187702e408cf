//! Pods and workloads read for their facts by the audit JSON reader instead of serde_json.
//!
//! Most of a pod or workload object is members that no fact comes from (managed fields,
//! status, probes), and serde_json's typed reading spends most of its time passing over them.
//! This reads the same typed structs with the reader, which skips unneeded values at a fraction
//! of that cost, and gives up whenever it is unsure (a type other than the struct's, a
//! duplicate member, a number with a sign or a fraction, a label that is not a string, a member
//! of the other carriers' shapes, a control byte anywhere): serde_json then reads the object.
//! So an object it accepts has the facts serde_json gives; the tests check that on every
//! fixture object and on damaged ones.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    Capabilities, Carrier, Container, HostPath, ObjectMeta, PodObject, PodSpec, PodSpecAndMeta,
    PodTemplate, Profile, SecurityContext, Volume, is_apparmor_annotation, is_seccomp_annotation,
};
use crate::audit::json_reader::{GiveUp, JsonReader, Step, first, has_control_bytes};

/// The object of a pod or a (non-cron) workload, read as `serde_json` reads it into
/// `K8sObject<PodSpec>` or `K8sObject<WorkloadSpec<PodTemplate>>`; it gives up on other
/// carriers and on anything it is unsure of.
pub(super) fn read(kind: Carrier, object: &str) -> Step<PodObject> {
    if !matches!(kind, Carrier::Pod | Carrier::Workload) || has_control_bytes(object) {
        return Err(GiveUp);
    }
    let mut r = JsonReader::new(object);
    let mut read = PodObject {
        kind: None,
        meta: None,
        pod: None,
    };
    let mut seen = [false; 5];
    let is_object = r.object(|r, _, name| {
        match name.as_ref() {
            "kind" => {
                first(&mut seen[0])?;
                read.kind = owned(r.opt_string()?);
            }
            "metadata" => {
                first(&mut seen[1])?;
                read.meta = meta(r)?;
            }
            "spec" => {
                first(&mut seen[2])?;
                read.pod = match kind {
                    Carrier::Pod => pod_spec(r)?.map(|spec| (spec, None)),
                    _ => workload_spec(r)?,
                };
            }
            // Read as text by serde_json (any value).
            "template" => {
                first(&mut seen[3])?;
                r.skip_value()?;
            }
            "type" => {
                first(&mut seen[4])?;
                r.opt_string()?;
            }
            // Members of other carriers' shapes, typed there: never on a pod or a workload.
            "rules" | "roleRef" | "subjects" | "webhooks" => return Err(GiveUp),
            _ => r.skip_value()?,
        }
        Ok(())
    })?;
    r.end()?;
    if is_object {
        Ok(read)
    } else {
        // A bare `null` is not an object.
        Err(GiveUp)
    }
}

fn owned(text: Option<Cow<'_, str>>) -> Option<String> {
    text.map(Cow::into_owned)
}

/// An object's metadata: its labels, and of its annotations only those that name seccomp or
/// AppArmor profiles (the only ones a fact comes from).
fn meta(r: &mut JsonReader<'_>) -> Step<Option<ObjectMeta>> {
    let mut meta = ObjectMeta::default();
    let mut seen = [false; 4];
    let read = r.object(|r, _, name| {
        match name.as_ref() {
            // Kept as JSON values, as serde_json keeps them: the name as the string it is (any
            // other value gives up), the owners as read by serde_json (they are small).
            "name" => {
                first(&mut seen[2])?;
                meta.name = r.opt_string()?.map(|n| Value::String(n.into_owned()));
            }
            "ownerReferences" => {
                first(&mut seen[3])?;
                meta.owner_references = value(r)?;
            }
            "labels" => {
                first(&mut seen[0])?;
                meta.labels = strings(r, |_| true)?;
            }
            "annotations" => {
                first(&mut seen[1])?;
                meta.annotations = strings(r, |key| {
                    is_seccomp_annotation(key) || is_apparmor_annotation(key)
                })?;
            }
            _ => r.skip_value()?,
        }
        Ok(())
    })?;
    Ok(read.then_some(meta))
}

/// Any value as serde_json reads it into an `Option<Value>` (`null`: `None`).
fn value(r: &mut JsonReader<'_>) -> Step<Option<Value>> {
    let raw = r.raw()?;
    match serde_json::from_str::<Option<Value>>(raw) {
        Ok(v) => Ok(v),
        Err(_) => Err(GiveUp),
    }
}

/// A map of strings (labels, annotations), keeping the members whose names `keep` accepts;
/// a later member of the same name replaces an earlier one, as in serde_json's map. A kept
/// member whose value is not a string gives up.
fn strings(
    r: &mut JsonReader<'_>,
    keep: impl Fn(&str) -> bool,
) -> Step<Option<BTreeMap<String, Value>>> {
    let mut map = BTreeMap::new();
    let read = r.object(|r, _, name| {
        if keep(&name) {
            let value = r.string()?;
            map.insert(name.into_owned(), Value::String(value.into_owned()));
            Ok(())
        } else {
            r.skip_value()
        }
    })?;
    Ok(read.then_some(map))
}

/// A workload's spec, as far as its pod template: the template's spec with its metadata.
fn workload_spec(r: &mut JsonReader<'_>) -> Step<Option<PodSpecAndMeta>> {
    let mut template = None;
    let mut seen = [false; 4];
    r.object(|r, _, name| {
        match name.as_ref() {
            "template" => {
                first(&mut seen[0])?;
                template = pod_template(r)?;
            }
            "jobTemplate" => {
                first(&mut seen[1])?;
                r.skip_value()?;
            }
            "type" => {
                first(&mut seen[2])?;
                r.opt_string()?;
            }
            "expirationSeconds" => {
                first(&mut seen[3])?;
                r.opt_natural()?;
            }
            _ => r.skip_value()?,
        }
        Ok(())
    })?;
    Ok(template.and_then(|t: PodTemplate| Some((t.spec?, Some(t.metadata)))))
}

/// A pod template (or `null`: `None`).
fn pod_template(r: &mut JsonReader<'_>) -> Step<Option<PodTemplate>> {
    let mut template = PodTemplate::default();
    let mut seen = [false; 2];
    let read = r.object(|r, _, name| {
        match name.as_ref() {
            "metadata" => {
                first(&mut seen[0])?;
                template.metadata = meta(r)?;
            }
            "spec" => {
                first(&mut seen[1])?;
                template.spec = pod_spec(r)?;
            }
            _ => r.skip_value()?,
        }
        Ok(())
    })?;
    Ok(read.then_some(template))
}

fn pod_spec(r: &mut JsonReader<'_>) -> Step<Option<PodSpec>> {
    let mut spec = PodSpec::default();
    let mut seen = [false; 12];
    let read = r.object(|r, _, name| {
        match name.as_ref() {
            "containers" => {
                first(&mut seen[0])?;
                spec.containers = list(r, container)?;
            }
            "initContainers" => {
                first(&mut seen[1])?;
                spec.init_containers = list(r, container)?;
            }
            "ephemeralContainers" => {
                first(&mut seen[2])?;
                spec.ephemeral_containers = list(r, container)?;
            }
            "hostPID" => {
                first(&mut seen[3])?;
                spec.host_pid = r.opt_bool()?;
            }
            "hostIPC" => {
                first(&mut seen[4])?;
                spec.host_ipc = r.opt_bool()?;
            }
            "hostNetwork" => {
                first(&mut seen[5])?;
                spec.host_network = r.opt_bool()?;
            }
            "volumes" => {
                first(&mut seen[6])?;
                spec.volumes = list(r, volume)?;
            }
            "securityContext" => {
                first(&mut seen[7])?;
                spec.security_context = security_context(r)?;
            }
            "serviceAccountName" => {
                first(&mut seen[8])?;
                spec.service_account_name = owned(r.opt_string()?);
            }
            "serviceAccount" => {
                first(&mut seen[9])?;
                spec.service_account = owned(r.opt_string()?);
            }
            "automountServiceAccountToken" => {
                first(&mut seen[10])?;
                spec.automount_service_account_token = r.opt_bool()?;
            }
            "runtimeClassName" => {
                first(&mut seen[11])?;
                spec.runtime_class_name = owned(r.opt_string()?);
            }
            _ => r.skip_value()?,
        }
        Ok(())
    })?;
    Ok(read.then_some(spec))
}

/// An array of objects read by `item`, or `null`; a `null` item gives up (serde_json rejects
/// it as a struct).
fn list<'a, T>(
    r: &mut JsonReader<'a>,
    item: fn(&mut JsonReader<'a>) -> Step<Option<T>>,
) -> Step<Option<Vec<T>>> {
    let mut items = Vec::new();
    let read = r.array(|r| {
        items.push(item(r)?.ok_or(GiveUp)?);
        Ok(())
    })?;
    Ok(read.then_some(items))
}

fn container(r: &mut JsonReader<'_>) -> Step<Option<Container>> {
    let mut container = Container::default();
    let mut seen = [false; 2];
    let read = r.object(|r, _, name| {
        match name.as_ref() {
            "image" => {
                first(&mut seen[0])?;
                container.image = owned(r.opt_string()?);
            }
            "securityContext" => {
                first(&mut seen[1])?;
                container.security_context = security_context(r)?;
            }
            _ => r.skip_value()?,
        }
        Ok(())
    })?;
    Ok(read.then_some(container))
}

fn security_context(r: &mut JsonReader<'_>) -> Step<Option<SecurityContext>> {
    let mut sc = SecurityContext::default();
    let mut seen = [false; 8];
    let read = r.object(|r, _, name| {
        match name.as_ref() {
            "privileged" => {
                first(&mut seen[0])?;
                sc.privileged = r.opt_bool()?;
            }
            "capabilities" => {
                first(&mut seen[1])?;
                sc.capabilities = capabilities(r)?;
            }
            "runAsUser" => {
                first(&mut seen[2])?;
                sc.run_as_user = r.opt_natural()?;
            }
            "runAsNonRoot" => {
                first(&mut seen[3])?;
                sc.run_as_non_root = r.opt_bool()?;
            }
            "allowPrivilegeEscalation" => {
                first(&mut seen[4])?;
                sc.allow_privilege_escalation = r.opt_bool()?;
            }
            "readOnlyRootFilesystem" => {
                first(&mut seen[5])?;
                sc.read_only_root_filesystem = r.opt_bool()?;
            }
            "seccompProfile" => {
                first(&mut seen[6])?;
                sc.seccomp_profile = profile(r)?;
            }
            "appArmorProfile" => {
                first(&mut seen[7])?;
                sc.app_armor_profile = profile(r)?;
            }
            _ => r.skip_value()?,
        }
        Ok(())
    })?;
    Ok(read.then_some(sc))
}

fn capabilities(r: &mut JsonReader<'_>) -> Step<Option<Capabilities>> {
    let add = only_member(r, "add", |r| {
        Ok(r.opt_strings()?
            .map(|add| add.into_iter().map(Cow::into_owned).collect()))
    })?;
    Ok(add.map(|add| Capabilities { add }))
}

fn profile(r: &mut JsonReader<'_>) -> Step<Option<Profile>> {
    let type_ = only_member(r, "type", |r| Ok(owned(r.opt_string()?)))?;
    Ok(type_.map(|type_| Profile { type_ }))
}

fn volume(r: &mut JsonReader<'_>) -> Step<Option<Volume>> {
    let host_path = only_member(r, "hostPath", host_path)?;
    Ok(host_path.map(|host_path| Volume { host_path }))
}

fn host_path(r: &mut JsonReader<'_>) -> Step<Option<HostPath>> {
    let path = only_member(r, "path", |r| Ok(owned(r.opt_string()?)))?;
    Ok(path.map(|path| HostPath { path }))
}

/// An object (or `null`: `None`) of which only the member `name` is read, by `read`; the
/// value is `T`'s default when the member is absent, as with serde's `Option` fields.
fn only_member<'a, T: Default>(
    r: &mut JsonReader<'a>,
    name: &str,
    mut read: impl FnMut(&mut JsonReader<'a>) -> Step<T>,
) -> Step<Option<T>> {
    let mut value = T::default();
    let mut seen = false;
    let is_object = r.object(|r, _, member| {
        if member == name {
            first(&mut seen)?;
            value = read(r)?;
            Ok(())
        } else {
            r.skip_value()
        }
    })?;
    Ok(is_object.then_some(value))
}

#[cfg(test)]
mod tests {
    use super::super::{carrier, one_pass};
    use super::*;

    /// The pod and workload objects of every fixture log, with their resource.
    fn fixture_objects() -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
        let mut objects = Vec::new();
        for file in [
            "attack/intrusion.log",
            "audit/native/audit2rbac-demo.log",
            "audit/native/v1beta1.log",
            "audit/native/malformed-mixed.log",
        ] {
            let text = std::fs::read_to_string(root.join(file)).expect("fixture");
            for line in text.lines() {
                let Ok(event) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                let Some(resource) = event["objectRef"]["resource"].as_str() else {
                    continue;
                };
                let kind = carrier(resource, event["objectRef"]["subresource"].as_str());
                if !matches!(kind, Carrier::Pod | Carrier::Workload) {
                    continue;
                }
                for key in ["requestObject", "responseObject"] {
                    if event[key].is_object() {
                        objects.push((resource.to_string(), event[key].to_string()));
                    }
                }
            }
        }
        objects
    }

    /// Whether the reader read `object` (and then with serde_json's facts); it may give up on
    /// anything, but never accept what serde_json's one-pass reading rejects.
    fn reads_as_serde_json_does(resource: &str, object: &str) -> bool {
        let kind = carrier(resource, None);
        match read(kind, object) {
            Ok(read) => {
                let by_serde = one_pass(kind, object)
                    .unwrap_or_else(|| panic!("accepted what serde_json rejects: {object}"));
                assert_eq!(read.facts(), by_serde, "{object}");
                true
            }
            Err(GiveUp) => false,
        }
    }

    #[test]
    fn every_fixture_pod_and_workload_reads_as_serde_json_reads_it() {
        let objects = fixture_objects();
        assert!(objects.len() > 100, "{}", objects.len());
        for (resource, object) in &objects {
            // Compact objects of the expected shape are never given away.
            assert!(reads_as_serde_json_does(resource, object), "{object}");
        }
    }

    #[test]
    fn hand_written_shapes_read_as_serde_json_reads_them() {
        let pod = r#"{"kind":"Pod","metadata":{"name":"p","labels":{"b":"2","a":"1","b":"3"},
            "annotations":{"container.apparmor.security.beta.kubernetes.io/c":"unconfined",
            "seccomp.security.alpha.kubernetes.io/pod":"runtime/default","other":{"x":[1]}}},
            "spec":{"hostPID":true,"hostIPC":false,"hostNetwork":null,"serviceAccount":"old",
            "automountServiceAccountToken":false,"runtimeClassName":"gvisor",
            "securityContext":{"runAsUser":1000,"seccompProfile":{"type":"Unconfined"}},
            "volumes":[{"name":"v","hostPath":{"path":"/var/run/docker.sock","type":""}},{"emptyDir":{}}],
            "containers":[{"name":"c","image":"r.example/app@sha256:00","securityContext":{
              "privileged":false,"runAsUser":0,"runAsNonRoot":true,"allowPrivilegeEscalation":true,
              "readOnlyRootFilesystem":true,"capabilities":{"add":["SYS_ADMIN","SYS_ADMIN"],"drop":["ALL"]},
              "appArmorProfile":{"type":"RuntimeDefault"}}}],
            "initContainers":[{"name":"i","image":"busybox"}],
            "ephemeralContainers":null}}"#
            .replace('\n', "")
            .replace("  ", "");
        let deployment = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"labels":{"app":"d"}},
            "spec":{"replicas":2,"type":"x","expirationSeconds":3600,"jobTemplate":[null],
            "template":{"metadata":{"annotations":{"container.seccomp.security.alpha.kubernetes.io/c":"unconfined"}},
            "spec":{"containers":[{"image":"y\u0041","securityContext":{"privileged":true}}]}}},
            "status":{"conditions":[{"type":"Available","status":"True"}]}}"#
            .replace('\n', "")
            .replace("  ", "");
        assert!(reads_as_serde_json_does("pods", &pod));
        assert!(reads_as_serde_json_does("deployments", &deployment));
        let facts = read(Carrier::Pod, &pod).expect("read").facts();
        assert_eq!(facts.labels.as_deref(), Some(r#"{"a":"1","b":"3"}"#));
        assert_eq!(facts.apparmor_unconfined, Some(true));
        assert_eq!(facts.seccomp_unconfined, Some(true));
        assert_eq!(facts.run_as_root, Some(true));
        assert_eq!(
            facts.host_paths,
            Some(vec!["/var/run/docker.sock".to_string()])
        );
        let facts = read(Carrier::Workload, &deployment).expect("read").facts();
        assert_eq!(facts.images, Some(vec!["yA".to_string()]));
        assert_eq!(facts.privileged, Some(true));
        assert_eq!(facts.seccomp_unconfined, Some(true));

        // Shapes it gives up on (serde_json then decides); none may be accepted wrongly.
        for (from, to) in [
            (r#""hostPID":true"#, r#""hostPID":true,"hostPID":false"#),
            (r#""hostPID":true"#, r#""hostPID":"true""#),
            (r#""runAsUser":1000"#, r#""runAsUser":-0"#),
            (r#""runAsUser":1000"#, r#""runAsUser":1000.0"#),
            (r#""runAsUser":1000"#, r#""runAsUser":-5"#),
            (r#""runAsUser":1000"#, r#""runAsUser":99999999999999999999"#),
            (r#""a":"1""#, r#""a":1"#),
            (r#""initContainers":[{"#, r#""initContainers":[null,{"#),
            (r#""initContainers":[{"#, r#""initContainers":[["#),
            (r#""kind":"Pod""#, r#""kind":"Pod","rules":null"#),
            (r#""kind":"Pod""#, r#""kind":"Pod","type":7"#),
            (
                r#""kind":"Pod""#,
                r#""kind":"Pod","template":1,"template":2"#,
            ),
            (r#""kind":"Pod""#, r#""ki\u006ed":"Pod","kind":"Pod""#),
            (r#""spec":{"#, "\"spec\":\n{"),
        ] {
            let damaged = pod.replacen(from, to, 1);
            assert_ne!(damaged, pod, "{from}");
            assert!(!reads_as_serde_json_does("pods", &damaged), "{damaged}");
        }
        // Spaces are read (the apiserver writes none, but they are JSON).
        assert!(reads_as_serde_json_does(
            "pods",
            &pod.replacen(r#""spec":{"#, r#""spec" : { "#, 1)
        ));
        for text in ["null", "[]", "{}", r#"{"spec":null}"#, "{} {}"] {
            reads_as_serde_json_does("pods", text);
            reads_as_serde_json_does("deployments", text);
        }
    }

    #[test]
    fn the_reader_never_accepts_a_damaged_object_serde_json_rejects() {
        let objects = fixture_objects();
        let (mut checked, mut accepted) = (0, 0);
        for (resource, object) in objects.iter().step_by(9).take(12) {
            for cut in (0..object.len()).filter(|c| object.is_char_boundary(*c)) {
                assert!(!reads_as_serde_json_does(resource, &object[..cut]));
                checked += 1;
            }
            for (i, (at, _)) in object.char_indices().enumerate() {
                let replacements = [
                    '"', '\\', '{', '}', '[', ']', ',', ':', '0', '-', 'n', ' ', 't', '.',
                ];
                for b in [replacements[i % 14], replacements[(i + 7) % 14]] {
                    let mut damaged = object.clone();
                    let len = damaged[at..].chars().next().map_or(0, char::len_utf8);
                    damaged.replace_range(at..at + len, &b.to_string());
                    accepted += usize::from(reads_as_serde_json_does(resource, &damaged));
                    checked += 1;
                }
            }
        }
        assert!(checked > 20_000, "{checked}");
        // Damage inside strings and skipped members still reads (and agreed).
        assert!(accepted > checked / 10, "{accepted} of {checked}");
    }
}
