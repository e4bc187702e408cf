//! End-to-end tests of the `audithound` binary, run as a user would run it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_audithound"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("audithound runs")
}

fn findings(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"))
        })
        .collect()
}

/// Generates traffic with the fixture generator (python3) into `dir`.
fn generate(dir: &Path, events: usize, attack: bool) -> (PathBuf, Vec<String>) {
    let log = dir.join("audit.log");
    let expected = dir.join("expected.json");
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("fixtures/generator/generate_traffic.py"))
        .args(["--events", &events.to_string(), "--output"])
        .arg(&log)
        .arg("--expected")
        .arg(&expected);
    if attack {
        cmd.arg("--attack");
    }
    let status = cmd.status().expect("python3 runs the traffic generator");
    assert!(status.success());
    let expected: Vec<String> = std::fs::read_to_string(expected)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    (log, expected)
}

#[test]
fn scan_of_the_bundled_fixtures_runs_and_prints_one_json_finding_a_line() {
    let out = run(&["scan", root().join("fixtures").to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("events from"), "{stderr}");
    assert!(stderr.contains("5 malformed"), "{stderr}");
    assert!(
        stderr.contains("malformed-mixed.log:2"),
        "bad records are reported with file and line: {stderr}"
    );
    assert!(
        stderr.contains(
            "refused 2: malformed JSON: invalid type: integer, expected a string"
        ) && stderr.contains(
            "refused 1: not a Kubernetes audit event: kind `ConfigMap` is not Event or EventList"
        ),
        "refusals are counted by reason: {stderr}"
    );
    assert!(
        stderr.contains("had no timestamp of their own"),
        "events judged without a time of their own are counted: {stderr}"
    );
    assert!(
        stderr.contains("README.md"),
        "files that are not JSON logs are named as skipped: {stderr}"
    );
    let expected =
        std::fs::read_to_string(root().join("fixtures/attack/expected-rules.txt")).unwrap();
    let rules: std::collections::BTreeSet<String> = findings(&out)
        .iter()
        .map(|f| f["rule_id"].as_str().unwrap().to_string())
        .collect();
    for rule in expected.lines() {
        assert!(
            rules.contains(rule),
            "bundled intrusion step `{rule}` not found"
        );
    }
    for f in findings(&out) {
        for key in [
            "id",
            "rule_id",
            "title",
            "severity",
            "techniques",
            "time",
            "user",
            "source_ip",
            "namespace",
            "resource",
            "name",
            "verb",
            "event_ids",
            "count",
            "first_seen",
            "last_seen",
            "explanation",
        ] {
            assert!(f.get(key).is_some(), "finding lacks `{key}`: {f}");
        }
        assert!(
            f["techniques"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["id"].is_string() && t["framework"].is_string())
        );
        assert!(f["time"].as_str().unwrap().ends_with('Z'));
    }
}

#[test]
fn scan_finds_every_step_of_the_generated_intrusion_and_nothing_serious_in_routine_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let (log, expected) = generate(dir.path(), 20_000, true);
    let out = run(&["scan", log.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found = findings(&out);
    let rules: std::collections::BTreeSet<String> = found
        .iter()
        .map(|f| f["rule_id"].as_str().unwrap().to_string())
        .collect();
    for rule in &expected {
        assert!(
            rules.contains(rule),
            "the intrusion step `{rule}` was not found; found {rules:?}"
        );
    }
    let exec: Vec<_> = found
        .iter()
        .filter(|f| f["rule_id"] == "pod-exec")
        .collect();
    assert_eq!(exec.len(), 1, "three stages of one exec make one finding");
    assert_eq!(exec[0]["count"], 1);

    let quiet = tempfile::tempdir().unwrap();
    let (log, _) = generate(quiet.path(), 20_000, false);
    let out = run(&["scan", "--min-severity", "medium", log.to_str().unwrap()]);
    assert!(out.status.success());
    let noisy = findings(&out);
    assert!(
        noisy.is_empty(),
        "routine traffic produced findings at medium or above: {noisy:#?}"
    );
}

/// The counts of a scan's summary (events, malformed, skipped), without its timing.
fn summary_counts(out: &Output) -> Vec<String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains(" events from "))
        .unwrap_or_else(|| panic!("no summary: {stderr}"));
    line.split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .enumerate()
        // events, inputs, MB (two parts), seconds (two parts), rules, malformed, skipped
        .filter(|(i, _)| ![2, 3, 4, 5].contains(i))
        .map(|(_, w)| w.to_string())
        .collect()
}

/// A screened scan also hands the rules its small batches joined (30,000 events make several
/// chunks), where `--no-screen` hands them one batch per chunk.
#[test]
fn leaving_out_the_events_no_rule_could_read_changes_no_finding_and_no_count() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = generate(dir.path(), 30_000, true);
    let fixtures = root().join("fixtures");
    for input in [log.as_path(), fixtures.as_path()] {
        let input = input.to_str().unwrap();
        let screened = run(&["scan", "--format", "ndjson", input]);
        let every = run(&["scan", "--no-screen", "--format", "ndjson", input]);
        assert!(screened.status.success() && every.status.success());
        assert!(!findings(&screened).is_empty(), "findings in {input}");
        assert_eq!(
            String::from_utf8_lossy(&screened.stdout),
            String::from_utf8_lossy(&every.stdout),
            "the same findings in {input}"
        );
        assert_eq!(summary_counts(&screened), summary_counts(&every));
    }
}

#[test]
fn secrets_never_reach_the_output() {
    let event = r#"{"kind":"Event","level":"RequestResponse","auditID":"s1","stage":"ResponseComplete","verb":"create","user":{"username":"mallory"},"sourceIPs":["198.51.100.7"],"userAgent":"curl/8.5.0","objectRef":{"resource":"secrets","namespace":"kube-system","name":"stolen"},"responseStatus":{"code":201},"requestObject":{"kind":"Secret","data":{"password":"aHVudGVyMg=="}},"responseObject":{"kind":"Secret","data":{"password":"aHVudGVyMg=="}},"stageTimestamp":"2024-05-01T10:00:00Z"}
{"kind":"Event","level":"RequestResponse","auditID":"t1","stage":"ResponseComplete","verb":"create","user":{"username":"mallory"},"sourceIPs":["198.51.100.7"],"objectRef":{"resource":"serviceaccounts","namespace":"kube-system","name":"admin","subresource":"token"},"responseStatus":{"code":201},"responseObject":{"kind":"TokenRequest","status":{"token":"eyJhbGciOiJSUzI1NiJ9.very-secret"}},"stageTimestamp":"2024-05-01T10:00:01Z"}
"#;
    let mut child = bin()
        .args(["scan", "--format", "json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(event.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("token-request-non-kubelet"), "{all}");
    assert!(
        !all.contains("aHVudGVyMg") && !all.contains("very-secret"),
        "{all}"
    );
}

#[test]
fn scan_reads_gzip_and_directories_and_names_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(
        &std::fs::read(root().join("fixtures/audit/eks/cloudwatch-subscription.jsonl")).unwrap(),
    )
    .unwrap();
    gz.finish().unwrap();
    let out = run(&[
        "scan",
        "--cluster",
        "ignored-when-the-wrapper-names-it",
        dir.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found = findings(&out);
    assert!(!found.is_empty());
    assert!(
        found.iter().all(|f| f["cluster"] == "prod-eks-1"),
        "{found:#?}"
    );
}

#[test]
fn scan_of_a_missing_file_fails_with_a_clear_message() {
    let out = run(&["scan", "/no/such/audit.log"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/no/such/audit.log"), "{stderr}");
}

#[test]
fn a_broken_user_rule_stops_the_scan_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "id: bad\ntitle: t\nseverity: high\ntechniques: [T1609]\nsql: |\n  SELECT ts FROM audit WHERE no_such_column = 1\n",
    )
    .unwrap();
    let out = run(&[
        "scan",
        "--rules",
        dir.path().to_str().unwrap(),
        root()
            .join("fixtures/audit/native/v1beta1.log")
            .to_str()
            .unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.yaml:5") && stderr.contains("no_such_column"),
        "{stderr}"
    );

    let out = run(&["rules", "validate", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("bad.yaml:5"));
}

#[test]
fn a_rule_file_that_does_not_parse_stops_the_scan_before_any_input_arrives() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.yaml"), "id: bad\ntitle: [unclosed\n").unwrap();
    // Standard input stays open and sends nothing, like a pipe from a quiet source.
    let mut child = bin()
        .args(["scan", "--rules", dir.path().to_str().unwrap(), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("audithound runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waits") {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    if status.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        status.is_some_and(|s| !s.success()),
        "the scan waited for input instead of failing: {stderr}"
    );
    assert!(stderr.contains("bad.yaml"), "{stderr}");
}

/// Writes a low-severity rule file `<id>.yaml` into `dir`.
fn write_rule(dir: &Path, id: &str, title: &str, technique: &str, sql: &str) {
    std::fs::write(
        dir.join(format!("{id}.yaml")),
        format!(
            "id: {id}\ntitle: {title}\nseverity: low\ntechniques: [{technique}]\nsql: |\n  {sql}\n"
        ),
    )
    .unwrap();
}

#[test]
fn user_rules_extend_and_override_the_pack_and_min_severity_filters() {
    let dir = tempfile::tempdir().unwrap();
    write_rule(
        dir.path(),
        "coredns-config-changed",
        "CoreDNS touched (site rule)",
        "MS-TA9035",
        "SELECT ts, audit_id, user_name, namespace, name FROM audit WHERE resource = 'configmaps' AND name = 'coredns'",
    );
    let log = root().join("fixtures/audit/native/v1beta1.log");
    let out = run(&[
        "scan",
        "--rules",
        dir.path().to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    let found = findings(&out);
    let f = found
        .iter()
        .find(|f| f["rule_id"] == "coredns-config-changed")
        .expect("override ran");
    assert_eq!(f["title"], "CoreDNS touched (site rule)");
    assert_eq!(f["severity"], "low");
    let out = run(&[
        "scan",
        "--min-severity",
        "medium",
        "--rules",
        dir.path().to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    assert!(
        findings(&out)
            .iter()
            .all(|f| f["rule_id"] != "coredns-config-changed")
    );
}

#[test]
fn user_rules_see_the_columns_the_built_in_pack_does_not_read() {
    // The scan decodes only the columns that some rule names: a user rule that names one that
    // no built-in rule reads, or reads them all with `*`, still gets its values.
    let dir = tempfile::tempdir().unwrap();
    write_rule(
        dir.path(),
        "site-exec-reason",
        "Exec and its RBAC reason",
        "T1609",
        "SELECT ts, audit_id, user_name, reason FROM audit WHERE subresource = 'exec' AND reason IS NOT NULL",
    );
    write_rule(
        dir.path(),
        "site-exec-star",
        "Exec, every column",
        "T1609",
        "SELECT * FROM audit WHERE subresource = 'exec' AND stage = 'ResponseComplete'",
    );
    let log = root().join("fixtures/attack/intrusion.log");
    let out = run(&[
        "scan",
        "--rules",
        dir.path().to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found = findings(&out);
    let reason = found
        .iter()
        .find(|f| f["rule_id"] == "site-exec-reason")
        .expect("the rule that names `reason` finds the exec");
    assert!(
        reason["evidence"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("RBAC: allowed by")),
        "{reason}"
    );
    let star = found
        .iter()
        .find(|f| f["rule_id"] == "site-exec-star")
        .expect("the `SELECT *` rule finds the exec");
    for column in ["annotations", "reason", "user_agent", "request_uri"] {
        assert!(
            star["evidence"][column]
                .as_str()
                .is_some_and(|v| !v.is_empty()),
            "{column}: {star}"
        );
    }
}

#[test]
fn the_built_in_pack_passes_its_own_tests() {
    let out = run(&["rules", "test"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(" 0 failed, 0 rule(s) without tests"),
        "{stdout}"
    );
}

#[test]
fn rules_list_names_every_rule_with_its_techniques() {
    let out = run(&["rules", "list", "--format", "json"]);
    assert!(out.status.success());
    let rules: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(rules.len() >= 50);
    assert!(
        rules
            .iter()
            .all(|r| !r["techniques"].as_array().unwrap().is_empty())
    );
}

#[test]
fn config_file_sets_parameters_extends_exceptions_and_disables_rules() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    std::fs::write(
        &log,
        r#"{"kind":"Event","auditID":"c1","stage":"ResponseComplete","verb":"create","user":{"username":"alice"},"sourceIPs":["10.0.0.9"],"objectRef":{"resource":"pods","namespace":"web","name":"tool"},"responseStatus":{"code":201},"requestObject":{"kind":"Pod","spec":{"containers":[{"name":"c","image":"docker.io/evil/miner:1.0"}]}},"stageTimestamp":"2024-05-01T10:00:00Z"}
{"kind":"Event","auditID":"c2","stage":"ResponseComplete","verb":"create","user":{"username":"oncall@example.com"},"sourceIPs":["10.0.0.9"],"objectRef":{"resource":"pods","namespace":"web","name":"tool","subresource":"exec"},"responseStatus":{"code":101},"stageTimestamp":"2024-05-01T10:01:00Z"}
"#,
    )
    .unwrap();
    let rules_of = |config: Option<&str>| -> Vec<String> {
        let mut args = vec!["scan".to_string(), log.to_str().unwrap().to_string()];
        if let Some(text) = config {
            let path = dir.path().join("audithound.toml");
            std::fs::write(&path, text).unwrap();
            args.extend(["--config".to_string(), path.to_str().unwrap().to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        findings(&out)
            .iter()
            .map(|f| f["rule_id"].as_str().unwrap().to_string())
            .collect()
    };
    let default = rules_of(None);
    assert!(default.contains(&"pod-exec".to_string()));
    assert!(
        !default.contains(&"image-registry-not-allowed".to_string()),
        "quiet while unconfigured"
    );

    let configured = rules_of(Some(
        "[rules]\ndisabled = [\"image-unpinned\"]\n[rules.params]\nallowed_registries = [\"registry.corp.example\"]\n[rules.exceptions.pod-exec]\nallowed_users = [\"oncall@*\"]\n",
    ));
    assert!(
        configured.contains(&"image-registry-not-allowed".to_string()),
        "{configured:?}"
    );
    assert!(
        !configured.contains(&"pod-exec".to_string()),
        "the exception covers the on-call engineer"
    );

    let out = run(&["scan", "--config", "/no/such.toml", log.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such.toml"));
}

/// A node agent of the user's own, which the built-in list of the cluster's components does not
/// know: reported until the config adds it to the shared list, which `rules lists` shows.
#[test]
fn a_config_adds_the_clusters_own_components_for_every_rule_and_rules_lists_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    std::fs::write(
        &log,
        r#"{"kind":"Event","auditID":"n1","stage":"ResponseComplete","verb":"create","user":{"username":"system:serviceaccount:kube-system:daemon-set-controller"},"objectRef":{"resource":"pods","namespace":"monitoring"},"responseStatus":{"code":201},"requestObject":{"kind":"Pod","metadata":{"generateName":"agent-","ownerReferences":[{"kind":"DaemonSet","name":"agent","controller":true}]},"spec":{"hostPID":true,"containers":[{"name":"a","image":"quay.io/acme/node-agent:2.1","securityContext":{"privileged":true}}]}},"stageTimestamp":"2024-05-01T10:00:00Z"}
"#,
    )
    .unwrap();
    let config = dir.path().join("audithound.toml");
    std::fs::write(
        &config,
        "[rules.lists]\ncluster_components = [\"monitoring:quay.io/acme/node-agent\"]\n",
    )
    .unwrap();
    let rules_of = |args: &[&str]| -> Vec<String> {
        let out = run(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        findings(&out)
            .iter()
            .map(|f| f["rule_id"].as_str().unwrap().to_string())
            .collect()
    };
    let reported = rules_of(&["scan", log.to_str().unwrap()]);
    assert!(
        reported.contains(&"privileged-container".to_string())
            && reported.contains(&"host-namespaces".to_string()),
        "{reported:?}"
    );
    let excepted = rules_of(&[
        "scan",
        "--config",
        config.to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    assert!(excepted.is_empty(), "{excepted:?}");

    let listed = run(&["rules", "lists", "--config", config.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success());
    assert!(
        text.contains("  kube-system:registry.k8s.io/kube-proxy\n"),
        "{text}"
    );
    assert!(
        text.contains("  monitoring:quay.io/acme/node-agent  (config)"),
        "{text}"
    );
    assert!(
        text.contains("used by ") && text.contains("privileged-container"),
        "{text}"
    );

    std::fs::write(&config, "[rules.lists]\nno_such_list = [\"x\"]\n").unwrap();
    let out = run(&[
        "scan",
        "--config",
        config.to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no_such_list"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sigma_rules_import_to_files_that_validate_and_run_directly_from_rules_dirs() {
    let out_dir = tempfile::tempdir().unwrap();
    let sigma = root().join("fixtures/sigma");
    let out = bin()
        .args([
            "rules",
            "import-sigma",
            sigma.to_str().unwrap(),
            "--out",
            out_dir.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("16 rule(s) translated, 0 refused"),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning:") && stderr.contains("`hostPath`"),
        "defects are reported: {stderr}"
    );
    assert_eq!(std::fs::read_dir(out_dir.path()).unwrap().count(), 16);
    let validated = run(&["rules", "validate", out_dir.path().to_str().unwrap()]);
    assert!(
        validated.status.success(),
        "{}",
        String::from_utf8_lossy(&validated.stdout)
    );

    // The Sigma files themselves work as a rule directory.
    let log = root().join("fixtures/audit/eks/cloudwatch-subscription.jsonl");
    let out = run(&[
        "scan",
        "--rules",
        sigma.to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rules: Vec<String> = findings(&out)
        .iter()
        .map(|f| f["rule_id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        rules.contains(&"sigma-kubernetes-audit-exec-into-container".to_string()),
        "{rules:?}"
    );
    assert!(
        rules.contains(&"sigma-kubernetes-audit-secrets-enumeration".to_string()),
        "{rules:?}"
    );

    let bad = tempfile::tempdir().unwrap();
    std::fs::write(bad.path().join("kw.yml"), "title: kw\nlogsource:\n  product: kubernetes\n  service: audit\ndetection:\n  keywords:\n    - evil\n  condition: keywords\n").unwrap();
    let out = run(&["rules", "import-sigma", bad.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("kw.yml") && stderr.contains("keyword searches"),
        "{stderr}"
    );
}

#[test]
fn findings_name_the_cluster_of_managed_cloud_records() {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("all.yaml"),
        "id: every-event\ntitle: every event\nseverity: info\nsql: SELECT ts, audit_id, cluster FROM audit\n",
    )
    .unwrap();
    for (fixture, cluster) in [
        ("gke/khi-cloud-audit.jsonl", "sample-cluster"),
        ("aks/event-hub-batch.json", "KUBETEST"),
        ("eks/cloudwatch-subscription.jsonl", "prod-eks-1"),
    ] {
        let out = run(&[
            "scan",
            "--rules",
            rules.path().to_str().unwrap(),
            root()
                .join("fixtures/audit")
                .join(fixture)
                .to_str()
                .unwrap(),
        ]);
        assert!(out.status.success());
        let found: Vec<_> = findings(&out)
            .into_iter()
            .filter(|f| f["rule_id"] == "every-event")
            .collect();
        assert!(!found.is_empty(), "{fixture}");
        assert!(
            found.iter().all(|f| f["cluster"] == cluster),
            "{fixture}: {found:#?}"
        );
    }
    // The same events replayed as two clusters never merge; replayed twice as one, never double.
    let log = root().join("fixtures/audit/native/v1beta1.log");
    let ids = |cluster: &str| -> Vec<String> {
        let out = run(&[
            "scan",
            "--cluster",
            cluster,
            "--rules",
            rules.path().to_str().unwrap(),
            log.to_str().unwrap(),
        ]);
        findings(&out)
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_string())
            .collect()
    };
    let a = ids("east");
    assert_eq!(a, ids("east"));
    assert!(a.iter().all(|id| !ids("west").contains(id)));
}

#[test]
fn a_query_over_raw_logs_gets_the_columns_it_names_and_all_of_them_with_a_star() {
    let log = root().join("fixtures/attack/intrusion.log");
    let query = |sql: &str| -> Vec<serde_json::Value> {
        let out = run(&[
            "query",
            "--format",
            "json",
            sql,
            "--input",
            log.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let named = query(
        "SELECT user_agent, reason FROM audit WHERE subresource = 'exec' AND stage = 'ResponseComplete' ORDER BY ts LIMIT 1",
    );
    assert_eq!(named.len(), 1);
    assert!(
        named[0]["user_agent"]
            .as_str()
            .is_some_and(|v| v.starts_with("kubectl/")),
        "{named:?}"
    );
    assert!(
        named[0]["reason"]
            .as_str()
            .is_some_and(|v| v.starts_with("RBAC")),
        "{named:?}"
    );
    let all = query("SELECT * FROM audit WHERE subresource = 'exec' ORDER BY ts LIMIT 1");
    assert!(
        all[0]["annotations"]
            .as_str()
            .is_some_and(|v| v.contains("decision")),
        "{all:?}"
    );
    let counted = query("SELECT count(*) AS n, count(reason) AS with_reason FROM audit");
    assert!(
        counted[0]["with_reason"].as_i64() > Some(1000),
        "{counted:?}"
    );
}

#[test]
fn the_dead_letter_file_keeps_each_refused_record_with_where_what_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let letters = dir.path().join("dead.ndjson");
    let log = root().join("fixtures/audit/native/malformed-mixed.log");
    let out = run(&[
        "scan",
        "--dead-letter",
        letters.to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&letters).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines: Vec<u64> = rows.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [2, 4, 5, 7, 8], "{text}");
    let source = std::fs::read_to_string(&log).unwrap();
    let source_lines: Vec<&str> = source.lines().collect();
    for row in &rows {
        assert!(
            row["source"]
                .as_str()
                .unwrap()
                .ends_with("malformed-mixed.log")
        );
        let line = source_lines[row["line"].as_u64().unwrap() as usize - 1];
        assert!(line.starts_with(row["excerpt"].as_str().unwrap()), "{row}");
        let offset = row["offset"].as_u64().unwrap() as usize;
        assert!(source[offset..].starts_with(line), "{row}");
        assert!(!row["error"].as_str().unwrap().is_empty(), "{row}");
    }
    assert_eq!(
        rows[1]["reason"],
        "malformed JSON: invalid type: integer, expected a string"
    );
    assert_eq!(
        rows[1]["reason"], rows[3]["reason"],
        "one reason, two records"
    );
    assert_eq!(
        rows[4]["reason"],
        "not a Kubernetes audit event: kind `ConfigMap` is not Event or EventList"
    );
}
