//! Audit events as data lakes, log pipelines, exporters and hand-written test suites leave them:
//! timestamps rewritten or missing, members dropped or lowercased, objects stored as strings,
//! wrappers of collectors around them. Each shape decodes into the rows its content gives, and
//! nothing is refused that has an event in it.

use std::path::PathBuf;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, TimestampMicrosecondType};
use audithound_ingest::input::InputSource;
use audithound_ingest::reader::{DecodedBatch, ReadOptions, decode_audit_bytes, read_audit_inputs};
use chrono::DateTime;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/audit")
        .join(rel)
}

/// Every audit batch and the counts of reading the fixture as a scan does.
fn read(rel: &str) -> (Vec<RecordBatch>, audithound_ingest::ReadStats) {
    let mut batches = Vec::new();
    let stats = read_audit_inputs(
        &[InputSource::File(fixture(rel))],
        &ReadOptions::default(),
        &|_| {},
        |item| {
            match item {
                DecodedBatch::Batch(_, b) => batches.push(b),
                DecodedBatch::Bad(bad) => panic!("refused: {bad:?}"),
                DecodedBatch::ScreenedOut { .. } => {}
            }
            Ok::<(), ()>(())
        },
    )
    .unwrap();
    (batches, stats)
}

fn text(batches: &[RecordBatch], name: &str) -> Vec<Option<String>> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b.column_by_name(name).unwrap().as_string::<i32>().clone();
            (0..a.len()).map(move |i| (!a.is_null(i)).then(|| a.value(i).to_string()))
        })
        .collect()
}

fn times(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b
                .column_by_name("ts")
                .unwrap()
                .as_primitive::<TimestampMicrosecondType>()
                .clone();
            (0..a.len()).map(move |i| a.value(i))
        })
        .collect()
}

fn flags(batches: &[RecordBatch], name: &str) -> Vec<Option<bool>> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b.column_by_name(name).unwrap().as_boolean().clone();
            (0..a.len()).map(move |i| (!a.is_null(i)).then(|| a.value(i)))
        })
        .collect()
}

fn codes(batches: &[RecordBatch]) -> Vec<Option<i32>> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b
                .column_by_name("response_code")
                .unwrap()
                .as_primitive::<Int32Type>()
                .clone();
            (0..a.len()).map(move |i| (!a.is_null(i)).then(|| a.value(i)))
        })
        .collect()
}

fn micros(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_micros()
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn is_uuid_shaped(id: &str) -> bool {
    let groups: Vec<usize> = id.split('-').map(str::len).collect();
    groups == [8, 4, 4, 4, 12] && id.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

#[test]
fn data_lake_rows_with_rewritten_timestamps_and_source_labels_decode() {
    let (batches, stats) = read("lake/panther-eks.jsonl");
    assert_eq!((stats.events, stats.malformed), (5, 0), "{stats:?}");
    // The skeletal row has no time at all; the binding only the data lake's.
    assert_eq!(stats.untimed, 2);
    let ts = times(&batches);
    assert_eq!(ts[0], micros("2022-11-29T00:09:04.394Z"), "stageTimestamp");
    assert_eq!(ts[1], micros("2022-11-29T00:09:05.000981Z"), "nine digits");
    assert_eq!(
        ts[2], ts[1],
        "a row without any time: the time of the one before"
    );
    assert_eq!(ts[3], micros("2022-11-29T00:12:41.5Z"), "p_event_time");
    assert_eq!(ts[4], micros("2022-11-29T00:13:00.31Z"), "lowercased keys");
    let cluster = text(&batches, "cluster");
    assert_eq!(cluster[0].as_deref(), Some("prod-eks-logs"));
    assert_eq!(cluster[2], None, "no label, no configured cluster");
    let ids = text(&batches, "audit_id");
    assert_eq!(
        ids[0].as_deref(),
        Some("0b7e3a52-41c9-4e35-9d0f-5f3c8a1d2e61")
    );
    for derived in [&ids[2], &ids[3]] {
        assert!(
            derived.as_deref().is_some_and(is_uuid_shaped),
            "{derived:?}"
        );
    }
    let (again, _) = read("lake/panther-eks.jsonl");
    assert_eq!(text(&again, "audit_id"), ids, "derived ids are stable");
    assert_eq!(flags(&batches, "privileged")[0], Some(true));
    assert_eq!(flags(&batches, "privileged")[2], Some(true));
    assert_eq!(codes(&batches)[2], Some(403));
    // A data lake's lowercased column names.
    assert_eq!(
        text(&batches, "user_name")[4].as_deref(),
        Some("kubernetes-admin")
    );
    assert_eq!(text(&batches, "subresource")[4].as_deref(), Some("exec"));
    assert_eq!(text(&batches, "exec_command")[4].as_deref(), Some("sh"));
    assert_eq!(
        text(&batches, "source_ip")[4].as_deref(),
        Some("198.51.100.23")
    );
    assert_eq!(
        text(&batches, "role_ref_name")[3].as_deref(),
        Some("cluster-admin")
    );
}

#[test]
fn gke_entries_trimmed_by_exporters_decode() {
    let (batches, stats) = read("lake/panther-gke.jsonl");
    assert_eq!((stats.events, stats.malformed), (4, 0), "{stats:?}");
    assert_eq!(stats.untimed, 1, "the entry with only method and resource");
    let ts = times(&batches);
    assert_eq!(ts[0], micros("2024-02-16T11:48:22.742154Z"));
    assert_eq!(
        ts[1],
        micros("2024-02-16T11:49:02.117263Z"),
        "receiveTimestamp"
    );
    assert_eq!(ts[2], ts[1], "no time: the time of the entry before");
    assert_eq!(ts[3], micros("2024-02-16T11:50:10.5Z"));
    let cluster = text(&batches, "cluster");
    assert_eq!(
        cluster[0].as_deref(),
        Some("gke-prod-1"),
        "the entry's own cluster before the data lake's label"
    );
    let ips = text(&batches, "source_ip");
    assert_eq!(ips[0].as_deref(), Some("203.0.113.40"), "callerIP");
    assert_eq!(ips[1].as_deref(), Some("203.0.113.40"), "callerIp");
    assert_eq!(flags(&batches, "host_pid")[0], Some(true));
    assert_eq!(
        text(&batches, "exec_command")[2].as_deref(),
        Some("cat /var/run/secrets/kubernetes.io/serviceaccount/token"),
        "the command of the request object"
    );
    assert_eq!(
        text(&batches, "name")[2].as_deref(),
        Some("web-6d4cf56db6-7xk2p")
    );
    assert!(
        text(&batches, "audit_id")[2]
            .as_deref()
            .is_some_and(is_uuid_shaped)
    );
    let users = text(&batches, "user_name");
    assert_eq!(users[2], None);
    assert_eq!(
        users[3].as_deref(),
        Some("system:anonymous"),
        "authoritySelector"
    );
    let decision = text(&batches, "decision");
    assert_eq!(
        decision[1].as_deref(),
        Some("allow"),
        "authorizationInfo granted"
    );
    assert_eq!(decision[3].as_deref(), Some("forbid"), "not granted");
    // An entry that tells nothing of the outcome (no status, no authorization) has none.
    assert_eq!(codes(&batches), [Some(200), Some(200), None, Some(403)]);
}

#[test]
fn hand_written_events_missing_members_are_judged() {
    let (batches, stats) = read("partial/hand-written.jsonl");
    assert_eq!((stats.events, stats.malformed), (5, 0), "{stats:?}");
    assert_eq!(stats.untimed, 1);
    let ts = times(&batches);
    assert_eq!(ts[0], micros("2024-05-01T10:00:00Z"));
    assert_eq!(ts[1], ts[0], "no timestamp: the time of the event before");
    assert_eq!(ts[4], micros("2024-05-01T10:00:04.25Z"), "epoch seconds");
    assert!(
        text(&batches, "audit_id")[0]
            .as_deref()
            .is_some_and(is_uuid_shaped)
    );
    assert_eq!(text(&batches, "audit_id")[1].as_deref(), Some("hand-2"));
    assert_eq!(text(&batches, "stage")[0], None);
    assert_eq!(flags(&batches, "privileged")[0], Some(true));
    assert_eq!(text(&batches, "exec_command")[1].as_deref(), Some("id"));
    // A request object stored as a JSON string is the object.
    assert_eq!(flags(&batches, "host_network")[2], Some(true));
    let request = text(&batches, "request_object")[2].clone().unwrap();
    assert!(request.starts_with("{\"kind\":\"Pod\""), "{request}");
    // No kind, auditID or verb: its objectRef and user make it an event.
    assert_eq!(text(&batches, "resource")[3].as_deref(), Some("secrets"));
    assert_eq!(text(&batches, "user_name")[3].as_deref(), Some("bob"));
}

#[test]
fn events_inside_collectors_wrappers_decode() {
    let (batches, stats) = read("pipelines/collectors.jsonl");
    assert_eq!((stats.events, stats.malformed), (5, 0), "{stats:?}");
    assert_eq!(
        stats.untimed, 2,
        "one in a container log line, one in a HEC event"
    );
    assert_eq!(
        text(&batches, "audit_id"),
        ["fb-1", "docker-1", "docker-2", "hec-1", "ecs-1"].map(|s| Some(s.to_string()))
    );
    let ts = times(&batches);
    assert_eq!(ts[0], micros("2024-05-01T10:00:05.001Z"));
    assert_eq!(ts[1], micros("2024-05-01T10:00:06.2Z"));
    assert_eq!(
        ts[2],
        micros("2024-05-01T10:00:07.123456Z"),
        "the runtime's time"
    );
    assert_eq!(
        ts[3],
        micros("2024-05-01T10:00:08Z"),
        "the collector's time"
    );
    assert_eq!(ts[4], micros("2024-05-01T10:00:08.9Z"));
    assert_eq!(
        text(&batches, "namespace")[4].as_deref(),
        Some("kube-public"),
        "Elastic's kubernetes.audit"
    );
}

#[test]
fn events_sent_through_syslog_decode() {
    let (batches, stats) = read("pipelines/syslog.log");
    assert_eq!((stats.events, stats.malformed), (2, 0), "{stats:?}");
    assert_eq!(
        text(&batches, "user_name"),
        [
            Some("system:apiserver".to_string()),
            Some("mallory".to_string())
        ]
    );
}

#[test]
fn refused_records_are_counted_by_reason() {
    let bytes = std::fs::read(fixture("native/malformed-mixed.log")).unwrap();
    let (_, bad, stats) = decode_audit_bytes(&bytes, &ReadOptions::default());
    assert_eq!(stats.malformed as usize, bad.len());
    assert_eq!(stats.refused.values().sum::<u64>(), stats.malformed);
    // Two records with a number for a text member share a reason.
    assert_eq!(
        stats
            .refused
            .get("malformed JSON: invalid type: integer, expected a string"),
        Some(&2),
        "{:?}",
        stats.refused
    );
    assert_eq!(
        stats
            .refused
            .get("not a Kubernetes audit event: kind `ConfigMap` is not Event or EventList"),
        Some(&1),
        "{:?}",
        stats.refused
    );
}

#[test]
fn an_event_with_no_time_before_or_around_it_is_judged_when_read() {
    let before = now_micros();
    let lines = br#"{"verb":"delete","user":{"username":"eve"},"objectRef":{"resource":"events","namespace":"kube-system"}}
{"verb":"get","user":{"username":"eve"},"objectRef":{"resource":"pods"},"stageTimestamp":"2024-05-01T10:00:00Z"}"#;
    let (batches, bad, stats) = decode_audit_bytes(lines, &ReadOptions::default());
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!((stats.events, stats.untimed), (2, 1));
    let ts = times(&batches);
    assert!(ts[0] >= before && ts[0] <= now_micros(), "{}", ts[0]);
    assert_eq!(ts[1], micros("2024-05-01T10:00:00Z"));
}

#[test]
fn a_crictl_log_line_holding_an_event_decodes() {
    let line = br#"2024-05-01T10:00:00.123456789Z stdout F {"kind":"Event","auditID":"cri-1","verb":"get","objectRef":{"resource":"pods"}}"#;
    let (batches, _, stats) = decode_audit_bytes(line, &ReadOptions::default());
    assert_eq!((stats.events, stats.malformed, stats.untimed), (1, 0, 1));
    assert_eq!(times(&batches), [micros("2024-05-01T10:00:00.123456Z")]);
}
