use arrow::array::{Array, AsArray};

use super::*;

fn decode_one(json: &str) -> (RecordOutcome, Option<RecordBatch>) {
    let mut d = AuditDecoder::new(DecodeOptions::default());
    let out = d.decode(json.as_bytes());
    (out, d.flush().unwrap().into_iter().next().map(|(_, b)| b))
}

fn text(batch: &RecordBatch, col: &str, row: usize) -> Option<String> {
    let a = batch.column_by_name(col).unwrap().as_string::<i32>();
    (!a.is_null(row)).then(|| a.value(row).to_string())
}

#[test]
fn native_event_fills_the_typed_columns() {
    let (out, batch) = decode_one(
        r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"a1","stage":"ResponseComplete",
        "requestURI":"/api/v1/namespaces/prod/pods/web-0/exec?command=tar&command=cf&command=-&command=%2Fetc&container=app&stdout=true",
        "verb":"create","user":{"username":"alice","groups":["dev","system:authenticated"]},
        "impersonatedUser":{"username":"system:admin"},
        "sourceIPs":["198.51.100.4","10.0.0.1"],"userAgent":"kubectl/v1.29.0",
        "objectRef":{"resource":"pods","namespace":"prod","name":"web-0","apiVersion":"v1","subresource":"exec"},
        "responseStatus":{"metadata":{},"code":101},
        "requestReceivedTimestamp":"2024-05-01T10:00:00.000001Z","stageTimestamp":"2024-05-01T10:00:00.250000Z",
        "annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed"}}"#,
    );
    assert_eq!(out.events, 1, "{out:?}");
    let b = batch.unwrap();
    assert_eq!(text(&b, "user_name", 0).as_deref(), Some("alice"));
    assert_eq!(
        text(&b, "impersonated_user", 0).as_deref(),
        Some("system:admin")
    );
    assert_eq!(text(&b, "source_ip", 0).as_deref(), Some("198.51.100.4"));
    assert_eq!(text(&b, "subresource", 0).as_deref(), Some("exec"));
    assert_eq!(
        text(&b, "exec_command", 0).as_deref(),
        Some("tar cf - /etc")
    );
    assert_eq!(text(&b, "decision", 0).as_deref(), Some("allow"));
    let code = b
        .column_by_name("response_code")
        .unwrap()
        .as_primitive::<arrow::datatypes::Int32Type>();
    assert_eq!(code.value(0), 101);
    let ts = b
        .column_by_name("ts")
        .unwrap()
        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
    assert_eq!(
        ts.value(0),
        1_714_557_600_250_000,
        "event time is the stage timestamp"
    );
}

#[test]
fn wrong_types_and_non_events_are_errors_not_panics() {
    for bad in [
        r#"{"kind": 0}"#,
        r#"{"verb": 5}"#,
        r#"{}"#,
        "[1,2",
        r#"{"kind":"Pod"}"#,
        r#"{"kind":"Event","stageTimestamp":"soon","verb":"get"}"#,
    ] {
        let (out, batch) = decode_one(bad);
        assert_eq!(out.events, 0, "{bad}");
        assert_eq!(out.errors.len(), 1, "{bad}: {out:?}");
        assert!(batch.is_none());
    }
}

#[test]
fn oversized_event_is_refused_with_its_size() {
    let mut d = AuditDecoder::new(DecodeOptions {
        max_event_bytes: 200,
        ..Default::default()
    });
    let big = format!(
        r#"{{"kind":"Event","auditID":"x","verb":"get","stageTimestamp":"2024-01-01T00:00:00Z","requestURI":"/{}"}}"#,
        "a".repeat(300)
    );
    let out = d.decode(big.as_bytes());
    assert!(
        matches!(out.errors[..], [DecodeError::Oversized { limit: 200, .. }]),
        "{out:?}"
    );
}

#[test]
fn secret_values_never_reach_the_batch() {
    let (out, batch) = decode_one(
        r#"{"kind":"Event","level":"RequestResponse","auditID":"s1","stage":"ResponseComplete","verb":"create",
        "requestURI":"/api/v1/namespaces/prod/secrets","user":{"username":"alice"},
        "objectRef":{"resource":"secrets","namespace":"prod","name":"db"},
        "requestObject":{"kind":"Secret","type":"Opaque","data":{"password":"aHVudGVyMg=="},"stringData":{"token":"plain-token"}},
        "responseObject":{"kind":"Secret","type":"Opaque","data":{"password":"aHVudGVyMg=="}},
        "stageTimestamp":"2024-05-01T10:00:00Z"}"#,
    );
    assert_eq!(out.events, 1);
    let b = batch.unwrap();
    let req = text(&b, "request_object", 0).unwrap();
    let resp = text(&b, "response_object", 0).unwrap();
    for s in [&req, &resp] {
        assert!(
            !s.contains("aHVudGVyMg") && !s.contains("plain-token"),
            "{s}"
        );
        assert!(s.contains(redact::REDACTED));
    }
    assert_eq!(text(&b, "secret_type", 0).as_deref(), Some("Opaque"));
}

#[test]
fn cluster_comes_from_the_wrapper_else_from_the_options() {
    let mut d = AuditDecoder::new(DecodeOptions {
        cluster: Some("lab".into()),
        ..Default::default()
    });
    let event = r#"{\"kind\":\"Event\",\"auditID\":\"e\",\"verb\":\"get\",\"stageTimestamp\":\"2024-01-01T00:00:00Z\"}"#;
    let cw = format!(
        r#"{{"messageType":"DATA_MESSAGE","logGroup":"/aws/eks/prod-1/cluster","logEvents":[{{"message":"{event}"}}]}}"#
    );
    assert_eq!(d.decode(cw.as_bytes()).events, 1);
    assert_eq!(d.decode(br#"{"kind":"Event","auditID":"f","verb":"get","stageTimestamp":"2024-01-01T00:00:00Z"}"#).events, 1);
    let b = d.flush().unwrap().remove(0).1;
    assert_eq!(text(&b, "cluster", 0).as_deref(), Some("prod-1"));
    assert_eq!(text(&b, "cluster", 1).as_deref(), Some("lab"));
}

#[test]
fn cluster_names_of_cloud_wrappers() {
    assert_eq!(eks_cluster_name("/aws/eks/prod-1/cluster"), Some("prod-1"));
    assert_eq!(eks_cluster_name("/aws/vpc/flowlogs"), None);
    assert_eq!(
        aks_cluster_name(
            "/SUBSCRIPTIONS/X/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/KUBETEST"
        ),
        Some("KUBETEST")
    );
}

#[test]
fn columns_that_nothing_reads_are_left_null_and_the_others_filled() {
    let line = br#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/pods","verb":"list","user":{"username":"alice","groups":["dev"]},"sourceIPs":["10.1.2.3","10.0.0.1"],"userAgent":"kubectl/v1.29","objectRef":{"resource":"pods","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"stageTimestamp":"2024-05-01T08:00:00.100642Z","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by \"dev\""}}"#;
    let decode = |columns: Option<&[&str]>| {
        let mut d = AuditDecoder::new(DecodeOptions {
            audit_columns: columns.map(|c| c.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        });
        let out = d.decode(line);
        assert_eq!(out.events, 1, "{out:?}");
        let batches = d.flush().expect("flush");
        batches.into_iter().next().expect("a batch").1
    };
    let all = decode(None);
    let some = decode(Some(&["ts", "verb", "user_name", "source_ip", "decision"]));
    assert_eq!(all.schema(), some.schema(), "the schema does not change");
    let text = |b: &RecordBatch, c: &str| {
        let col = b.column_by_name(c).expect(c);
        col.is_valid(0)
            .then(|| col.as_string::<i32>().value(0).to_string())
    };
    for kept in ["verb", "user_name", "source_ip", "decision", "cluster"] {
        assert_eq!(text(&some, kept), text(&all, kept), "{kept} is filled");
    }
    assert_eq!(text(&some, "source_ip").as_deref(), Some("10.1.2.3"));
    for omitted in [
        "reason",
        "annotations",
        "user_agent",
        "request_uri",
        "audit_id",
        "level",
    ] {
        assert!(
            text(&all, omitted).is_some(),
            "{omitted} is filled when asked for"
        );
        assert_eq!(text(&some, omitted), None, "{omitted} is left null");
    }
    // The list goes when neither it nor its first element is read; here the first is.
    assert!(
        some.column_by_name("source_ips")
            .expect("source_ips")
            .is_valid(0)
    );
    assert!(
        !some
            .column_by_name("request_received_ts")
            .expect("col")
            .is_valid(0)
    );
    assert!(
        !some
            .column_by_name("response_code")
            .expect("col")
            .is_valid(0)
    );
}

#[test]
fn every_column_a_decoder_may_omit_is_an_audit_column() {
    let schema = audithound_models::audit_schema();
    for name in super::row::clearable_columns() {
        assert!(schema.field_with_name(name).is_ok(), "{name}");
    }
}

#[test]
fn lists_of_any_length_reach_their_columns_whichever_reader_decodes_them() {
    let lists = [
        r#"[]"#,
        r#"["a"]"#,
        r#"["a","b","c"]"#,
        r#"["a","b","c","d","e"]"#,
        r#"["\u0061",null]"#,
    ];
    // Nesting past the fast reader's depth is left to serde_json, which then reads the whole
    // event.
    let deep = format!(r#""deep":{}{},"#, "[".repeat(110), "]".repeat(110));
    for nesting in ["", deep.as_str()] {
        let mut d = AuditDecoder::new(DecodeOptions::default());
        for list in lists {
            let line = format!(
                r#"{{"kind":"Event","auditID":"x",{nesting}"verb":"get","user":{{"username":"u","groups":{list}}},"impersonatedUser":{{"username":"i","groups":{list}}},"sourceIPs":{list},"stageTimestamp":"2024-01-01T00:00:00Z"}}"#
            );
            let out = d.decode(line.as_bytes());
            if list.contains("null") {
                // A null inside a list of strings is not an audit event's shape: a counted error.
                assert_eq!((out.events, out.errors.len()), (0, 1), "{line}");
                continue;
            }
            assert_eq!(out.events, 1, "{line}: {out:?}");
        }
        let b = d.flush().expect("flush").remove(0).1;
        assert_eq!(b.num_rows(), 4);
        for column in ["user_groups", "impersonated_groups", "source_ips"] {
            let col = b.column_by_name(column).expect(column).as_list::<i32>();
            for (row, want) in [
                vec![],
                vec!["a"],
                vec!["a", "b", "c"],
                vec!["a", "b", "c", "d", "e"],
            ]
            .iter()
            .enumerate()
            {
                let got = col.value(row);
                let got: Vec<&str> = got.as_string::<i32>().iter().flatten().collect();
                assert_eq!(
                    &got,
                    want,
                    "{column} row {row}, nested: {}",
                    !nesting.is_empty()
                );
            }
        }
        assert_eq!(text(&b, "source_ip", 2).as_deref(), Some("a"));
        assert_eq!(text(&b, "source_ip", 0), None);
    }
}
