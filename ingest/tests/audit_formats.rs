//! Every supported audit format, decoded from fixtures (real records from public projects where
//! they exist, records built from the formats' specifications otherwise).

use std::path::PathBuf;

use arrow::array::{Array, AsArray, RecordBatch};
use audithound_ingest::input::{InputSource, expand_paths};
use audithound_ingest::reader::{DecodedBatch, ReadOptions, decode_audit_bytes, read_audit_inputs};
use audithound_ingest::{DecodeError, DecodeOptions};

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/audit")
        .join(rel)
}

fn decode_file(
    rel: &str,
) -> (
    Vec<RecordBatch>,
    Vec<audithound_ingest::BadRecord>,
    audithound_ingest::ReadStats,
) {
    let bytes = std::fs::read(fixture(rel)).unwrap();
    decode_audit_bytes(&bytes, &ReadOptions::default())
}

fn column(batches: &[RecordBatch], name: &str) -> Vec<Option<String>> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b.column_by_name(name).unwrap().as_string::<i32>().clone();
            (0..a.len()).map(move |i| (!a.is_null(i)).then(|| a.value(i).to_string()))
        })
        .collect()
}

#[test]
fn old_partial_native_events_of_audit2rbac_decode() {
    let (batches, bad, stats) = decode_file("native/audit2rbac-demo.log");
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(stats.events, 37);
    let users = column(&batches, "impersonated_user");
    assert!(
        users.iter().all(Option::is_some),
        "every event impersonates someone"
    );
    assert_eq!(
        users.iter().filter(|u| u.as_deref() == Some("bob")).count(),
        29
    );
    assert!(
        column(&batches, "user_agent").iter().all(Option::is_none),
        "these events carry no userAgent"
    );
}

#[test]
fn pretty_printed_event_with_byte_order_mark_decodes() {
    let (batches, bad, stats) = decode_file("native/pretty-event-with-bom.json");
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(stats.events, 1);
    assert_eq!(
        column(&batches, "resource")[0].as_deref(),
        Some("controllerrevisions")
    );
    assert_eq!(
        column(&batches, "level")[0].as_deref(),
        Some("RequestResponse")
    );
}

#[test]
fn khi_lease_update_with_user_extra_decodes() {
    let (batches, bad, _) = decode_file("native/khi-oss-lease-update.json");
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(
        column(&batches, "user_name")[0].as_deref(),
        Some("system:kube-scheduler")
    );
    assert_eq!(column(&batches, "resource")[0].as_deref(), Some("leases"));
    let extra = column(&batches, "unknown_fields")[0]
        .clone()
        .expect("the extra `job` key is kept");
    assert!(extra.contains("\"job\""), "{extra}");
    assert!(
        column(&decode_file("native/v1beta1.log").0, "unknown_fields")
            .iter()
            .all(Option::is_none)
    );
}

#[test]
fn v1beta1_with_legacy_timestamp_and_no_user_agent_decodes() {
    let (batches, bad, stats) = decode_file("native/v1beta1.log");
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(stats.events, 2);
    let ts = batches[0]
        .column_by_name("ts")
        .unwrap()
        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
    assert_eq!(
        ts.value(0),
        1_549_022_400_000_000,
        "2019-02-01T12:00:00Z from `timestamp`"
    );
}

#[test]
fn aks_event_hub_batch_with_log_as_json_string_decodes_with_cluster() {
    let (batches, bad, stats) = decode_file("aks/event-hub-batch.json");
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(stats.events, 22);
    assert!(
        column(&batches, "cluster")
            .iter()
            .all(|c| c.as_deref() == Some("KUBETEST"))
    );
}

#[test]
fn aks_single_record_with_bom_decodes() {
    let (batches, bad, stats) = decode_file("aks/record-with-bom.json");
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(stats.events, 1);
    assert_eq!(
        column(&batches, "cluster")[0].as_deref(),
        Some("KUBEAUDITLOGTESTCLUSTER")
    );
}

#[test]
fn aks_record_with_log_as_object_decodes() {
    let record = br#"{"category":"kube-audit-admin","resourceId":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks-west","properties":{"log":{"kind":"Event","auditID":"x1","verb":"create","stageTimestamp":"2024-01-01T00:00:00Z","objectRef":{"resource":"pods","namespace":"default"}},"stream":"stdout"}}
{"category":"kube-apiserver","resourceId":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks-west","properties":{"log":"I0101 apiserver started","stream":"stderr"}}"#;
    let (batches, bad, stats) = decode_audit_bytes(record, &ReadOptions::default());
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(
        (stats.events, stats.skipped),
        (1, 1),
        "other AKS categories are skipped, not errors"
    );
    assert_eq!(column(&batches, "cluster")[0].as_deref(), Some("aks-west"));
}

#[test]
fn gke_cloud_audit_logs_decode_and_control_plane_operations_are_skipped() {
    let (batches, bad, stats) = decode_file("gke/khi-cloud-audit.jsonl");
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!((stats.events, stats.skipped), (3, 2));
    assert_eq!(
        column(&batches, "verb"),
        [
            Some("create".into()),
            Some("patch".into()),
            Some("patch".into())
        ]
    );
    assert_eq!(
        column(&batches, "cluster")[0].as_deref(),
        Some("sample-cluster")
    );
    assert_eq!(
        column(&batches, "subresource")[1].as_deref(),
        Some("status")
    );
    assert!(
        column(&batches, "user_agent")[1]
            .as_deref()
            .unwrap()
            .starts_with("kubelet/")
    );
    let images = batches[0]
        .column_by_name("images")
        .unwrap()
        .as_list::<i32>()
        .value(0);
    assert!(
        images.as_string::<i32>().len() >= 1,
        "the pod create carries its images"
    );
}

#[test]
fn eks_cloudwatch_subscription_envelope_decodes_and_control_messages_are_skipped() {
    let (batches, bad, stats) = decode_file("eks/cloudwatch-subscription.jsonl");
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!((stats.events, stats.skipped), (2, 1));
    assert!(
        column(&batches, "cluster")
            .iter()
            .all(|c| c.as_deref() == Some("prod-eks-1"))
    );
    assert_eq!(column(&batches, "subresource")[1].as_deref(), Some("exec"));
}

#[test]
fn eks_exported_cloudwatch_events_decode() {
    let (batches, bad, stats) = decode_file("eks/exported-events.jsonl");
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(stats.events, 2);
    assert_eq!(column(&batches, "resource")[1].as_deref(), Some("events"));
}

#[test]
fn webhook_eventlist_and_json_arrays_decode() {
    let (batches, bad, stats) = decode_file("webhook/eventlist-pretty.json");
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(stats.events, 2);
    assert_eq!(
        column(&batches, "stage")[1].as_deref(),
        Some("ResponseStarted")
    );
    let (_, bad, stats) = decode_file("webhook/event-array.json");
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(stats.events, 2);
}

#[test]
fn malformed_lines_are_reported_with_their_line_and_good_lines_around_them_survive() {
    let (batches, bad, stats) = decode_file("native/malformed-mixed.log");
    assert_eq!(stats.events, 4);
    assert_eq!(stats.malformed, 5);
    let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
    assert_eq!(lines, [2, 4, 5, 7, 8]);
    assert!(matches!(bad[0].error, DecodeError::Json(_)));
    assert!(
        bad[3].error.to_string().contains("invalid type"),
        "{}",
        bad[3].error
    );
    assert!(matches!(bad[4].error, DecodeError::NotAuditEvent(_)));
    assert_eq!(
        column(&batches, "name"),
        [
            Some("p0".into()),
            Some("p1".into()),
            Some("p2".into()),
            Some("ok".into())
        ]
    );
}

#[test]
fn reading_a_directory_in_parallel_keeps_input_order_and_counts_everything() {
    let inputs = expand_paths(&[fixture("native").to_str().unwrap()]).unwrap();
    assert_eq!(inputs.len(), 5);
    let options = ReadOptions {
        batch_rows: 3,
        workers: 3,
        ..Default::default()
    };
    let mut ids = Vec::new();
    let mut bad = 0;
    let stats = read_audit_inputs(&inputs, &options, &|_| {}, |item| {
        match item {
            DecodedBatch::Batch(_, b) => ids.extend(column(&[b], "audit_id")),
            DecodedBatch::Bad(_) => bad += 1,
            DecodedBatch::ScreenedOut { .. } => unreachable!("no screen was set"),
        }
        Ok::<_, ()>(())
    })
    .unwrap();
    assert_eq!(stats.events, 37 + 1 + 4 + 1 + 2);
    assert_eq!(bad, 5);
    assert_eq!(stats.malformed, 5);
    assert_eq!(ids.len() as u64, stats.events);
    // audit2rbac-demo.log comes first and its first event is its first line.
    assert_eq!(
        ids[0].as_deref(),
        Some("033d17af-082d-4b24-aa22-627752e83d71")
    );
}

#[test]
fn a_consumer_that_fails_stops_the_reading_and_gets_its_error_back() {
    // Many small chunks: when the consumer fails on the first batch, the framer still has most
    // of the input ahead of it and must give up rather than wait for a worker forever.
    let inputs = expand_paths(&[fixture("native").to_str().unwrap()]).unwrap();
    let options = ReadOptions {
        batch_rows: 1,
        workers: 2,
        ..Default::default()
    };
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut batches = 0;
        let outcome = read_audit_inputs(&inputs, &options, &|_| {}, |item| {
            if matches!(item, DecodedBatch::Batch(..)) {
                batches += 1;
                return Err("consumer gave up");
            }
            Ok(())
        });
        let _ = done_tx.send((outcome.map(|_| ()).map_err(|e| e.to_string()), batches));
    });
    let (outcome, batches) = done_rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("reading stops within 30 s of the consumer's error");
    assert_eq!(outcome, Err("consumer failed".to_string()));
    assert_eq!(batches, 1, "nothing is delivered after the error");
}

#[test]
fn files_that_are_not_json_logs_are_skipped_whole_and_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("NOTES.md"), "# notes\nnot a log\n").unwrap();
    std::fs::copy(fixture("native/v1beta1.log"), dir.path().join("audit.log")).unwrap();
    let inputs = expand_paths(&[dir.path().to_str().unwrap()]).unwrap();
    let stats = read_audit_inputs(&inputs, &ReadOptions::default(), &|_| {}, |_| {
        Ok::<_, ()>(())
    })
    .unwrap();
    assert_eq!(stats.events, 2);
    assert_eq!(stats.malformed, 0);
    assert_eq!(stats.skipped_inputs.len(), 1);
    assert!(stats.skipped_inputs[0].ends_with("NOTES.md"));
}

#[test]
fn gzip_and_options_cluster_flow_through_the_reader() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(&std::fs::read(fixture("native/v1beta1.log")).unwrap())
        .unwrap();
    gz.finish().unwrap();
    let options = ReadOptions {
        decode: DecodeOptions {
            cluster: Some("onprem-a".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut clusters = Vec::new();
    read_audit_inputs(&[InputSource::File(path)], &options, &|_| {}, |item| {
        if let DecodedBatch::Batch(_, b) = item {
            clusters.extend(column(&[b], "cluster"));
        }
        Ok::<_, ()>(())
    })
    .unwrap();
    assert_eq!(clusters, [Some("onprem-a".into()), Some("onprem-a".into())]);
}

/// A screen of one rule that wants `get` requests and nothing else.
struct GetsOnly {
    keys: Vec<String>,
}

impl audithound_ingest::audit::ScreenJudge for GetsOnly {
    fn rules(&self) -> usize {
        1
    }
    fn key_columns(&self) -> &[String] {
        &self.keys
    }
    fn value_sets(&self) -> &[Vec<String>] {
        &[]
    }
    fn judge_keys(&self, keys: &RecordBatch) -> Vec<audithound_ingest::audit::RuleBits> {
        let verb = keys.column(0).as_string::<i32>();
        (0..keys.num_rows())
            .map(|r| vec![u64::from(verb.is_valid(r) && verb.value(r) == "get")])
            .collect()
    }
    fn judge_values(&self, _: usize, _: &RecordBatch) -> Vec<audithound_ingest::audit::RuleBits> {
        Vec::new()
    }
    fn rules_of_set(&self, _: usize) -> audithound_ingest::audit::RuleBits {
        vec![0]
    }
}

#[test]
fn a_screen_leaves_out_the_events_no_rule_wants_and_reports_their_count_and_time() {
    use audithound_ingest::audit::ScreenHandle;
    use std::sync::Arc;

    let inputs = expand_paths(&[fixture("native").to_str().unwrap()]).unwrap();
    let read = |screen: Option<ScreenHandle>| {
        let options = ReadOptions {
            batch_rows: 4,
            workers: 2,
            decode: DecodeOptions {
                screen,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut rows: Vec<(String, i64)> = Vec::new();
        let mut left_out = Vec::new();
        let stats = read_audit_inputs(&inputs, &options, &|_| {}, |item| {
            match item {
                DecodedBatch::Batch(_, b) => {
                    let verbs = column(std::slice::from_ref(&b), "verb");
                    let ts = b
                        .column_by_name("ts")
                        .unwrap()
                        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                        .clone();
                    for (i, v) in verbs.into_iter().enumerate() {
                        rows.push((v.unwrap_or_default(), ts.value(i)));
                    }
                }
                DecodedBatch::ScreenedOut {
                    events, latest_ts, ..
                } => left_out.push((events, latest_ts)),
                DecodedBatch::Bad(_) => {}
            }
            Ok::<_, ()>(())
        })
        .unwrap();
        (rows, left_out, stats)
    };
    let (all, none_left_out, plain) = read(None);
    assert!(none_left_out.is_empty());
    let handle = ScreenHandle::new();
    handle.set(Some(Arc::new(GetsOnly {
        keys: vec!["verb".into()],
    })));
    let (gets, left_out, screened) = read(Some(handle));

    let expected: Vec<_> = all.iter().filter(|(v, _)| v == "get").cloned().collect();
    assert!(!expected.is_empty() && expected.len() < all.len());
    assert_eq!(gets, expected, "the wanted rows, in input order");
    assert_eq!(
        screened.events, plain.events,
        "every event is still counted"
    );
    assert_eq!(screened.malformed, plain.malformed);
    assert_eq!(screened.screened_out, (all.len() - gets.len()) as u64);
    assert_eq!(
        left_out.iter().map(|(n, _)| n).sum::<u64>(),
        screened.screened_out
    );
    let latest_left_out = all
        .iter()
        .filter(|(v, _)| v != "get")
        .map(|(_, t)| *t)
        .max();
    assert_eq!(left_out.iter().map(|(_, t)| *t).max(), latest_left_out);
}
